//! Who may read a task's metadata: the token decides which task, the caller's address (where
//! the network mode makes it known) confirms it is that task asking. Pure.

use std::net::IpAddr;

/// The endpoint's answer to one request, before any metadata is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// No container on this instance carries the token (404).
    UnknownToken,
    /// The token is valid but the request comes from an address that is not the task's (403).
    WrongCaller,
}

/// `found`: whether the token names a container here. `task_addrs`: the IPv4 addresses the
/// task's containers have on their own networks (bridge mode); empty when the mode gives the
/// task no address of its own (host: callers come from the host's addresses) or they are not
/// known yet — then the token alone decides.
pub fn decide(found: bool, caller: IpAddr, task_addrs: &[IpAddr]) -> Access {
    if !found {
        return Access::UnknownToken;
    }
    let caller = caller.to_canonical();
    if task_addrs.is_empty() || task_addrs.contains(&caller) {
        Access::Allowed
    } else {
        Access::WrongCaller
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 2));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 3));

    #[test]
    fn unknown_token_is_not_found_whoever_asks() {
        assert_eq!(decide(false, A, &[A]), Access::UnknownToken);
        assert_eq!(decide(false, A, &[]), Access::UnknownToken);
    }

    #[test]
    fn a_valid_token_from_another_tasks_address_is_forbidden() {
        assert_eq!(decide(true, A, &[A]), Access::Allowed);
        assert_eq!(decide(true, B, &[A]), Access::WrongCaller);
        // The host itself (gateway, loopback) is not the task either.
        let gw = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(decide(true, gw, &[A, B]), Access::WrongCaller);
    }

    #[test]
    fn without_task_addresses_the_token_decides_and_mapped_v6_is_v4() {
        assert_eq!(decide(true, IpAddr::V4(Ipv4Addr::LOCALHOST), &[]), Access::Allowed);
        let mapped = IpAddr::V6(Ipv4Addr::new(172, 17, 0, 2).to_ipv6_mapped());
        assert_eq!(decide(true, mapped, &[A]), Access::Allowed);
        assert_eq!(decide(true, IpAddr::V6(Ipv6Addr::LOCALHOST), &[A]), Access::WrongCaller);
    }
}

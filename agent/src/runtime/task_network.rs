//! # task_network — the engine side of `awsvpc` tasks, pure parts
//!
//! An awsvpc task gets a network namespace of its own: a pause container attached to a
//! Berth-managed bridge network ([`DEFAULT_NETWORK`], subnet [`DEFAULT_SUBNET`] unless the
//! operator says otherwise), whose namespace the task's containers join (`container:<pause>`).
//! The pause container's address is chosen by the agent before it is created (so that its
//! hostname, `ip-A-B-C-D.<region>.compute.internal`, can be set at create time: containers in
//! `container:` mode take the hostname of the container whose namespace they join).
//!
//! * [`Ipv4Subnet`]: a CIDR block, parsed and checked (`--awsvpc-subnet`).
//! * [`allocate`]: a free host address of the subnet, starting from a seed (the task id's hash,
//!   so that two agents on one engine rarely race for the same address) and skipping the ones in
//!   use and the gateway.
//! * [`private_dns_name`], [`mac_address`], [`region_of_zone`]: the names ECS would give.
//! * [`TaskNetworkSpec`]: what a pause container's [`super::ContainerSpec`] carries; the labels
//!   ([`LABEL_AWSVPC_IPV4`], …) are where the runtime records the address it gave, so that the
//!   supervisor reports it (and a restarted agent finds it again) from the container list alone.
//!
//! The engine calls (network creation, the address in use, the create) live in
//! `docker/awsvpc.rs`; the simulated runtime uses the same allocator.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// The Docker bridge network awsvpc tasks are attached to (created by the agent when absent).
pub const DEFAULT_NETWORK: &str = "berth-awsvpc";
/// Its subnet: a /16 outside Docker's default address pools (172.17.0.0/12 and
/// 192.168.0.0/16), so the engine never hands it to another network. `--awsvpc-subnet` changes it.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/16";

/// On a pause container: the IPv4 address the runtime gave it.
pub const LABEL_AWSVPC_IPV4: &str = "berth.awsvpc.ipv4";
/// On a pause container: its MAC address (set by the runtime from the address).
pub const LABEL_AWSVPC_MAC: &str = "berth.awsvpc.mac";
/// On a pause container: its hostname, the task's private DNS name.
pub const LABEL_AWSVPC_DNS_NAME: &str = "berth.awsvpc.dns-name";
/// On a pause container: the engine network it is attached to.
pub const LABEL_AWSVPC_NETWORK: &str = "berth.awsvpc.network";
/// On a pause container: the subnet of that network (CIDR).
pub const LABEL_AWSVPC_SUBNET: &str = "berth.awsvpc.subnet";
/// On engine networks Berth creates.
pub const LABEL_MANAGED_NETWORK: &str = "berth.managed";

/// What makes a container the pause container of an awsvpc task: the runtime attaches it to
/// `network` with an address of its own from `subnet` and names it after that address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNetworkSpec {
    /// Engine network name.
    pub network: String,
    /// The network's subnet (created with it when the network is absent).
    pub subnet: Ipv4Subnet,
    /// `<region>.compute.internal`: the hostname is `ip-A-B-C-D.<dns_domain>`.
    pub dns_domain: String,
    /// Where address allocation starts (see [`allocate`]).
    pub seed: u64,
}

/// An IPv4 CIDR block with at least 2 usable host addresses besides the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Subnet {
    /// Smallest accepted prefix length: a /8 (16 M addresses) is the most a host will hold.
    pub const MIN_PREFIX: u8 = 8;
    /// Largest: a /29 leaves 5 addresses for tasks after the network, gateway and broadcast.
    pub const MAX_PREFIX: u8 = 29;

    /// Parses `A.B.C.D/N`; the error says what is wrong (for `--awsvpc-subnet`).
    pub fn parse(s: &str) -> Result<Ipv4Subnet, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR block like {DEFAULT_SUBNET}"))?;
        let base: Ipv4Addr =
            addr.parse().map_err(|_| format!("{s:?}: {addr:?} is not an IPv4 address"))?;
        let prefix: u8 =
            prefix.parse().map_err(|_| format!("{s:?}: {prefix:?} is not a prefix length"))?;
        if !(Self::MIN_PREFIX..=Self::MAX_PREFIX).contains(&prefix) {
            return Err(format!(
                "{s:?}: the prefix length must be {}..{} (room for tasks, not a whole /0)",
                Self::MIN_PREFIX,
                Self::MAX_PREFIX
            ));
        }
        let subnet = Ipv4Subnet { base, prefix };
        if u32::from(base) & !subnet.mask() != 0 {
            let net = Ipv4Addr::from(u32::from(base) & subnet.mask());
            return Err(format!("{s:?} has host bits set; did you mean {net}/{prefix}?"));
        }
        Ok(subnet)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// Number of addresses in the block.
    fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.prefix))
    }

    /// The first host address, which Berth gives the bridge (Docker's convention too).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.base)
    }
}

impl std::fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// A free address for a task: host addresses of `subnet` except the network address, the
/// gateway (`.1`) and the broadcast address, and none of `used`. The search starts at
/// `seed % count` and wraps, so concurrent allocators with different seeds rarely pick the
/// same one. `None` when the subnet is full.
pub fn allocate(subnet: &Ipv4Subnet, used: &HashSet<Ipv4Addr>, seed: u64) -> Option<Ipv4Addr> {
    // Candidates: base+2 ..= base+size-2.
    let count = subnet.size().checked_sub(3)?;
    if count == 0 {
        return None;
    }
    let first = u32::from(subnet.base) + 2;
    let start = (seed % u64::from(count)) as u32;
    (0..count).map(|k| Ipv4Addr::from(first + (start + k) % count)).find(|ip| !used.contains(ip))
}

/// A stable seed from a task id (FNV-1a), so a task's first choice does not depend on time.
pub fn seed_of(task_id: &str) -> u64 {
    task_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// ECS's private DNS name for an address: `ip-10-213-0-5.<dns_domain>`.
pub fn private_dns_name(ip: Ipv4Addr, dns_domain: &str) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}.{dns_domain}")
}

/// `<region>.compute.internal`, the EC2 private DNS domain of a region.
pub fn dns_domain(region: &str) -> String {
    format!("{region}.compute.internal")
}

/// The region of an availability zone as EC2 names them (`us-east-1a` → `us-east-1`); any
/// other zone name (Berth's default `local`, or `rack-3`) is its own region.
pub fn region_of_zone(zone: &str) -> String {
    let b = zone.as_bytes();
    match b {
        [.., digit, letter] if digit.is_ascii_digit() && letter.is_ascii_lowercase() => {
            zone[..zone.len() - 1].to_string()
        }
        _ => zone.to_string(),
    }
}

/// The MAC address Berth sets on a pause container: `02:42` (locally administered, Docker's
/// prefix) followed by the four bytes of its address, as Docker derives them itself.
pub fn mac_address(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_parses_and_names_what_is_wrong() {
        let s = Ipv4Subnet::parse(DEFAULT_SUBNET).unwrap();
        assert_eq!((s.base, s.prefix), (ip("10.213.0.0"), 16));
        assert_eq!(s.gateway(), ip("10.213.0.1"));
        assert_eq!(s.to_string(), "10.213.0.0/16");
        assert!(s.contains(ip("10.213.255.254")) && !s.contains(ip("10.214.0.1")));
        let err = |t: &str| Ipv4Subnet::parse(t).unwrap_err();
        assert!(err("10.213.0.0").contains("not a CIDR block"), "{}", err("10.213.0.0"));
        assert!(err("10.213.0/16").contains("not an IPv4 address"));
        assert!(err("10.213.0.0/x").contains("not a prefix length"));
        assert!(err("10.0.0.0/30").contains("prefix length must be 8..29"));
        assert!(err("10.0.0.0/4").contains("prefix length must be 8..29"));
        assert!(err("10.213.0.7/16").contains("did you mean 10.213.0.0/16"));
    }

    #[test]
    fn allocation_skips_network_gateway_broadcast_and_used_addresses() {
        let s = Ipv4Subnet::parse("192.0.2.0/29").unwrap(); // .0 net, .1 gw, .7 broadcast
        let mut used = HashSet::new();
        let mut got = Vec::new();
        while let Some(a) = allocate(&s, &used, 0) {
            used.insert(a);
            got.push(a);
        }
        let want: Vec<Ipv4Addr> = (2..=6).map(|d| Ipv4Addr::new(192, 0, 2, d)).collect();
        assert_eq!(got, want, "lowest free first with seed 0, until the subnet is full");
        assert_eq!(allocate(&s, &used, 12345), None);
    }

    #[test]
    fn allocation_starts_at_the_seed_and_wraps() {
        let s = Ipv4Subnet::parse("192.0.2.0/29").unwrap(); // 5 candidates: .2 … .6
        let none = HashSet::new();
        assert_eq!(allocate(&s, &none, 3), Some(ip("192.0.2.5")));
        assert_eq!(allocate(&s, &none, 8), Some(ip("192.0.2.5")), "8 % 5 = 3");
        let used: HashSet<Ipv4Addr> = [ip("192.0.2.5"), ip("192.0.2.6")].into();
        assert_eq!(allocate(&s, &used, 3), Some(ip("192.0.2.2")), "wraps past the end");
        let a = allocate(&Ipv4Subnet::parse(DEFAULT_SUBNET).unwrap(), &none, seed_of("abc"));
        assert!(a.is_some_and(|a| a != ip("10.213.0.1") && a != ip("10.213.0.0")));
        assert_eq!(seed_of("abc"), seed_of("abc"));
        assert_ne!(seed_of("abc"), seed_of("abd"));
    }

    #[test]
    fn names_follow_ec2() {
        let a = ip("10.213.4.7");
        assert_eq!(
            private_dns_name(a, &dns_domain("us-east-1")),
            "ip-10-213-4-7.us-east-1.compute.internal"
        );
        assert_eq!(mac_address(a), "02:42:0a:d5:04:07");
        assert_eq!(region_of_zone("us-east-1a"), "us-east-1");
        assert_eq!(region_of_zone("eu-west-3c"), "eu-west-3");
        assert_eq!(region_of_zone("local"), "local");
        assert_eq!(region_of_zone("rack-3"), "rack-3");
        assert_eq!(region_of_zone(""), "");
    }
}

//! `berth operator members list|add|remove` and `berth operator status`: the controllers' Raft
//! group (and `berth operator acl …`, in `cmd::acl`; `token …`, in `cmd::token`; `ca …`, in
//! `cmd::ca`; `cert …`, in `cmd::cert`). Replies are `berth_proto::model::Member` / `ControllerStatus` objects.

use crate::client::{self, Api};
use crate::output::{self, Fields, Format, Table};
use berth_proto::model::{ControllerStatus, Member};
use berth_proto::v1::{AddMemberRequest, ListMembersRequest, RemoveMemberRequest, StatusRequest};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// List, add and remove controllers of the Raft group.
    #[command(subcommand)]
    Members(MembersCmd),
    /// The answering controller's view: role, leader, term, applied index, state digest.
    Status,
    /// API tokens with roles: `acl token create|list|revoke`, `acl whoami` (`cmd::acl`).
    #[command(subcommand)]
    Acl(super::acl::AclCmd),
    /// Join tokens for agents and controllers: `token create|list|revoke` (`cmd::token`).
    #[command(subcommand)]
    Token(super::token::TokenCmd),
    /// The cluster root CA: `ca rotate` (cross-signed, no downtime), `ca describe` (`cmd::ca`).
    #[command(subcommand)]
    Ca(super::ca::CaCmd),
    /// Client certificates for the CLI (`--client-cert`): `cert create` (`cmd::cert`).
    #[command(subcommand)]
    Cert(super::cert::CertCmd),
}

#[derive(Debug, Subcommand)]
pub enum MembersCmd {
    /// List the controllers of the group.
    List,
    /// Add a controller (started with `berth-controller --join`); returns once it is a member.
    Add {
        /// Raft node id of the new controller (unique, > 0).
        node_id: u64,
        /// host:port of its peer listener (`--peer-listen`).
        #[arg(long)]
        peer_address: String,
        /// http://host:port of its client API (`--listen`).
        #[arg(long, default_value = "")]
        client_address: String,
    },
    /// Remove a controller from the group.
    Remove {
        /// Raft node id to remove.
        node_id: u64,
    },
}

fn members_table(members: &[Member]) -> String {
    let mut t = Table::new(&["ID", "PEER ADDRESS", "CLIENT ADDRESS", "ROLE", "LEADER"]);
    for m in members {
        t.row(vec![
            m.node_id.to_string(),
            m.peer_address.clone(),
            m.client_address.clone().unwrap_or_default(),
            m.role.clone(),
            if m.is_leader { "yes".into() } else { String::new() },
        ]);
    }
    t.render()
}

fn member_detail(m: &Member) -> String {
    members_table(std::slice::from_ref(m))
}

fn status_detail(s: &ControllerStatus) -> String {
    let mut f = Fields::default();
    f.add("Node", s.node_id.to_string())
        .add("Role", s.role.clone())
        .add("Leader", s.leader_id.map(|l| l.to_string()).unwrap_or_default())
        .add("Term", s.term.to_string())
        .add("Applied", s.applied_index.to_string())
        .add("Digest", s.state_digest.clone());
    f.render()
}

pub async fn run(cmd: OperatorCmd, api: &mut Api, out: Format) -> anyhow::Result<()> {
    let text = match cmd {
        OperatorCmd::Members(MembersCmd::List) => {
            let items = client::list(api.grpc().list_members(ListMembersRequest {}).await)?;
            output::show_list::<Member>(out, &items, "member", members_table)?
        }
        OperatorCmd::Members(MembersCmd::Add { node_id, peer_address, client_address }) => {
            let req = AddMemberRequest { node_id, peer_address, client_address };
            let mut reply = api.grpc().add_member(req.clone()).await;
            if not_leader(&reply)
                && let Some(mut leader) = api.leader().await?
            {
                reply = leader.grpc().add_member(req).await;
            }
            output::show::<Member>(out, &client::object(reply)?, "member", member_detail)?
        }
        OperatorCmd::Members(MembersCmd::Remove { node_id }) => {
            let req = RemoveMemberRequest { node_id };
            let mut reply = api.grpc().remove_member(req).await;
            if not_leader(&reply)
                && let Some(mut leader) = api.leader().await?
            {
                reply = leader.grpc().remove_member(req).await;
            }
            output::show::<Member>(out, &client::object(reply)?, "member", member_detail)?
        }
        // Needs the command line's --cluster, so `main` dispatches it to `cmd::acl` itself.
        OperatorCmd::Acl(c) => return super::acl::run(c, api, out, None).await,
        OperatorCmd::Token(c) => return super::token::run(c, api, out).await,
        OperatorCmd::Ca(c) => return super::ca::run(c, api, out).await,
        OperatorCmd::Cert(c) => return super::cert::run(c, api, out).await,
        OperatorCmd::Status => {
            let json = client::object(api.grpc().get_status(StatusRequest {}).await)?;
            output::show::<ControllerStatus>(out, &json, "status", status_detail)?
        }
    };
    print!("{text}");
    Ok(())
}

/// A membership change refused by a follower (only the leader changes membership; the CLI
/// then sends it to the leader the members list names).
fn not_leader<T>(reply: &Result<T, tonic::Status>) -> bool {
    matches!(reply, Err(s) if s.code() == tonic::Code::Unavailable
        && s.metadata().get("x-berth-leader-id").is_some())
}

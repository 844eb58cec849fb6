//! The member list as gossip sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use chitchat::{ChitchatHandle, ChitchatId, NodeState};
use membership::{keys, NodeId};
use serde::Serialize;
use tokio::sync::watch;

use crate::tasks::Tasks;
use crate::transport::Transport;

/// A live member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    /// Name and generation.
    pub id: NodeId,
    /// Advertise address.
    pub addr: SocketAddr,
    /// Roles, sorted (from membership's `member.roles` key).
    pub roles: Vec<String>,
}

/// Follows chitchat's live nodes, keeps the links' addresses current,
/// and publishes the member list. This node, with `roles`, is in it from
/// the start.
pub(crate) async fn spawn_members_view(
    transport: &Arc<Transport>,
    tasks: &Tasks,
    chitchat: &ChitchatHandle,
    roles: &BTreeSet<String>,
) -> watch::Receiver<Vec<MemberInfo>> {
    let me = MemberInfo {
        id: transport.id().clone(),
        addr: transport.advertise(),
        roles: roles.iter().cloned().collect(),
    };
    let mut live = chitchat.chitchat().lock().await.live_nodes_watcher();
    let initial = to_members(&me, &live.borrow_and_update());
    let (tx, rx) = watch::channel(initial);
    let transport = transport.clone();
    tasks.spawn(async move {
        while live.changed().await.is_ok() {
            let members = to_members(&me, &live.borrow_and_update());
            for member in &members {
                if member.id.name != me.id.name {
                    transport.link(&member.id.name, Some(member.addr));
                }
            }
            tx.send_if_modified(|current| {
                let changed = *current != members;
                if changed {
                    tracing::info!(
                        node = %me.id,
                        members = ?members.iter().map(|m| m.id.to_string()).collect::<Vec<_>>(),
                        "membership changed"
                    );
                    *current = members;
                }
                changed
            });
        }
    });
    rx
}

fn to_members(me: &MemberInfo, live: &BTreeMap<ChitchatId, NodeState>) -> Vec<MemberInfo> {
    let mut members: Vec<MemberInfo> = live
        .iter()
        .map(|(id, state)| MemberInfo {
            id: NodeId::new(id.node_id.to_string(), id.generation_id),
            addr: id.gossip_advertise_addr,
            roles: state
                .get(keys::ROLES)
                .map(|roles| keys::decode_roles(roles).into_iter().collect())
                .unwrap_or_default(),
        })
        .collect();
    if !members.iter().any(|m| m.id == me.id) {
        members.push(me.clone());
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    members
}

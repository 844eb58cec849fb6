//! The member list as gossip sees it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chitchat::{ChitchatHandle, ChitchatId, NodeState};
use membership::NodeId;
use serde::Serialize;
use tokio::sync::watch;

use crate::node::Shared;

/// The chitchat key holding a node's roles, comma separated.
pub(crate) const ROLES_KEY: &str = "roles";

/// A live member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    /// Name and generation.
    pub id: NodeId,
    /// Advertise address.
    pub addr: SocketAddr,
    /// Roles.
    pub roles: Vec<String>,
}

pub(crate) struct MembersView;

impl MembersView {
    /// Follows chitchat's live nodes, keeps the peer table's addresses current,
    /// and publishes the member list.
    pub(crate) async fn spawn(
        shared: &Arc<Shared>,
        chitchat: &ChitchatHandle,
    ) -> watch::Receiver<Vec<MemberInfo>> {
        let mut live = chitchat.chitchat().lock().await.live_nodes_watcher();
        let initial = to_members(shared, &live.borrow_and_update());
        let (tx, rx) = watch::channel(initial);
        let task_shared = shared.clone();
        shared.spawn(async move {
            while live.changed().await.is_ok() {
                let members = to_members(&task_shared, &live.borrow_and_update());
                for member in &members {
                    if member.id.name != task_shared.id.name {
                        task_shared.peer(&member.id.name, Some(member.addr));
                    }
                }
                tx.send_if_modified(|current| {
                    let changed = *current != members;
                    if changed {
                        tracing::info!(
                            node = %task_shared.id,
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
}

fn to_members(shared: &Shared, live: &BTreeMap<ChitchatId, NodeState>) -> Vec<MemberInfo> {
    let mut members: Vec<MemberInfo> = live
        .iter()
        .map(|(id, state)| MemberInfo {
            id: NodeId::new(id.node_id.to_string(), id.generation_id),
            addr: id.gossip_advertise_addr,
            roles: state
                .get(ROLES_KEY)
                .map(|r| {
                    r.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    if !members.iter().any(|m| m.id == shared.id) {
        members.push(MemberInfo {
            id: shared.id.clone(),
            addr: shared.advertise,
            roles: shared.config.roles.clone(),
        });
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    members
}

//! Between chitchat and the membership brain: what gossip knows goes in, this
//! node's own `member.*` keys go out.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use chitchat::{Chitchat, ChitchatId};
use membership::keys::MembershipKey;
use membership::{GossipNode, NodeId};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::Mutex;

/// A chitchat instance shared with its gossip loop.
pub(crate) type SharedChitchat = Arc<Mutex<Chitchat>>;

/// What one read of chitchat yields.
pub(crate) struct GossipRead {
    /// Every node chitchat knows except this one, with chitchat's liveness.
    pub(crate) nodes: Vec<GossipNode>,
}

/// Reads every node state chitchat knows (this node excluded: the brain
/// overlays its own keys), each marked live if chitchat's detector says so.
pub(crate) async fn read_gossip(chitchat: &SharedChitchat) -> GossipRead {
    let chitchat = chitchat.lock().await;
    let me = chitchat.self_chitchat_id().clone();
    let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
    let nodes = chitchat
        .node_states()
        .iter()
        .filter(|(id, _)| **id != me)
        .map(|(id, state)| gossip_node(state, live.contains(id)))
        .collect();
    GossipRead { nodes }
}

/// A chitchat node state as membership reads it; `live` is whether the node
/// is among chitchat's live nodes. Deleted keys are not included.
fn gossip_node(state: &chitchat::NodeState, live: bool) -> GossipNode {
    let chitchat_id = state.chitchat_id();
    GossipNode::from_key_values(
        NodeId::new(chitchat_id.node_id.to_string(), chitchat_id.generation_id),
        chitchat_id.gossip_advertise_addr,
        state.key_values(),
        live,
    )
}

/// One change to this node's own keys.
pub(crate) enum KeyChange {
    /// Set `key` to `value`.
    Set(String, String),
    /// Delete `key`.
    Delete(String),
}

/// Applies `changes` to this node's own chitchat state, in order, under one
/// lock. Returns the gossip addresses of the peers chitchat considers live
/// (empty when nothing changed), to push the change to at once.
pub(crate) async fn write_own_keys(
    chitchat: &SharedChitchat,
    changes: Vec<KeyChange>,
) -> Vec<SocketAddr> {
    if changes.is_empty() {
        return Vec::new();
    }
    let mut chitchat = chitchat.lock().await;
    let own = chitchat.self_node_state();
    for change in changes {
        match change {
            KeyChange::Set(key, value) => own.set(key, value),
            KeyChange::Delete(key) => own.delete(&key),
        }
    }
    let me = chitchat.self_chitchat_id();
    chitchat
        .live_nodes()
        .filter(|id| *id != me)
        .map(|id| id.gossip_advertise_addr)
        .collect()
}

/// How many peers to push `changes` to: `configured`, but every live peer
/// for a Down decision. Downs are rare, and the time until every survivor
/// has seen one is part of failover (with 3, a Down took 0.2-0.3 s more to
/// reach 49 survivors than to be decided).
pub(crate) fn push_fanout(changes: &[KeyChange], configured: usize) -> usize {
    let decides_a_down = changes.iter().any(|change| {
        matches!(change, KeyChange::Set(key, _) if key.starts_with(membership::keys::DOWN_PREFIX))
    });
    if decides_a_down {
        usize::MAX
    } else {
        configured
    }
}

/// The members that `changes` admit: the leader pushes its keys to each of
/// them as well, since an admission is news to the joiner above all and it
/// waits for it (one push per joiner, when it is admitted; with random
/// peers alone, 49 joiners admitted together heard of it over 0.35 s).
pub(crate) fn admitted(changes: &[KeyChange]) -> impl Iterator<Item = NodeId> + '_ {
    changes.iter().filter_map(|change| match change {
        KeyChange::Set(key, _) => match MembershipKey::decode(key) {
            Some(Ok(MembershipKey::Admit(id))) => Some(id),
            _ => None,
        },
        KeyChange::Delete(_) => None,
    })
}

/// The peers to push a change of this node's own keys to: `first` (the
/// leader) if it is among the `live` peers, then every live peer of `also`
/// (the joiners the change admits, see [`admitted`]), then peers of `live`
/// chosen at random: `fanout` at most besides `also` (see
/// `NodeConfig::gossip_push_fanout`). No peer twice.
pub(crate) fn push_targets(
    mut live: Vec<SocketAddr>,
    first: Option<SocketAddr>,
    also: &[SocketAddr],
    fanout: usize,
    rng: &mut impl Rng,
) -> Vec<SocketAddr> {
    let mut take = |addr: SocketAddr| {
        let at = live.iter().position(|live| *live == addr)?;
        Some(live.swap_remove(at))
    };
    let leader = first.filter(|_| fanout > 0).and_then(&mut take);
    let mut targets: Vec<SocketAddr> = leader.into_iter().collect();
    targets.extend(also.iter().filter_map(|addr| take(*addr)));
    let rest = fanout.saturating_sub(usize::from(leader.is_some()));
    targets.extend(live.choose_multiple(rng, rest).copied());
    targets
}

/// Who published a Down decision naming `me` (this node included), and the
/// youngest incarnation of `me`'s name if it is younger than `me`.
pub(crate) async fn who_downed(
    chitchat: &SharedChitchat,
    me: &NodeId,
) -> (Vec<NodeId>, Option<NodeId>) {
    let key = MembershipKey::Down(me.clone()).encode();
    let chitchat = chitchat.lock().await;
    let mut deciders = Vec::new();
    let mut younger: Option<NodeId> = None;
    for (id, state) in chitchat.node_states() {
        let node = NodeId::new(id.node_id.to_string(), id.generation_id);
        if state.get(&key).is_some() {
            deciders.push(node.clone());
        }
        if node.name == me.name && node.generation > me.generation {
            younger = younger.max(Some(node));
        }
    }
    deciders.sort();
    (deciders, younger)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (1..=n)
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .collect()
    }

    #[test]
    fn an_admission_names_the_admitted() {
        let admit = |n: &str| MembershipKey::Admit(NodeId::new(n, 1)).encode();
        let changes = [
            KeyChange::Set(admit("a"), "1".into()),
            KeyChange::Set(membership::keys::STATUS.into(), "up".into()),
            KeyChange::Delete(admit("b")),
            KeyChange::Set(admit("c"), "1".into()),
        ];
        let named: Vec<NodeId> = admitted(&changes).collect();
        assert_eq!(named, vec![NodeId::new("a", 1), NodeId::new("c", 1)]);
    }

    #[test]
    fn pushes_to_the_leader_and_a_few_random_live_peers() {
        let mut rng = rand::rngs::mock::StepRng::new(0, 1);
        let live = addrs(50);
        let leader = live[17];
        let targets = push_targets(live.clone(), Some(leader), &[], 3, &mut rng);
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[0], leader);
        let distinct: HashSet<_> = targets.iter().collect();
        assert_eq!(distinct.len(), 3, "no peer twice: {targets:?}");
        assert!(targets.iter().all(|t| live.contains(t)));
    }

    #[test]
    fn the_admitted_joiners_that_are_live_are_pushed_to_besides_the_fanout() {
        let mut rng = rand::rngs::mock::StepRng::new(0, 1);
        let live = addrs(50);
        let leader = live[0];
        let gone = SocketAddr::from(([127, 0, 0, 2], 1));
        let joiners = [live[10], live[11], gone, live[0]];
        let targets = push_targets(live.clone(), Some(leader), &joiners, 3, &mut rng);
        assert_eq!(targets[..3], [leader, live[10], live[11]]);
        assert_eq!(targets.len(), 5, "the leader, two joiners, two at random");
        let distinct: HashSet<_> = targets.iter().collect();
        assert_eq!(distinct.len(), 5, "no peer twice: {targets:?}");
        assert!(!targets.contains(&gone));
    }

    #[test]
    fn a_leader_that_is_not_live_is_not_pushed_to() {
        let mut rng = rand::rngs::mock::StepRng::new(0, 1);
        let gone = SocketAddr::from(([127, 0, 0, 2], 1));
        let targets = push_targets(addrs(10), Some(gone), &[], 3, &mut rng);
        assert_eq!(targets.len(), 3);
        assert!(!targets.contains(&gone));
    }

    #[test]
    fn a_down_decision_goes_to_every_live_peer() {
        let down = || KeyChange::Set("member.down.n3#7".into(), "1".into());
        let observation = || KeyChange::Set("member.unreachable.n3#7".into(), "1".into());
        let retracted = KeyChange::Delete("member.down.n3#7".into());
        assert_eq!(push_fanout(&[observation()], 3), 3);
        assert_eq!(push_fanout(&[retracted], 3), 3);
        assert_eq!(push_fanout(&[observation(), down()], 3), usize::MAX);
        let mut rng = rand::rngs::mock::StepRng::new(0, 1);
        assert_eq!(
            push_targets(addrs(49), None, &[], usize::MAX, &mut rng).len(),
            49
        );
    }

    #[test]
    fn the_fanout_caps_the_targets() {
        let mut rng = rand::rngs::mock::StepRng::new(0, 1);
        let live = addrs(2);
        assert!(push_targets(live.clone(), Some(live[0]), &[], 0, &mut rng).is_empty());
        let all = push_targets(live.clone(), None, &[], 5, &mut rng);
        assert_eq!(all.iter().collect::<HashSet<_>>(), live.iter().collect());
        assert_eq!(
            push_targets(live.clone(), Some(live[1]), &[], 1, &mut rng),
            [live[1]]
        );
    }

    #[test]
    fn reads_a_chitchat_node_state() {
        let mut state = chitchat::NodeState::for_test();
        state.set("member.status", "up");
        state.set("member.roles", "coord");
        state.set("unrelated", "x");
        let node = gossip_node(&state, true);
        assert_eq!(node.keys.len(), 2);
        assert!(node.live);
        let chitchat_id = state.chitchat_id();
        assert_eq!(node.id.name, chitchat_id.node_id.to_string());
        assert_eq!(node.id.generation, chitchat_id.generation_id);
    }
}

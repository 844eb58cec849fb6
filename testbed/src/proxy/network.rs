//! The shared state of one experiment: who is who, what each link does, and
//! what it did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tracing::info;

use super::error::ProxyError;
use super::link::{Link, LinkCounters, LinkStatus, UNKNOWN_PEER};
use super::relay::Relay;
use super::rule::{LinkRule, Verdict};

/// The fault-injection network shared by every relay of an experiment.
///
/// It holds the registry of node names and their real addresses (a relay
/// recognises the sender of a packet by its source address), one [`LinkRule`]
/// per directed pair of names (default: pass), per-link [`LinkCounters`], and
/// one random number generator per link, derived from the network's seed and
/// the two names. A link's random sequence therefore depends only on the seed
/// and on that link's own packets, so a run can be repeated.
///
/// Cloning is cheap and every clone sees the same state. Rule changes take
/// effect on the next packet.
#[derive(Clone)]
pub struct ProxyNetwork {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<Arc<str>, SocketAddr>,
    by_addr: HashMap<SocketAddr, Arc<str>>,
    links: HashMap<Arc<str>, HashMap<Arc<str>, LinkState>>,
}

struct LinkState {
    rule: LinkRule,
    counters: LinkCounters,
    rng: StdRng,
}

impl ProxyNetwork {
    /// An empty network whose randomness comes from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                seed,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The seed this network was created with.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Registers (or moves) node `name` at `real_addr`, the address its
    /// packets come from. An unspecified IP (`0.0.0.0`, `::`) is taken as
    /// loopback, which is where such a socket's packets appear to come from.
    ///
    /// Names must be non-empty, without `/`, whitespace or control characters,
    /// and not [`UNKNOWN_PEER`]. Registering again under a new address (a
    /// restarted node) moves the name; two names cannot share one address.
    pub fn register(&self, name: &str, real_addr: SocketAddr) -> Result<(), ProxyError> {
        validate_name(name)?;
        let addr = normalize(real_addr);
        let mut state = self.lock();
        if let Some(owner) = state.by_addr.get(&addr) {
            if &**owner != name {
                return Err(ProxyError::AddressTaken {
                    addr,
                    owner: owner.to_string(),
                });
            }
        }
        let name: Arc<str> = state
            .nodes
            .get_key_value(name)
            .map_or_else(|| Arc::from(name), |(known, _)| known.clone());
        if let Some(old) = state.nodes.insert(name.clone(), addr) {
            state.by_addr.remove(&old);
        }
        state.by_addr.insert(addr, name.clone());
        info!(node = %name, %addr, "node registered");
        Ok(())
    }

    /// The registered nodes and their real addresses.
    pub fn nodes(&self) -> BTreeMap<String, SocketAddr> {
        let state = self.lock();
        state
            .nodes
            .iter()
            .map(|(name, addr)| (name.to_string(), *addr))
            .collect()
    }

    /// Registers `name` at `real_addr` and starts its relay on an ephemeral
    /// port of the same kind of address (loopback for a loopback node).
    /// The node advertises [`Relay::public_addr`].
    pub async fn spawn_relay(
        &self,
        name: &str,
        real_addr: SocketAddr,
    ) -> Result<Relay, ProxyError> {
        let ip = match normalize(real_addr).ip() {
            ip if ip.is_loopback() => ip,
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        self.spawn_relay_on(name, real_addr, SocketAddr::new(ip, 0))
            .await
    }

    /// Like [`spawn_relay`](Self::spawn_relay), with the relay's public socket
    /// bound to `listen`. Nothing is registered if the bind fails.
    pub async fn spawn_relay_on(
        &self,
        name: &str,
        real_addr: SocketAddr,
        listen: SocketAddr,
    ) -> Result<Relay, ProxyError> {
        let socket = Relay::bind(name, listen).await?;
        self.register(name, real_addr)?;
        Ok(Relay::spawn(
            self.clone(),
            name,
            normalize(real_addr),
            socket,
        ))
    }

    /// Sets the rule for packets `from` -> `to`. Both names must be registered.
    pub fn set_rule(&self, from: &str, to: &str, rule: LinkRule) -> Result<(), ProxyError> {
        rule.validate()?;
        let mut state = self.lock();
        state.require(from)?;
        state.require(to)?;
        info!(%from, %to, %rule, "link rule set");
        state.link_mut(self.inner.seed, from, to).rule = rule;
        Ok(())
    }

    /// The rule for packets `from` -> `to` (pass for links never set).
    pub fn rule(&self, from: &str, to: &str) -> LinkRule {
        let state = self.lock();
        state
            .links
            .get(from)
            .and_then(|row| row.get(to))
            .map(|link| link.rule.clone())
            .unwrap_or_default()
    }

    /// Drops both directions between every node of `a` and every node of `b`.
    /// Links inside each group keep their rules. Unknown names, or a name on
    /// both sides, refuse the whole call.
    pub fn partition<A: AsRef<str>, B: AsRef<str>>(
        &self,
        a: &[A],
        b: &[B],
    ) -> Result<(), ProxyError> {
        let mut state = self.lock();
        let a: BTreeSet<&str> = a.iter().map(AsRef::as_ref).collect();
        let b: BTreeSet<&str> = b.iter().map(AsRef::as_ref).collect();
        for name in a.iter().chain(&b) {
            state.require(name)?;
        }
        if let Some(name) = a.intersection(&b).next() {
            return Err(ProxyError::BothSides(name.to_string()));
        }
        for x in &a {
            for y in &b {
                state.link_mut(self.inner.seed, x, y).rule = LinkRule::drop_all();
                state.link_mut(self.inner.seed, y, x).rule = LinkRule::drop_all();
            }
        }
        info!(?a, ?b, "partition");
        Ok(())
    }

    /// Drops packets `from` -> `to` only; the other direction keeps its rule.
    pub fn blackhole(&self, from: &str, to: &str) -> Result<(), ProxyError> {
        self.set_rule(from, to, LinkRule::drop_all())
    }

    /// Sets every link back to pass. Counters are kept.
    pub fn heal(&self) {
        let mut state = self.lock();
        for link in state.links.values_mut().flat_map(HashMap::values_mut) {
            link.rule = LinkRule::pass();
        }
        info!("heal: every link passes");
    }

    /// Every link whose rule is not pass.
    pub fn rules(&self) -> BTreeMap<Link, LinkRule> {
        let state = self.lock();
        state
            .iter()
            .filter(|(_, _, link)| !link.rule.is_pass())
            .map(|(from, to, link)| (Link::new(from, to), link.rule.clone()))
            .collect()
    }

    /// Counters of every link that has seen a packet or had a rule.
    pub fn counters(&self) -> BTreeMap<Link, LinkCounters> {
        let state = self.lock();
        state
            .iter()
            .map(|(from, to, link)| (Link::new(from, to), link.counters))
            .collect()
    }

    /// Counters of the link `from` -> `to` (zero for a link never used).
    pub fn link_counters(&self, from: &str, to: &str) -> LinkCounters {
        let state = self.lock();
        state
            .links
            .get(from)
            .and_then(|row| row.get(to))
            .map(|link| link.counters)
            .unwrap_or_default()
    }

    /// Rule and counters of every directed pair of distinct registered nodes,
    /// plus any other link that has state (packets from unknown sources, a
    /// node talking to itself), sorted by `(from, to)`.
    pub fn links(&self) -> Vec<LinkStatus> {
        let state = self.lock();
        let mut all: BTreeMap<Link, LinkStatus> = BTreeMap::new();
        for from in state.nodes.keys() {
            for to in state.nodes.keys().filter(|to| *to != from) {
                let link = Link::new(&**from, &**to);
                all.insert(link, status(from, to, None));
            }
        }
        for (from, to, link) in state.iter() {
            all.insert(Link::new(from, to), status(from, to, Some(link)));
        }
        all.into_values().collect()
    }

    /// Decides a packet that arrived at `node`'s relay from `source`.
    pub(crate) fn judge_inbound(&self, source: SocketAddr, node: &str) -> Verdict {
        let mut state = self.lock();
        let from = state.name_of(source);
        state.link_mut(self.inner.seed, &from, node).judge()
    }

    /// Decides a reply from `node` going back to `destination`.
    pub(crate) fn judge_outbound(&self, node: &str, destination: SocketAddr) -> Verdict {
        let mut state = self.lock();
        let to = state.name_of(destination);
        state.link_mut(self.inner.seed, node, &to).judge()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        mesh::sync::lock(&self.inner.state)
    }
}

impl std::fmt::Debug for ProxyNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyNetwork")
            .field("seed", &self.inner.seed)
            .field("nodes", &self.nodes())
            .finish_non_exhaustive()
    }
}

impl State {
    fn require(&self, name: &str) -> Result<(), ProxyError> {
        if self.nodes.contains_key(name) {
            Ok(())
        } else {
            Err(ProxyError::UnknownNode(name.to_string()))
        }
    }

    fn name_of(&self, addr: SocketAddr) -> Arc<str> {
        self.by_addr
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| Arc::from(UNKNOWN_PEER))
    }

    fn link_mut(&mut self, seed: u64, from: &str, to: &str) -> &mut LinkState {
        if !self.links.get(from).is_some_and(|row| row.contains_key(to)) {
            // First packet or rule on this link: the only allocation.
            self.links
                .entry(Arc::from(from))
                .or_default()
                .insert(Arc::from(to), LinkState::new(seed, from, to));
        }
        self.links
            .get_mut(from)
            .and_then(|row| row.get_mut(to))
            .expect("link inserted above")
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str, &LinkState)> {
        self.links
            .iter()
            .flat_map(|(from, row)| row.iter().map(move |(to, link)| (&**from, &**to, link)))
    }
}

impl LinkState {
    fn new(seed: u64, from: &str, to: &str) -> Self {
        Self {
            rule: LinkRule::pass(),
            counters: LinkCounters::default(),
            rng: StdRng::seed_from_u64(link_seed(seed, from, to)),
        }
    }

    fn judge(&mut self) -> Verdict {
        let verdict = self.rule.judge(&mut self.rng);
        self.counters.record(&verdict);
        verdict
    }
}

fn status(from: &str, to: &str, link: Option<&LinkState>) -> LinkStatus {
    LinkStatus {
        from: from.to_string(),
        to: to.to_string(),
        rule: link.map(|l| l.rule.clone()).unwrap_or_default(),
        counters: link.map(|l| l.counters).unwrap_or_default(),
    }
}

/// FNV-1a over the seed and both names: stable across Rust releases, unlike
/// the standard library's hasher.
fn link_seed(seed: u64, from: &str, to: &str) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(from.bytes())
        .chain([0xff])
        .chain(to.bytes());
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Unspecified IPs become loopback: where such a socket's packets come from.
pub(crate) fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

fn validate_name(name: &str) -> Result<(), ProxyError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == UNKNOWN_PEER {
        Some("reserved for unknown sources")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ProxyError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn network() -> ProxyNetwork {
        let network = ProxyNetwork::new(5);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            network
                .register(name, addr(1000 + i as u16))
                .expect("valid registration");
        }
        network
    }

    #[test]
    fn packets_are_judged_by_the_names_of_their_link() {
        let network = network();
        network.blackhole("a", "b").expect("known nodes");
        assert_eq!(network.judge_inbound(addr(1000), "b"), Verdict::Drop);
        assert!(matches!(
            network.judge_outbound("b", addr(1000)),
            Verdict::Forward(_)
        ));
        assert!(matches!(
            network.judge_inbound(addr(1002), "b"),
            Verdict::Forward(_)
        ));
        assert_eq!(network.link_counters("a", "b").dropped, 1);
        assert_eq!(network.link_counters("b", "a").passed, 1);
        assert_eq!(network.link_counters("c", "b").passed, 1);
    }

    #[test]
    fn unknown_sources_pass_and_are_counted() {
        let network = network();
        network
            .partition(&["a", "b", "c"], &[] as &[&str])
            .expect("no-op");
        assert!(matches!(
            network.judge_inbound(addr(9), "a"),
            Verdict::Forward(_)
        ));
        assert!(matches!(
            network.judge_outbound("a", addr(9)),
            Verdict::Forward(_)
        ));
        assert_eq!(network.link_counters(UNKNOWN_PEER, "a").passed, 1);
        assert_eq!(network.link_counters("a", UNKNOWN_PEER).passed, 1);
        assert!(network
            .set_rule(UNKNOWN_PEER, "a", LinkRule::drop_all())
            .is_err());
    }

    #[test]
    fn partition_cuts_both_directions_between_groups_only() {
        let network = network();
        network.partition(&["a"], &["b", "c"]).expect("known nodes");
        let rules = network.rules();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules.get(&Link::new("c", "a")), Some(&LinkRule::drop_all()));
        assert!(network.rule("b", "c").is_pass());
        network.heal();
        assert!(network.rules().is_empty());
    }

    #[test]
    fn refused_calls_change_nothing() {
        let network = network();
        assert!(matches!(
            network.partition(&["a", "zed"], &["b"]),
            Err(ProxyError::UnknownNode(name)) if name == "zed"
        ));
        assert!(matches!(
            network.partition(&["a", "b"], &["b"]),
            Err(ProxyError::BothSides(_))
        ));
        assert!(network.set_rule("a", "b", LinkRule::loss(2.0)).is_err());
        assert!(network.rules().is_empty());
        assert!(network.register("d", addr(1000)).is_err());
        assert!(network.register("", addr(2000)).is_err());
        assert!(network.register("x/y", addr(2000)).is_err());
        assert_eq!(network.nodes().len(), 3);
    }

    #[test]
    fn moving_a_node_frees_its_old_address() {
        let network = network();
        network.register("a", addr(2000)).expect("move");
        network
            .register("d", addr(1000))
            .expect("old address is free");
        assert_eq!(network.nodes().get("a"), Some(&addr(2000)));
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 3000));
        network.register("e", unspecified).expect("valid");
        assert_eq!(network.nodes().get("e"), Some(&addr(3000)));
    }

    #[test]
    fn links_lists_every_pair_and_the_seed_decides_the_pattern() {
        let network = network();
        assert_eq!(network.links().len(), 6);
        let pattern = |network: &ProxyNetwork| {
            network
                .set_rule("a", "b", LinkRule::loss(0.5))
                .expect("valid");
            (0..200)
                .map(|_| network.judge_inbound(addr(1000), "b") == Verdict::Drop)
                .collect::<Vec<_>>()
        };
        let first = pattern(&network);
        assert_eq!(first, pattern(&self::network()));
        let other = ProxyNetwork::new(6);
        other.register("a", addr(1000)).expect("valid");
        other.register("b", addr(1001)).expect("valid");
        assert_ne!(first, pattern(&other));
    }
}

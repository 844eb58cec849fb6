//! What users implement: an [`Entity`], and the [`EntityType`] that names it
//! and says how to make one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use crate::ids::ShardId;
use crate::lease_gate::ShardLease;

/// A sharded entity: one instance per id in the whole cluster (rule 1),
/// started on its first message in the region that hosts its shard.
///
/// Messages to one entity are handled one at a time, in arrival order;
/// different entities run concurrently. `started` runs before the first
/// message, `stopped` when the entity is passivated or its shard is handed
/// off to another node. It is *not* called when a fenced shard is dropped
/// because the coordinator moved it away while this node was cut off: by
/// then another instance may be running, and a `stopped` that writes would
/// break the single-writer guarantee.
///
/// ```
/// use sharding::{Entity, EntityContext};
///
/// struct Counter(u64);
///
/// impl Entity for Counter {
///     type Message = u64;
///     type Reply = u64;
///     async fn handle(&mut self, _ctx: &mut EntityContext, add: u64) -> u64 {
///         self.0 += add;
///         self.0
///     }
/// }
/// ```
pub trait Entity: Send + 'static {
    /// What the entity receives (serde: it crosses the network when the
    /// entity lives elsewhere; local delivery does not serialize).
    type Message: Serialize + DeserializeOwned + Send + 'static;
    /// What it answers to an `ask` (a `tell` drops it).
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Handles one message. Must not block its thread: its first poll runs
    /// on the type's driver, or on the mesh reader that received the
    /// message, and blocking there holds up other entities and messages
    /// (await, or use `tokio::task::spawn_blocking`).
    fn handle(
        &mut self,
        ctx: &mut EntityContext,
        message: Self::Message,
    ) -> impl Future<Output = Self::Reply> + Send;

    /// Runs once before the first message.
    fn started(&mut self, _ctx: &mut EntityContext) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs once when the entity is passivated or handed off.
    fn stopped(&mut self, _ctx: &mut EntityContext) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Its shard was fenced (lease ran out, or this node's side would lose
    /// a split-brain decision): no message reaches it until the coordinator
    /// confirms the shard, and it may be dropped for good. An entity that
    /// works outside its handler (a spawned task) must stop that work here,
    /// or better, bind it to [`EntityContext::lease`]. Called on idle
    /// entities only: a handler that is waiting when its lease is lost is
    /// not polled again (its caller gets
    /// [`crate::DeliveryError::Interrupted`]) and the instance is dropped.
    fn fenced(&mut self) {}
}

/// What an entity knows about itself while it handles a message.
#[derive(Debug)]
pub struct EntityContext {
    id: Arc<str>,
    lease: ShardLease,
    passivate: bool,
}

impl EntityContext {
    pub(crate) fn new(id: Arc<str>, lease: ShardLease) -> Self {
        Self {
            id,
            lease,
            passivate: false,
        }
    }

    /// The entity's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id, given back when the step that owned the context ends.
    pub(crate) fn into_id(self) -> Arc<str> {
        self.id
    }

    /// The entity's shard.
    pub fn shard(&self) -> ShardId {
        self.lease.shard()
    }

    /// The lease this node runs the entity's shard under. The runtime stops
    /// polling a handler once it is lost; a handler about to act outside
    /// the cluster (say, write to a database after an await) can check
    /// [`ShardLease::is_valid`] right before it acts.
    pub fn lease(&self) -> &ShardLease {
        &self.lease
    }

    /// Asks to be stopped once the messages already queued for it are
    /// handled (`stopped` runs; the next message starts a new instance).
    pub fn passivate(&mut self) {
        self.passivate = true;
    }

    pub(crate) fn wants_passivation(&self) -> bool {
        self.passivate
    }
}

/// Makes the entity for an id.
pub(crate) type Factory<E> = Arc<dyn Fn(&str) -> E + Send + Sync>;

/// A named kind of entity and how to make one: what
/// [`crate::Sharding::init`] takes.
///
/// ```
/// # use sharding::{Entity, EntityContext, EntityType};
/// # struct Counter(u64);
/// # impl Entity for Counter {
/// #     type Message = u64; type Reply = u64;
/// #     async fn handle(&mut self, _: &mut EntityContext, add: u64) -> u64 { self.0 += add; self.0 }
/// # }
/// let counters = EntityType::new("counter", |_id| Counter(0))
///     .role("counter")
///     .passivate_after(Some(std::time::Duration::from_secs(60)));
/// assert_eq!(counters.name(), "counter");
/// ```
pub struct EntityType<E: Entity> {
    pub(crate) name: String,
    pub(crate) factory: Factory<E>,
    pub(crate) role: Option<String>,
    pub(crate) passivate_after: Option<Duration>,
}

impl<E: Entity> EntityType<E> {
    /// Entities called `name` (one coordinator and one region per node for
    /// each name), made by `factory` from their id.
    pub fn new(name: &str, factory: impl Fn(&str) -> E + Send + Sync + 'static) -> Self {
        Self {
            name: name.to_string(),
            factory: Arc::new(factory),
            role: None,
            passivate_after: Some(Duration::from_secs(120)),
        }
    }

    /// Only nodes with this role host entities (and the coordinator); the
    /// others run proxy-only regions that route. Default: every node hosts.
    pub fn role(mut self, role: &str) -> Self {
        self.role = Some(role.to_string());
        self
    }

    /// Stops an entity that received nothing for this long (`None`: never).
    /// Default 120 s, Akka's.
    pub fn passivate_after(mut self, idle: Option<Duration>) -> Self {
        self.passivate_after = idle;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

//! Sharding on a running [`mesh::Node`]: [`Sharding::start`], then
//! [`Sharding::init`] per entity type for an [`EntityRef`] to send with.
//!
//! Each entity type runs one driver per node (see `driver`), reached by
//! other nodes through the mesh service `sharding.<type>` (and
//! `sharding.<type>.ask` for asks sent straight to an entity's home, see
//! [`wire::DirectAsk`]); the mesh reader that receives a message hands it
//! to the driver on its own task when it can (see `shared`). Its
//! coordinator runs where [`mesh::Node::singleton_host`] (for the type's
//! role) says. Its epoch is that node's generation, which grows from one
//! host to the next (the next host is the next oldest member), raised above
//! every epoch the node has seen (two processes can share a generation).

mod core;
mod daemon;
mod driver;
mod host;
mod metrics;
mod replies;
mod routes;
mod shared;
mod view;
mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use mesh::{Node, PeerRef};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use self::metrics::ShardingMetrics;

pub use self::core::{RegionSignal, TypeAction, TypeCore};
pub use daemon::{DaemonContext, DaemonHandle, DaemonWorker};
#[cfg(feature = "fault-injection")]
pub use driver::hook_points;
pub use view::{CoordinatorView, RegionLease, RegionView, ShardRow, TypeView};
pub use wire::ShardingError;

use crate::clock;
use crate::entity::{Entity, EntityType};
use crate::hash::shard_id;
use crate::ids::{EntityId, ReplyTo};
use crate::messages::{Delivery, Envelope, RegionToRegion};
use crate::ShardingConfig;
use driver::{Command, Driver, KeepAlive, LocalSend, TypeSettings};
use replies::{Replies, ReplySender};
use routes::Routes;
use shared::SharedDriver;
use wire::{ask_service_name, service_name, view_service_name, DirectAsk, Protocol, Wire};

/// How many commands (local sends and messages from the mesh) wait for a
/// driver before `tell` reports backpressure.
const COMMAND_QUEUE: usize = 65_536;

/// Sharding on one node: starts entity types and daemon processes.
///
/// ```no_run
/// # use sharding::{Entity, EntityContext, EntityType, Sharding, ShardingConfig};
/// # struct Counter(u64);
/// # impl Entity for Counter {
/// #     type Message = u64; type Reply = u64;
/// #     async fn handle(&mut self, _: &mut EntityContext, add: u64) -> u64 { self.0 += add; self.0 }
/// # }
/// # async fn demo(node: mesh::Node) -> Result<(), sharding::ShardingError> {
/// let sharding = Sharding::start(&node, ShardingConfig::default()).await?;
/// let counters = sharding.init(EntityType::new("counter", |_id| Counter(0)))?;
/// counters.tell("c-42", 1u64)?;
/// let n: u64 = counters.ask("c-42", 0u64, std::time::Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sharding {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    config: ShardingConfig,
    types: Mutex<BTreeMap<String, Arc<dyn TypeControl>>>,
    metrics: ShardingMetrics,
}

/// What `Sharding` needs from every entity type, whatever its entity.
trait TypeControl: Send + Sync {
    /// Resolves once everything this node hosts is handed off.
    fn leave(&self) -> BoxFuture<'static, ()>;
    /// This node's region and the coordinator.
    fn view(&self) -> BoxFuture<'static, Option<TypeView>>;
    /// `Ok` once this node's region is registered with a coordinator.
    fn ready(&self) -> BoxFuture<'static, Result<(), String>>;
}

impl Sharding {
    /// Starts sharding on `node`: checks the config, hands off every shard
    /// when the node leaves ([`mesh::Node::leave`]), serves
    /// `GET /sharding` on the node's admin API, registers its series in the
    /// node's metrics (see `GET /metrics`) and adds to its `GET /ready`
    /// that every entity type's region is registered with a coordinator.
    pub async fn start(node: &Node, config: ShardingConfig) -> Result<Self, ShardingError> {
        config
            .validate()
            .map_err(|error| ShardingError::Config(error.to_string()))?;
        let inner = Arc::new(Inner {
            node: node.clone(),
            config,
            types: Mutex::new(BTreeMap::new()),
            metrics: ShardingMetrics::register(node),
        });
        let weak = Arc::downgrade(&inner);
        node.on_leave(move || async move {
            let Some(inner) = weak.upgrade() else { return };
            let leaving: Vec<_> = inner.types().values().map(|t| t.leave()).collect();
            futures::future::join_all(leaving).await;
        });
        let weak = Arc::downgrade(&inner);
        node.register_readiness("sharding", move || {
            let inner = weak.upgrade();
            async move {
                let Some(inner) = inner else {
                    return Err("sharding has stopped".to_string());
                };
                let types: Vec<(String, Arc<dyn TypeControl>)> = inner
                    .types()
                    .iter()
                    .map(|(name, control)| (name.clone(), control.clone()))
                    .collect();
                for (name, control) in types {
                    control
                        .ready()
                        .await
                        .map_err(|reason| format!("{name}: {reason}"))?;
                }
                Ok(())
            }
        });
        let weak = Arc::downgrade(&inner);
        node.register_admin_view("sharding", move || {
            let inner = weak.upgrade();
            async move {
                let Some(inner) = inner else {
                    return serde_json::json!({});
                };
                let types: Vec<(String, Arc<dyn TypeControl>)> = inner
                    .types()
                    .iter()
                    .map(|(name, control)| (name.clone(), control.clone()))
                    .collect();
                let mut out = serde_json::Map::new();
                for (name, control) in types {
                    let view = control.view().await;
                    out.insert(name, serde_json::to_value(view).unwrap_or_default());
                }
                serde_json::Value::Object(out)
            }
        });
        Ok(Self { inner })
    }

    /// The node sharding runs on.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Starts an entity type on this node (every node of the cluster that
    /// sends to it must start it too; nodes without its role only route).
    pub fn init<E: Entity>(
        &self,
        entity_type: EntityType<E>,
    ) -> Result<EntityRef<E>, ShardingError> {
        let settings = TypeSettings {
            service: service_name(&entity_type.name),
            name: entity_type.name,
            role: entity_type.role,
            passivate_after: entity_type.passivate_after,
            factory: entity_type.factory,
            keep_alive: None,
        };
        self.start_type(settings, self.inner.config.clone())
    }

    fn start_type<E: Entity>(
        &self,
        settings: TypeSettings<E>,
        config: ShardingConfig,
    ) -> Result<EntityRef<E>, ShardingError> {
        let node = &self.inner.node;
        let name = settings.name.clone();
        let mut types = self.inner.types();
        if types.contains_key(&name) {
            return Err(ShardingError::AlreadyStarted(name));
        }
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let replies = Arc::new(Replies::new());
        let routes = Arc::new(Routes::default());
        let metrics = self.inner.metrics.of_type(&name);
        let (service, role) = (settings.service.clone(), settings.role.clone());
        let driver = Driver::new(
            node.clone(),
            settings,
            config.clone(),
            replies.clone(),
            routes.clone(),
            metrics,
            receiver,
        );
        let driver = SharedDriver::new(driver, commands.clone());
        let (shared, answers) = (driver.clone(), replies.clone());
        node.register_service(
            &service,
            move |request: mesh::Request<Wire<E::Message, E::Reply>, ()>| {
                let more = request.more_buffered();
                let (wire, _) = request.into_parts();
                match wire {
                    // An answer to one of this node's asks needs nothing of the
                    // driver: complete it here, one hop sooner.
                    Wire::Reply {
                        correlation,
                        result,
                    } => answers.complete_remote(correlation, result),
                    Wire::Protocol(protocol) => shared.receive(protocol, more),
                }
            },
        )
        .map_err(|_| ShardingError::AlreadyStarted(name.clone()))?;
        let (shared, answers, me) = (driver.clone(), replies.clone(), node.id().clone());
        let ask_service = ask_service_name(&name);
        node.register_service(
            &ask_service,
            move |request: mesh::Request<DirectAsk<E::Message>, Result<E::Reply, String>>| {
                let more = request.more_buffered();
                let (
                    DirectAsk {
                        mut delivery,
                        timeout,
                    },
                    responder,
                ) = request.into_parts();
                // Only deliveries are sent this way; anything else is
                // dropped, and its asker told there is no reply.
                let RegionToRegion::Deliver(to_deliver) = &mut delivery.body else {
                    return;
                };
                let correlation = answers.expect_remote(responder, clock::now(), timeout);
                to_deliver.reply_to = Some(ReplyTo {
                    node: me.clone(),
                    correlation,
                });
                shared.receive(Protocol::Region(delivery), more);
            },
        )
        .map_err(|_| ShardingError::AlreadyStarted(name.clone()))?;
        let views = commands.clone();
        let view_service = view_service_name(&name);
        node.register_service(
            &view_service,
            move |request: mesh::Request<(), Option<CoordinatorView>>| {
                let (_, responder) = request.into_parts();
                let (answer, view) = oneshot::channel();
                if views.try_send(Command::CoordinatorView(answer)).is_ok() {
                    tokio::spawn(
                        async move { responder.reply(view.await.ok().flatten()) }.in_current_span(),
                    );
                }
            },
        )
        .map_err(|_| ShardingError::AlreadyStarted(name.clone()))?;
        let entity_ref = EntityRef {
            inner: Arc::new(RefInner {
                node: node.clone(),
                name: name.clone(),
                service,
                ask_service,
                role,
                view_service,
                number_of_shards: config.number_of_shards,
                commands,
                routes,
            }),
        };
        tokio::spawn(driver.run().instrument(node.span().clone()));
        types.insert(name, Arc::new(entity_ref.clone()));
        Ok(entity_ref)
    }
}

impl Inner {
    fn types(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<dyn TypeControl>>> {
        mesh::sync::lock(&self.types)
    }
}

/// Sends to the entities of one type, wherever they live. Cheap to clone.
pub struct EntityRef<E: Entity> {
    inner: Arc<RefInner<E>>,
}

impl<E: Entity> Clone for EntityRef<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct RefInner<E: Entity> {
    node: Node,
    name: String,
    /// The mesh service of the type's drivers.
    service: String,
    /// The mesh service of [`DirectAsk`]s.
    ask_service: String,
    role: Option<String>,
    view_service: String,
    number_of_shards: u32,
    commands: mpsc::Sender<Command<E>>,
    routes: Arc<Routes>,
}

/// One local send on its way to the driver: counted in [`Routes`] until
/// the driver takes it, or until it turns out it never will.
struct QueuedSend<'a>(Option<&'a Routes>);

impl<'a> QueuedSend<'a> {
    fn new(routes: &'a Routes) -> Self {
        routes.enqueue();
        Self(Some(routes))
    }

    /// The driver has it (and will count it as routed).
    fn handed_over(mut self) {
        self.0 = None;
    }
}

impl Drop for QueuedSend<'_> {
    fn drop(&mut self) {
        if let Some(routes) = self.0 {
            routes.routed(1);
        }
    }
}

impl<E: Entity> RefInner<E> {
    fn local_send(
        &self,
        id: &str,
        message: E::Message,
        reply: Option<ReplySender<E::Reply>>,
    ) -> LocalSend<E> {
        let entity = EntityId::from(id);
        LocalSend {
            shard: shard_id(&entity, self.number_of_shards),
            entity,
            message,
            reply,
        }
    }

    /// Runs `send` with the entity's home and what this node's region
    /// would send it, if the region knows the entity lives on another node
    /// (see [`Routes`]); gives `local` back if it must go through the
    /// driver. `local` carries no reply sender: an ask sent this way is
    /// answered through the mesh (see [`Self::ask_home`]).
    fn forward<T>(
        &self,
        local: LocalSend<E>,
        send: impl FnOnce(&PeerRef, Envelope<RegionToRegion<E::Message>>) -> T,
    ) -> Result<T, LocalSend<E>> {
        debug_assert!(local.reply.is_none());
        self.routes.forward(local.shard, local, |to, local| {
            let delivery = Delivery {
                shard: local.shard,
                entity: local.entity,
                payload: local.message,
                reply_to: None,
                hops: 0,
            };
            let deliver = RegionToRegion::Deliver(delivery);
            send(
                to.home,
                Envelope::entity_traffic(to.epoch, to.from.clone(), deliver),
            )
        })
    }

    /// Asks the entity's `home` directly (see [`DirectAsk`]).
    async fn ask_home(
        &self,
        home: PeerRef,
        delivery: Envelope<RegionToRegion<E::Message>>,
        timeout: Duration,
    ) -> Result<E::Reply, ShardingError> {
        let ask = DirectAsk { delivery, timeout };
        let asked: Result<Result<E::Reply, String>, _> =
            home.ask(&self.ask_service, ask, timeout).await;
        match asked {
            Ok(answer) => answer.map_err(ShardingError::Remote),
            Err(mesh::AskError::Timeout(_)) => Err(ShardingError::Timeout(timeout)),
            Err(mesh::AskError::Send(error)) => Err(ShardingError::from_mesh(&self.name, error)),
            Err(mesh::AskError::Remote(error)) => Err(ShardingError::Remote(error.to_string())),
            Err(error) => Err(ShardingError::Unreachable(error.to_string())),
        }
    }
}

impl<E: Entity> EntityRef<E> {
    /// The entity type's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Sends `message` to entity `id` without waiting for an answer. Fails
    /// at once if the region's queue is full or sharding has stopped; a
    /// message that later cannot be delivered (its shard's buffer is full)
    /// is logged, as nobody waits for it. Use [`Self::ask`] to know.
    pub fn tell(&self, id: &str, message: impl Into<E::Message>) -> Result<(), ShardingError> {
        let inner = &self.inner;
        let send = inner.local_send(id, message.into(), None);
        let sent = inner.forward(send, |home, delivery| {
            let wire: Wire<E::Message, E::Reply> = Wire::Protocol(Protocol::Region(delivery));
            home.tell(&inner.service, wire)
                .map_err(|error| ShardingError::from_mesh(&inner.name, error))
        });
        let send = match sent {
            Ok(sent) => return sent,
            Err(send) => send,
        };
        let queued = QueuedSend::new(&self.inner.routes);
        match self.inner.commands.try_send(Command::Send(send)) {
            Ok(()) => {
                queued.handed_over();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(ShardingError::Backpressure(self.inner.name.clone()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ShardingError::Stopped),
        }
    }

    /// Sends `message` to entity `id` and waits up to `timeout` for its
    /// reply. Always ends: the reply, an error from the way, or a timeout
    /// (after which the message may still be handled: retry with an
    /// idempotency key).
    pub async fn ask(
        &self,
        id: &str,
        message: impl Into<E::Message>,
        timeout: Duration,
    ) -> Result<E::Reply, ShardingError> {
        let inner = &self.inner;
        let send = inner.local_send(id, message.into(), None);
        let send = match inner.forward(send, |home, delivery| (home.clone(), delivery)) {
            Ok((home, delivery)) => return inner.ask_home(home, delivery, timeout).await,
            Err(send) => send,
        };
        let (reply, answer) = oneshot::channel();
        let send = LocalSend {
            reply: Some(reply),
            ..send
        };
        let exchange = async {
            let queued = QueuedSend::new(&inner.routes);
            inner
                .commands
                .send(Command::Send(send))
                .await
                .map_err(|_| ShardingError::Stopped)?;
            queued.handed_over();
            answer.await.map_err(|_| ShardingError::Stopped)?
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(ShardingError::Timeout(timeout)))
    }

    /// This node's region: its shards, their status and entity counts.
    pub async fn region_state(&self) -> Result<RegionView, ShardingError> {
        let (answer, view) = oneshot::channel();
        self.inner
            .commands
            .send(Command::RegionView(answer))
            .await
            .map_err(|_| ShardingError::Stopped)?;
        view.await.map_err(|_| ShardingError::Stopped)
    }

    /// The coordinator's allocation table, epoch and region leases, asked
    /// where the coordinator runs (`None`: it is not running there yet).
    pub async fn coordinator_state(
        &self,
        timeout: Duration,
    ) -> Result<Option<CoordinatorView>, ShardingError> {
        let host = self
            .inner
            .node
            .singleton_host(self.inner.role.as_deref())
            .ok_or_else(|| ShardingError::Unreachable("no coordinator host is Up".into()))?;
        self.inner
            .node
            .ask(&host.name, &self.inner.view_service, (), timeout)
            .await
            .map_err(|error| ShardingError::Unreachable(error.to_string()))
    }
}

impl<E: Entity> TypeControl for EntityRef<E> {
    fn leave(&self) -> BoxFuture<'static, ()> {
        let commands = self.inner.commands.clone();
        Box::pin(async move {
            let (done, left) = oneshot::channel();
            if commands.send(Command::Leave(done)).await.is_ok() {
                let _ = left.await;
            }
        })
    }

    fn view(&self) -> BoxFuture<'static, Option<TypeView>> {
        let this = self.clone();
        Box::pin(async move {
            let region = this.region_state().await.ok()?;
            let coordinator = this
                .coordinator_state(Duration::from_secs(2))
                .await
                .ok()
                .flatten();
            Some(TypeView {
                region,
                coordinator,
            })
        })
    }

    fn ready(&self) -> BoxFuture<'static, Result<(), String>> {
        let this = self.clone();
        Box::pin(async move {
            let region = this.region_state().await.map_err(|e| e.to_string())?;
            if region.registered {
                Ok(())
            } else {
                Err("the region is not registered with a coordinator".to_string())
            }
        })
    }
}

impl Sharding {
    fn start_daemon_type(
        &self,
        name: &str,
        count: usize,
        worker: daemon::WorkerFn,
    ) -> Result<EntityRef<DaemonWorker>, ShardingError> {
        let config = ShardingConfig {
            number_of_shards: count.max(1) as u32,
            ..self.inner.config.clone()
        };
        let name = format!("daemon.{name}");
        let daemon_name = name.clone();
        let settings = TypeSettings {
            service: service_name(&name),
            name,
            role: None,
            passivate_after: None,
            factory: Arc::new(move |id: &str| {
                DaemonWorker::new(&daemon_name, id, count, worker.clone())
            }),
            keep_alive: Some(KeepAlive {
                every: self.inner.config.daemon_keep_alive_interval,
                workers: (0..count).map(|index| index.to_string().into()).collect(),
                message: || daemon::DaemonMessage::KeepAlive,
            }),
        };
        self.start_type(settings, config)
    }
}

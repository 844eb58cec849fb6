//! The services a node has registered, by name, and the registry's version.
//!
//! Readers of a peer's stream cache the handlers they looked up and look them
//! up again only when the version moved; every (un)registration moves it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use compact_str::CompactString;
use tokio::sync::oneshot;

use crate::error::{AskError, SendError};
use crate::service::ErasedService;
use crate::sync::{read, write, CacheAligned};
use crate::wire::RemoteError;

/// A service of that name is already registered.
#[derive(Debug, thiserror::Error)]
#[error("service {0:?} is already registered")]
pub struct ServiceExists(pub String);

/// The registry.
pub(crate) struct Services {
    /// The node's name: the sender of what it delivers to itself.
    local_name: CompactString,
    by_name: RwLock<HashMap<String, Arc<dyn ErasedService>>>,
    /// Bumped on every (un)registration; read on every frame, so kept off
    /// the registry's cache lines.
    version: CacheAligned<AtomicU64>,
}

impl Services {
    /// The empty registry of the node named `local_name`.
    pub(crate) fn new(local_name: CompactString) -> Self {
        Self {
            local_name,
            by_name: RwLock::default(),
            version: CacheAligned::default(),
        }
    }

    /// The handler of service `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn ErasedService>> {
        read(&self.by_name).get(name).cloned()
    }

    /// The current version.
    pub(crate) fn version(&self) -> u64 {
        self.version.0.load(Ordering::Acquire)
    }

    /// Adds service `name`, unless one of that name exists.
    pub(crate) fn register(
        &self,
        name: &str,
        service: Arc<dyn ErasedService>,
    ) -> Result<(), ServiceExists> {
        let mut by_name = write(&self.by_name);
        if by_name.contains_key(name) {
            return Err(ServiceExists(name.to_string()));
        }
        by_name.insert(name.to_string(), service);
        self.bump();
        Ok(())
    }

    /// Removes service `name`.
    pub(crate) fn unregister(&self, name: &str) {
        write(&self.by_name).remove(name);
        self.bump();
    }

    /// Removes every service at once.
    pub(crate) fn close(&self) {
        write(&self.by_name).clear();
        self.bump();
    }

    fn bump(&self) {
        self.version.0.fetch_add(1, Ordering::AcqRel);
    }

    /// Delivers a tell from this node to itself, without serialization.
    pub(crate) fn tell_local<M: Send + 'static>(
        &self,
        service: &str,
        message: M,
    ) -> Result<(), SendError> {
        let handler = self
            .get(service)
            .ok_or_else(|| SendError::UnknownService(service.to_string()))?;
        handler.deliver_local(&self.local_name, Box::new(message), None)?;
        Ok(())
    }

    /// Asks a service of this node itself, without serialization.
    pub(crate) async fn ask_local<M, R>(
        &self,
        service: &str,
        message: M,
        timeout: Duration,
    ) -> Result<R, AskError>
    where
        M: Send + 'static,
        R: Send + 'static,
    {
        let handler = self
            .get(service)
            .ok_or_else(|| AskError::Remote(RemoteError::UnknownService(service.to_string())))?;
        let (reply, rx) = oneshot::channel();
        handler
            .deliver_local(&self.local_name, Box::new(message), Some(reply))
            .map_err(AskError::Remote)?;
        let reply: Box<dyn Any + Send> = tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| AskError::Timeout(timeout))?
            .map_err(|_| AskError::Remote(RemoteError::NoReply))?
            .map_err(AskError::Remote)?;
        reply.downcast::<R>().map(|r| *r).map_err(|_| {
            AskError::MalformedReply(format!("reply is not a {}", std::any::type_name::<R>()))
        })
    }
}

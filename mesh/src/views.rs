//! What other parts of the program registered on a node for the admin API
//! (see [`crate::admin`]): views (`GET /{name}`) and readiness checks
//! (`GET /ready`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;

use crate::sync::{read, write};

/// A registered admin view: produces its JSON on each request.
pub type AdminView = Arc<dyn Fn() -> BoxFuture<'static, serde_json::Value> + Send + Sync>;

/// A registered readiness check: `Err(reason)` while its part is not ready.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Registered things by name; a later registration of a name replaces the
/// earlier one.
pub(crate) struct Registry<V>(RwLock<BTreeMap<String, V>>);

impl<V> Default for Registry<V> {
    fn default() -> Self {
        Self(RwLock::default())
    }
}

impl<V: Clone> Registry<V> {
    /// Registers `value` as `name`.
    pub(crate) fn insert(&self, name: &str, value: V) {
        write(&self.0).insert(name.to_string(), value);
    }

    /// The one named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<V> {
        read(&self.0).get(name).cloned()
    }

    /// Every one, by name.
    pub(crate) fn all(&self) -> Vec<(String, V)> {
        read(&self.0)
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

/// The admin views by name.
pub(crate) type AdminViews = Registry<AdminView>;

/// The readiness checks by name.
pub(crate) type ReadinessChecks = Registry<ReadinessCheck>;

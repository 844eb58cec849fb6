//! The admin views other parts of the program registered on a node (see
//! [`crate::admin`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::sync::{read, write};

/// A registered admin view: produces its JSON on each request.
pub type AdminView =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, serde_json::Value> + Send + Sync>;

/// The views by name.
#[derive(Default)]
pub(crate) struct AdminViews(RwLock<BTreeMap<String, AdminView>>);

impl AdminViews {
    /// Serves `view` as `name`, in place of any earlier view of that name.
    pub(crate) fn insert(&self, name: &str, view: AdminView) {
        write(&self.0).insert(name.to_string(), view);
    }

    /// The view named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<AdminView> {
        read(&self.0).get(name).cloned()
    }
}

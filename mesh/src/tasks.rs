//! The tasks of one node, stopped together when it shuts down or crashes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::task::AbortHandle;

use crate::sync::lock;

/// The node's running tasks, and whether it has stopped.
#[derive(Default)]
pub(crate) struct Tasks {
    running: Mutex<Vec<AbortHandle>>,
    stopped: AtomicBool,
}

impl Tasks {
    /// Spawns a task that stops with the node.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task).abort_handle();
        let mut running = lock(&self.running);
        running.retain(|t| !t.is_finished());
        running.push(handle);
    }

    /// Aborts every task; the node counts as stopped from now on.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for task in lock(&self.running).drain(..) {
            task.abort();
        }
    }

    /// Whether [`Tasks::stop`] ran.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

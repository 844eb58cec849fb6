//! The tasks of one node, stopped together when it shuts down or crashes,
//! each inside the node's span (which carries the node's name).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::sync::lock;

/// The node's running tasks, and whether it has stopped.
pub(crate) struct Tasks {
    running: Mutex<Vec<AbortHandle>>,
    stopped: AtomicBool,
    /// The node's span: every task runs inside it.
    span: tracing::Span,
}

impl Tasks {
    /// No tasks yet; they will run inside `span`.
    pub(crate) fn new(span: tracing::Span) -> Self {
        Self {
            running: Mutex::default(),
            stopped: AtomicBool::new(false),
            span,
        }
    }

    /// The span every task of the node runs inside.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Spawns a task that stops with the node, inside the node's span.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task.instrument(self.span.clone())).abort_handle();
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

//! Tasks that die with their owner.

use tokio::task::JoinHandle;

/// Aborts the task when dropped, so a relay's tasks never outlive it.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl AbortOnDrop {
    /// Waits until the task ends by itself.
    pub(crate) async fn join(mut self) {
        // A panic in the task was already reported by the runtime.
        let _ = (&mut self.0).await;
    }

    /// Aborts the task and waits until it is gone (its future, and with it
    /// its sockets, dropped).
    pub(crate) async fn abort_and_wait(mut self) {
        self.0.abort();
        // The only possible error is the cancellation we asked for.
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

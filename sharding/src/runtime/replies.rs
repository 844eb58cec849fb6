//! The asks of one entity type that wait on this node for an answer: asks
//! of this node's callers, and asks of other nodes' callers sent straight
//! to an entity that lives here (see [`super::wire::DirectAsk`]), which are
//! answered through the mesh ask that carried them.
//!
//! Shared by the driver, which registers each ask and answers those it
//! delivered, and the mesh service, which completes an answer from another
//! node at once instead of queueing it behind the driver's work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::Serialize;
use tokio::sync::oneshot;

use super::wire::ShardingError;

/// Where an `ask` waits for its answer.
pub(crate) type ReplySender<R> = oneshot::Sender<Result<R, ShardingError>>;

/// How an ask from another node is answered: its mesh ask's responder.
pub(crate) type RemoteResponder<R> = mesh::Responder<Result<R, String>>;

/// Who waits for one answer.
enum Waiter<R> {
    /// A caller on this node.
    Local(ReplySender<R>),
    /// A caller on another node, who gives up at `until` (`None`: a
    /// timeout too long to count).
    Remote {
        responder: RemoteResponder<R>,
        until: Option<Instant>,
    },
}

impl<R: Serialize + Send + 'static> Waiter<R> {
    fn answer(self, result: Result<R, ShardingError>) {
        match self {
            Waiter::Local(reply) => {
                let _ = reply.send(result);
            }
            Waiter::Remote { responder, .. } => {
                responder.reply(result.map_err(|error| error.to_string()));
            }
        }
    }
}

/// Waiting asks by correlation number.
pub(crate) struct Replies<R> {
    waiting: Mutex<FxHashMap<u64, Waiter<R>>>,
    next: AtomicU64,
}

impl<R: Serialize + Send + 'static> Replies<R> {
    pub(crate) fn new() -> Self {
        Self {
            waiting: Mutex::new(FxHashMap::default()),
            next: AtomicU64::new(0),
        }
    }

    /// Registers an ask of this node; returns the correlation number its
    /// answer carries.
    pub(crate) fn expect(&self, reply: ReplySender<R>) -> u64 {
        self.register(Waiter::Local(reply))
    }

    /// Registers an ask from another node, answered through `responder`
    /// unless its asker, who waits `timeout` from `now`, gave up first.
    pub(crate) fn expect_remote(
        &self,
        responder: RemoteResponder<R>,
        now: Instant,
        timeout: Duration,
    ) -> u64 {
        let until = now.checked_add(timeout);
        self.register(Waiter::Remote { responder, until })
    }

    fn register(&self, waiter: Waiter<R>) -> u64 {
        let correlation = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.waiting().insert(correlation, waiter);
        correlation
    }

    /// Answers an ask. An answer nobody waits for any more (timed out, or
    /// a duplicate) is dropped.
    pub(crate) fn complete(&self, correlation: u64, result: Result<R, ShardingError>) {
        let waiter = self.waiting().remove(&correlation);
        if let Some(waiter) = waiter {
            waiter.answer(result);
        }
    }

    /// Answers an ask from the answer another node sent.
    pub(crate) fn complete_remote(&self, correlation: u64, result: Result<R, String>) {
        self.complete(correlation, result.map_err(ShardingError::Remote));
    }

    /// Forgets asks whose caller stopped waiting (timed out).
    pub(crate) fn forget_abandoned(&self, now: Instant) {
        self.waiting().retain(|_, waiter| match waiter {
            Waiter::Local(reply) => !reply.is_closed(),
            Waiter::Remote { until, .. } => until.is_none_or(|until| now < until),
        });
    }

    /// Fails every waiting ask (the driver stops).
    pub(crate) fn fail_all(&self, error: ShardingError) {
        let waiting = std::mem::take(&mut *self.waiting());
        for (_, waiter) in waiting {
            waiter.answer(Err(error.clone()));
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, FxHashMap<u64, Waiter<R>>> {
        mesh::sync::lock(&self.waiting)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mesh::wire::RemoteError;
    use mesh::{AskError, Node, TlsSettings};
    use tokio::sync::mpsc;

    use super::*;
    use crate::clock;

    /// A node that asks itself: each ask's responder comes out of
    /// `responders`, as the mesh would hand it to the ask service.
    async fn asker() -> (Node, mpsc::UnboundedReceiver<RemoteResponder<u64>>) {
        let node = Node::builder("n1")
            .tls(TlsSettings::InsecureDev)
            .start()
            .await
            .unwrap();
        let (out, responders) = mpsc::unbounded_channel();
        node.register_service(
            "ask",
            move |request: mesh::Request<(), Result<u64, String>>| {
                let _ = out.send(request.into_parts().1);
            },
        )
        .unwrap();
        (node, responders)
    }

    fn ask(node: &Node) -> tokio::task::JoinHandle<Result<Result<u64, String>, AskError>> {
        let node = node.clone();
        tokio::spawn(async move { node.ask("n1", "ask", (), Duration::from_secs(10)).await })
    }

    #[tokio::test]
    async fn an_ask_from_another_node_is_answered_through_its_responder() {
        let (node, mut responders) = asker().await;
        let replies = Replies::new();
        let asked = ask(&node);
        let responder = responders.recv().await.unwrap();
        let correlation = replies.expect_remote(responder, clock::now(), Duration::from_secs(5));
        replies.complete(correlation, Ok(7));
        assert_eq!(asked.await.unwrap().unwrap(), Ok(7));

        let failed = ask(&node);
        let responder = responders.recv().await.unwrap();
        let correlation = replies.expect_remote(responder, clock::now(), Duration::from_secs(5));
        replies.complete(correlation, Err(ShardingError::Stopped));
        let error = failed.await.unwrap().unwrap().unwrap_err();
        assert_eq!(error, ShardingError::Stopped.to_string());
        node.shutdown().await;
    }

    #[tokio::test]
    async fn an_ask_from_another_node_is_forgotten_once_its_asker_gave_up() {
        let (node, mut responders) = asker().await;
        let replies = Replies::new();
        let now = clock::now();
        let timeout = Duration::from_secs(5);
        let short = ask(&node);
        let short_wait = replies.expect_remote(responders.recv().await.unwrap(), now, timeout);
        let endless = ask(&node);
        let endless_wait =
            replies.expect_remote(responders.recv().await.unwrap(), now, Duration::MAX);

        replies.forget_abandoned(now + timeout - Duration::from_millis(1));
        assert!(!short.is_finished(), "still waited for");
        replies.forget_abandoned(now + timeout);
        // Forgotten: the mesh tells the asker there is no reply, and a late
        // answer finds nobody.
        let error = short.await.unwrap().unwrap_err();
        assert!(
            matches!(error, AskError::Remote(RemoteError::NoReply)),
            "{error}"
        );
        replies.complete(short_wait, Ok(1));

        // A timeout too long to count is never forgotten.
        replies.forget_abandoned(now + Duration::from_secs(365 * 24 * 3600));
        replies.complete(endless_wait, Ok(2));
        assert_eq!(endless.await.unwrap().unwrap(), Ok(2));
        node.shutdown().await;
    }
}

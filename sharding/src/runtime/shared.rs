//! The driver of one entity type, shared by its task and the mesh service
//! that receives the type's messages from other nodes.
//!
//! The task runs the driver's timers, its entity steps that wait, and its
//! queue of commands. A message from another node is handled by the mesh
//! reader that received it, on its task, when the driver is idle and its
//! queue is empty (see [`Driver::handle_now`]); otherwise it is queued.
//! One lock keeps every input in one order: the task takes commands from
//! the queue only while it holds it, and handles all it took before it
//! lets go, so an empty queue under the lock means every message queued
//! earlier has been handled.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::sync::mpsc;
use tokio::time::Interval;

use super::driver::{Command, Driver, Round};
use super::wire::Protocol;
use crate::entity::Entity;

pub(crate) struct SharedDriver<E: Entity> {
    /// `None` once the task ended.
    driver: Mutex<Option<Driver<E>>>,
    /// The task's waker, for a mesh reader that held the driver while the
    /// task wanted it, or crashed the node.
    task: AtomicWaker,
    /// The task found the driver held and waits for it: readers queue
    /// what they receive until it has had its turn.
    task_waiting: AtomicBool,
    /// The driver's queue, for what cannot be handled at once.
    queue: mpsc::Sender<Command<E>>,
}

impl<E: Entity> SharedDriver<E> {
    /// Shares `driver`, whose commands `queue` sends.
    pub(crate) fn new(driver: Driver<E>, queue: mpsc::Sender<Command<E>>) -> Arc<Self> {
        Arc::new(Self {
            driver: Mutex::new(Some(driver)),
            task: AtomicWaker::new(),
            task_waiting: AtomicBool::new(false),
            queue,
        })
    }

    /// The driver task: runs until the node stops (seen at its next tick)
    /// or crashes. Its queue stays open meanwhile: `queue` is one of its
    /// senders.
    pub(crate) async fn run(self: Arc<Self>) {
        let Some(mut ticker) = mesh::sync::lock(&self.driver).as_ref().map(Driver::ticker) else {
            return;
        };
        while poll_fn(|cx| self.poll_round(cx, &mut ticker)).await == Round::Worked {}
        let driver = mesh::sync::lock(&self.driver).take();
        if let Some(driver) = driver {
            driver.finish();
        }
    }

    fn poll_round(&self, cx: &mut Context<'_>, ticker: &mut Interval) -> Poll<Round> {
        self.task.register(cx.waker());
        let Some(mut guard) = self.try_lock().or_else(|| {
            // Said before trying again, so that a reader letting go between
            // the two tries wakes this task; and no reader takes the driver
            // while it is said, so the task's timers (lease renewals) are
            // not held up by a stream of messages.
            self.task_waiting.store(true, Ordering::SeqCst);
            self.try_lock()
        }) else {
            return Poll::Pending;
        };
        self.task_waiting.store(false, Ordering::SeqCst);
        match guard.as_mut() {
            Some(driver) => driver.poll_round(cx, ticker),
            None => Poll::Ready(Round::Stopped),
        }
    }

    /// For the mesh service: a message from another node, handled on this
    /// task if the driver is free and nothing is queued ahead of it, else
    /// queued (or dropped, with a warning, if the queue is full: its
    /// sender retries or times out). A message with `more` behind it from
    /// the same peer is queued too: a burst is handled by the driver task in
    /// batches, on another worker while the reader goes on reading, and
    /// only a message that arrives alone is handled at once.
    pub(crate) fn receive(&self, protocol: Protocol<E::Message>, more: bool) {
        let protocol = if more {
            protocol
        } else {
            let Some(protocol) = self.handle_now(protocol) else {
                return;
            };
            protocol
        };
        if self
            .queue
            .try_send(Command::Wire(Box::new(protocol)))
            .is_err()
        {
            tracing::warn!("sharding driver queue full or stopped; message dropped (its sender retries or times out)");
        }
    }

    /// The message back if it could not be handled now.
    fn handle_now(&self, protocol: Protocol<E::Message>) -> Option<Protocol<E::Message>> {
        if self.task_waiting.load(Ordering::SeqCst) {
            return Some(protocol);
        }
        let Some(mut guard) = self.try_lock() else {
            return Some(protocol);
        };
        let Some(driver) = guard.as_mut() else {
            return Some(protocol);
        };
        let given_back = driver.handle_now(protocol);
        let crashed = driver.crashed();
        drop(guard);
        if crashed || self.task_waiting.load(Ordering::SeqCst) {
            self.task.wake();
        }
        given_back
    }

    /// The driver, unless someone else holds it. A panic while it was held
    /// (a bug) does not stop the type: the driver is used as it was left,
    /// as every lock of the workspace is (see `mesh::sync`).
    fn try_lock(&self) -> Option<MutexGuard<'_, Option<Driver<E>>>> {
        mesh::sync::try_lock(&self.driver)
    }
}

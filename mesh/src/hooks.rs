//! Named hook points in protocol code, armed per node by tests.
//!
//! Protocol code calls `node.hooks().fire("coordinator.after_begin_handoff").await`
//! at a named point; a test arms that point on one node with an action, which
//! then runs exactly there. A point with nothing armed costs one atomic load.
//!
//! Arming a point ([`Hooks::arm`], [`Hooks::arm_once`], [`Hooks::disarm`])
//! is test-only fault injection behind the `fault-injection` cargo feature;
//! without it nothing can be armed and every point is a no-op.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::lock;

/// What an armed hook point does when reached.
#[derive(Clone)]
pub enum HookAction {
    /// Crash the node right there: no goodbye, nothing flushed. The code after
    /// the point never runs.
    Crash,
    /// Stall the calling task, like a process pause or a long GC.
    Pause(Duration),
    /// Run a callback (the testbed uses it for e.g. "partition from node X").
    Call(Arc<dyn Fn() + Send + Sync>),
}

impl std::fmt::Debug for HookAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Crash => write!(f, "Crash"),
            Self::Pause(d) => write!(f, "Pause({d:?})"),
            Self::Call(_) => write!(f, "Call(..)"),
        }
    }
}

/// What remains to do after a hook point ran its action.
enum Fired {
    Nothing,
    Pause(Duration),
    Crashed,
}

struct Armed {
    action: HookAction,
    remaining: Option<u64>,
}

/// The hook registry of one node.
#[derive(Clone, Default)]
pub struct Hooks {
    inner: Arc<HooksInner>,
}

#[derive(Default)]
struct HooksInner {
    any_armed: AtomicBool,
    armed: Mutex<HashMap<String, Armed>>,
    fired: Mutex<HashMap<String, u64>>,
    crash: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

impl Hooks {
    /// Arms `point` to run `action` on every pass.
    #[cfg(feature = "fault-injection")]
    pub fn arm(&self, point: &str, action: HookAction) {
        self.arm_times(point, action, None);
    }

    /// Arms `point` to run `action` on the next pass only.
    #[cfg(feature = "fault-injection")]
    pub fn arm_once(&self, point: &str, action: HookAction) {
        self.arm_times(point, action, Some(1));
    }

    #[cfg(feature = "fault-injection")]
    fn arm_times(&self, point: &str, action: HookAction, remaining: Option<u64>) {
        let mut armed = lock(&self.inner.armed);
        armed.insert(point.to_string(), Armed { action, remaining });
        self.inner.any_armed.store(true, Ordering::Release);
    }

    /// Disarms `point`.
    #[cfg(feature = "fault-injection")]
    pub fn disarm(&self, point: &str) {
        let mut armed = lock(&self.inner.armed);
        armed.remove(point);
        self.inner
            .any_armed
            .store(!armed.is_empty(), Ordering::Release);
    }

    /// Whether any point is armed: protocol code may skip work that only a
    /// hook needs (one atomic load).
    pub fn any_armed(&self) -> bool {
        self.inner.any_armed.load(Ordering::Acquire)
    }

    /// How often `point` has fired on this node.
    pub fn fired(&self, point: &str) -> u64 {
        lock(&self.inner.fired).get(point).copied().unwrap_or(0)
    }

    /// Sets what [`HookAction::Crash`] does; the node installs this at start.
    pub(crate) fn set_crash_handler(&self, crash: Arc<dyn Fn() + Send + Sync>) {
        *lock(&self.inner.crash) = Some(crash);
    }

    /// Runs the action armed at `point`, if any.
    pub async fn fire(&self, point: &str) {
        match self.run(point) {
            Fired::Nothing => {}
            Fired::Pause(duration) => tokio::time::sleep(duration).await,
            Fired::Crashed => std::future::pending::<()>().await,
        }
    }

    /// Like [`Hooks::fire`], for protocol code that is not async (a sans-IO
    /// driver performing effects): a pause blocks the calling thread (a
    /// process pause); returns true if the node crashed here, after which
    /// the caller must do nothing more.
    pub fn fire_now(&self, point: &str) -> bool {
        match self.run(point) {
            Fired::Nothing => false,
            Fired::Pause(duration) => {
                std::thread::sleep(duration);
                false
            }
            Fired::Crashed => true,
        }
    }

    /// Runs what needs no waiting (a callback, the crash) and says what is left.
    fn run(&self, point: &str) -> Fired {
        if !self.inner.any_armed.load(Ordering::Acquire) {
            return Fired::Nothing;
        }
        let Some(action) = self.take_action(point) else {
            return Fired::Nothing;
        };
        tracing::info!(point, ?action, "hook fired");
        match action {
            HookAction::Pause(duration) => Fired::Pause(duration),
            HookAction::Call(callback) => {
                callback();
                Fired::Nothing
            }
            HookAction::Crash => {
                let crash = lock(&self.inner.crash).clone();
                if let Some(crash) = crash {
                    crash();
                }
                Fired::Crashed
            }
        }
    }

    fn take_action(&self, point: &str) -> Option<HookAction> {
        let mut armed = lock(&self.inner.armed);
        let entry = armed.get_mut(point)?;
        let action = entry.action.clone();
        if let Some(remaining) = entry.remaining.as_mut() {
            *remaining -= 1;
            if *remaining == 0 {
                armed.remove(point);
                self.inner
                    .any_armed
                    .store(!armed.is_empty(), Ordering::Release);
            }
        }
        *lock(&self.inner.fired)
            .entry(point.to_string())
            .or_default() += 1;
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn unarmed_points_do_nothing_and_once_fires_once() {
        let hooks = Hooks::default();
        hooks.fire("a").await;
        assert_eq!(hooks.fired("a"), 0);
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        hooks.arm_once(
            "a",
            HookAction::Call(Arc::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })),
        );
        hooks.fire("b").await;
        hooks.fire("a").await;
        hooks.fire("a").await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(hooks.fired("a"), 1);
    }
}

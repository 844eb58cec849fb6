//! Split-brain resolution, after Akka's split-brain resolver.
//!
//! - [`strategy`]: the strategies and the decision each takes for a split.
//! - [`resolve`](resolve()): who is unreachable, who is indirectly
//!   connected, who decides and whom the decision downs, for one view.
//! - [`stability`]: the `stable_after` timer and `down_all_when_unstable`.
//! - [`resolver`]: the three together, stepped with time.

pub mod resolve;
pub mod resolver;
pub mod stability;
pub mod strategy;

pub use resolve::{resolve, Resolution};
pub use resolver::{PendingDecision, SplitBrainResolver};
pub use stability::StabilityTracker;
pub use strategy::{Decision, DowningStrategy, Split};

//! Sharding on real mesh nodes behind the testbed's relays (issue 5's
//! multi-node tests): spread, rebalance to a joining node, graceful leave
//! under load, proxy-only routing, daemon workers, a rolling update.

mod basics;
mod ordering;
mod rollout;
mod support;

//! Sharding under failure (issue 6): every scenario runs real nodes behind
//! the testbed's relays, continuous load from clients on other nodes, a
//! crash or cut placed exactly (hook points where timing matters), and the
//! invariant checker of `checker.rs`.

mod checker;
mod holes;
mod scenarios;

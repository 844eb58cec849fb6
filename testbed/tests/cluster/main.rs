//! Integration tests of `testbed::Cluster`: real mesh nodes over QUIC on
//! 127.0.0.1, every one behind a relay; every wait bounded by a deadline.

mod faults;
mod hooks;
mod lifecycle;
mod loss;
mod membership;
mod report;
mod support;

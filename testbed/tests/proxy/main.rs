//! Integration tests of `testbed::proxy`: real sockets on 127.0.0.1, every wait
//! bounded by a deadline.

mod control;
mod process;
mod quic;
mod support;
mod udp;

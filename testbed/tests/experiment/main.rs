//! `testbed run` end to end: shipped scenarios on real processes, a harmful
//! configuration that must fail, the report in headless Chromium, and the
//! command line's refusals.

mod cli;
mod runs;
mod support;

//! Deterministic simulation of the whole cluster protocol: the production
//! membership and sharding cores of every node, in virtual time, under a
//! seeded network and nemesis, with invariants checked after every step.
//!
//! - [`world`]: the nodes, the event queue, the clients and the quiet phase.
//! - [`network`]: link rules per directed pair (the proxy's [`crate::proxy::LinkRule`]).
//! - [`gossip`]: a model of chitchat.
//! - [`type_glue`]: the sharding driver's decisions around `Region` and `Coordinator`.
//! - [`host`]: a model of the entity host and daemon workers.
//! - [`nemesis`]: fault schedules drawn from a seed.
//! - [`schedule`]: hand-written schedules for the known bad cases.
//! - [`invariants`]: the properties.
//! - [`shrink`]: cutting a failing schedule down.
//!
//! A run is a pure function of `(seed, schedule, config)`: one seeded
//! random stream, virtual time, ordered maps only. Its event trace hash
//! shows it: the same seed gives the same hash.
//!
//! ```
//! use testbed::sim::{run_seed, SimConfig};
//!
//! let config = SimConfig { virtual_ms: 30_000, ..SimConfig::default() };
//! let outcome = run_seed(&config, 7);
//! assert_eq!(outcome.trace_hash, run_seed(&config, 7).trace_hash);
//! ```

pub mod gossip;
pub mod host;
pub mod invariants;
pub mod nemesis;
pub mod network;
pub mod schedule;
pub mod shrink;
pub mod time;
pub mod type_glue;
pub mod world;

pub use host::HostRules;
pub use invariants::Violation;
pub use nemesis::{Fault, Schedule, Timed};
pub use shrink::{shrink, Shrunk};
pub use world::{Outcome, SimConfig, World};

/// Runs `seed` with the schedule the nemesis draws from it.
pub fn run_seed(config: &SimConfig, seed: u64) -> Outcome {
    let schedule = Schedule::generate(seed, config.nodes, config.virtual_ms);
    run_schedule(config, seed, schedule)
}

/// Runs `seed` with a given schedule.
pub fn run_schedule(config: &SimConfig, seed: u64, schedule: Schedule) -> Outcome {
    World::new(config.clone(), seed, schedule).run().0
}

/// Runs `seed` with a given schedule and returns a readable log of faults,
/// coordinator starts, downs and the violation.
pub fn run_logged(config: &SimConfig, seed: u64, schedule: Schedule) -> (Outcome, Vec<String>) {
    World::new(config.clone(), seed, schedule).with_log().run()
}

/// The one-line command that replays a run exactly.
pub fn replay_command(config: &SimConfig, outcome: &Outcome) -> String {
    let mut command = format!(
        "cargo run --release -p testbed --bin sim -- --seed {} --nodes {} --virtual-secs {}",
        outcome.seed,
        config.nodes,
        config.virtual_ms / 1_000
    );
    if config.late_nodes_bootstrap {
        command.push_str(" --late-bootstrap");
    }
    if let Some(flag) = legacy_flag(config.host) {
        command.push_str(&format!(" --legacy-host {flag}"));
    }
    command.push_str(&format!(" --schedule '{}'", outcome.schedule.to_json()));
    command
}

/// The `--legacy-host` value for host rules other than the design's.
pub fn legacy_flag(rules: HostRules) -> Option<String> {
    let mut parts = Vec::new();
    if !rules.steps_check_lease {
        parts.push("steps");
    }
    if !rules.fresh_clock_per_delivery {
        parts.push("round-clock");
    }
    if !rules.daemons_check_lease {
        parts.push("daemons");
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

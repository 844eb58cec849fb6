//! `sim`: the deterministic simulation from the command line.
//!
//! - `sim --seeds 10000 [--nodes 5] [--virtual-secs 60] [--json]`: runs
//!   seeds `--first-seed..`, prints a progress line and a summary (seeds
//!   run, faults by kind, violations); each failure is shrunk and printed
//!   with its schedule and a one-line replay command.
//! - `sim --seed S [--schedule JSON]`: replays one run and prints its log
//!   and trace hash.
//! - `sim --known NAME`: runs a hand-written schedule (`--known list`).
//! - `sim --scale 1000`: how long 1,000 nodes take to agree that every one
//!   of them is Up, in virtual and in wall time.
//!
//! Build with `--release`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use serde::Serialize;
use testbed::sim::schedule::{known_case, known_cases};
use testbed::sim::{
    legacy_flag, replay_command, run_logged, run_seed, shrink, HostRules, Outcome, Schedule,
    SimConfig,
};

#[derive(Parser)]
#[command(about = "Deterministic simulation of the cluster protocol under seeded faults")]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Replay this one seed (with `--schedule`, that schedule instead of the drawn one).
    #[arg(long)]
    seed: Option<u64>,
    /// A schedule as JSON (from a failure report).
    #[arg(long)]
    schedule: Option<String>,
    /// Nodes that start each run.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Virtual seconds per run.
    #[arg(long, default_value_t = 60)]
    virtual_secs: u64,
    /// Run the entity host with pre-fix lease checks, comma-separated:
    /// `steps`, `round-clock`, `daemons` (issue 14 holes 2, 3, 4).
    #[arg(long)]
    legacy_host: Option<String>,
    /// Let restarted and joining nodes bootstrap a cluster of their own
    /// when they hear nobody (the behaviour before `may_start_cluster`; see `SimConfig`).
    #[arg(long)]
    late_bootstrap: bool,
    /// Run a hand-written schedule (`list` lists them).
    #[arg(long)]
    known: Option<String>,
    /// Stop after this many failing seeds.
    #[arg(long, default_value_t = 1)]
    max_failures: usize,
    /// Shrink failures (at most this many runs each; 0: do not shrink).
    #[arg(long, default_value_t = 200)]
    shrink_budget: usize,
    /// Measure membership convergence of this many nodes instead.
    #[arg(long)]
    scale: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary {
    seeds_run: u64,
    first_seed: u64,
    nodes: usize,
    virtual_secs: u64,
    legacy_host: Option<String>,
    wall_secs: f64,
    schedules_per_sec: f64,
    events_per_sec: f64,
    events: u64,
    faults: BTreeMap<&'static str, u64>,
    asks: BTreeMap<&'static str, u64>,
    writes: u64,
    violations: Vec<Failure>,
}

#[derive(Serialize)]
struct Failure {
    seed: u64,
    invariant: &'static str,
    at_ms: u64,
    detail: String,
    seeds_to_failure: u64,
    shrunk_faults: usize,
    schedule: String,
    replay: String,
}

fn host_rules(flag: Option<&str>) -> anyhow::Result<HostRules> {
    let mut rules = HostRules::DESIGN;
    for part in flag
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        match part {
            "steps" => rules.steps_check_lease = false,
            "round-clock" => rules.fresh_clock_per_delivery = false,
            "daemons" => rules.daemons_check_lease = false,
            other => bail!("unknown --legacy-host part {other:?} (steps, round-clock, daemons)"),
        }
    }
    Ok(rules)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = SimConfig {
        nodes: args.nodes,
        virtual_ms: args.virtual_secs * 1_000,
        host: host_rules(args.legacy_host.as_deref())?,
        late_nodes_bootstrap: args.late_bootstrap,
        ..SimConfig::default()
    };
    if let Some(nodes) = args.scale {
        return scale(nodes, args.json);
    }
    if let Some(name) = &args.known {
        if name == "list" {
            for case in known_cases() {
                println!("{}", case.name);
            }
            return Ok(());
        }
        let case = known_case(name).with_context(|| format!("no known case {name:?}"))?;
        config.nodes = case.nodes;
        return replay(&config, args.seed.unwrap_or(case.seed), Some(case.schedule));
    }
    if let Some(seed) = args.seed {
        let schedule = match &args.schedule {
            Some(json) => Some(Schedule::from_json(json).context("reading --schedule")?),
            None => None,
        };
        return replay(&config, seed, schedule);
    }
    soak(&args, &config)
}

fn replay(config: &SimConfig, seed: u64, schedule: Option<Schedule>) -> anyhow::Result<()> {
    let schedule =
        schedule.unwrap_or_else(|| Schedule::generate(seed, config.nodes, config.virtual_ms));
    let (outcome, log) = run_logged(config, seed, schedule);
    for line in &log {
        println!("{line}");
    }
    println!(
        "seed {} | {} events | {} virtual ms | trace hash {:016x} | {}",
        outcome.seed,
        outcome.events,
        outcome.virtual_ms,
        outcome.trace_hash,
        match &outcome.violation {
            Some(v) => format!("FAILED {v}"),
            None => "ok".to_string(),
        }
    );
    if outcome.violation.is_some() {
        std::process::exit(1);
    }
    Ok(())
}

fn soak(args: &Args, config: &SimConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut asks = [0u64; 4];
    let (mut events, mut writes, mut run) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut stderr = std::io::stderr();
    for seed in args.first_seed..args.first_seed + args.seeds {
        let outcome = run_seed(config, seed);
        run += 1;
        events += outcome.events;
        writes += outcome.writes;
        for (kind, count) in &outcome.faults {
            *faults.entry(kind).or_default() += count;
        }
        for (total, n) in asks.iter_mut().zip(outcome.asks) {
            *total += n;
        }
        if run % 10 == 0 || run == args.seeds {
            let rate = run as f64 / started.elapsed().as_secs_f64();
            let done = run * 40 / args.seeds;
            let _ = write!(
                stderr,
                "\r[{}{}] {run}/{} seeds, {rate:.0}/s, {} failed ",
                "#".repeat(done as usize),
                "-".repeat(40 - done as usize),
                args.seeds,
                failures.len()
            );
        }
        if outcome.violation.is_some() {
            failures.push(report(args, config, outcome, run));
            if failures.len() >= args.max_failures {
                break;
            }
        }
    }
    let _ = writeln!(stderr);
    let wall = started.elapsed().as_secs_f64();
    let summary = Summary {
        seeds_run: run,
        first_seed: args.first_seed,
        nodes: config.nodes,
        virtual_secs: config.virtual_ms / 1_000,
        legacy_host: legacy_flag(config.host),
        wall_secs: wall,
        schedules_per_sec: run as f64 / wall,
        events_per_sec: events as f64 / wall,
        events,
        faults,
        asks: BTreeMap::from([
            ("sent", asks[0]),
            ("answered", asks[1]),
            ("failed", asks[2]),
            ("timed_out", asks[3]),
        ]),
        writes,
        violations: failures,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} seeds in {:.1} s ({:.1} schedules/s, {:.0} events/s), {} writes",
            summary.seeds_run,
            wall,
            summary.schedules_per_sec,
            summary.events_per_sec,
            summary.writes
        );
        let faults: Vec<String> = summary
            .faults
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        println!("faults: {}", faults.join(", "));
        println!(
            "asks: {} sent, {} answered, {} failed, {} timed out",
            asks[0], asks[1], asks[2], asks[3]
        );
        println!("violations: {}", summary.violations.len());
        for failure in &summary.violations {
            println!(
                "\nseed {} (after {} seeds) FAILED {} at {} ms: {}",
                failure.seed,
                failure.seeds_to_failure,
                failure.invariant,
                failure.at_ms,
                failure.detail
            );
            println!(
                "shrunk schedule ({} faults):\n{}",
                failure.shrunk_faults, failure.schedule
            );
            println!("replay: {}", failure.replay);
        }
    }
    if !summary.violations.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

fn report(args: &Args, config: &SimConfig, outcome: Outcome, seeds_run: u64) -> Failure {
    let outcome = if args.shrink_budget > 0 {
        shrink(config, outcome, args.shrink_budget).outcome
    } else {
        outcome
    };
    let violation = outcome
        .violation
        .clone()
        .expect("shrinking keeps only runs that fail");
    Failure {
        seed: outcome.seed,
        invariant: violation.invariant,
        at_ms: violation.at / 1_000,
        detail: violation.detail,
        seeds_to_failure: seeds_run,
        shrunk_faults: outcome.schedule.faults.len(),
        schedule: outcome.schedule.to_string(),
        replay: replay_command(config, &outcome),
    }
}

fn scale(nodes: usize, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let result = testbed::sim::world::converge(nodes, 120_000);
    let wall = started.elapsed().as_secs_f64();
    let virtual_secs = result.map(|ms| ms as f64 / 1_000.0);
    if json {
        let value = serde_json::json!({
            "nodes": nodes,
            "converged_virtual_secs": virtual_secs,
            "wall_secs": wall,
        });
        println!("{value}");
    } else {
        match virtual_secs {
            Some(v) => println!("{nodes} nodes: every node sees all {nodes} Up after {v:.1} virtual s ({wall:.1} s wall)"),
            None => println!("{nodes} nodes: no convergence within 120 virtual s ({wall:.1} s wall)"),
        }
    }
    Ok(())
}

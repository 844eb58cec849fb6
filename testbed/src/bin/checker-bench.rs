//! `checker-bench`: how fast the experiment checker is.
//!
//! Generates a linearizable history (`--operations` over `--keys`, from
//! `--processes` concurrent clients, about 1% `info`), runs the whole
//! checker on it `--rounds` times and reports operations checked per second
//! (median round). `--json` prints one object. Build with `--release`.

use std::time::Instant;

use anyhow::ensure;
use clap::Parser;
use serde_json::json;
use testbed::experiment::checker::{check, CheckSettings};
use testbed::experiment::synthetic::{linearizable_history, SyntheticSpec};

#[derive(Parser)]
#[command(about = "Operations checked per second by the experiment checker")]
struct Args {
    /// Operations in the history.
    #[arg(long, default_value_t = 100_000)]
    operations: usize,
    /// Keys.
    #[arg(long, default_value_t = 1_000)]
    keys: usize,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 50)]
    processes: usize,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seed of the generated history.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    let events = linearizable_history(SyntheticSpec {
        operations: args.operations,
        keys: args.keys,
        processes: args.processes,
        seed: args.seed,
    });
    let mut seconds = Vec::with_capacity(args.rounds);
    let mut checked = 0;
    for _ in 0..args.rounds {
        let started = Instant::now();
        let verdict = check(&events, None, &CheckSettings::default())?;
        seconds.push(started.elapsed().as_secs_f64());
        ensure!(
            verdict.valid,
            "the generated history must be valid: {}",
            verdict.summary
        );
        checked = verdict.linearizability.operations;
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let per_second = args.operations as f64 / median;
    if args.json {
        println!(
            "{}",
            json!({
                "operations": args.operations,
                "searched": checked,
                "keys": args.keys,
                "processes": args.processes,
                "seconds": median,
                "ops_per_second": per_second,
            })
        );
    } else {
        println!(
            "{} operations ({} searched, failed cas excluded) over {} keys from {} processes: \
             checked in {:.3} s, {:.0} ops/s (median of {})",
            args.operations, checked, args.keys, args.processes, median, per_second, args.rounds
        );
    }
    Ok(())
}

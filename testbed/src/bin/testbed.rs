//! `testbed`: command-line entry to the testbed.
//!
//! `testbed proxy --config FILE` runs the fault-injecting proxy with its JSON
//! control API (see `testbed::proxy` and `testbed/examples/proxy.jsonc`). When
//! everything is bound it prints one JSON line on stdout:
//! `{"control": ADDR, "seed": N, "relays": [{"name", "listen", "target"}]}`.
//! A bad config or an address in use ends it with one line on stderr and exit
//! code 2.
//!
//! `testbed run SCENARIO.toml [--out DIR] [--seed N]` runs a partition
//! experiment (see `testbed::experiment`): exit 0 when the checker finds the
//! history valid, 1 on a violation, 2 on a bad scenario or environment.
//!
//! `testbed node ...` runs one node of the demo service under test (see
//! `testbed::experiment::demo`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mesh::logging::LogFormat;
use serde::Serialize;
use testbed::experiment::demo::{run_node, NodeArgs};
use testbed::experiment::runner::{run, RunOptions};
use testbed::experiment::scenario::Scenario;
use testbed::proxy::{ProxyConfig, ProxyServer};
use tracing::info;

/// Exit code for a config or environment the proxy cannot start with.
const EXIT_BAD_SETUP: u8 = 2;

/// Exit code of `testbed run` when the checker found a violation.
const EXIT_VIOLATION: u8 = 1;

#[derive(Parser)]
#[command(name = "testbed", version, about = "The mesh's testbed")]
struct Cli {
    /// Log lines as `text` (colored only on a terminal) or `json` (one
    /// object per line), on standard error.
    #[arg(long, global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the fault-injecting UDP proxy with its HTTP control API.
    Proxy(ProxyArgs),
    /// Run one node of the demo service (a sharded entity kept in a file per
    /// entity) with the admin API; exits 3 when the cluster downs it.
    Node(NodeArgs),
    /// Run a partition experiment: nodes behind fault-proxy relays, a
    /// workload, timed faults, a checked history and an HTML report. Exits
    /// 0 when the history is valid, 1 on a violation, 2 on a bad scenario
    /// or environment.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The scenario file (see testbed/scenarios/).
    scenario: PathBuf,
    /// Output directory (default runs/NAME-SEED-UNIXTIME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the workload and the proxy, overriding the scenario's.
    #[arg(long)]
    seed: Option<u64>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct ProxyArgs {
    /// JSON config file (see testbed/examples/proxy.jsonc).
    #[arg(long, env = "TESTBED_PROXY_CONFIG")]
    config: PathBuf,
    /// Address of the control API, overriding the config's `control`.
    #[arg(long, env = "TESTBED_PROXY_CONTROL")]
    control: Option<SocketAddr>,
    /// Seed of the randomness, overriding the config's `seed`.
    #[arg(long, env = "TESTBED_PROXY_SEED")]
    seed: Option<u64>,
}

#[derive(Serialize)]
struct Ready {
    control: SocketAddr,
    seed: u64,
    relays: Vec<ReadyRelay>,
}

#[derive(Serialize)]
struct ReadyRelay {
    name: String,
    listen: SocketAddr,
    target: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` talks through its progress line; its proxy's logs are noise there.
    let default_filter = match cli.command {
        Command::Run(_) => "warn",
        _ => "info",
    };
    mesh::logging::init(cli.log_format, default_filter);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(format!("cannot start the async runtime: {error}")),
    };
    match cli.command {
        Command::Proxy(args) => runtime.block_on(run_proxy(args)),
        Command::Run(args) => runtime.block_on(run_experiment(args)),
        Command::Node(args) => match runtime.block_on(run_node(args)) {
            Ok(code) => code,
            Err(error) => fail(format!("{error:#}")),
        },
    }
}

async fn run_proxy(args: ProxyArgs) -> ExitCode {
    let mut config = match ProxyConfig::load(&args.config) {
        Ok(config) => config,
        Err(error) => return fail(error),
    };
    if let Some(control) = args.control {
        config.control = control;
    }
    if args.seed.is_some() {
        config.seed = args.seed;
    }
    let server = match ProxyServer::start(&config).await {
        Ok(server) => server,
        Err(error) => return fail(error),
    };
    let ready = Ready {
        control: server.control_addr(),
        seed: server.network().seed(),
        relays: server
            .relays()
            .iter()
            .map(|relay| ReadyRelay {
                name: relay.name().to_string(),
                listen: relay.public_addr(),
                target: relay.target(),
            })
            .collect(),
    };
    match serde_json::to_string(&ready) {
        Ok(line) => println!("{line}"),
        Err(error) => return fail(format!("cannot describe the proxy: {error}")),
    }
    if let Err(error) = shutdown_signal().await {
        return fail(format!("cannot wait for a shutdown signal: {error}"));
    }
    info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn run_experiment(args: RunArgs) -> ExitCode {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(scenario) => scenario,
        Err(error) => return fail(error),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return fail(format!("cannot find the testbed executable: {error}")),
    };
    let options = RunOptions {
        out: args.out,
        seed: args.seed,
        exe,
        progress: !args.quiet,
        ready_timeout: Duration::from_secs(60),
    };
    eprintln!(
        "testbed: running {} ({} nodes, {:?})",
        scenario.name, scenario.nodes, scenario.duration
    );
    match run(&scenario, &options).await {
        Ok(outcome) => {
            println!("{}", outcome.verdict.summary);
            println!("report: {}", outcome.dir.join("report.html").display());
            if outcome.verdict.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_VIOLATION)
            }
        }
        Err(error) => fail(error),
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("testbed: {error}");
    ExitCode::from(EXIT_BAD_SETUP)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

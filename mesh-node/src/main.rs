//! `mesh-node`: run a mesh node, make certificates, or start a local cluster.

#[cfg(test)]
mod deploy_check;
mod local;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesh::logging::LogFormat;

#[derive(Parser)]
#[command(
    name = "mesh-node",
    version,
    about = "A mesh node: QUIC, mutual TLS, gossip"
)]
struct Cli {
    /// Log lines as `text` (colored only on a terminal) or `json` (one
    /// object per line); on standard error, filtered by RUST_LOG.
    #[arg(long, global = true, default_value_t = LogFormat::Text, env = "MESH_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Certificate management.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Run one node. SIGINT/SIGTERM leave the cluster gracefully (exit 0); a
    /// node downed by the cluster exits with code 3.
    Run(Box<run::RunArgs>),
    /// Run a cluster of nodes on loopback as child processes (Ctrl-C makes all
    /// leave the cluster and exit).
    Local(local::LocalArgs),
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a cluster CA (reused if DIR has one) and a certificate per node into DIR.
    Init {
        /// Directory for ca.pem, ca.key, NAME.pem and NAME.key.
        #[arg(long)]
        dir: PathBuf,
        /// Node names, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Cluster name (appears in the CA's common name).
        #[arg(long, default_value = "mesh")]
        cluster: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mesh::logging::init(cli.log_format, "info,quinn=warn,chitchat=warn");
    let result = match cli.command {
        Command::Certs {
            command:
                CertsCommand::Init {
                    dir,
                    nodes,
                    cluster,
                },
        } => certs_init(&dir, &cluster, &nodes),
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(run::run(*args))),
        Command::Local(args) => runtime().and_then(|rt| rt.block_on(local::local(args))),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn certs_init(dir: &std::path::Path, cluster: &str, nodes: &[String]) -> anyhow::Result<ExitCode> {
    for name in nodes {
        let probe = mesh::NodeConfig {
            name: name.clone(),
            ..Default::default()
        };
        probe.validate()?;
    }
    mesh::tls::write_cluster_dir(dir, cluster, nodes)?;
    println!(
        "wrote ca.pem, ca.key and a certificate for {} to {}",
        nodes.join(", "),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

//! `mesh-node local`: a cluster on loopback, one child process per node.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::process::{Child, Command};

/// Flags of `mesh-node local`.
#[derive(Args)]
pub struct LocalArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// UDP port of the first node; node i listens on base + i - 1.
    #[arg(long, default_value_t = 7001)]
    pub base_port: u16,
    /// TCP port of the first node's admin API; node i serves on admin_base + i - 1.
    #[arg(long, default_value_t = 8001)]
    pub admin_base_port: u16,
    /// Where to write the certificates (default: a fresh temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// How long the nodes get to leave the cluster before they are killed.
const LEAVE_GRACE: Duration = Duration::from_secs(10);

/// Starts the children and waits for SIGINT/SIGTERM (or a child's exit), then
/// has all leave the cluster.
///
/// Each child runs in a process group of its own, so a terminal's Ctrl-C
/// reaches only this process, and it watches its standard input, a pipe
/// from this process: closing it is the one stop request a child gets,
/// whether this process stops them or dies.
pub async fn local(args: LocalArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = (1..=args.nodes).map(|i| format!("n{i}")).collect();
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("mesh-local-{}", std::process::id())));
    mesh::tls::write_cluster_dir(&dir, "mesh", &names)?;
    let exe = std::env::current_exe().context("cannot find the mesh-node executable")?;
    let seed = format!("127.0.0.1:{}", args.base_port);
    let mut children = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let port = nth_port(args.base_port, i, "--base-port")?;
        let admin = nth_port(args.admin_base_port, i, "--admin-base-port")?;
        let child = Command::new(&exe)
            .args(["run", "--name", name])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--seeds", &seed])
            .arg("--tls-dir")
            .arg(&dir)
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .arg("--leave-when-stdin-closes")
            .stdin(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        println!("started {name}: quic 127.0.0.1:{port}, admin http://127.0.0.1:{admin}/members");
        children.push(child);
    }
    println!(
        "certificates in {}; Ctrl-C makes all nodes leave the cluster and stop",
        dir.display()
    );
    let exited = tokio::select! {
        signal = mesh::process::signal() => {
            signal?;
            None
        }
        status = wait_any(&mut children) => Some(status),
    };
    if let Some((i, status)) = &exited {
        eprintln!("{} exited ({status}); stopping the others", names[*i]);
    }
    tokio::select! {
        () = leave_all(&mut children) => {}
        signal = mesh::process::signal() => {
            signal?;
            eprintln!("second signal: killing the nodes");
        }
    }
    Ok(if exited.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn nth_port(base: u16, i: usize, flag: &str) -> anyhow::Result<u16> {
    base.checked_add(i as u16)
        .with_context(|| format!("{flag} too high for this many nodes"))
}

async fn wait_any(children: &mut [Child]) -> (usize, String) {
    loop {
        for (i, child) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                return (i, status.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Closes every child's standard input, which makes it leave the cluster;
/// kills those still running after [`LEAVE_GRACE`] (and, when this future
/// is dropped, `kill_on_drop` kills the rest).
async fn leave_all(children: &mut [Child]) {
    for child in children.iter_mut() {
        drop(child.stdin.take());
    }
    let deadline = tokio::time::Instant::now() + LEAVE_GRACE;
    for child in children.iter_mut() {
        if tokio::time::timeout_at(deadline, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

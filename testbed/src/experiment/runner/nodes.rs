//! The node processes of a run: ports, start, signals, exits.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::RunError;

/// How one node is started, every time.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Its name.
    pub name: String,
    /// Its real QUIC socket (the relay forwards there).
    pub listen: SocketAddr,
    /// What it advertises: its relay's public address.
    pub advertise: SocketAddr,
    /// The demo API and admin API.
    pub http: SocketAddr,
    /// Its settings file.
    pub config: PathBuf,
    /// Where its output goes (appended, across incarnations).
    pub log: PathBuf,
}

/// What is shared by every node of the run.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The `testbed` executable.
    pub exe: PathBuf,
    /// Certificates.
    pub tls_dir: PathBuf,
    /// The entities' files.
    pub store: PathBuf,
}

/// A node: its spec and its current process, if any.
pub struct NodeProcess {
    /// How it is started.
    pub spec: NodeSpec,
    child: Option<Child>,
    paused: bool,
    /// Incarnations started so far.
    pub starts: u32,
}

impl NodeProcess {
    /// A node not started yet.
    pub fn new(spec: NodeSpec) -> Self {
        Self {
            spec,
            child: None,
            paused: false,
            starts: 0,
        }
    }

    /// Whether a process runs (paused or not).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether it is stopped with `SIGSTOP`.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts a new incarnation that joins through `seeds`; with
    /// `bootstrap`, its own address is its first seed, which lets it start
    /// the cluster (only the first node's first start does: any other
    /// start, a restart of that node included, only joins, so a node
    /// restarted on the cut-off side of a split cannot start a second
    /// cluster).
    pub fn start(
        &mut self,
        launch: &Launch,
        seeds: &[SocketAddr],
        bootstrap: bool,
    ) -> Result<(), RunError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .map_err(|source| RunError::io(&self.spec.log, source))?;
        let err = log
            .try_clone()
            .map_err(|source| RunError::io(&self.spec.log, source))?;
        let own = bootstrap.then_some(&self.spec.advertise);
        let seeds: Vec<String> = own
            .into_iter()
            .chain(seeds.iter().filter(|s| **s != self.spec.advertise))
            .map(|s| s.to_string())
            .collect();
        let mut command = Command::new(&launch.exe);
        command
            .arg("node")
            .args(["--name", &self.spec.name])
            .args(["--listen", &self.spec.listen.to_string()])
            .args(["--advertise", &self.spec.advertise.to_string()])
            .args(["--http", &self.spec.http.to_string()])
            .arg("--tls-dir")
            .arg(&launch.tls_dir)
            .arg("--store")
            .arg(&launch.store)
            .arg("--config")
            .arg(&self.spec.config)
            .env(
                "RUST_LOG",
                std::env::var("TESTBED_NODE_LOG")
                    .unwrap_or_else(|_| "info,quinn=warn,chitchat=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(true);
        if !seeds.is_empty() {
            command.args(["--seeds", &seeds.join(",")]);
        }
        let child = command.spawn().map_err(|error| {
            RunError::Setup(format!(
                "cannot start node {} with {}: {error}",
                self.spec.name,
                launch.exe.display()
            ))
        })?;
        self.child = Some(child);
        self.paused = false;
        self.starts += 1;
        Ok(())
    }

    /// Sends a signal to the running process; false if none runs.
    pub fn signal(&mut self, signal: libc::c_int) -> bool {
        let Some(pid) = self.child.as_ref().and_then(Child::id) else {
            return false;
        };
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill(2) has no memory effects; `pid` is our own child,
        // not yet reaped (we hold its `Child`), so it cannot be reused.
        let sent = unsafe { libc::kill(pid, signal) } == 0;
        if sent && signal == libc::SIGSTOP {
            self.paused = true;
        }
        if sent && signal == libc::SIGCONT {
            self.paused = false;
        }
        sent
    }

    /// `kill -9` and reap.
    pub async fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        self.paused = false;
        let _ = child.start_kill();
        child.wait().await.ok()
    }

    /// Resumes it if paused, `SIGTERM`, waits up to `grace` for the graceful
    /// leave, then kills it.
    pub async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.paused {
            self.signal(libc::SIGCONT);
        }
        self.signal(libc::SIGTERM);
        let mut child = self.child.take()?;
        self.paused = false;
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = child.start_kill();
                child.wait().await.ok()
            }
        }
    }

    /// The exit status if the process ended on its own (and forgets it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.paused = false;
        Some(status)
    }
}

/// A free port on loopback for UDP (`udp`) or TCP: bound, read, released.
pub fn free_port(udp: bool) -> Result<SocketAddr, RunError> {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let addr = if udp {
        std::net::UdpSocket::bind(any).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind(any).and_then(|s| s.local_addr())
    };
    addr.map_err(|error| RunError::Setup(format!("cannot find a free port: {error}")))
}

/// Writes a node's settings file.
pub fn write_config(path: &Path, table: &toml::Table) -> Result<(), RunError> {
    let text = toml::to_string(table)
        .map_err(|error| RunError::Setup(format!("cannot write node settings: {error}")))?;
    std::fs::write(path, text).map_err(|source| RunError::io(path, source))
}

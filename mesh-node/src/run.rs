//! `mesh-node run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mesh::config::AdminToken;
use mesh::{DnsSeeds, Node, NodeConfig, TlsSettings};

/// Flags of `mesh-node run`.
#[derive(Args, Clone)]
#[command(group(clap::ArgGroup::new("tls").required(true).args(["tls_dir", "insecure_dev_tls"])))]
pub struct RunArgs {
    /// Node name (must match the name in its certificate).
    #[arg(long, env = "MESH_NAME")]
    pub name: String,
    /// UDP address to listen on.
    #[arg(long, env = "MESH_LISTEN")]
    pub listen: SocketAddr,
    /// Seed addresses, comma separated.
    #[arg(long, value_delimiter = ',', env = "MESH_SEEDS")]
    pub seeds: Vec<SocketAddr>,
    /// Seeds from DNS: every A/AAAA record of NAME, with PORT (e.g. a
    /// Kubernetes headless service). Resolved at start and again every
    /// second while the node is alone; a failed lookup is retried.
    #[arg(long, value_name = "NAME:PORT", env = "MESH_SEEDS_DNS")]
    pub seeds_dns: Option<String>,
    /// Nameserver for --seeds-dns instead of the system's (/etc/resolv.conf).
    #[arg(
        long,
        value_name = "IP:PORT",
        requires = "seeds_dns",
        env = "MESH_DNS_NAMESERVER"
    )]
    pub dns_nameserver: Option<SocketAddr>,
    /// Address other nodes use to reach this one (default: the listen address).
    #[arg(long, env = "MESH_ADVERTISE")]
    pub advertise: Option<SocketAddr>,
    /// Cluster name.
    #[arg(long, default_value = "mesh", env = "MESH_CLUSTER")]
    pub cluster: String,
    /// Roles, comma separated.
    #[arg(long, value_delimiter = ',', env = "MESH_ROLES")]
    pub roles: Vec<String>,
    /// Version of the application this node runs (dotted numbers, e.g.
    /// 1.4.2): new and moved shards go to the members of the highest
    /// version, so roll out with a higher one.
    #[arg(long, env = "MESH_APP_VERSION")]
    pub app_version: Option<mesh::AppVersion>,
    /// Directory with ca.pem, NAME.pem and NAME.key (from `mesh-node certs init`).
    #[arg(long, env = "MESH_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Self-signed certificate, no verification: local experiments only.
    #[arg(long)]
    pub insecure_dev_tls: bool,
    /// Address of the admin HTTP API; `--admin` alone means loopback,
    /// 127.0.0.1:8558. Off without the flag. Bind a public address (e.g.
    /// 0.0.0.0:8558, for Kubernetes probes) only on purpose.
    #[arg(long, env = "MESH_ADMIN", num_args = 0..=1, default_missing_value = "127.0.0.1:8558")]
    pub admin: Option<SocketAddr>,
    /// TOML file with node settings (flags override it).
    #[arg(long, env = "MESH_CONFIG")]
    pub config: Option<PathBuf>,
    /// File holding the bearer token of the admin API's management
    /// endpoints (POST /leave, POST /down/{member}); without a token they
    /// answer 401.
    #[arg(long, env = "MESH_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// The bearer token itself, from the environment only.
    #[arg(long, env = "MESH_ADMIN_TOKEN", hide = true, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Leave the cluster when standard input closes, as on SIGTERM: how the
    /// children of `mesh-node local` follow their parent even if it is killed.
    #[arg(long, hide = true)]
    pub leave_when_stdin_closes: bool,
}

impl RunArgs {
    fn node_config(&self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid config {}", path.display()))?
            }
            None => NodeConfig::default(),
        };
        config.name = self.name.clone();
        config.listen = self.listen;
        config.cluster = self.cluster.clone();
        if !self.seeds.is_empty() {
            config.seeds = self.seeds.clone();
        }
        if self.advertise.is_some() {
            config.advertise = self.advertise;
        }
        if !self.roles.is_empty() {
            config.roles = self.roles.clone();
        }
        if self.app_version.is_some() {
            config.app_version = self.app_version.clone();
        }
        let token = match (&self.admin_token_file, &self.admin_token) {
            (Some(path), _) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read admin token file {}", path.display()))?,
            ),
            (None, token) => token.clone(),
        };
        if let Some(text) = token {
            config.admin_token = Some(AdminToken::new(&text).context("the admin token is empty")?);
        }
        config.validate()?;
        Ok(config)
    }

    /// The DNS seed source, if `--seeds-dns` is given.
    fn dns_seeds(&self) -> anyhow::Result<Option<DnsSeeds>> {
        let Some(name_port) = &self.seeds_dns else {
            return Ok(None);
        };
        Ok(Some(match self.dns_nameserver {
            Some(nameserver) => DnsSeeds::with_nameserver(name_port, nameserver)?,
            None => DnsSeeds::system(name_port)?,
        }))
    }

    fn tls(&self) -> anyhow::Result<TlsSettings> {
        match &self.tls_dir {
            Some(dir) => Ok(TlsSettings::from_dir(dir, &self.name)?),
            None => Ok(TlsSettings::InsecureDev),
        }
    }
}

/// Runs one node until SIGINT or SIGTERM (or, if asked, the end of standard
/// input), then leaves the cluster gracefully (a signal then stops it at once). If the cluster downs the node, it
/// exits with [`mesh::process::EXIT_DOWNED`].
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.node_config()?;
    let tls = args.tls()?;
    let dns_seeds = args.dns_seeds()?;
    if let Some(seeds) = &dns_seeds {
        seed_from_dns(&mut config, seeds).await;
    }
    let admin = match args.admin {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind admin address {addr}"))?,
        ),
        None => None,
    };
    let node = Node::builder(&config.name)
        .config(config)
        .tls(tls)
        .start()
        .await?;
    if let Some(seeds) = dns_seeds {
        node.follow_dns_seeds(seeds, DNS_SEED_POLL);
    }
    if let Some(listener) = admin {
        let addr = listener.local_addr()?;
        tracing::info!(node = %node.id(), %addr, "admin API listening");
        tokio::spawn(mesh::admin::serve(listener, node.clone()));
    }
    let stop = async {
        stop_requested(args.leave_when_stdin_closes)
            .await
            .map_err(std::io::Error::other)
    };
    Ok(mesh::process::serve_until_stopped(&node, stop).await?)
}

/// How often a node that is alone looks its DNS seeds up again.
const DNS_SEED_POLL: Duration = Duration::from_secs(1);

/// Adds the DNS seeds found now to `config`'s seeds. As with static seeds,
/// only the node whose address comes first may start a new cluster; a node
/// that finds no seed yet may not (it waits for DNS to list its peers).
async fn seed_from_dns(config: &mut NodeConfig, seeds: &DnsSeeds) {
    match seeds.resolve().await {
        Ok(found) => {
            tracing::info!(name = seeds.name(), ?found, "DNS seeds");
            for seed in found {
                if !config.seeds.contains(&seed) {
                    config.seeds.push(seed);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "DNS seeds: none yet, retrying while alone"),
    }
    if config.seeds.is_empty() {
        config.membership.may_start_cluster = false;
    }
}

/// Waits for SIGINT or SIGTERM or, with `stdin_too`, the end of standard
/// input; says which.
async fn stop_requested(stdin_too: bool) -> anyhow::Result<&'static str> {
    let stdin_closed = async {
        if stdin_too {
            stdin_closed().await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        signal = mesh::process::signal() => signal.map(|()| "signal received").map_err(Into::into),
        () = stdin_closed => Ok("standard input closed"),
    }
}

/// Resolves when standard input ends or fails. It is read on a thread of
/// its own: a blocking read cannot be cancelled, and a runtime waits for
/// its blocking tasks when it shuts down.
async fn stdin_closed() {
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        drop(closed);
    });
    let _ = on_close.await;
}

//! Opening connections: the TLS handshake (by quinn) and then the hello
//! exchange that names the peer and checks that name against its certificate.
//! A handshaken connection is handed back, not registered: what to make of
//! it is the transport's business.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use membership::NodeId;
use tracing::Instrument;

use crate::link::choice::Dialer;
use crate::stats::Stats;
use crate::tls::{certificate_names, SNI};
use crate::wire::frame::{encode_value, read_value};
use crate::wire::{ErrorCode, Hello, HelloReply, PROTOCOL_VERSION};

/// How long a dial or an accept may take, TLS and hello included.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest hello frame accepted before the peer is known.
const MAX_HELLO: usize = 16 * 1024;

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("no known address")]
    NoAddress,
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("refused by peer: {0}")]
    Refused(String),
    #[error("timed out")]
    Timeout,
}

/// A connection whose peer said who it is, and passed the checks.
pub(crate) struct Handshaken {
    pub(crate) conn: quinn::Connection,
    /// The peer's identity, from its hello.
    pub(crate) id: NodeId,
    /// Where the peer can be reached, from its hello.
    pub(crate) advertise: SocketAddr,
    pub(crate) dialer: Dialer,
}

/// How this node opens and accepts connections.
pub(crate) struct Handshakes {
    pub(crate) endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    /// This node's identity and where it is reached.
    id: NodeId,
    advertise: SocketAddr,
    cluster: String,
    /// Cluster TLS is off: names are not checked against certificates.
    insecure: bool,
    /// Numbers this node's dials (see [`crate::wire::Hello::dial`]).
    next_dial: AtomicU64,
    stats: Arc<Stats>,
}

impl Handshakes {
    pub(crate) fn new(
        endpoint: quinn::Endpoint,
        client_config: quinn::ClientConfig,
        (id, advertise, cluster): (NodeId, SocketAddr, String),
        insecure: bool,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            endpoint,
            client_config,
            id,
            advertise,
            cluster,
            insecure,
            next_dial: AtomicU64::new(1),
            stats,
        }
    }

    /// This node's identity.
    pub(crate) fn id(&self) -> &NodeId {
        &self.id
    }

    /// Where peers reach this node.
    pub(crate) fn advertise(&self) -> SocketAddr {
        self.advertise
    }

    /// Dials `addr` and exchanges hellos. `expected` is the peer name, when
    /// known; another name is refused.
    pub(crate) async fn dial(
        &self,
        addr: SocketAddr,
        expected: Option<&str>,
    ) -> Result<Handshaken, DialError> {
        let attempt = async {
            let conn = self
                .endpoint
                .connect_with(self.client_config.clone(), addr, SNI)?
                .await?;
            let (mut send, mut recv) = conn.open_bi().await?;
            let dial = self.next_dial.fetch_add(1, Ordering::Relaxed);
            let hello = encode_value(&self.hello(dial), MAX_HELLO)
                .map_err(|e| DialError::Handshake(e.to_string()))?;
            send.write_all(&hello)
                .await
                .map_err(|e| DialError::Handshake(e.to_string()))?;
            let reply: HelloReply = read_value(&mut recv, MAX_HELLO)
                .await
                .map_err(|e| DialError::Handshake(e.to_string()))?;
            let _ = send.finish();
            match reply {
                HelloReply::Refused(reason) => {
                    conn.close(ErrorCode::Refused.into(), b"refused");
                    Err(DialError::Refused(reason))
                }
                HelloReply::Accepted { id, advertise } => {
                    let check =
                        self.check_certificate(&conn, &id.name)
                            .and_then(|()| match expected {
                                Some(name) if name != id.name => Err(format!(
                                    "{addr} answered as {:?}, expected {name:?}",
                                    id.name
                                )),
                                _ => Ok(()),
                            });
                    if let Err(reason) = check {
                        Stats::bump(&self.stats.handshakes_refused);
                        tracing::warn!(%addr, %reason, "refusing peer");
                        conn.close(ErrorCode::Refused.into(), reason.as_bytes());
                        return Err(DialError::Refused(reason));
                    }
                    Ok(Handshaken {
                        conn,
                        id,
                        advertise,
                        dialer: Dialer::Me(dial),
                    })
                }
            }
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt)
            .await
            .map_err(|_| DialError::Timeout)?
    }

    /// Accepts one connection and answers its hello.
    pub(crate) async fn accept(&self, incoming: quinn::Incoming) -> Result<Handshaken, String> {
        let accept = async {
            let conn = incoming
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            let (mut send, mut recv) = conn
                .accept_bi()
                .await
                .map_err(|e| format!("no hello stream: {e}"))?;
            let hello: Hello = read_value(&mut recv, MAX_HELLO)
                .await
                .map_err(|e| format!("bad hello: {e}"))?;
            let verdict = self.check_hello(&hello, &conn);
            let reply = match &verdict {
                Ok(()) => HelloReply::Accepted {
                    id: self.id.clone(),
                    advertise: self.advertise,
                },
                Err(reason) => HelloReply::Refused(reason.clone()),
            };
            let frame = encode_value(&reply, MAX_HELLO).map_err(|e| e.to_string())?;
            let _ = send.write_all(&frame).await;
            let _ = send.finish();
            match verdict {
                Ok(()) => Ok(Handshaken {
                    conn,
                    id: hello.id,
                    advertise: hello.advertise,
                    dialer: Dialer::Peer(hello.dial),
                }),
                Err(reason) => {
                    // Give the refusal a moment to reach the dialer before closing.
                    let closing = conn.clone();
                    let why = reason.clone();
                    tokio::spawn(
                        async move {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            closing.close(ErrorCode::Refused.into(), why.as_bytes());
                        }
                        .in_current_span(),
                    );
                    Err(format!(
                        "{} claims {}: {reason}",
                        conn.remote_address(),
                        hello.id
                    ))
                }
            }
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
            .await
            .map_err(|_| "handshake timed out".to_string())?
    }

    fn hello(&self, dial: u64) -> Hello {
        Hello {
            dial,
            protocol_version: PROTOCOL_VERSION,
            cluster: self.cluster.clone(),
            id: self.id.clone(),
            advertise: self.advertise,
        }
    }

    fn check_hello(&self, hello: &Hello, conn: &quinn::Connection) -> Result<(), String> {
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {} is not ours ({PROTOCOL_VERSION})",
                hello.protocol_version
            ));
        }
        if hello.cluster != self.cluster {
            return Err(format!(
                "cluster {:?} is not ours ({:?})",
                hello.cluster, self.cluster
            ));
        }
        if hello.id.name == self.id.name {
            return Err("a peer cannot use our own name".into());
        }
        self.check_certificate(conn, &hello.id.name)
    }

    /// In cluster TLS mode the claimed name must be in the peer's certificate.
    fn check_certificate(&self, conn: &quinn::Connection, name: &str) -> Result<(), String> {
        if self.insecure {
            return Ok(());
        }
        let names = certificate_names(conn);
        if names.iter().any(|n| n == name) {
            Ok(())
        } else {
            Err(format!("certificate names {names:?}, not {name:?}"))
        }
    }
}

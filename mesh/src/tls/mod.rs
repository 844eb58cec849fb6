//! TLS 1.3 for the node's QUIC endpoint.
//!
//! In cluster mode both sides present a certificate signed by the cluster CA and
//! both verify the other's chain. The certificate carries the node's name as a
//! DNS subject alternative name; since a node is often dialed by address alone
//! (a seed), the TLS layer checks the chain only and the handshake frame checks
//! that the name a peer claims is in its certificate ([`certificate_names`]).
//!
//! `InsecureDev` mode generates a self-signed certificate at start and verifies
//! nothing: anyone who can reach the port can join. It exists for quick local
//! runs and the node says so loudly when it starts.

mod certs;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use certs::{write_cluster_dir, ClusterCa, NodeCredentials};

/// The ALPN protocol name of the mesh.
pub const ALPN: &[u8] = b"mesh/1";
/// The server name the dialer puts in its TLS ClientHello; see the module doc.
pub(crate) const SNI: &str = "mesh.node";

/// How a node authenticates itself and its peers.
#[derive(Clone, Debug)]
pub enum TlsSettings {
    /// Mutual TLS against a cluster CA (PEM text).
    Cluster {
        /// The cluster CA certificate.
        ca_cert_pem: String,
        /// This node's certificate (and any intermediates).
        cert_pem: String,
        /// This node's private key.
        key_pem: String,
    },
    /// A self-signed certificate and no verification at all. Local experiments only.
    InsecureDev,
}

impl TlsSettings {
    /// Reads `ca.pem`, `<name>.pem` and `<name>.key` from `dir` (as written by
    /// `mesh-node certs init`).
    pub fn from_dir(dir: &std::path::Path, name: &str) -> Result<Self, TlsError> {
        let read = |file: String| {
            let path = dir.join(&file);
            std::fs::read_to_string(&path).map_err(|error| TlsError::Read {
                path: path.display().to_string(),
                error,
            })
        };
        Ok(Self::Cluster {
            ca_cert_pem: read("ca.pem".into())?,
            cert_pem: read(format!("{name}.pem"))?,
            key_pem: read(format!("{name}.key"))?,
        })
    }

    /// Cluster settings for `name` with credentials freshly issued by `ca`.
    pub fn issued_by(ca: &ClusterCa, name: &str) -> Result<Self, TlsError> {
        let creds = ca.issue(name)?;
        Ok(Self::Cluster {
            ca_cert_pem: ca.cert_pem().to_string(),
            cert_pem: creds.cert_pem,
            key_pem: creds.key_pem,
        })
    }

    /// Whether peers are verified.
    pub fn is_insecure(&self) -> bool {
        matches!(self, Self::InsecureDev)
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        error: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        error: std::io::Error,
    },
    /// PEM text held no usable certificate or key.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// quinn refused the rustls configuration.
    #[error("QUIC TLS configuration: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// The QUIC server and client configurations of one node.
#[derive(Clone)]
pub struct QuicTls {
    /// For the accepting side of the endpoint.
    pub server: quinn::ServerConfig,
    /// For dialing peers.
    pub client: quinn::ClientConfig,
}

impl QuicTls {
    /// Builds both configurations for node `name` with the given transport settings.
    pub fn new(
        settings: &TlsSettings,
        name: &str,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (chain, key, roots) = match settings {
            TlsSettings::Cluster {
                ca_cert_pem,
                cert_pem,
                key_pem,
            } => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in parse_certs(ca_cert_pem)? {
                    roots.add(ca)?;
                }
                (parse_certs(cert_pem)?, parse_key(key_pem)?, Some(roots))
            }
            TlsSettings::InsecureDev => {
                let creds = NodeCredentials::self_signed(name)?;
                (
                    parse_certs(&creds.cert_pem)?,
                    parse_key(&creds.key_pem)?,
                    None,
                )
            }
        };

        let server_builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let client_builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let (mut server, mut client) = match roots {
            Some(roots) => {
                let roots = Arc::new(roots);
                let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.clone(),
                    provider.clone(),
                )
                .build()?;
                let server_verifier = verify::CaServerVerifier::new(roots, provider.clone())?;
                (
                    server_builder
                        .with_client_cert_verifier(client_verifier)
                        .with_single_cert(chain.clone(), key.clone_key())?,
                    client_builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(server_verifier))
                        .with_client_auth_cert(chain, key)?,
                )
            }
            None => {
                let accept_any = Arc::new(verify::AcceptAnyPeer::new(provider.clone()));
                (
                    server_builder
                        .with_client_cert_verifier(accept_any.clone())
                        .with_single_cert(chain.clone(), key.clone_key())?,
                    client_builder
                        .dangerous()
                        .with_custom_certificate_verifier(accept_any)
                        .with_client_auth_cert(chain, key)?,
                )
            }
        };
        server.alpn_protocols = vec![ALPN.to_vec()];
        client.alpn_protocols = vec![ALPN.to_vec()];

        let mut server =
            quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server)?));
        server.transport_config(transport.clone());
        let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client)?));
        client.transport_config(transport);
        Ok(Self { server, client })
    }
}

/// QUIC transport settings shared by every connection of a node.
pub fn transport_config(idle_timeout: Duration, keep_alive: Duration) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(keep_alive));
    transport.max_idle_timeout(idle_timeout.try_into().ok());
    transport.max_concurrent_uni_streams(1024u32.into());
    transport.max_concurrent_bidi_streams(16u32.into());
    transport
}

/// The DNS names in the leaf certificate a peer presented on `conn`.
pub fn certificate_names(conn: &quinn::Connection) -> Vec<String> {
    let Some(identity) = conn.peer_identity() else {
        return Vec::new();
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return Vec::new();
    };
    chain.first().map(verify::dns_names).unwrap_or_default()
}

fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate found".into()));
    }
    Ok(certs)
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem(e.to_string()))
}

/// The crypto provider every TLS object of the mesh uses.
pub(crate) fn provider_algorithms(
    provider: &CryptoProvider,
) -> rustls::crypto::WebPkiSupportedAlgorithms {
    provider.signature_verification_algorithms
}

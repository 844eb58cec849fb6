//! A real QUIC connection (quinn + rustls/ring) through the relays.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use testbed::proxy::{LinkRule, ProxyNetwork};

use crate::support::DEADLINE;

type TestResult = Result<(), Box<dyn Error + Send + Sync>>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A QUIC server that answers every bidirectional stream with "re: " + request.
fn echo_server() -> Result<(quinn::Endpoint, CertificateDer<'static>), Box<dyn Error + Send + Sync>>
{
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())?;
    let config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(crypto)?));
    let endpoint = quinn::Endpoint::server(config, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let accepting = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else {
                    return;
                };
                while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                    let Ok(request) = recv.read_to_end(1024).await else {
                        return;
                    };
                    let reply = [b"re: ".as_slice(), &request].concat();
                    if send.write_all(&reply).await.is_err() || send.finish().is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((endpoint, cert))
}

fn client(cert: CertificateDer<'static>) -> Result<quinn::Endpoint, Box<dyn Error + Send + Sync>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(crypto)?,
    )));
    Ok(endpoint)
}

async fn round_trip(
    connection: &quinn::Connection,
    request: &str,
) -> Result<String, Box<dyn Error + Send + Sync>> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(request.as_bytes()).await?;
    send.finish()?;
    Ok(String::from_utf8(recv.read_to_end(1024).await?)?)
}

#[tokio::test]
async fn quic_connection_works_through_relays_and_survives_loss() -> TestResult {
    let network = ProxyNetwork::new(21);
    let (server, cert) = echo_server()?;
    let client = client(cert)?;
    network.register("client", client.local_addr()?)?;
    let relay = network.spawn_relay("server", server.local_addr()?).await?;

    let connection =
        tokio::time::timeout(DEADLINE, client.connect(relay.public_addr(), "localhost")?).await??;
    assert_eq!(connection.remote_address(), relay.public_addr());
    for i in 0..5 {
        let reply =
            tokio::time::timeout(DEADLINE, round_trip(&connection, &format!("ping {i}"))).await??;
        assert_eq!(reply, format!("re: ping {i}"));
    }

    network.set_rule("client", "server", LinkRule::loss(0.2))?;
    network.set_rule("server", "client", LinkRule::loss(0.2))?;
    let lossy = async {
        for i in 0..20 {
            let reply = round_trip(&connection, &format!("lossy {i}")).await?;
            assert_eq!(reply, format!("re: lossy {i}"));
        }
        Ok::<_, Box<dyn Error + Send + Sync>>(())
    };
    tokio::time::timeout(2 * DEADLINE, lossy).await??;
    let dropped = network.link_counters("client", "server").dropped
        + network.link_counters("server", "client").dropped;
    assert!(dropped > 0, "20% loss dropped nothing");

    network.heal();
    assert_eq!(round_trip(&connection, "healed").await?, "re: healed");
    connection.close(0u32.into(), b"done");
    relay.shutdown().await;
    Ok(())
}

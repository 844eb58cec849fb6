//! Helpers for the crate's unit tests.

use std::sync::Arc;
use std::time::Duration;

use crate::tls::{transport_config, QuicTls};

/// A QUIC connection over loopback as its client and its server see it,
/// and the endpoints that keep it up.
pub(crate) async fn loopback_connection(
) -> (quinn::Connection, quinn::Connection, [quinn::Endpoint; 2]) {
    let transport = Arc::new(transport_config(
        Duration::from_secs(5),
        Duration::from_secs(1),
    ));
    let insecure = crate::tls::TlsSettings::InsecureDev;
    let server_tls = QuicTls::new(&insecure, "server", transport.clone()).unwrap();
    let client_tls = QuicTls::new(&insecure, "client", transport).unwrap();
    let loopback = "127.0.0.1:0".parse().unwrap();
    let server = quinn::Endpoint::server(server_tls.server, loopback).unwrap();
    let mut client = quinn::Endpoint::client(loopback).unwrap();
    client.set_default_client_config(client_tls.client);
    let accept = server.clone();
    let accepted = tokio::spawn(async move { accept.accept().await.unwrap().await.unwrap() });
    let conn = client
        .connect(server.local_addr().unwrap(), "mesh.node")
        .unwrap()
        .await
        .unwrap();
    (conn, accepted.await.unwrap(), [server, client])
}

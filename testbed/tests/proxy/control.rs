//! The JSON control API over real HTTP on loopback, including bad requests.

use std::net::SocketAddr;

use serde_json::{json, Value};
use testbed::proxy::{LinkRule, NodeConfig, ProxyConfig, ProxyServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{wait_until, Peer, DEADLINE};

/// One HTTP/1.1 request with `Connection: close`; returns status and JSON body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to control API");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read response");
        response
    };
    let response = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("HTTP answer in time");
    parse_response(&response)
}

pub fn parse_response(response: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).expect("JSON body")
    };
    (status, body)
}

async fn server(peers: &[(&str, &Peer)]) -> ProxyServer {
    let config = ProxyConfig {
        control: SocketAddr::from(([127, 0, 0, 1], 0)),
        seed: Some(99),
        nodes: peers
            .iter()
            .map(|(name, peer)| NodeConfig {
                name: name.to_string(),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                target: peer.addr(),
            })
            .collect(),
        rules: Vec::new(),
    };
    ProxyServer::start(&config).await.expect("proxy starts")
}

#[tokio::test]
async fn control_api_sets_rules_and_reports_links() {
    let (a, b) = (Peer::bind().await, Peer::bind().await);
    let server = server(&[("a", &a), ("b", &b)]).await;
    let control = server.control_addr();
    let network = server.network().clone();

    let (status, links) = http(control, "GET", "/links", "").await;
    assert_eq!(status, 200);
    assert_eq!(links["seed"], 99);
    assert_eq!(links["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(links["links"].as_array().map(Vec::len), Some(2));
    assert_eq!(links["links"][0]["rule"], json!({}));

    let (status, link) = http(
        control,
        "PUT",
        "/links/a/b",
        r#"{"loss": 0.5, "delay": {"ms": 5}}"#,
    )
    .await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(
        link["rule"],
        json!({"loss": 0.5, "delay": {"ms": 5, "jitter_ms": 0}})
    );
    assert_eq!(network.rule("a", "b"), LinkRule::delay(5, 0).with_loss(0.5));

    // A rule set over HTTP bites on the next packet.
    http(control, "PUT", "/links/a/b", r#"{"drop": true}"#).await;
    let relay_b = server.relays()[1].public_addr();
    a.send(b"x", relay_b).await;
    wait_until("a -> b drop", || {
        network.link_counters("a", "b").dropped == 1
    })
    .await;
    let (_, links) = http(control, "GET", "/links", "").await;
    assert_eq!(links["links"][0]["counters"]["dropped"], 1);

    let (status, view) = http(control, "POST", "/partition", r#"{"a": ["a"], "b": ["b"]}"#).await;
    assert_eq!(status, 200);
    assert_eq!(view["links"][1]["rule"], json!({"drop": true}));
    assert_eq!(network.rules().len(), 2);

    let (status, _) = http(control, "POST", "/heal", "").await;
    assert_eq!(status, 200);
    assert!(network.rules().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_with_a_message_and_change_nothing() {
    let (a, b) = (Peer::bind().await, Peer::bind().await);
    let server = server(&[("a", &a), ("b", &b)]).await;
    let control = server.control_addr();
    let network = server.network().clone();
    network
        .set_rule("a", "b", LinkRule::loss(0.1))
        .expect("valid rule");
    let before = network.rules();

    let cases = [
        ("PUT", "/links/a/zed", "{}", 404, "zed"),
        ("PUT", "/links/a/b", "{not json", 400, "malformed"),
        ("PUT", "/links/a/b", r#"{"loss": 1.5}"#, 400, "loss"),
        ("PUT", "/links/a/b", r#"{"loss": -0.1}"#, 400, "loss"),
        ("PUT", "/links/a/b", r#"{"lost": 0.1}"#, 400, "lost"),
        (
            "PUT",
            "/links/a/b",
            r#"{"reorder": {"p": 0.5, "window": 0}}"#,
            400,
            "window",
        ),
        (
            "PUT",
            "/links/a/b",
            r#"{"delay": {"ms": 3600000}}"#,
            400,
            "delay",
        ),
        ("PUT", "/links/a/b", "", 400, "malformed"),
        (
            "POST",
            "/partition",
            r#"{"a": ["a"], "b": ["nobody"]}"#,
            404,
            "nobody",
        ),
        (
            "POST",
            "/partition",
            r#"{"a": ["a"], "b": ["a", "b"]}"#,
            400,
            "both sides",
        ),
        ("POST", "/partition", r#"{"a": ["a"]}"#, 400, "malformed"),
        ("GET", "/nowhere", "", 404, "no such path"),
        ("DELETE", "/links", "", 405, "method"),
    ];
    for (method, path, body, expected, mentions) in cases {
        let (status, answer) = http(control, method, path, body).await;
        assert_eq!(status, expected, "{method} {path} {body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(mentions),
            "{method} {path} {body}: {message:?}"
        );
    }
    assert_eq!(network.rules(), before);
    server.shutdown().await;
}

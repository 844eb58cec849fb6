//! Every task of a node logs inside the node's span: a multi-node log can be
//! read by filtering on one node.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh::tls::ClusterCa;
use support::{cluster, wait_until};

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_up_is_logged_with_the_node_name() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("mesh=info")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["a", "b"]).await;
    let refs: Vec<_> = nodes.iter().collect();
    let up_line = |node: &mesh::Node| {
        let tag = format!("node{{node={}}}", node.id());
        captured
            .lines()
            .into_iter()
            .any(|line| line.contains("connection up") && line.contains(&tag))
    };
    wait_until(
        Duration::from_secs(10),
        "a `connection up` line in each node's span",
        &refs,
        || nodes.iter().all(up_line),
    )
    .await;
    for line in captured.lines() {
        if line.contains("connection up") || line.contains("connection down") {
            assert!(line.contains("node{node="), "no node name in {line:?}");
        }
    }
}

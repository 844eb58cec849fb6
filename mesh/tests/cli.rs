//! The `mesh-node` binary as a user runs it: certificates, three processes,
//! `/members` on each; and the one-line errors with exit code 2.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-node");

/// Kills the child when the test ends, pass or fail.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 GET; the body, if the server answered.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

fn member_names(body: &str) -> Vec<String> {
    let Ok(serde_json::Value::Array(rows)) = serde_json::from_str(body) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rows
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn three_processes_with_certs_form_a_cluster_visible_in_members() {
    let dir = std::env::temp_dir().join(format!("mesh-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new(BIN)
        .args(["certs", "init", "--nodes", "n1,n2,n3", "--dir"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    for file in ["ca.pem", "ca.key", "n1.pem", "n1.key", "n3.key"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }

    let quic: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
    let admin: Vec<SocketAddr> = (0..3)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_tcp_port())))
        .collect();
    let seed = format!("127.0.0.1:{}", quic[0]);
    let _nodes: Vec<Process> = (0..3)
        .map(|i| {
            Process(
                Command::new(BIN)
                    .args(["run", "--name", &format!("n{}", i + 1)])
                    .args(["--listen", &format!("127.0.0.1:{}", quic[i])])
                    .args(["--seeds", &seed, "--admin", &admin[i].to_string()])
                    .arg("--tls-dir")
                    .arg(&dir)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(20);
    let expected = vec!["n1".to_string(), "n2".into(), "n3".into()];
    loop {
        let views: Vec<Vec<String>> = admin
            .iter()
            .map(|a| {
                http_get(*a, "/members")
                    .map(|b| member_names(&b))
                    .unwrap_or_default()
            })
            .collect();
        if views.iter().all(|v| *v == expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not form; /members of n1..n3: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let health = http_get(admin[0], "/health").unwrap();
    assert_eq!(health, r#"{"status":"ok"}"#);
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_expecting_error(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_input_is_one_line_and_exit_code_two() {
    let err = run_expecting_error(&[
        "run",
        "--name",
        "n1",
        "--listen",
        "nonsense",
        "--insecure-dev-tls",
    ]);
    assert!(err.contains("--listen"), "{err}");
    let err = run_expecting_error(&["run", "--name", "n1", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("--tls-dir"), "{err}");
    let err = run_expecting_error(&[
        "run",
        "--name",
        "n1",
        "--listen",
        "127.0.0.1:0",
        "--tls-dir",
        "/nonexistent/certs",
    ]);
    assert!(
        err.starts_with("error: cannot read /nonexistent/certs/ca.pem"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let err = run_expecting_error(&[
        "run",
        "--name",
        "bad name",
        "--listen",
        "127.0.0.1:0",
        "--insecure-dev-tls",
    ]);
    assert!(err.contains("invalid node name"), "{err}");

    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = run_expecting_error(&[
        "run",
        "--name",
        "n1",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--insecure-dev-tls",
    ]);
    assert!(err.contains("cannot bind"), "{err}");
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = run_expecting_error(&[
        "run",
        "--name",
        "n1",
        "--listen",
        "127.0.0.1:0",
        "--insecure-dev-tls",
        "--admin",
        &admin.local_addr().unwrap().to_string(),
    ]);
    assert!(err.contains("cannot bind admin address"), "{err}");
}

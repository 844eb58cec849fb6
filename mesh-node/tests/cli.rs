//! The `mesh-node` binary as a user runs it: certificates, three processes,
//! `/members` on each; and the one-line errors with exit code 2.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::ops::RangeInclusive;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

/// Ports handed out to this process's tests. The tests run on parallel
/// threads, and the kernel may give a port that one test released for its
/// node to bind to another test as well.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Hands out `ports` if none of them was handed out before.
fn reserve(ports: RangeInclusive<u16>) -> bool {
    let mut handed_out = HANDED_OUT.lock().unwrap();
    if ports.clone().any(|port| handed_out.contains(&port)) {
        return false;
    }
    handed_out.extend(ports);
    true
}

/// A port the kernel has free (as `ephemeral` finds one) that no other test
/// of this process got.
fn fresh_port(ephemeral: impl Fn() -> u16) -> u16 {
    loop {
        let port = ephemeral();
        if reserve(port..=port) {
            return port;
        }
    }
}

/// A port the kernel has free for UDP now (any test may get it too).
fn ephemeral_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    fresh_port(ephemeral_udp_port)
}

fn free_tcp_port() -> u16 {
    fresh_port(|| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
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

/// Waits until every admin API lists exactly `expected` in `/members`.
fn wait_for_members(admin: &[SocketAddr], expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
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
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not form; /members of each node: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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

    wait_for_members(&admin, &["n1", "n2", "n3"]);
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
    let err = run_expecting_error(&[
        "run",
        "--name",
        "n1",
        "--listen",
        "127.0.0.1:0",
        "--insecure-dev-tls",
        "--seeds-dns",
        "mesh.svc.cluster.local",
    ]);
    assert!(
        err.starts_with("error: invalid DNS seed \"mesh.svc.cluster.local\": expected NAME:PORT"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// The mesh integration tests' helpers (waiting with a deadline, views).
#[path = "../../mesh/tests/support.rs"]
mod support;

/// Certificates for `names` in a fresh directory of their own.
/// The first of `n` consecutive free loopback ports (UDP and TCP).
fn free_port_run(n: u16) -> u16 {
    for _ in 0..100 {
        let first = ephemeral_udp_port();
        let Some(last) = first.checked_add(n - 1) else {
            continue;
        };
        let free = (first..=last).all(|port| {
            UdpSocket::bind(("127.0.0.1", port)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        if free && reserve(first..=last) {
            return first;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// `mesh-node local --nodes 3` in a process group of its own (as a shell
/// runs a foreground job), everything it prints collected; and its nodes'
/// admin addresses once all three list each other.
fn start_local_cluster(tag: &str) -> (Process, Arc<Mutex<String>>, Vec<SocketAddr>) {
    let (quic, admin) = (free_port_run(3), free_port_run(3));
    let dir = std::env::temp_dir().join(format!("mesh-cli-{tag}-{}", std::process::id()));
    let mut child = Command::new(BIN)
        .args(["local", "--nodes", "3"])
        .args(["--base-port", &quic.to_string()])
        .args(["--admin-base-port", &admin.to_string()])
        .arg("--dir")
        .arg(&dir)
        .env("RUST_LOG", "warn,mesh_node=info,mesh::process=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let output = collect_output(&mut child);
    let admin: Vec<SocketAddr> = (admin..admin + 3)
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .collect();
    wait_for_members(&admin, &["n1", "n2", "n3"]);
    (Process(child), output, admin)
}

/// Collects the lines the child prints on its piped stdout and stderr (in
/// the order they arrive) on threads of their own.
fn collect_output(child: &mut Child) -> Arc<Mutex<String>> {
    let output = Arc::new(Mutex::new(String::new()));
    let streams = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                let mut output = output.lock().unwrap();
                output.push_str(&line);
                output.push('\n');
            }
        });
    }
    output
}

/// Everything the local cluster printed, once its pipes closed (when the
/// last of its processes exited) or after 5 s.
fn all_printed(output: Arc<Mutex<String>>) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&output) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let printed = output.lock().unwrap().clone();
    printed
}

#[test]
fn ctrl_c_on_a_local_cluster_makes_every_node_leave_and_exit() {
    let (mut parent, output, _) = start_local_cluster("ctrl-c");
    // A terminal's Ctrl-C: SIGINT to the foreground process group.
    let pgid = parent.0.id() as libc::pid_t;
    // SAFETY: kill(2) on the process group of a child we spawned.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = parent.0.try_wait().unwrap() {
            break status;
        }
        let output = output.lock().unwrap();
        assert!(Instant::now() < deadline, "still running:\n{output}");
        drop(output);
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = all_printed(output);
    assert_eq!(status.code(), Some(0), "{output}");
    assert_eq!(output.matches("left the cluster").count(), 3, "{output}");
    for forced in ["without finishing the leave", "killing the nodes"] {
        assert!(!output.contains(forced), "{output}");
    }
}

#[test]
fn the_nodes_of_a_killed_local_cluster_leave_and_exit() {
    let (mut parent, output, admin) = start_local_cluster("killed");
    parent.0.kill().unwrap();
    parent.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin.iter().any(|a| http_get(*a, "/health").is_some()) {
        let output = output.lock().unwrap();
        assert!(Instant::now() < deadline, "nodes still serving:\n{output}");
        drop(output);
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = all_printed(output);
    assert_eq!(output.matches("left the cluster").count(), 3, "{output}");
}

fn cert_dir(tag: &str, names: &[&str]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    mesh::tls::write_cluster_dir(&dir, "mesh", &names).unwrap();
    dir
}

/// An in-process node with its certificate from `dir`.
async fn in_process(dir: &std::path::Path, name: &str, seeds: &[&mesh::Node]) -> mesh::Node {
    mesh::Node::builder(name)
        .seeds(seeds.iter().map(|n| n.advertise_addr()).collect())
        .tls(mesh::TlsSettings::from_dir(dir, name).unwrap())
        .start()
        .await
        .unwrap()
}

/// `mesh-node run` for `name`, joining through `seed`; stdout and stderr captured.
fn spawn_run(dir: &std::path::Path, name: &str, seed: &mesh::Node) -> Process {
    let port = free_udp_port();
    Process(
        Command::new(BIN)
            .args(["run", "--name", name])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--seeds", &seed.advertise_addr().to_string()])
            .arg("--tls-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Waits for the child to exit; its exit code and everything it printed.
async fn wait_exit(child: &mut Process, deadline: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < deadline,
            "mesh-node did not exit within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut output = String::new();
    for stream in [
        child.0.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        child.0.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        let _ = stream.read_to_string(&mut output);
    }
    (status.code(), output)
}

fn signal(child: &Process, signal: libc::c_int) {
    // SAFETY: kill(2) with the pid of a child we spawned and a valid signal.
    let done = unsafe { libc::kill(child.0.id() as libc::pid_t, signal) };
    assert_eq!(done, 0, "kill({signal})");
}

fn status_of(node: &mesh::Node, name: &str) -> Option<mesh::MemberStatus> {
    node.cluster_members()
        .into_iter()
        .find(|m| m.id.name == name)
        .map(|m| m.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_process_is_downed_and_exits_with_code_3_and_a_clear_line() {
    support::init_tracing();
    let dir = cert_dir("downed", &["n1", "n2", "n3"]);
    let n1 = in_process(&dir, "n1", &[]).await;
    let n2 = in_process(&dir, "n2", &[&n1]).await;
    let mut child = spawn_run(&dir, "n3", &n1);
    let nodes = [&n1, &n2];
    support::wait_until(Duration::from_secs(20), "n1..n3 Up", &nodes, || {
        nodes.iter().all(|n| support::sees_all_up(n, 3))
    })
    .await;

    // A frozen process (long GC pause, suspended VM): no heartbeat answers.
    signal(&child, libc::SIGSTOP);
    support::wait_until(
        Duration::from_secs(15),
        "n3 Down on n1 and n2",
        &nodes,
        || {
            nodes
                .iter()
                .all(|n| status_of(n, "n3") == Some(mesh::MemberStatus::Down))
        },
    )
    .await;
    // It wakes up, learns from gossip that it is Down, and exits.
    signal(&child, libc::SIGCONT);
    let (code, output) = wait_exit(&mut child, Duration::from_secs(15)).await;
    assert_eq!(
        code,
        Some(3),
        "exit code of a downed node; output:\n{output}"
    );
    assert!(
        output.contains("this node was downed by the cluster"),
        "{output}"
    );
    for node in nodes {
        node.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_the_cluster_gracefully_and_exits_zero() {
    support::init_tracing();
    let dir = cert_dir("leave", &["n1", "n2"]);
    let n1 = in_process(&dir, "n1", &[]).await;
    let mut child = spawn_run(&dir, "n2", &n1);
    support::wait_until(Duration::from_secs(20), "n1 and n2 Up", &[&n1], || {
        support::sees_all_up(&n1, 2)
    })
    .await;
    let mut events = n1.member_events();
    signal(&child, libc::SIGTERM);
    let (code, output) = wait_exit(&mut child, Duration::from_secs(15)).await;
    assert_eq!(code, Some(0), "output:\n{output}");
    support::wait_until(Duration::from_secs(5), "n2 gone from n1", &[&n1], || {
        status_of(&n1, "n2").is_none()
    })
    .await;
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let about_n2 = |e: &mesh::MemberEvent| match e {
        mesh::MemberEvent::MemberLeft(m) => Some(("left", m.id.name.clone())),
        mesh::MemberEvent::MemberRemoved(m) => Some(("removed", m.id.name.clone())),
        mesh::MemberEvent::MemberDowned(m) => Some(("downed", m.id.name.clone())),
        _ => None,
    };
    let n2_events: Vec<&str> = seen
        .iter()
        .filter_map(about_n2)
        .filter(|(_, name)| name == "n2")
        .map(|(what, _)| what)
        .collect();
    assert_eq!(n2_events, ["left", "removed"], "{seen:#?}");
    n1.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mesh-node run` with `args` (and a fresh insecure node); what it prints
/// on stderr, once it has logged that it started.
fn stderr_of_a_started_node(args: &[&str]) -> String {
    let mut child = Process(
        Command::new(BIN)
            .args(args)
            .args(["run", "--name", "n1", "--listen", "127.0.0.1:0"])
            .arg("--insecure-dev-tls")
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let output = collect_output(&mut child.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !output.lock().unwrap().contains("node started") {
        assert!(
            Instant::now() < deadline,
            "no start line; stderr:\n{}",
            output.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);
    let printed = output.lock().unwrap().clone();
    printed
}

#[test]
fn logs_to_a_pipe_have_no_colors_and_json_lines_parse() {
    let text = stderr_of_a_started_node(&[]);
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape in piped logs:\n{text}"
    );

    let json = stderr_of_a_started_node(&["--log-format", "json"]);
    for line in json.lines() {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nall:\n{json}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
    assert!(json.contains("node started"), "{json}");

    let err = run_expecting_error(&[
        "--log-format",
        "xml",
        "certs",
        "init",
        "--dir",
        "x",
        "--nodes",
        "n1",
    ]);
    assert!(err.contains("text or json"), "{err}");
}

/// A DNS server on loopback UDP that answers A queries from a table the
/// test changes (unknown names: no records), counting the queries per name.
struct DnsStub {
    addr: SocketAddr,
    records: Arc<Mutex<std::collections::HashMap<String, Vec<std::net::Ipv4Addr>>>>,
    queries: Arc<Mutex<std::collections::HashMap<String, usize>>>,
}

impl DnsStub {
    async fn start() -> Self {
        use hickory_proto::op::Message;
        use hickory_proto::rr::{rdata::A, RData, Record, RecordType};

        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stub = DnsStub {
            addr: socket.local_addr().unwrap(),
            records: Arc::default(),
            queries: Arc::default(),
        };
        let (records, queries) = (stub.records.clone(), stub.queries.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut response = Message::response(query.metadata.id, query.metadata.op_code);
                response.metadata.recursion_desired = query.metadata.recursion_desired;
                response.metadata.recursion_available = true;
                for question in &query.queries {
                    let name = question.name().to_ascii().trim_end_matches('.').to_string();
                    *queries.lock().unwrap().entry(name.clone()).or_default() += 1;
                    if question.query_type() != RecordType::A {
                        continue;
                    }
                    for ip in records.lock().unwrap().get(&name).into_iter().flatten() {
                        response.add_answer(Record::from_rdata(
                            question.name().clone(),
                            0,
                            RData::A(A(*ip)),
                        ));
                    }
                }
                response.add_queries(query.queries.clone());
                let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
            }
        });
        stub
    }

    fn set(&self, name: &str, ips: &[[u8; 4]]) {
        let ips = ips.iter().map(|ip| (*ip).into()).collect();
        self.records.lock().unwrap().insert(name.to_string(), ips);
    }

    fn queries(&self, name: &str) -> usize {
        self.queries.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

/// A UDP port free on both 127.0.0.2 and 127.0.0.3 (DNS seeds share one port).
fn port_free_on_two_loopback_addresses() -> u16 {
    for _ in 0..100 {
        let port = fresh_port(|| {
            UdpSocket::bind("127.0.0.2:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        if UdpSocket::bind(("127.0.0.3", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on 127.0.0.2 and 127.0.0.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_only_dns_seeds_joins_once_its_peer_appears_in_dns() {
    support::init_tracing();
    const NAME: &str = "seeds.mesh.test";
    let dns = DnsStub::start().await;
    let dir = cert_dir("dns", &["n1", "n2"]);
    let port = port_free_on_two_loopback_addresses();
    let n1 = mesh::Node::builder("n1")
        .listen(SocketAddr::from(([127, 0, 0, 2], port)))
        .tls(mesh::TlsSettings::from_dir(&dir, "n1").unwrap())
        .start()
        .await
        .unwrap();
    let mut n2 = Process(
        Command::new(BIN)
            .args([
                "run",
                "--name",
                "n2",
                "--listen",
                &format!("127.0.0.3:{port}"),
            ])
            .args(["--seeds-dns", &format!("{NAME}:{port}")])
            .args(["--dns-nameserver", &dns.addr.to_string()])
            .arg("--tls-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let output = collect_output(&mut n2.0);
    // The name has no records yet: n2 stays up, alone, and looks again.
    support::wait_until(
        Duration::from_secs(20),
        "n2 to look its seeds up three times",
        &[&n1],
        || dns.queries(NAME) >= 3,
    )
    .await;
    assert!(
        n2.0.try_wait().unwrap().is_none(),
        "n2 exited:\n{}",
        output.lock().unwrap()
    );
    assert_eq!(n1.cluster_members().len(), 1, "n2 joined without seeds");

    dns.set(NAME, &[[127, 0, 0, 2], [127, 0, 0, 3]]);
    support::wait_until(Duration::from_secs(20), "n1 and n2 Up", &[&n1], || {
        support::sees_all_up(&n1, 2)
    })
    .await;
    n1.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

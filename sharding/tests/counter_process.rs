//! The `counter` example as a user runs it: three processes; a process the
//! cluster downs (paused with SIGSTOP past the downing decision, then
//! resumed) exits with code 3, so that an orchestrator restarts it; SIGTERM
//! leaves the cluster gracefully and exits 0.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// The example's binary, which `cargo test` builds next to the tests.
fn counter_binary() -> PathBuf {
    let deps = std::env::current_exe().expect("the test's path");
    deps.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples")
        .join("counter")
}

/// A counter process, killed when the test ends, pass or fail.
struct Counter {
    name: String,
    /// `None` for a client of a node only.
    child: Option<Child>,
    http: SocketAddr,
}

impl Drop for Counter {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Counter {
    fn start(name: &str, seeds: &[SocketAddr]) -> (Self, SocketAddr) {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let listen = local(udp.local_addr().unwrap());
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let http = local(tcp.local_addr().unwrap());
        drop((udp, tcp));
        (Self::restart(name, listen, http, seeds), listen)
    }

    /// A process on the given addresses (a new incarnation of `name`).
    fn restart(name: &str, listen: SocketAddr, http: SocketAddr, seeds: &[SocketAddr]) -> Self {
        let seeds: Vec<String> = seeds.iter().map(ToString::to_string).collect();
        let mut command = Command::new(counter_binary());
        command
            .args(["--name", name, "--insecure-dev-tls"])
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--http")
            .arg(http.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !seeds.is_empty() {
            command.arg("--seeds").arg(seeds.join(","));
        }
        let child = command.spawn().expect("the counter example starts");
        Self {
            name: name.to_string(),
            child: Some(child),
            http,
        }
    }

    /// An HTTP client of a node, without the process.
    fn client(http: SocketAddr) -> Self {
        Self {
            name: http.to_string(),
            child: None,
            http,
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("a process this test started")
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self
            .child
            .as_ref()
            .expect("a process this test started")
            .id() as i32;
        // SAFETY: kill(2) on a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child().try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One HTTP request; the body, or `None` while the process does not
    /// answer.
    fn http(&self, method: &str, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&self.http, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(6))).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.http
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let ok = response.starts_with("HTTP/1.1 200");
        ok.then(|| response.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
    }

    /// The status of member `name` in this process's `/members`.
    fn status_of(&self, name: &str) -> Option<String> {
        let body = self.http("GET", "/members")?;
        let members: serde_json::Value = serde_json::from_str(&body).ok()?;
        members
            .as_array()?
            .iter()
            .filter(|m| m["name"] == name)
            .find_map(|m| m["status"].as_str().map(str::to_string))
    }
}

fn local(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool, view: impl Fn() -> String) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; {}",
            view()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_downed_counter_exits_with_3_and_sigterm_leaves_gracefully() {
    let (n1, seed) = Counter::start("n1", &[]);
    let (n2, _) = Counter::start("n2", &[seed]);
    let (mut n3, _) = Counter::start("n3", &[seed]);
    let nodes = [&n1, &n2, &n3];
    let views = || {
        nodes
            .iter()
            .map(|n| format!("\n{}: {:?}", n.name, n.http("GET", "/members")))
            .collect::<String>()
    };
    wait_for(
        "three members up everywhere",
        || {
            nodes.iter().all(|observer| {
                ["n1", "n2", "n3"]
                    .iter()
                    .all(|m| observer.status_of(m).as_deref() == Some("up"))
            })
        },
        views,
    );
    wait_for(
        "an increment through n2",
        || n2.http("POST", "/counter/c-1?add=1").is_some(),
        views,
    );

    // Paused past the downing decision, then resumed: it learns it is
    // Down and exits 3.
    n3.signal(libc::SIGSTOP);
    wait_for(
        "n3 to be downed",
        || n1.status_of("n3").as_deref() == Some("down"),
        views,
    );
    n3.signal(libc::SIGCONT);
    let status = n3.wait_exit();
    assert_eq!(status.code(), Some(3), "a downed counter exits with 3");

    // SIGTERM: leave gracefully, exit 0.
    let mut n2 = n2;
    n2.signal(libc::SIGTERM);
    let status = n2.wait_exit();
    assert_eq!(status.code(), Some(0), "SIGTERM leaves and exits 0");
    wait_for(
        "n1 to see n2 removed",
        || {
            !matches!(
                n1.status_of("n2").as_deref(),
                Some("up" | "leaving" | "exiting" | "down")
            )
        },
        || format!("{:?}", n1.http("GET", "/members")),
    );
}

/// Issue 19: a rolling restart by SIGTERM, one node after the other, under
/// load from every node: each leaves gracefully (exit 0), comes back as a
/// new incarnation, and no ask through a node that is not restarting fails.
#[test]
fn a_rolling_restart_by_sigterm_fails_no_ask_on_the_other_nodes() {
    const NODES: usize = 5;
    let names: Vec<String> = (1..=NODES).map(|i| format!("n{i}")).collect();
    let mut nodes: Vec<Counter> = Vec::new();
    let mut listens = Vec::new();
    for name in &names {
        let (counter, listen) = Counter::start(name, &listens);
        nodes.push(counter);
        listens.push(listen);
    }
    let all_up = |nodes: &[Counter]| {
        nodes.iter().all(|observer| {
            names
                .iter()
                .all(|m| observer.status_of(m).as_deref() == Some("up"))
        })
    };
    let views = |nodes: &[Counter]| -> String {
        nodes
            .iter()
            .map(|n| format!("\n{}: {:?}", n.name, n.http("GET", "/members")))
            .collect()
    };
    // Five processes on a loaded machine: joins wait while any member is
    // unreachable (the convergence rule), so this may take a while.
    let deadline = Instant::now() + 2 * DEADLINE;
    while !all_up(&nodes) {
        assert!(
            Instant::now() < deadline,
            "the cluster did not form: {}",
            views(&nodes)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // One client per node, pausing while its node restarts.
    let https: Vec<SocketAddr> = nodes.iter().map(|n| n.http).collect();
    let restarting = std::sync::Arc::new(std::sync::Mutex::new(None::<usize>));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = https
        .iter()
        .enumerate()
        .map(|(index, http)| {
            let (http, restarting, stop) = (*http, restarting.clone(), stop.clone());
            std::thread::spawn(move || {
                let probe = Counter::client(http);
                let (mut ok, mut failed) = (0u64, Vec::new());
                let mut next = index;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if *restarting.lock().unwrap() == Some(index) {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    next += 1;
                    let path = format!("/counter/c-{}?add=1", next % 50);
                    let answered = probe.http("POST", &path).is_some();
                    // A failure counts only if the node was not restarting
                    // meanwhile.
                    if answered {
                        ok += 1;
                    } else if *restarting.lock().unwrap() != Some(index) {
                        failed.push(path);
                    }
                }
                (ok, failed)
            })
        })
        .collect();

    for index in (0..NODES).rev() {
        *restarting.lock().unwrap() = Some(index);
        nodes[index].signal(libc::SIGTERM);
        let status = nodes[index].wait_exit();
        assert_eq!(status.code(), Some(0), "{} left and exited 0", names[index]);
        let seeds: Vec<SocketAddr> = listens
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, addr)| *addr)
            .collect();
        nodes[index] = Counter::restart(&names[index], listens[index], https[index], &seeds);
        let deadline = Instant::now() + DEADLINE;
        while !all_up(&nodes) || nodes[index].http("GET", "/counter/c-0").is_none() {
            assert!(
                Instant::now() < deadline,
                "{} did not come back: {}",
                names[index],
                views(&nodes)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        *restarting.lock().unwrap() = None;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        let (ok, failed) = client.join().expect("a client thread");
        assert!(
            failed.is_empty(),
            "failed asks on a node not restarting: {failed:?}"
        );
        answered += ok;
    }
    assert!(answered > 0, "the clients got answers");
    eprintln!("rolling restart: {answered} asks answered, none failed");
}

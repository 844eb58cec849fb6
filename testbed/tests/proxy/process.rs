//! `testbed proxy --config FILE` as a process: startup errors and a live run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use crate::control::parse_response;
use crate::support::DEADLINE;

fn testbed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_testbed"))
}

/// Writes `text` to a fresh file in the target's temporary directory.
fn config_file(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("{name}-{}.json", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs a proxy that must refuse to start; returns its stderr.
fn refused(config: &PathBuf) -> String {
    let output = testbed()
        .args(["proxy", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run testbed");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("testbed: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    errors[0].to_string()
}

#[test]
fn startup_problems_exit_2_with_one_line_naming_them() {
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-config.json");
    assert!(refused(&missing).contains("no-such-config.json"));

    let malformed = config_file("malformed", r#"{"control": "127.0.0.1:0", "nodes": [}"#);
    let message = refused(&malformed);
    assert!(
        message.contains("malformed-") && message.contains("line 1"),
        "{message}"
    );

    let busy = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let busy_addr = busy.local_addr().expect("bound");
    let in_use = config_file(
        "in-use",
        &format!(
            r#"{{"control": "127.0.0.1:0", "nodes": [
                {{"name": "a", "listen": "{busy_addr}", "target": "127.0.0.1:9"}}]}}"#
        ),
    );
    let message = refused(&in_use);
    assert!(
        message.contains(&busy_addr.to_string()) && message.contains("\"a\""),
        "{message}"
    );

    let bad_rule = config_file(
        "bad-rule",
        r#"{"control": "127.0.0.1:0", "nodes": [
            {"name": "a", "listen": "127.0.0.1:0", "target": "127.0.0.1:9"}],
            "rules": [{"from": "a", "to": "a", "rule": {"duplicate": 7}}]}"#,
    );
    assert!(refused(&bad_rule).contains("duplicate"));
}

#[test]
fn a_running_proxy_reports_ready_and_answers_its_api() {
    let config = config_file(
        "running",
        "// comments are allowed\n{\"control\": \"127.0.0.1:0\", \"seed\": 5, \"nodes\": [\n\
         {\"name\": \"a\", \"listen\": \"127.0.0.1:0\", \"target\": \"127.0.0.1:9\"}]}",
    );
    let mut child = testbed()
        .args(["proxy", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start testbed");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let ready = rx.recv_timeout(DEADLINE);
    let answer = ready.as_ref().ok().and_then(|line| {
        let ready: Value = serde_json::from_str(line).ok()?;
        let control = ready["control"].as_str()?.to_string();
        let mut stream = TcpStream::connect(control).ok()?;
        stream.set_read_timeout(Some(DEADLINE)).ok()?;
        stream
            .write_all(b"GET /links HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        Some((ready, parse_response(&response)))
    });
    let _ = child.kill();
    let _ = child.wait();
    let (ready, (status, links)) =
        answer.unwrap_or_else(|| panic!("ready line and answer: {ready:?}"));
    assert_eq!(ready["seed"], 5);
    assert_eq!(ready["relays"][0]["name"], "a");
    assert_eq!(status, 200);
    assert_eq!(links["nodes"][0]["name"], "a");
}

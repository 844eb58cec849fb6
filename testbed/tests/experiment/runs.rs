//! Real runs: two shipped scenarios pass (and their report renders in
//! headless Chromium), a harmful configuration fails with a clear verdict.

use std::path::Path;
use std::process::Command;

use testbed::experiment::checker::{check, CheckSettings};
use testbed::experiment::history::read_jsonl;
use testbed::experiment::store::read_dir;

use crate::support::{out_dir, run_scenario, shipped};

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn two_shipped_scenarios_pass_and_the_report_renders() {
    for name in ["partition-coordinator", "crash-coordinator"] {
        let scenario = shipped(name);
        let out = out_dir(name);
        let outcome = run_scenario(&scenario, &out);
        assert!(
            outcome.verdict.valid,
            "{name}: {} (see {})",
            outcome.verdict.summary,
            out.display()
        );
        assert!(
            outcome.verdict.linearizability.operations > 500,
            "{name}: too few operations"
        );
        // The exported history checks again to the same verdict.
        let history = read_jsonl(&out.join("history.jsonl")).unwrap();
        let again = check(
            &history,
            Some(&read_dir(&out.join("store")).unwrap()),
            &CheckSettings::default(),
        )
        .unwrap();
        assert!(again.linearizability.violations.is_empty() && again.store.is_empty());
        if name == "partition-coordinator" {
            report_renders(&out, scenario.nodes);
        }
    }
}

#[test]
fn a_lease_of_an_hour_fails_with_a_clear_verdict() {
    // The coordinator's node cut from a region's: both are downed, and with
    // an hour-long lease their shards cannot move: the keys stay silent
    // after the heal, and the verdict says so.
    let mut scenario = shipped("partition-coordinator");
    scenario.name = "harmful-lease".into();
    scenario.duration = std::time::Duration::from_secs(26);
    let sharding: toml::Table = toml::from_str("lease = \"60m\"").unwrap();
    scenario
        .config
        .insert("sharding".into(), toml::Value::Table(sharding));
    let out = out_dir("harmful");
    let outcome = run_scenario(&scenario, &out);
    let verdict = &outcome.verdict;
    assert!(
        !verdict.valid,
        "an hour-long lease must fail: {}",
        verdict.summary
    );
    assert!(
        verdict.summary.starts_with("INVALID") && verdict.summary.contains("after the last heal"),
        "{}",
        verdict.summary
    );
    assert!(!verdict.recovery.late.is_empty());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("INVALID"));
}

/// Opens the report in headless Chromium: it renders, the lanes and the
/// verdict are in the page, and the screenshot is far from blank.
fn report_renders(out: &Path, nodes: usize) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
    );
    let page = format!("file://{}", out.join("report.html").display());
    let chromium = |args: &[&str]| {
        let output = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(["--window-size=1200,1000"])
            .args(args)
            .output()
            .expect("chromium runs");
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let dom = String::from_utf8(chromium(&["--dump-dom", &page])).unwrap();
    assert_eq!(
        dom.matches("class=\"lane\"").count(),
        nodes,
        "one lane per node"
    );
    assert!(
        dom.contains("id=\"verdict\"") && dom.contains("VALID"),
        "verdict missing"
    );
    assert!(dom.contains("class=\"fault\""), "fault band missing");

    let shot = out.join("report.png");
    let blank_page = out.join("blank.html");
    std::fs::write(&blank_page, "<html><body></body></html>").unwrap();
    let blank = out.join("blank.png");
    chromium(&[&format!("--screenshot={}", shot.display()), &page]);
    chromium(&[
        &format!("--screenshot={}", blank.display()),
        &format!("file://{}", blank_page.display()),
    ]);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(
        size(&shot) > 5 * size(&blank).max(1),
        "the screenshot looks blank: {} bytes vs {} for an empty page",
        size(&shot),
        size(&blank)
    );
}

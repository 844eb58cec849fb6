//! The command line refuses bad input with one clear line and exit code 2.

use std::process::Command;

fn testbed(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(args)
        .output()
        .expect("testbed runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_scenario_is_one_line_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("bad-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "name = \"bad\"\nnodes = 3\nduration = \"10s\"\n[[faults]]\nat = \"1s\"\nkind = \"partition\"\nnodes = [\"n1\", \"n7\"]\n",
    )
    .unwrap();
    let (code, stderr) = testbed(&["run", file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("unknown node \"n7\""), "{stderr}");

    let (code, stderr) = testbed(&["run", "/nonexistent/scenario.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read /nonexistent/scenario.toml"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let scenario = testbed::experiment::scenario::Scenario::load(&path)
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(!scenario.description.is_empty(), "{}", path.display());
        names.push(scenario.name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "crash-coordinator",
            "flaky-links",
            "one-way",
            "partition-coordinator",
            "pause-region",
            "rolling-restart",
            "split-2-2-join",
            "split-brain-2-3"
        ]
    );
}

//! Running scenarios from the tests.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use testbed::experiment::runner::{run, RunOptions, RunOutcome};
use testbed::experiment::scenario::Scenario;

/// Experiments share two cores: one at a time in this test binary.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A shipped scenario.
pub fn shipped(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

/// A fresh output directory under the target dir.
pub fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("experiment-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `scenario` with the `testbed` binary hosting the nodes.
pub fn run_scenario(scenario: &Scenario, out: &Path) -> RunOutcome {
    let _turn = mesh::sync::lock(&ONE_AT_A_TIME);
    let options = RunOptions {
        out: Some(out.to_path_buf()),
        seed: None,
        exe: PathBuf::from(env!("CARGO_BIN_EXE_testbed")),
        progress: true,
        ready_timeout: Duration::from_secs(60),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(scenario, &options))
        .unwrap_or_else(|error| panic!("{} did not run: {error}", scenario.name))
}

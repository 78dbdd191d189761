//! Helpers for driving the `hacluster` binary as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hacluster")
}

/// The repository root (examples/, tests/ live there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("core/ has a parent").to_path_buf()
}

pub fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            // A signal (e.g. abort on panic) has no code; -1 never equals an expected code.
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs the binary. No AWS credentials reach it: a test must never talk to a real cloud (the
/// AWS tests give moto's fake ones explicitly).
pub fn run(args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .expect("hacluster runs")
        .into()
}

/// Writes `text` to a file named `name` in a fresh temporary directory.
pub fn write_config(name: &str, text: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

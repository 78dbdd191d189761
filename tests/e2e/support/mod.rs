//! Helpers for driving the `hacluster` binary as a user would.

mod lab;
mod moto;
pub mod netns;
mod plugins;
mod sampler;

pub(crate) use lab::{Lab, NodeShell, eventually, json, kubectl};
pub(crate) use moto::Moto;
pub(crate) use plugins::{
    Scratch, adversary_config, libvirt_plugin, plugin, plugins_built, shared_cache, test_driver_config,
};
pub(crate) use sampler::{Sampler, kill_at};

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

/// The binary with `args`. No AWS credentials reach it: a test must never talk to a real cloud
/// (the AWS tests give moto's fake ones explicitly).
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env("NO_COLOR", "1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    c
}

/// Runs the binary (see [`command`]).
pub fn run(args: &[&str]) -> Run {
    command(args).output().expect("hacluster runs").into()
}

/// Writes `text` to a file named `name` in a fresh temporary directory.
pub fn write_config(name: &str, text: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// What a test needs from the machine beyond `cargo test` itself. A fresh checkout runs
/// `cargo test` green: a test whose parts are missing says so and what provides them, and
/// passes without running; `HACLUSTER_TEST_REQUIRE_ALL=1` (set by `scripts/test`, so CI)
/// turns every such skip into a failure.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// The wasm components `./scripts/build-plugins` builds (the built-in backends and the
    /// test plugins).
    Plugins,
    /// moto's server (`moto_server` on PATH), the AWS API the AWS tests run against.
    Moto,
    /// Real kubeadm and kubectl at every pinned version (`./scripts/build-k8s`).
    Kubernetes,
    /// Root, to make network and mount namespaces (`ip netns`, `unshare`).
    Root,
    /// A command on PATH (HAProxy, keepalived, sshd, etcd…).
    Command(&'static str),
}

impl Need {
    /// Why the need is not met here, and what meets it; `None` when it is met.
    fn missing(self) -> Option<String> {
        match self {
            Need::Plugins => (!crate::support::plugins_built())
                .then(|| "the plugins are not built: run ./scripts/build-plugins".to_string()),
            Need::Moto => on_path("moto_server")
                .is_none()
                .then(|| "moto is not installed: pip install 'moto[server]' (./scripts/setup does)".to_string()),
            Need::Kubernetes => (!crate::real_kubeadm::kubernetes_built())
                .then(|| "real kubeadm is not built: run ./scripts/build-k8s (./scripts/setup does)".to_string()),
            Need::Root => (!is_root()).then(|| "it makes network namespaces, which takes root".to_string()),
            Need::Command(c) => on_path(c)
                .is_none()
                .then(|| format!("`{c}` is not installed (./scripts/setup installs the Debian packages)")),
        }
    }
}

/// `true` when every need is met. Otherwise the test fails under
/// `HACLUSTER_TEST_REQUIRE_ALL=1`, or says on stderr that it is skipped and why and returns
/// `false` (and the test returns at once). Written to stderr directly: the harness captures
/// `eprintln!` of passing tests, and a skip must be seen.
pub fn ready(needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|n| n.missing()).collect();
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    if std::env::var_os("HACLUSTER_TEST_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("{test} cannot run: {} (HACLUSTER_TEST_REQUIRE_ALL=1 allows no skip)", missing.join("; "));
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped {test}: {}", missing.join("; "));
    false
}

/// At the top of a test: returns from it, skipped with the reason, unless the machine has
/// what it needs (see [`Need`]).
macro_rules! needs {
    ($($need:expr),+ $(,)?) => {
        {
            #[allow(unused_imports)]
            use $crate::support::Need::*;
            if !$crate::support::ready(&[$($need),+]) {
                return;
            }
        }
    };
}
pub(crate) use needs;

/// The path of `command` on PATH.
pub fn on_path(command: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(command)).find(|p| p.is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

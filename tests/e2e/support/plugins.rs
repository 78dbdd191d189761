//! The plugins the tests run, built by `./scripts/build-plugins`, and `Scratch`: a temporary
//! directory with an operator key, in which the `hacluster` binary runs as a user's would.

use std::path::{Path, PathBuf};
use std::process::Command;

use hacluster::state::ClusterState;

use crate::support::{Run, bin, command, example};

const TEST_URI: &str = "test:///default";

/// Where `./scripts/build-plugins` puts the components: beside this test binary's target dir.
fn built_plugin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HACLUSTER_BUILTIN_PLUGINS") {
        return PathBuf::from(d);
    }
    let exe = Path::new(bin());
    exe.parent().and_then(Path::parent).expect("target dir").join("wasm32-wasip2/release")
}

/// Whether `./scripts/build-plugins` has run (the gate of [`crate::support::Need::Plugins`]).
pub fn plugins_built() -> bool {
    built_plugin_dir().join("hacluster_plugin_adversary.wasm").is_file()
}

/// The built components' directory.
pub fn plugin_dir() -> PathBuf {
    let dir = built_plugin_dir();
    assert!(
        plugins_built(),
        "plugins are not built in {}; run ./scripts/build-plugins (./scripts/test does)",
        dir.display()
    );
    dir
}

pub fn plugin(file: &str) -> PathBuf {
    let p = plugin_dir().join(file);
    assert!(p.is_file(), "{} missing; run ./scripts/build-plugins", p.display());
    p
}

pub fn shared_cache() -> PathBuf {
    Path::new(bin()).parent().expect("target/debug").join("test-component-cache")
}

/// A scratch area: operator key, state root, config files.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = hacluster::identity::generate_host_key().unwrap();
        std::fs::write(dir.path().join("op"), key.host_private_key).unwrap();
        std::fs::write(dir.path().join("op.pub"), key.host_public_key).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text.replace("OPKEY", self.path("op").to_str().unwrap())).unwrap();
        p
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = command(args);
        c.env("HACLUSTER_BUILTIN_PLUGINS", plugin_dir())
            // One compiled-component cache for all tests (keyed by content hash, so sharing is
            // safe): debug builds compile slowly, and each plugin needs compiling only once.
            .env("HACLUSTER_CACHE_DIR", shared_cache())
            .env("XDG_DATA_HOME", self.path("data"))
            .env("HACLUSTER_STATE_DIR", self.state());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().expect("hacluster runs").into()
    }

    /// Changes the recorded state of `cluster` (under its lock), as a run would have left it.
    pub fn edit_state(&self, cluster: &str, backend: &str, f: impl FnOnce(&mut ClusterState)) {
        let dir = hacluster::state::StateDir::new(&self.state(), cluster);
        let lock = dir.lock().unwrap();
        let mut state = lock.load_or_new(cluster, backend).unwrap();
        f(&mut state);
        lock.save(&state).unwrap();
    }

    pub fn state_of(&self, cluster: &str) -> Option<ClusterState> {
        hacluster::state::StateDir::new(&self.state(), cluster).read().unwrap()
    }
}

/// The adversary imports `hypervisor` (for its libvirt misdeeds), so the host treats it as a
/// backend that places VMs on `hosts` and needs a network: the configs name both.
pub(crate) fn adversary_config(mode: &str, extra: &str) -> String {
    format!(
        "hosts: [{{name: lab, connection: {{type: local, uri: \"test:///default\"}}}}]\ncluster:\n  name: adv\n  network: {{mode: isolated, cidr: 10.231.91.0/24}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    master: {{instances: [{{id: 1}}, {{id: 2}}, {{id: 3}}]}}\n    worker: {{instances: [{{id: 1}}]}}\nkubernetes: {{version: v1.35.0}}\nbackends:\n  adversary:\n    mode: {mode}\n{extra}"
    )
}

/// The libvirt plugin, built.
pub fn libvirt_plugin() -> PathBuf {
    plugin("hacluster_plugin_libvirt.wasm")
}

/// An example config pointed at the test driver: every host's URI, the `test` domain type.
pub fn test_driver_config(s: &Scratch, example_name: &str) -> PathBuf {
    let text = std::fs::read_to_string(example(example_name)).unwrap();
    let text = text.replace("    connection:\n", &format!("    connection:\n      uri: {TEST_URI}\n")).replace(
        "    ssh:\n      addToKnownHosts: true\n",
        "    ssh:\n      addToKnownHosts: true\n      privateKeyPath: OPKEY\n",
    );
    assert!(text.contains("privateKeyPath"), "the example's nodeTemplate.ssh changed");
    s.write(example_name, &format!("{text}\nbackends:\n  libvirt:\n    domainType: test\n"))
}

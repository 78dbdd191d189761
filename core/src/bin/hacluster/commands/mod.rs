pub mod backup;
pub mod bootstrap;
pub mod certs;
pub mod completions;
pub mod down;
pub mod endpoint;
pub mod kubeconfig;
pub mod open;
pub mod plan;
pub mod plugins;
pub mod provision;
pub mod replace;
pub mod restore;
pub mod schema;
pub mod status;
pub mod up;
pub mod upgrade;
pub mod validate;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use hacluster::plugin::Limits;
use hacluster::session::BackendSel;

/// The config file and the backend to use with it.
#[derive(clap::Args)]
pub struct ConfigArgs {
    /// Cluster config file (YAML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Backend plugin by name (default: inferred from the config; libvirt for Kubitect files).
    #[arg(long, short = 'b', value_name = "NAME", conflicts_with = "plugin")]
    pub backend: Option<String>,
    /// Backend plugin by path to its .wasm component.
    #[arg(long, value_name = "PATH")]
    pub plugin: Option<PathBuf>,
    /// Let the plugin read this provider's credentials (`aws`). Only the built-in `aws`
    /// backend gets AWS credentials without it; a plugin's own name proves nothing.
    #[arg(long, value_name = "PROVIDER", value_parser = ["aws"])]
    pub grant_credentials: Vec<String>,
}

/// Where state lives and how plugins are limited.
#[derive(clap::Args)]
pub struct HostArgs {
    /// State directory root (default: $HACLUSTER_STATE_DIR or ~/.local/state/hacluster).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Memory limit of a plugin instance.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub plugin_memory_mib: usize,
    /// Guest CPU time limit per plugin call.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub plugin_cpu_secs: u64,
    /// Wall-clock limit of apply and destroy (shorter calls get less).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub plugin_timeout_secs: u64,
    /// How long to wait for a libvirt host to answer the first connection (your ssh_config
    /// still applies to qemu+ssh hosts).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub hypervisor_connect_secs: u64,
}

impl HostArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.plugin_memory_mib << 20,
            cpu: Duration::from_secs(self.plugin_cpu_secs),
            wall: Duration::from_secs(self.plugin_timeout_secs),
            hypervisor_connect: Duration::from_secs(self.hypervisor_connect_secs),
        }
    }

    pub fn state_root(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(hacluster::state::default_root)
    }
}

impl ConfigArgs {
    pub fn selection(&self) -> BackendSel {
        match (&self.backend, &self.plugin) {
            (Some(n), _) => BackendSel::Named(n.clone()),
            (None, Some(p)) => BackendSel::Path(p.clone()),
            (None, None) => BackendSel::Inferred,
        }
    }

    pub fn explicit(&self) -> bool {
        self.backend.is_some() || self.plugin.is_some()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// Runs a command's work to its end on a runtime of its own, then leaves without waiting for
/// blocking calls still stuck (a hypervisor connection that timed out: libvirt cannot cancel
/// it, and dropping the runtime would wait for it for ever).
pub fn block_on<F: std::future::Future>(work: F) -> F::Output {
    let rt = runtime();
    let out = rt.block_on(work);
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

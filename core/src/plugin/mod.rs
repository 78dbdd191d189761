//! The plugin host: loads backend components, grants them capabilities, enforces limits on
//! every call, and converts between the model and the contract in `wit/`.
//!
//! Everything wasmtime-specific is in `runtime/` (and the generated types in `convert.rs`);
//! the rest of the core sees `PluginHost`, `Plugin` and plain types.

mod convert;
pub mod discovery;
pub mod egress;
pub mod faults;
pub mod grants;
mod http_client;
pub mod hypervisor;
mod runtime;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::events::{Events, LogLevel, Silent};
pub use convert::ClusterInput;
pub use discovery::{Found, NotFound, Origin};
pub use grants::Grants;
pub use runtime::CheckpointFn;

use crate::config::Diagnostic;
use crate::infra::{Change, Infrastructure, RenderedFile};
use crate::model::{BackendProfile, ClusterSpec};

/// Contract versions this host speaks (`hacluster:backend/plugin@X`).
/// Contract versions this host speaks (`hacluster:backend/plugin@X`): each stands for its
/// whole 0.x line (see `runtime::engine::compatible`), so components of 0.1.0 load too.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1.2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub vip: bool,
    pub cloud_lb: bool,
    pub multi_host: bool,
    pub data_disks: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub contract: String,
    pub description: String,
    pub supports: Capabilities,
}

/// Limits on every plugin call. Each is a clear error naming the plugin and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Linear memory of the call's store: all of its memories together (a component may
    /// hold several core instances), besides bounded counts of instances, memories and tables.
    pub memory_bytes: usize,
    /// Guest CPU time (epoch ticks while guest code runs).
    pub cpu: Duration,
    /// Wall-clock time of `apply` and `destroy`; quicker calls get less (see `wall_for`).
    pub wall: Duration,
    /// How long the host waits for a hypervisor to answer its first connection (a remote
    /// `qemu+ssh` host that cannot be reached would otherwise hang the call silently).
    pub hypervisor_connect: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            cpu: Duration::from_secs(120),
            wall: Duration::from_secs(3600),
            hypervisor_connect: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Info,
    Validate,
    Plan,
    Apply,
    Destroy,
    /// `drain-member`, `restore-member`: a balancer's deregistration delay, or its health checks.
    Endpoint,
}

impl Limits {
    pub fn wall_for(&self, call: Call) -> Duration {
        match call {
            Call::Info => self.wall.min(Duration::from_secs(30)),
            Call::Validate => self.wall.min(Duration::from_secs(60)),
            Call::Plan => self.wall.min(Duration::from_secs(600)),
            Call::Endpoint => self.wall.min(Duration::from_secs(900)),
            Call::Apply | Call::Destroy => self.wall,
        }
    }
}

fn mib(bytes: usize) -> String {
    format!("{} MiB", bytes >> 20)
}

fn secs(d: &Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn denied_note(d: &[String]) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!("; the host refused requests to {} (not on the plugin's egress allow-list)", d.join(", "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    NotFound(#[from] NotFound),
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin `{plugin}` is not a WebAssembly component: {reason}")]
    NotAComponent { plugin: String, reason: String },
    #[error("plugin `{plugin}` speaks contract {} but this hacluster speaks hacluster:backend {} (and every earlier release of the same 0.x line); rebuild the plugin against wit/ of this release", .found.join(", "), SUPPORTED_CONTRACTS.join(", "))]
    UnsupportedContract { plugin: String, found: Vec<String> },
    #[error("plugin `{plugin}` needs something this host does not provide: {reason}")]
    Unlinkable { plugin: String, reason: String },
    #[error("plugin `{plugin}` exceeded its memory limit ({}); raise it with --plugin-memory-mib", mib(*.limit_bytes))]
    MemoryLimit { plugin: String, limit_bytes: usize },
    #[error("plugin `{plugin}` exceeded its CPU limit ({} of guest time); raise it with --plugin-cpu-secs", secs(.limit))]
    CpuLimit { plugin: String, limit: Duration },
    #[error("plugin `{plugin}` did not finish within its time limit ({}); raise it with --plugin-timeout-secs", secs(.limit))]
    Timeout { plugin: String, limit: Duration },
    #[error("plugin `{plugin}` crashed: {detail}{}", denied_note(.denied_egress))]
    Trap { plugin: String, detail: String, denied_egress: Vec<String> },
    #[error("plugin `{plugin}` returned too large a {what}: {size} {unit}, over the limit of {limit}")]
    OutputTooLarge { plugin: String, what: &'static str, unit: &'static str, size: usize, limit: usize },
    #[error("plugin `{plugin}` returned unusable infrastructure: {reason}")]
    BadOutput { plugin: String, reason: String },
    #[error("backend `{plugin}` failed ({kind}): {message}{}", denied_note(.denied_egress))]
    Backend { plugin: String, kind: &'static str, message: String, denied_egress: Vec<String> },
    #[error("plugin `{plugin}`: {reason}")]
    Host { plugin: String, reason: String },
    #[error("cannot start the plugin runtime: {0}")]
    Runtime(String),
}

/// Where compiled components are cached: `$HACLUSTER_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/hacluster/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("HACLUSTER_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    dirs::cache_dir().map(|d| d.join("hacluster/components"))
}

pub struct PluginHost {
    runtime: runtime::Runtime,
    pub limits: Limits,
    events: Arc<dyn Events>,
    /// Test mode of the egress hook (`HACLUSTER_FAULT_INJECTION`); off unless set.
    faults: Option<Arc<faults::Faults>>,
    stats: Arc<faults::HttpStats>,
}

/// HTTP requests plugins made through this host so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCounts {
    pub sent: u64,
    pub denied: u64,
    pub throttled: u64,
    /// Answers dropped on purpose (fault injection's `lose=`).
    pub lost: u64,
}

impl PluginHost {
    pub fn new(events: Arc<dyn Events>, limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let faults = faults::Faults::from_env().map(Arc::new);
        if faults.is_some() {
            events.log("host", LogLevel::Warn, &format!("fault injection is on ({})", faults::ENV), &[]);
        }
        Ok(PluginHost {
            runtime: runtime::Runtime::new(cache_dir).map_err(PluginError::Runtime)?,
            limits,
            events,
            faults,
            stats: Arc::default(),
        })
    }

    /// Replaces the fault injection read from the environment (for in-process tests).
    pub fn with_faults(mut self, spec: &str) -> Self {
        self.faults = Some(Arc::new(faults::Faults::parse(spec)));
        self
    }

    pub fn http_counts(&self) -> HttpCounts {
        let (sent, denied, throttled, lost) = self.stats.snapshot();
        HttpCounts { sent, denied, throttled, lost }
    }

    fn setup(&self, plugin: &str, call: Call, grants: Grants, checkpoint: Option<CheckpointFn>) -> runtime::CallSetup {
        runtime::CallSetup {
            plugin: plugin.to_string(),
            faults: self.faults.clone(),
            stats: self.stats.clone(),
            limits: self.limits,
            wall: self.limits.wall_for(call),
            grants,
            checkpoint,
            events: self.events.clone(),
        }
    }

    /// Reads, compiles (or takes from the cache), checks the contract, and asks for `info()`.
    pub async fn load(&self, found: &Found) -> Result<Plugin<'_>, PluginError> {
        let bytes =
            std::fs::read(&found.path).map_err(|source| PluginError::Read { path: found.path.clone(), source })?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let loaded = self.runtime.load(&found.name, &bytes, &sha256)?;
        let info = self.runtime.info(&loaded, self.setup(&found.name, Call::Info, Grants::none(), None)).await?;
        Ok(Plugin {
            host: self,
            found: found.clone(),
            sha256,
            info: convert::info(info.value),
            loaded,
            granted_credentials: Vec::new(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loaded backend plugin.
pub struct Plugin<'h> {
    host: &'h PluginHost,
    pub found: Found,
    pub sha256: String,
    pub info: PluginInfo,
    loaded: runtime::Loaded,
    /// Credential providers the operator granted on the command line.
    granted_credentials: Vec<String>,
}

impl fmt::Debug for Plugin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("found", &self.found).field("info", &self.info).finish()
    }
}

/// A component import shown as the capability it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    pub interface: String,
    pub capability: &'static str,
}

impl Plugin<'_> {
    /// The backend's name as the plugin declares it: the key of its config section
    /// (`backends.<name>`) and of its grants. Falls back to the file name if unusable.
    pub fn name(&self) -> &str {
        if discovery::valid_name(&self.info.name) { &self.info.name } else { &self.found.name }
    }

    /// Lets this plugin read `providers`' credentials (the operator's explicit grant).
    pub fn grant_credentials(&mut self, providers: &[String]) {
        self.granted_credentials = providers.to_vec();
    }

    /// Whose credentials this plugin may read: see [`grants::credential_providers`].
    pub fn credential_providers(&self) -> Vec<String> {
        // The name the plugin was found by (`--backend aws` → the shipped aws component) must
        // agree with the name it declares: a shipped test plugin calling itself `aws` gets nothing.
        let name = if self.found.name == self.name() { self.name() } else { "" };
        grants::credential_providers(name, self.found.origin, &self.granted_credentials)
    }

    /// Everything this plugin may reach when run on `spec`.
    pub fn grants(&self, spec: &ClusterSpec) -> Result<Grants, grants::BadEgress> {
        Grants::for_backend(spec, self.name(), &self.credential_providers())
    }

    pub fn contract(&self) -> &str {
        &self.loaded.contract
    }

    pub fn from_cache(&self) -> bool {
        self.loaded.from_cache
    }

    pub fn load_time(&self) -> Duration {
        self.loaded.load_time
    }

    /// What the component imports, and what each import means.
    pub fn imports(&self) -> Vec<Import> {
        self.loaded
            .imports
            .iter()
            .map(|i| {
                let base = i.split('@').next().unwrap_or(i);
                let capability = match base {
                    "hacluster:backend/log" => "logging",
                    "hacluster:backend/progress" => "progress reports",
                    "hacluster:backend/checkpoint" => "state checkpoints",
                    "hacluster:backend/credentials" => "credentials (only providers the host grants)",
                    "hacluster:backend/hypervisor" => "libvirt (only the config's hosts)",
                    "hacluster:backend/types" => "contract types",
                    "wasi:http/outgoing-handler" => "outbound HTTP (only allow-listed origins)",
                    b if b.starts_with("wasi:http/") => "HTTP types",
                    b if b.starts_with("wasi:filesystem/") => "filesystem (no directories are granted)",
                    b if b.starts_with("wasi:sockets/") => "sockets (all denied)",
                    "wasi:cli/environment" => "environment (empty)",
                    b if b.starts_with("wasi:cli/") => "stdio and exit (output discarded)",
                    b if b.starts_with("wasi:clocks/") => "clocks",
                    b if b.starts_with("wasi:random/") => "random numbers",
                    b if b.starts_with("wasi:io/") => "streams and polling",
                    _ => "unknown",
                };
                Import { interface: i.clone(), capability }
            })
            .collect()
    }

    /// How validation should treat this backend.
    pub fn profile(&self) -> BackendProfile {
        BackendProfile {
            name: self.name().to_string(),
            cloud_lb: self.info.supports.cloud_lb,
            uses_hosts: self.loaded.imports.iter().any(|i| i.starts_with("hacluster:backend/hypervisor")),
        }
    }

    pub async fn validate(&self, input: &ClusterInput<'_>, grants: Grants) -> Result<Vec<Diagnostic>, PluginError> {
        let cluster = convert::cluster(input);
        let out = self
            .host
            .runtime
            .validate(&self.loaded, self.host.setup(self.name(), Call::Validate, grants, None), &cluster)
            .await?;
        Ok(out.value.into_iter().map(convert::diagnostic).collect())
    }

    pub async fn plan(
        &self,
        input: &ClusterInput<'_>,
        prior: Option<&[u8]>,
        grants: Grants,
    ) -> Result<Vec<Change>, PluginError> {
        let cluster = convert::cluster(input);
        let out = self
            .host
            .runtime
            .plan(&self.loaded, self.host.setup(self.name(), Call::Plan, grants, None), &cluster, prior)
            .await?;
        match out.value {
            Ok(changes) => Ok(changes.into_iter().map(convert::change).collect()),
            Err(e) => Err(convert::backend_error(self.name(), e, out.denied_egress)),
        }
    }

    /// The files the backend puts on the machines (`files` export, contract 0.1.1), or `None`
    /// when the component does not export them. Nothing is granted for this call: no
    /// hypervisor, no HTTP, no credentials.
    pub async fn rendered_files(
        &self,
        input: &ClusterInput<'_>,
        prior: Option<&[u8]>,
    ) -> Result<Option<Vec<RenderedFile>>, PluginError> {
        let cluster = convert::cluster(input);
        let setup = self.host.setup(self.name(), Call::Plan, Grants::none(), None);
        let Some(out) = self.host.runtime.rendered_files(&self.loaded, setup, &cluster, prior).await? else {
            return Ok(None);
        };
        match out.value {
            Ok(files) => convert::rendered_files(self.name(), input.spec, files).map(Some),
            Err(e) => Err(convert::backend_error(self.name(), e, out.denied_egress)),
        }
    }

    /// Whether the component exports the optional `files` interface.
    pub fn renders_files(&self) -> bool {
        self.loaded.renders_files()
    }

    /// Whether the component exports the optional `endpoint` interface (contract 0.1.2).
    pub fn drains_endpoint(&self) -> bool {
        self.loaded.drains_endpoint()
    }

    /// Asks the backend to stop (`drain`) or resume sending the endpoint's connections to
    /// control plane `node`; what it did, or `None` when it does not export `endpoint`.
    pub async fn endpoint_member(
        &self,
        input: &ClusterInput<'_>,
        state: Option<&[u8]>,
        grants: Grants,
        node: &str,
        drain: bool,
    ) -> Result<Option<String>, PluginError> {
        let cluster = convert::cluster(input);
        let setup = self.host.setup(self.name(), Call::Endpoint, grants, None);
        let Some(out) = self.host.runtime.endpoint_member(&self.loaded, setup, &cluster, state, node, drain).await?
        else {
            return Ok(None);
        };
        match out.value {
            Ok(done) => Ok(Some(crate::text::bounded(&crate::text::printable(&done), 400))),
            Err(e) => Err(convert::backend_error(self.name(), e, out.denied_egress)),
        }
    }

    /// Converges the infrastructure. `checkpoint` persists the plugin's state as it goes.
    pub async fn apply(
        &self,
        input: &ClusterInput<'_>,
        prior: Option<&[u8]>,
        grants: Grants,
        checkpoint: CheckpointFn,
    ) -> Result<(Infrastructure, Vec<u8>), PluginError> {
        let cluster = convert::cluster(input);
        let setup = self.host.setup(self.name(), Call::Apply, grants, Some(checkpoint));
        let out = self.host.runtime.apply(&self.loaded, setup, &cluster, prior).await?;
        match out.value {
            Ok(infra) => convert::infrastructure(self.name(), input.spec, infra),
            Err(e) => Err(convert::backend_error(self.name(), e, out.denied_egress)),
        }
    }

    pub async fn destroy(
        &self,
        input: &ClusterInput<'_>,
        state: Option<&[u8]>,
        grants: Grants,
        checkpoint: CheckpointFn,
    ) -> Result<(), PluginError> {
        let cluster = convert::cluster(input);
        let setup = self.host.setup(self.name(), Call::Destroy, grants, Some(checkpoint));
        let out = self.host.runtime.destroy(&self.loaded, setup, &cluster, state).await?;
        out.value.map_err(|e| convert::backend_error(self.name(), e, out.denied_egress))
    }

    /// Calls `info()` again (for measuring per-call overhead).
    pub async fn call_info(&self) -> Result<PluginInfo, PluginError> {
        let out = self
            .host
            .runtime
            .info(&self.loaded, self.host.setup(self.name(), Call::Info, Grants::none(), None))
            .await?;
        Ok(convert::info(out.value))
    }
}

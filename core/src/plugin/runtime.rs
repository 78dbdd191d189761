//! The WebAssembly runtime behind the plugin host: wasmtime with the component model, WASI p2
//! without any ambient authority, wasi:http behind the egress allow-list, and limits on every
//! call. This is the only file that knows wasmtime; swapping the runtime means rewriting it
//! and `convert.rs`, nothing else.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, OptLevel, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::egress::EgressPolicy;
use super::faults::{Faults, HttpStats, throttle_body};
use super::grants::{Grants, read_credentials};
use super::hypervisor::{HvError, Hypervisor};
use super::{Events, Limits, LogLevel, PluginError, SUPPORTED_CONTRACTS};

pub(super) mod bindings {
    // The world with every optional export: what a component lacks is found missing at load.
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "backend-with-files",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use bindings::BackendWithFiles;
use bindings::exports::hacluster::backend::{files, plugin};
use bindings::hacluster::backend as iface;
pub(super) use files::RenderedFile;

/// Epoch tick: the granularity of the CPU limit.
const TICK: Duration = Duration::from_millis(10);
/// Largest state blob a plugin may checkpoint or return.
pub const MAX_STATE_BYTES: usize = 16 << 20;
/// What the host reads (and drops) of a refused request's body before it answers.
const MAX_REFUSED_BODY: usize = 64 << 20;
/// Requests of one call under way at once.
const MAX_IN_FLIGHT: usize = 32;
/// Log lines accepted per call; a plugin cannot flood the terminal.
const MAX_LOG_LINES: u32 = 10_000;
const MAX_LOG_LINE: usize = 8 << 10;
/// Fields of one log line, and the size of each key and value.
const MAX_LOG_FIELDS: usize = 32;
const MAX_FIELD_KEY: usize = 64;
const MAX_FIELD_VALUE: usize = 1 << 10;
/// Progress step names: their size, and how many distinct ones a call may report (each is a
/// progress bar on the terminal).
const MAX_STEP_NAME: usize = 120;
const MAX_STEPS: usize = 32;

pub type CheckpointFn = Box<dyn FnMut(&[u8]) -> Result<(), String> + Send>;

/// Everything a call may use besides the component itself.
pub struct CallSetup {
    pub plugin: String,
    pub faults: Option<Arc<Faults>>,
    pub stats: Arc<HttpStats>,
    pub limits: Limits,
    pub wall: Duration,
    pub grants: Grants,
    pub checkpoint: Option<CheckpointFn>,
    pub events: Arc<dyn Events>,
}

/// Counts epoch ticks that land while guest code runs: an approximation of guest CPU time
/// that does not count time the guest waits on the host (HTTP, libvirt).
struct CpuMeter {
    ticks: u64,
    budget: u64,
    exceeded: bool,
}

/// Core instances, linear memories and tables one call's store may create: what the shipped
/// plugins need, many times over (a wasm32-wasip2 component has a handful of each).
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 64;
/// Table elements over all of a store's tables.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// The memory limit of a plugin: over ALL of its store's linear memories (a component may hold
/// several core instances, each with memories of its own), with the count of instances,
/// memories and tables bounded too. Remembers whether it refused growth, so a guest abort
/// after a failed allocation is reported as what it is.
pub(super) struct MemoryLimiter {
    max: usize,
    /// Bytes of linear memory the store holds, and table elements.
    used: usize,
    elements: usize,
    /// Growth allowed and not yet done: given back if it fails after all.
    pending_bytes: usize,
    pending_elements: usize,
    denied: bool,
}

impl MemoryLimiter {
    pub(super) fn new(max: usize) -> Self {
        MemoryLimiter { max, used: 0, elements: 0, pending_bytes: 0, pending_elements: 0, denied: false }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        if self.used.saturating_add(more) > self.max || maximum.is_some_and(|m| desired > m) {
            self.denied = true;
            return Ok(false);
        }
        self.used += more;
        self.pending_bytes = more;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= std::mem::take(&mut self.pending_bytes);
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        if self.elements.saturating_add(more) > MAX_TABLE_ELEMENTS || maximum.is_some_and(|m| desired > m) {
            self.denied = true;
            return Ok(false);
        }
        self.elements += more;
        self.pending_elements = more;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.elements -= std::mem::take(&mut self.pending_elements);
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// The wasi:http hook: allow-listed origins go out (TLS by the host), the rest are refused
/// after the body has been read, so the guest sees a clean `HttpRequestDenied`.
/// What `WasiHttpHooks::send_request` returns: the response and the future that drives it.
type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
            )>,
        > + Send,
>;

struct Egress {
    policy: EgressPolicy,
    denied: Arc<Mutex<Vec<String>>>,
    faults: Option<Arc<Faults>>,
    stats: Arc<HttpStats>,
    /// Requests of this store under way (until their response body is done).
    in_flight: Arc<AtomicUsize>,
}

/// One request under way, counted in `Egress::in_flight` for as long as it lives.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads a request body to its end (or to a bound), keeping none of it.
async fn drain(mut body: WasiBody) {
    let mut read = 0usize;
    while read <= MAX_REFUSED_BODY {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

impl Egress {
    fn refuse(&self, uri: &http::Uri, request: http::Request<WasiBody>) -> SendFuture {
        // Recorded now: the future below may be dropped with the store.
        let origin = match uri.authority() {
            Some(a) => format!("{}://{}", uri.scheme_str().unwrap_or("?"), a),
            None => uri.to_string(),
        };
        self.denied.lock().expect("denied list lock").push(origin);
        self.stats.denied.fetch_add(1, Ordering::Relaxed);
        Box::new(async move {
            // Drain the body first (denying mid-upload shows the guest a reset connection),
            // frame by frame: nothing of it is kept, and no more than a bound is read.
            drain(request.into_body()).await;
            Err(wasmtime_wasi_http::Error::HttpRequestDenied)
        })
    }
}

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> SendFuture {
        let uri = request.uri().clone();
        let https = uri.scheme_str() == Some("https");
        let allowed = matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|a| self.policy.allows(https, a.as_str()));
        let faults = self.faults.clone();
        let test_denied = faults.as_ref().is_some_and(|f| uri.authority().is_some_and(|a| f.denies(https, a.as_str())));
        if !allowed || test_denied {
            return self.refuse(&uri, request);
        }
        // A bound on connections at once: the host makes them, the plugin only asks.
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Box::new(async move {
                drain(request.into_body()).await;
                Err(wasmtime_wasi_http::Error::ConnectionLimitReached)
            });
        }
        let in_flight = InFlight(self.in_flight.clone());
        let stats = self.stats.clone();
        let throttle = faults.as_ref().is_some_and(|f| f.throttle_now());
        let delay = faults.as_ref().and_then(|f| f.delay);
        Box::new(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if throttle {
                stats.throttled.fetch_add(1, Ordering::Relaxed);
                let auth = request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let _ = http_body_util::Limited::new(request.into_body(), 64 << 20).collect().await;
                let body = http_body_util::Full::new(bytes::Bytes::from(throttle_body(auth.as_deref())))
                    .map_err(|never| match never {})
                    .boxed_unsync();
                let resp = http::Response::builder()
                    .status(503)
                    .header("content-type", "text/xml")
                    .body(body)
                    .expect("static response");
                let done: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send> =
                    Box::new(async { Ok(()) });
                return Ok((resp, done));
            }
            let request = match faults.as_ref().filter(|f| f.loses_answers()) {
                Some(f) => {
                    // The body decides (`lose=P:Action`): read it, then send it as it was.
                    let (parts, body) = request.into_parts();
                    let bytes = http_body_util::Limited::new(body, 64 << 20)
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let lose = f.lose_now(&bytes);
                    let body = http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync();
                    let request = http::Request::from_parts(parts, body);
                    if lose {
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        stats.lost.fetch_add(1, Ordering::Relaxed);
                        let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                        // The server did all of it; only its answer never arrives.
                        let _ = tokio::join!(io, res.into_body().collect());
                        return Err(wasmtime_wasi_http::Error::ConnectionReadTimeout);
                    }
                    request
                }
                None => request,
            };
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            // Counted until the response body is done, not only its head.
            let io = async move {
                let _in_flight = in_flight;
                io.await
            };
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

pub(super) struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: Egress,
    memory: MemoryLimiter,
    cpu: CpuMeter,
    plugin: String,
    grants: Grants,
    hv: Hypervisor,
    checkpoint: Option<CheckpointFn>,
    events: Arc<dyn Events>,
    log_lines: u32,
    /// The progress steps this call reported.
    steps: std::collections::HashSet<String>,
    host_error: Option<String>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.egress }
    }
}

impl iface::types::Host for HostState {}

impl iface::log::Host for HostState {
    async fn log(
        &mut self,
        level: iface::log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                self.events.log(
                    &self.plugin,
                    LogLevel::Warn,
                    "too many log lines; dropping the rest of this call's",
                    &[],
                );
            }
            return Ok(());
        }
        let level = match level {
            iface::log::Level::Trace => LogLevel::Trace,
            iface::log::Level::Debug => LogLevel::Debug,
            iface::log::Level::Info => LogLevel::Info,
            iface::log::Level::Warn => LogLevel::Warn,
            iface::log::Level::Error => LogLevel::Error,
        };
        // What a plugin says reaches the terminal: printable, secrets by shape masked, bounded.
        let message = crate::text::untrusted(&message, MAX_LOG_LINE);
        let cut = fields.len().saturating_sub(MAX_LOG_FIELDS);
        let mut fields: Vec<(String, String)> = fields
            .iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| (crate::text::untrusted(k, MAX_FIELD_KEY), crate::text::untrusted(v, MAX_FIELD_VALUE)))
            .collect();
        if cut > 0 {
            fields.push(("fields-cut".into(), cut.to_string()));
        }
        self.events.log(&self.plugin, level, &message, &fields);
        Ok(())
    }
}

impl iface::progress::Host for HostState {
    async fn report(&mut self, step: String, done: u64, total: u64) -> wasmtime::Result<()> {
        let step = crate::text::untrusted(&step, MAX_STEP_NAME).replace('\n', " ");
        if !self.steps.contains(&step) {
            if self.steps.len() >= MAX_STEPS {
                if self.steps.len() == MAX_STEPS {
                    self.steps.insert(String::new());
                    self.events.log(
                        &self.plugin,
                        LogLevel::Warn,
                        "too many progress steps; dropping the rest of this call's",
                        &[],
                    );
                }
                return Ok(());
            }
            self.steps.insert(step.clone());
        }
        self.events.progress(&self.plugin, &step, done, total);
        Ok(())
    }
}

impl iface::checkpoint::Host for HostState {
    async fn save(&mut self, state: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        if state.len() > MAX_STATE_BYTES {
            return Ok(Err(format!("state of {} bytes is over the {MAX_STATE_BYTES}-byte limit", state.len())));
        }
        let Some(sink) = self.checkpoint.as_mut() else {
            return Ok(Err("checkpoints are only taken during apply and destroy".into()));
        };
        match sink(&state) {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                // The host could not persist: stop the plugin rather than let it create
                // resources nobody would know about.
                self.host_error = Some(format!("could not save a checkpoint: {e}"));
                Err(wasmtime::Error::msg(format!("checkpoint failed: {e}")))
            }
        }
    }
}

impl iface::credentials::Host for HostState {
    async fn get(&mut self, provider: String) -> wasmtime::Result<Result<Vec<(String, String)>, String>> {
        if !self.grants.credentials.contains(&provider) {
            return Ok(Err(format!(
                "the host does not grant `{provider}` credentials to plugin `{}`: only the {provider} backend shipped with hacluster gets them unless you pass `--grant-credentials {provider}`",
                self.plugin
            )));
        }
        Ok(read_credentials(&provider))
    }
}

type HvResult<T> = wasmtime::Result<Result<T, iface::hypervisor::HvError>>;

fn hv<T, U>(r: Result<T, HvError>, f: impl FnOnce(T) -> U) -> HvResult<U> {
    use iface::hypervisor::HvError as W;
    Ok(r.map(f).map_err(|e| match e {
        HvError::Denied(m) => W::Denied(m),
        HvError::NotFound(m) => W::NotFound(m),
        HvError::Failed(m) => W::Failed(m),
    }))
}

impl iface::hypervisor::Host for HostState {
    async fn list_domains(&mut self, uri: String) -> HvResult<Vec<iface::hypervisor::DomainInfo>> {
        hv(self.hv.list_domains(&uri).await, |v| {
            v.into_iter()
                .map(|d| iface::hypervisor::DomainInfo { name: d.name, uuid: d.uuid, active: d.active, xml: d.xml })
                .collect()
        })
    }
    async fn define_domain(&mut self, uri: String, xml: String) -> HvResult<()> {
        hv(self.hv.define_domain(&uri, xml).await, |_| ())
    }
    async fn start_domain(&mut self, uri: String, name: String) -> HvResult<()> {
        hv(self.hv.start_domain(&uri, name).await, |_| ())
    }
    async fn delete_domain(&mut self, uri: String, name: String) -> HvResult<()> {
        hv(self.hv.delete_domain(&uri, name).await, |_| ())
    }
    async fn domain_addresses(&mut self, uri: String, name: String) -> HvResult<Vec<String>> {
        hv(self.hv.domain_addresses(&uri, name).await, |v| v)
    }
    async fn list_networks(&mut self, uri: String) -> HvResult<Vec<iface::hypervisor::NetworkInfo>> {
        hv(self.hv.list_networks(&uri).await, |v| {
            v.into_iter()
                .map(|n| iface::hypervisor::NetworkInfo { name: n.name, active: n.active, xml: n.xml })
                .collect()
        })
    }
    async fn create_network(&mut self, uri: String, xml: String) -> HvResult<()> {
        hv(self.hv.create_network(&uri, xml).await, |_| ())
    }
    async fn delete_network(&mut self, uri: String, name: String) -> HvResult<()> {
        hv(self.hv.delete_network(&uri, name).await, |_| ())
    }
    async fn list_pools(&mut self, uri: String) -> HvResult<Vec<iface::hypervisor::PoolInfo>> {
        hv(self.hv.list_pools(&uri).await, |v| {
            v.into_iter().map(|p| iface::hypervisor::PoolInfo { name: p.name, active: p.active, xml: p.xml }).collect()
        })
    }
    async fn create_pool(&mut self, uri: String, xml: String) -> HvResult<()> {
        hv(self.hv.create_pool(&uri, xml).await, |_| ())
    }
    async fn delete_pool(&mut self, uri: String, name: String) -> HvResult<()> {
        hv(self.hv.delete_pool(&uri, name).await, |_| ())
    }
    async fn list_volumes(&mut self, uri: String, pool: String) -> HvResult<Vec<iface::hypervisor::VolumeInfo>> {
        hv(self.hv.list_volumes(&uri, pool).await, |v| {
            v.into_iter()
                .map(|v| iface::hypervisor::VolumeInfo { name: v.name, path: v.path, capacity_bytes: v.capacity_bytes })
                .collect()
        })
    }
    async fn create_volume(&mut self, uri: String, pool: String, xml: String) -> HvResult<()> {
        hv(self.hv.create_volume(&uri, pool, xml).await, |_| ())
    }
    async fn create_seed_volume(
        &mut self,
        uri: String,
        pool: String,
        name: String,
        files: Vec<(String, Vec<u8>)>,
    ) -> HvResult<()> {
        hv(self.hv.create_seed_volume(&uri, pool, name, files).await, |_| ())
    }
    async fn import_image(
        &mut self,
        uri: String,
        pool: String,
        name: String,
        source: String,
        sha256: Option<String>,
    ) -> HvResult<()> {
        hv(self.hv.import_image(&uri, pool, name, source, sha256).await, |_| ())
    }
    async fn delete_volume(&mut self, uri: String, pool: String, name: String) -> HvResult<()> {
        hv(self.hv.delete_volume(&uri, pool, name).await, |_| ())
    }
}

/// The compiled component cached at `path`, if it can be trusted as our own: a regular file
/// (not a link) owned by this user and writable by nobody else, in a directory owned by this
/// user that nobody else may change; read through the handle that was checked. Anything else
/// is ignored (and compiled again): the file is loaded as native code.
fn read_own_cache_file(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let me = unsafe { libc::geteuid() };
    let dir = std::fs::symlink_metadata(path.parent()?).ok()?;
    if !dir.is_dir() || dir.uid() != me || dir.mode() & 0o022 != 0 {
        return None;
    }
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return None;
    }
    let mut code = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut code).ok()?;
    Some(code)
}

/// Writes a compiled component into the cache: the directory made 0700 (and refused if it is
/// not this user's), the file created new with mode 0600 under a name no one can guess, then
/// renamed into place.
fn write_own_cache_file(path: &std::path::Path, code: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let dir = path.parent().expect("cache file has a directory");
    std::fs::create_dir_all(dir)?;
    let me = unsafe { libc::geteuid() };
    if std::fs::symlink_metadata(dir)?.uid() != me {
        return Err(std::io::Error::other("the cache directory belongs to another user"));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let tmp = dir.join(format!(
        ".{}.{}-{:016x}.tmp",
        std::process::id(),
        path.file_name().unwrap_or_default().to_string_lossy(),
        rand_u64()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(code)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A random number for a temporary file's name.
fn rand_u64() -> u64 {
    use ssh_key::rand_core::{OsRng, RngCore};
    OsRng.next_u64()
}

/// A compiled, checked component, ready to instantiate.
pub struct Loaded {
    pre: wasmtime::component::InstancePre<HostState>,
    plugin: plugin::GuestIndices,
    /// The optional `files` export (contract 0.1.1), when the component has it.
    files: Option<files::GuestIndices>,
    /// Interfaces the component imports (what it asks the host for).
    pub imports: Vec<String>,
    /// The contract version of its `plugin` export.
    pub contract: String,
    /// Whether the compiled code came from the cache.
    pub from_cache: bool,
    pub load_time: Duration,
}

impl Loaded {
    pub fn renders_files(&self) -> bool {
        self.files.is_some()
    }
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
}

impl Runtime {
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, String> {
        let mut cfg = Config::new();
        cfg.epoch_interruption(true);
        cfg.cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&cfg).map_err(|e| e.to_string())?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| e.to_string())?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(|e| e.to_string())?;
        BackendWithFiles::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| e.to_string())?;
        Ok(Runtime { engine, linker, cache_dir })
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        // Keyed by the component's hash and everything that makes compiled code valid:
        // wasmtime version, target and engine settings.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        self.cache_dir.as_ref().map(|d| d.join(format!("{sha256}-{:016x}.cwasm", h.finish())))
    }

    fn compile(&self, plugin: &str, bytes: &[u8], sha256: &str) -> Result<(Component, bool), PluginError> {
        let cached = self.cache_path(sha256);
        if let Some(code) = cached.as_deref().and_then(read_own_cache_file)
            && matches!(Engine::detect_precompiled(&code), Some(wasmtime::Precompiled::Component))
        {
            // SAFETY: the bytes are machine code we compiled and wrote ourselves: read through
            // one handle of a regular file that this user owns and nobody else may write, in a
            // directory that only this user may change (see `read_own_cache_file`), named by
            // the source's hash and the engine's compatibility hash; wasmtime re-checks
            // compatibility on load.
            if let Ok(c) = unsafe { Component::deserialize(&self.engine, &code) } {
                return Ok((c, true));
            }
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::NotAComponent { plugin: plugin.into(), reason: "not a WebAssembly file".into() });
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| PluginError::NotAComponent {
            plugin: plugin.into(),
            reason: format!("{e:#}").lines().next().unwrap_or_default().to_string(),
        })?;
        if let (Some(path), Ok(code)) = (&cached, component.serialize()) {
            // A cache that cannot be written only costs the next start its compile time.
            let _ = write_own_cache_file(path, &code);
        }
        Ok((component, false))
    }

    /// Compiles (or loads from the cache) and checks a component.
    pub fn load(&self, plugin: &str, bytes: &[u8], sha256: &str) -> Result<Loaded, PluginError> {
        let started = Instant::now();
        let (component, from_cache) = self.compile(plugin, bytes, sha256)?;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let found: Vec<String> =
            exports.iter().filter_map(|e| e.strip_prefix("hacluster:backend/plugin@")).map(str::to_string).collect();
        let contract = found.iter().find(|v| SUPPORTED_CONTRACTS.iter().any(|s| compatible(s, v))).cloned();
        let Some(contract) = contract else {
            return Err(PluginError::UnsupportedContract {
                plugin: plugin.into(),
                found: if found.is_empty() { exports } else { found },
            });
        };
        let pre = self.linker.instantiate_pre(&component).map_err(|e| PluginError::Unlinkable {
            plugin: plugin.into(),
            reason: format!("{e:#}").lines().next().unwrap_or_default().to_string(),
        })?;
        let guest = plugin::GuestIndices::new(&pre)
            .map_err(|e| PluginError::Unlinkable { plugin: plugin.into(), reason: format!("{e:#}") })?;
        // Optional: looked up by name (semver-compatible, as the `plugin` export is), and a
        // component whose `files` export does not have this contract's shape is refused.
        let files = match pre.component().get_export_index(None, &*format!("hacluster:backend/files@{contract}")) {
            None => None,
            Some(_) => Some(files::GuestIndices::new(&pre).map_err(|e| PluginError::Unlinkable {
                plugin: plugin.into(),
                reason: format!("its `files` export: {e:#}"),
            })?),
        };
        Ok(Loaded { pre, plugin: guest, files, imports, contract, from_cache, load_time: started.elapsed() })
    }

    async fn instantiate(&self, loaded: &Loaded, setup: CallSetup) -> Result<(Store<HostState>, Guests), PluginError> {
        let denied = Arc::new(Mutex::new(Vec::new()));
        let state = HostState {
            // Nothing inherited: no preopened directories, no environment, no arguments,
            // stdio discarded, sockets and name lookups disabled.
            wasi: WasiCtx::builder().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            egress: Egress {
                policy: setup.grants.egress.clone(),
                denied,
                faults: setup.faults.clone(),
                stats: setup.stats,
                in_flight: Arc::new(AtomicUsize::new(0)),
            },
            memory: MemoryLimiter::new(setup.limits.memory_bytes),
            cpu: CpuMeter {
                ticks: 0,
                budget: (setup.limits.cpu.as_millis() / TICK.as_millis()).max(1) as u64,
                exceeded: false,
            },
            plugin: setup.plugin.clone(),
            hv: Hypervisor {
                policy: Arc::new(setup.grants.hypervisor.clone()),
                seed_copies: setup.grants.seed_copies.clone(),
                max_image_bytes: None,
                connect_limit: Some(setup.limits.hypervisor_connect),
                reporter: Some(super::hypervisor::Reporter {
                    plugin: setup.plugin.clone(),
                    events: setup.events.clone(),
                }),
                faults: setup.faults.clone(),
            },
            grants: setup.grants,
            checkpoint: setup.checkpoint,
            events: setup.events,
            log_lines: 0,
            steps: Default::default(),
            host_error: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let cpu = &mut ctx.data_mut().cpu;
            cpu.ticks += 1;
            if cpu.ticks > cpu.budget {
                cpu.exceeded = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Yield so the wall-clock timeout and other tasks get to run.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let guests = async {
            let instance = loaded.pre.instantiate_async(&mut store).await?;
            let plugin = loaded.plugin.load(&mut store, &instance)?;
            let files = loaded.files.as_ref().map(|f| f.load(&mut store, &instance)).transpose()?;
            Ok::<_, wasmtime::Error>(Guests { plugin, files })
        }
        .await;
        match guests {
            Ok(g) => Ok((store, g)),
            Err(e) => Err(classify(&setup.plugin, &setup.limits, Duration::ZERO, &e, store.data())),
        }
    }

    pub async fn info(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
    ) -> Result<Returned<iface::types::PluginInfo>, PluginError> {
        let (plugin, limits, wall) = (setup.plugin.clone(), setup.limits, setup.wall);
        let (mut store, backend) = self.instantiate(loaded, setup).await?;
        let out = tokio::time::timeout(wall, backend.plugin.call_info(&mut store)).await;
        settle(&plugin, &limits, wall, out, &store)
    }

    pub async fn validate(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
    ) -> Result<Returned<Vec<iface::types::Diagnostic>>, PluginError> {
        let (plugin, limits, wall) = (setup.plugin.clone(), setup.limits, setup.wall);
        let (mut store, backend) = self.instantiate(loaded, setup).await?;
        let out = tokio::time::timeout(wall, backend.plugin.call_validate(&mut store, cluster)).await;
        settle(&plugin, &limits, wall, out, &store)
    }

    pub async fn plan(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
        prior: Option<&[u8]>,
    ) -> Result<Returned<Result<Vec<iface::types::Change>, iface::types::Error>>, PluginError> {
        let (plugin, limits, wall) = (setup.plugin.clone(), setup.limits, setup.wall);
        let (mut store, backend) = self.instantiate(loaded, setup).await?;
        let out = tokio::time::timeout(wall, backend.plugin.call_plan(&mut store, cluster, prior)).await;
        settle(&plugin, &limits, wall, out, &store)
    }

    pub async fn apply(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
        prior: Option<&[u8]>,
    ) -> Result<Returned<Result<iface::types::Infrastructure, iface::types::Error>>, PluginError> {
        let (plugin, limits, wall) = (setup.plugin.clone(), setup.limits, setup.wall);
        let (mut store, backend) = self.instantiate(loaded, setup).await?;
        let out = tokio::time::timeout(wall, backend.plugin.call_apply(&mut store, cluster, prior)).await;
        settle(&plugin, &limits, wall, out, &store)
    }

    pub async fn destroy(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
        state: Option<&[u8]>,
    ) -> Result<Returned<Result<(), iface::types::Error>>, PluginError> {
        let (plugin, limits, wall) = (setup.plugin.clone(), setup.limits, setup.wall);
        let (mut store, backend) = self.instantiate(loaded, setup).await?;
        let out = tokio::time::timeout(wall, backend.plugin.call_destroy(&mut store, cluster, state)).await;
        settle(&plugin, &limits, wall, out, &store)
    }

    /// The files the backend renders onto machines, or `None` when it does not export them.
    pub async fn rendered_files(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
        prior: Option<&[u8]>,
    ) -> Result<Option<Returned<Result<Vec<files::RenderedFile>, iface::types::Error>>>, PluginError> {
        if loaded.files.is_none() {
            return Ok(None);
        }
        let (plugin, limits, wall) = (setup.plugin.clone(), setup.limits, setup.wall);
        let (mut store, backend) = self.instantiate(loaded, setup).await?;
        let files = backend.files.expect("loaded with the files export");
        let out = tokio::time::timeout(wall, files.call_rendered_files(&mut store, cluster, prior)).await;
        settle(&plugin, &limits, wall, out, &store).map(Some)
    }
}

/// The exports of one instance.
struct Guests {
    plugin: plugin::Guest,
    files: Option<files::Guest>,
}

/// `0.1.0` speaks with `0.1.x`: same major, and for 0.x the same minor.
fn compatible(supported: &str, found: &str) -> bool {
    let parts = |v: &str| v.split('.').map(|p| p.parse::<u64>().ok()).collect::<Option<Vec<_>>>();
    match (parts(supported), parts(found)) {
        (Some(s), Some(f)) if s.len() == 3 && f.len() == 3 => {
            if s[0] == 0 {
                s[0] == f[0] && s[1] == f[1]
            } else {
                s[0] == f[0]
            }
        }
        _ => false,
    }
}

/// Turns the outcome of a limited call into the plugin's result or a host-side error that
/// names the plugin and, for limits, the limit.
fn settle<R>(
    plugin: &str,
    limits: &Limits,
    wall: Duration,
    out: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    store: &Store<HostState>,
) -> Result<Returned<R>, PluginError> {
    match out {
        Err(_) => Err(PluginError::Timeout { plugin: plugin.into(), limit: wall }),
        Ok(Ok(value)) => Ok(Returned { value, denied_egress: denied(store.data()) }),
        Ok(Err(e)) => Err(classify(plugin, limits, wall, &e, store.data())),
    }
}

/// What a call returned, with what the host observed during it.
pub struct Returned<R> {
    pub value: R,
    /// Origins the egress allow-list refused (the plugin sees only "denied").
    pub denied_egress: Vec<String>,
}

fn denied(s: &HostState) -> Vec<String> {
    s.egress.denied.lock().map(|d| d.clone()).unwrap_or_default()
}

fn classify(plugin: &str, limits: &Limits, _wall: Duration, e: &wasmtime::Error, s: &HostState) -> PluginError {
    let plugin = plugin.to_string();
    if s.cpu.exceeded {
        return PluginError::CpuLimit { plugin, limit: limits.cpu };
    }
    if s.memory.denied {
        return PluginError::MemoryLimit { plugin, limit_bytes: limits.memory_bytes };
    }
    if let Some(h) = &s.host_error {
        return PluginError::Host { plugin, reason: h.clone() };
    }
    let denied = denied(s);
    let detail = match e.downcast_ref::<Trap>() {
        Some(Trap::UnreachableCodeReached) => "it panicked or aborted (wasm `unreachable`)".to_string(),
        Some(t) => format!("wasm trap: {t}"),
        None => format!("{e:#}").lines().next().unwrap_or_default().to_string(),
    };
    PluginError::Trap { plugin, detail, denied_egress: denied }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instantiates the component `wat` in a store limited by `MemoryLimiter::new(max)`, with
    /// the engine settings the host uses: whether it was allowed, and whether the limiter
    /// refused memory.
    fn instantiate(wat: &str, max: usize) -> (bool, bool) {
        let mut cfg = Config::new();
        cfg.cranelift_opt_level(OptLevel::None);
        let engine = Engine::new(&cfg).unwrap();
        let component = Component::new(&engine, wat::parse_str(wat).unwrap()).unwrap();
        let mut store = Store::new(&engine, MemoryLimiter::new(max));
        store.limiter(|l| l);
        let linker: Linker<MemoryLimiter> = Linker::new(&engine);
        let ok = linker.instantiate(&mut store, &component).is_ok();
        (ok, store.data().denied)
    }

    /// A component of `instances` core instances of one module with `memories` memories of
    /// `pages` 64 KiB pages each.
    fn component(instances: usize, memories: usize, pages: usize) -> String {
        let mems: String = (0..memories).map(|i| format!("(memory $m{i} {pages})")).collect();
        let insts: String = (0..instances).map(|i| format!("(core instance $i{i} (instantiate $m))")).collect();
        format!("(component (core module $m {mems}) {insts})")
    }

    /// The limit is on all of a store's memory: eight core instances of 60 MiB each are 480
    /// MiB, whatever the limit of one memory says; so are five memories of one module.
    #[test]
    fn the_memory_limit_counts_every_memory_of_the_store() {
        let mib = 1 << 20;
        assert_eq!(instantiate(&component(1, 1, 960), 64 * mib), (true, false), "one 60 MiB memory fits 64 MiB");
        assert_eq!(instantiate(&component(8, 1, 960), 64 * mib), (false, true), "8 x 60 MiB in 64 MiB");
        assert_eq!(instantiate(&component(8, 1, 960), 512 * mib), (true, false), "8 x 60 MiB in 512 MiB");
        assert_eq!(instantiate(&component(1, 5, 320), 64 * mib), (false, true), "5 x 20 MiB memories in 64 MiB");
    }

    /// Counts of instances, memories and tables are bounded too (wasmtime's default is 10,000
    /// of each), and table elements over all tables.
    #[test]
    fn instances_memories_and_tables_are_counted() {
        assert!(!instantiate(&component(MAX_INSTANCES + 1, 0, 0), usize::MAX).0, "instances");
        assert!(instantiate(&component(MAX_INSTANCES, 0, 0), usize::MAX).0);
        assert!(!instantiate(&component(1, MAX_MEMORIES + 1, 0), usize::MAX).0, "memories");
        let tables = |n: usize, size: usize| {
            let t: String = (0..n).map(|i| format!("(table $t{i} {size} funcref)")).collect();
            format!("(component (core module $m {t}) (core instance $i (instantiate $m)))")
        };
        assert!(!instantiate(&tables(MAX_TABLES + 1, 1), usize::MAX).0, "tables");
        assert!(instantiate(&tables(4, MAX_TABLE_ELEMENTS / 4), usize::MAX).0);
        assert_eq!(instantiate(&tables(4, MAX_TABLE_ELEMENTS / 4 + 1), usize::MAX), (false, true), "elements");
    }
}

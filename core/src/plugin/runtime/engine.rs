//! The engine and its linker (every import the host provides), and loading a component:
//! compiled or taken from the cache, its contract checked, its exports found.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, OptLevel};

use super::bindings::BackendWithFilesAndEndpoint;
use super::bindings::exports::hacluster::backend::{endpoint, files, plugin};
use super::limits::TICK;
use super::{HostState, cache};
use crate::plugin::{PluginError, SUPPORTED_CONTRACTS};

/// A compiled, checked component, ready to instantiate.
pub struct Loaded {
    pub(super) pre: wasmtime::component::InstancePre<HostState>,
    pub(super) plugin: plugin::GuestIndices,
    /// The optional `files` export (contract 0.1.1), when the component has it.
    pub(super) files: Option<files::GuestIndices>,
    /// The optional `endpoint` export (contract 0.1.2), when the component has it.
    pub(super) endpoint: Option<endpoint::GuestIndices>,
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

    pub fn drains_endpoint(&self) -> bool {
        self.endpoint.is_some()
    }
}

pub struct Runtime {
    pub(super) engine: Engine,
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
        BackendWithFilesAndEndpoint::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| e.to_string())?;
        Ok(Runtime { engine, linker, cache_dir })
    }

    fn compile(&self, plugin: &str, bytes: &[u8], sha256: &str) -> Result<(Component, bool), PluginError> {
        let cached = self.cache_dir.as_deref().map(|d| cache::path(d, &self.engine, sha256));
        if let Some(code) = cached.as_deref().and_then(cache::read_own)
            && matches!(Engine::detect_precompiled(&code), Some(wasmtime::Precompiled::Component))
        {
            // SAFETY: the bytes are machine code we compiled and wrote ourselves: read through
            // one handle of a regular file that this user owns and nobody else may write, in a
            // directory that only this user may change (see `cache::read_own`), named by
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
            let _ = cache::write_own(path, &code);
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
        // component whose optional export does not have this contract's shape is refused.
        let exported = |name: &str| {
            pre.component().get_export_index(None, format!("hacluster:backend/{name}@{contract}")).is_some()
        };
        let unlinkable = |name: &str, e: wasmtime::Error| PluginError::Unlinkable {
            plugin: plugin.into(),
            reason: format!("its `{name}` export: {e:#}"),
        };
        let files = match exported("files") {
            false => None,
            true => Some(files::GuestIndices::new(&pre).map_err(|e| unlinkable("files", e))?),
        };
        let endpoint = match exported("endpoint") {
            false => None,
            true => Some(endpoint::GuestIndices::new(&pre).map_err(|e| unlinkable("endpoint", e))?),
        };
        Ok(Loaded { pre, plugin: guest, files, endpoint, imports, contract, from_cache, load_time: started.elapsed() })
    }
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

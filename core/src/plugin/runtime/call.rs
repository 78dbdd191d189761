//! Calling a component's exports: each call instantiates it in a fresh store, runs one export
//! under the wall-clock limit, and turns what happened into the plugin's result or an error
//! that names the plugin and, for a limit, the limit.

use wasmtime::{Store, Trap};

use super::bindings::exports::hacluster::backend::{endpoint, files, plugin};
use super::bindings::hacluster::backend as iface;
use super::{CallSetup, HostState, Loaded, Runtime, store};
use crate::plugin::{Limits, PluginError};

/// The exports of one instance.
struct Guests {
    plugin: plugin::Guest,
    files: Option<files::Guest>,
    endpoint: Option<endpoint::Guest>,
}

/// What a call returned, with what the host observed during it.
pub struct Returned<R> {
    pub value: R,
    /// Origins the egress allow-list refused (the plugin sees only "denied").
    pub denied_egress: Vec<String>,
}

impl Runtime {
    async fn instantiate(&self, loaded: &Loaded, setup: CallSetup) -> Result<(Store<HostState>, Guests), PluginError> {
        let (plugin, limits) = (setup.plugin.clone(), setup.limits);
        let mut store = store::new(&self.engine, setup);
        let guests = async {
            let instance = loaded.pre.instantiate_async(&mut store).await?;
            let plugin = loaded.plugin.load(&mut store, &instance)?;
            let files = loaded.files.as_ref().map(|f| f.load(&mut store, &instance)).transpose()?;
            let endpoint = loaded.endpoint.as_ref().map(|e| e.load(&mut store, &instance)).transpose()?;
            Ok::<_, wasmtime::Error>(Guests { plugin, files, endpoint })
        }
        .await;
        match guests {
            Ok(g) => Ok((store, g)),
            Err(e) => Err(classify(&plugin, &limits, &e, store.data())),
        }
    }

    /// One call of one export (`export` calls it) in a fresh instance, under the call's limits.
    async fn call<R>(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        export: impl AsyncFnOnce(&Guests, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<Returned<R>, PluginError> {
        let (plugin, limits, wall) = (setup.plugin.clone(), setup.limits, setup.wall);
        let (mut store, guests) = self.instantiate(loaded, setup).await?;
        let out = tokio::time::timeout(wall, export(&guests, &mut store)).await;
        match out {
            Err(_) => Err(PluginError::Timeout { plugin, limit: wall }),
            Ok(Ok(value)) => Ok(Returned { value, denied_egress: store.data().egress.denied() }),
            Ok(Err(e)) => Err(classify(&plugin, &limits, &e, store.data())),
        }
    }

    pub async fn info(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
    ) -> Result<Returned<iface::types::PluginInfo>, PluginError> {
        self.call(loaded, setup, async |g, store| g.plugin.call_info(store).await).await
    }

    pub async fn validate(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
    ) -> Result<Returned<Vec<iface::types::Diagnostic>>, PluginError> {
        self.call(loaded, setup, async |g, store| g.plugin.call_validate(store, cluster).await).await
    }

    pub async fn plan(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
        prior: Option<&[u8]>,
    ) -> Result<Returned<Result<Vec<iface::types::Change>, iface::types::Error>>, PluginError> {
        self.call(loaded, setup, async |g, store| g.plugin.call_plan(store, cluster, prior).await).await
    }

    pub async fn apply(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
        prior: Option<&[u8]>,
    ) -> Result<Returned<Result<iface::types::Infrastructure, iface::types::Error>>, PluginError> {
        self.call(loaded, setup, async |g, store| g.plugin.call_apply(store, cluster, prior).await).await
    }

    pub async fn destroy(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
        state: Option<&[u8]>,
    ) -> Result<Returned<Result<(), iface::types::Error>>, PluginError> {
        self.call(loaded, setup, async |g, store| g.plugin.call_destroy(store, cluster, state).await).await
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
        let call = async |g: &Guests, store: &mut Store<HostState>| {
            let files = g.files.as_ref().expect("loaded with the files export");
            files.call_rendered_files(store, cluster, prior).await
        };
        self.call(loaded, setup, call).await.map(Some)
    }

    /// `drain-member` (`drain` true) or `restore-member` of control plane `node`, or `None`
    /// when the component does not export `endpoint`.
    pub async fn endpoint_member(
        &self,
        loaded: &Loaded,
        setup: CallSetup,
        cluster: &iface::types::Cluster,
        state: Option<&[u8]>,
        node: &str,
        drain: bool,
    ) -> Result<Option<Returned<Result<String, iface::types::Error>>>, PluginError> {
        if loaded.endpoint.is_none() {
            return Ok(None);
        }
        let call = async |g: &Guests, store: &mut Store<HostState>| {
            let e = g.endpoint.as_ref().expect("loaded with the endpoint export");
            if drain {
                e.call_drain_member(store, cluster, state, node).await
            } else {
                e.call_restore_member(store, cluster, state, node).await
            }
        };
        self.call(loaded, setup, call).await.map(Some)
    }
}

/// Why a call failed: a limit the host enforced, the host itself, or the guest (a trap, with
/// the origins the allow-list refused it, the likely cause of many).
fn classify(plugin: &str, limits: &Limits, e: &wasmtime::Error, s: &HostState) -> PluginError {
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
    let denied = s.egress.denied();
    let detail = match e.downcast_ref::<Trap>() {
        Some(Trap::UnreachableCodeReached) => "it panicked or aborted (wasm `unreachable`)".to_string(),
        Some(t) => format!("wasm trap: {t}"),
        None => format!("{e:#}").lines().next().unwrap_or_default().to_string(),
    };
    PluginError::Trap { plugin, detail, denied_egress: denied }
}

//! One call's store: the state every import sees, built fresh for each call with nothing
//! inherited, the call's grants, and its limits armed.

use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::hacluster::backend as iface;
use super::egress::Egress;
use super::limits::{self, CpuMeter, MemoryLimiter};
use super::{CallSetup, CheckpointFn};
use crate::events::Events;
use crate::plugin::grants::Grants;
use crate::plugin::hypervisor::{Hypervisor, Reporter};

pub(super) struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(super) egress: Egress,
    pub(super) memory: MemoryLimiter,
    pub(super) cpu: CpuMeter,
    pub(super) plugin: String,
    pub(super) grants: Grants,
    pub(super) hv: Hypervisor,
    pub(super) checkpoint: Option<CheckpointFn>,
    pub(super) events: Arc<dyn Events>,
    pub(super) log_lines: u32,
    /// The progress steps this call reported.
    pub(super) steps: HashSet<String>,
    /// Why the host stopped the call, when it did (a checkpoint it could not save).
    pub(super) host_error: Option<String>,
}

/// A store for one call, under the call's limits.
pub(super) fn new(engine: &Engine, setup: CallSetup) -> Store<HostState> {
    let state = HostState {
        // Nothing inherited: no preopened directories, no environment, no arguments,
        // stdio discarded, sockets and name lookups disabled.
        wasi: WasiCtx::builder().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        egress: Egress::new(setup.grants.egress.clone(), setup.faults.clone(), setup.stats),
        memory: MemoryLimiter::new(setup.limits.memory_bytes),
        cpu: CpuMeter::new(setup.limits.cpu),
        plugin: setup.plugin.clone(),
        hv: Hypervisor {
            policy: Arc::new(setup.grants.hypervisor.clone()),
            seed_copies: setup.grants.seed_copies.clone(),
            max_image_bytes: None,
            connect_limit: Some(setup.limits.hypervisor_connect),
            reporter: Some(Reporter { plugin: setup.plugin.clone(), events: setup.events.clone() }),
            faults: setup.faults.clone(),
        },
        grants: setup.grants,
        checkpoint: setup.checkpoint,
        events: setup.events,
        log_lines: 0,
        steps: Default::default(),
        host_error: None,
    };
    let mut store = Store::new(engine, state);
    limits::enforce(&mut store);
    store
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

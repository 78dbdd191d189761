//! The WebAssembly runtime behind the plugin host: wasmtime with the component model, WASI p2
//! without any ambient authority, wasi:http behind the egress allow-list, and limits on every
//! call. This is the only module that knows wasmtime; swapping the runtime means rewriting it
//! and `convert.rs`, nothing else.
//!
//! As wasmtime-wasi's hosts are laid out: the engine and loading (`engine.rs`, with the
//! compiled-component cache in `cache.rs`), a call (`call.rs`) in a fresh store (`store.rs`)
//! under its limits (`limits.rs`), and one file per import the host provides: `log`,
//! `progress`, `checkpoint`, `credentials`, `hypervisor` and `egress` (the wasi:http hook).

mod cache;
mod call;
mod checkpoint;
mod credentials;
mod egress;
mod engine;
mod hypervisor;
mod limits;
mod log;
mod progress;
mod store;

use std::sync::Arc;
use std::time::Duration;

use super::faults::{Faults, HttpStats};
use super::grants::Grants;
use super::{Events, Limits};

pub use checkpoint::{CheckpointFn, MAX_STATE_BYTES};
pub use engine::{Loaded, Runtime};
use store::HostState;

pub(super) mod bindings {
    // The world with every optional export: what a component lacks is found missing at load.
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "backend-with-files-and-endpoint",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub(super) use bindings::exports::hacluster::backend::files::RenderedFile;

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

//! Write a [hacluster](https://example.invalid/hacluster) backend.
//!
//! A backend is a WebAssembly component (`wasm32-wasip2`) that turns a validated cluster into
//! machines reachable over SSH and one API endpoint. This crate carries the contract (the WIT
//! in `wit/`) and does the plumbing around it, so that a backend is its decisions only:
//!
//! - implement [`Backend`] with your config section and your state as serde types;
//! - register it with [`register_backend!`] (add `, files` and implement
//!   [`RendersFiles`] if you put files of your own on the machines; add `, endpoint` and
//!   implement [`DrainsEndpoint`] if your API endpoint can be told to drain a control plane);
//! - use [`log`], [`progress`], [`checkpoint()`] and the [`Diagnostics`] builder, and the
//!   host's [`hypervisor`] and [`credentials`] when the operator grants them.
//!
//! ```ignore
//! use hacluster_backend::*;
//!
//! struct Mine;
//!
//! impl Backend for Mine {
//!     type Config = MyConfig;       // `backends.mine`, serde::Deserialize
//!     type State = MyState;         // serde, Default; handed back next time
//!     const NAME: &'static str = "mine";
//!     const DESCRIPTION: &'static str = "machines from my provider";
//!     const SUPPORTS: Capabilities = Capabilities::CLOUD_LB;
//!     // validate, plan, apply, destroy ...
//! }
//!
//! register_backend!(Mine);
//! ```
//!
//! Components are built for `wasm32-wasip2`. The crate also compiles for the build machine, so
//! a backend's unit tests run there (calls to the host are unreachable outside a component).
//! The contract version it speaks is [`CONTRACT`].

#![deny(missing_docs)]

mod backend;
mod checkpoint;
mod cluster;
mod diagnostics;
#[doc(hidden)]
pub mod export;
pub mod log;
pub mod progress;

/// The bindings wit-bindgen generates from `wit/` (by this crate's build script).
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    include!(concat!(env!("OUT_DIR"), "/backend.rs"));

    /// The `backend-with-files` world, on the `backend` world's types and imports.
    pub mod with_files {
        include!(concat!(env!("OUT_DIR"), "/with_files.rs"));
    }

    /// The `backend-with-endpoint` world, likewise.
    pub mod with_endpoint {
        include!(concat!(env!("OUT_DIR"), "/with_endpoint.rs"));
    }

    /// The `backend-with-files-and-endpoint` world, likewise.
    pub mod with_files_and_endpoint {
        include!(concat!(env!("OUT_DIR"), "/with_files_and_endpoint.rs"));
    }
}

pub use backend::{Backend, DrainsEndpoint, Provisioned, RendersFiles};
pub use checkpoint::checkpoint;
pub use diagnostics::Diagnostics;

/// The contract's types: the cluster a backend receives and what it returns.
pub use bindings::hacluster::backend::types::*;

/// A file a backend puts on a machine (see [`RendersFiles`]).
pub use bindings::with_files::exports::hacluster::backend::files::RenderedFile;

/// Credentials the host reads for the backend, when the operator granted them
/// (`credentials::get("aws")`).
pub use bindings::hacluster::backend::credentials;

/// libvirt, performed by the host on the URIs of the config's `hosts` and only on the
/// cluster's own objects (see `wit/backend.wit`).
pub use bindings::hacluster::backend::hypervisor;

/// The contract version this crate speaks, from the `package` line of `wit/backend.wit`.
pub const CONTRACT: &str = env!("HACLUSTER_BACKEND_CONTRACT");

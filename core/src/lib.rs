//! hacluster: one YAML file to a highly available Kubernetes cluster.
//!
//! Data flows one way: [`config`] (YAML → diagnostics → validated model) → [`model`] (the
//! stacked-etcd HA cluster) → [`plan`] (what `up` will do, in order).

pub use hacluster_config::{config, model, plan};

pub mod backup;
pub mod bootstrap;
pub mod certs;
pub mod drain;
pub mod events;
pub mod identity;
pub mod infra;
pub mod membership;
pub mod node_files;
pub mod plugin;
pub mod session;
pub mod ssh;
pub mod state;
pub mod text;
pub mod upgrade;

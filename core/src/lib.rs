//! hacluster: one YAML file to a highly available Kubernetes cluster.
//!
//! Data flows one way: [`config`] (YAML → diagnostics → validated model) → [`model`] (the
//! stacked-etcd HA cluster) → [`plan`] (what `up` will do, in order).

pub mod bootstrap;
pub mod config;
pub mod identity;
pub mod infra;
pub mod model;
pub mod node_files;
pub mod plan;
pub mod plugin;
pub mod session;
pub mod ssh;
pub mod state;
pub mod text;

//! hacluster's config, model and plan, the part of hacluster that needs no plugin runtime, SSH
//! or libvirt: it builds and tests in seconds. Data flows one way: [`config`] (YAML →
//! diagnostics → validated model) → [`model`] (the stacked-etcd HA cluster) → [`plan`] (what
//! `up` will do, in order). The `hacluster` crate re-exports all three.

pub mod config;
pub mod model;
pub mod paths;
pub mod plan;

//! The libvirt backend for hacluster.
//!
//! Builds the on-prem side of Kubitect's examples: per host a storage pool (and data pools), a
//! network (nat, route or isolated; or an existing bridge), a base image, and per node a
//! copy-on-write disk, data disks, a cloud-init NoCloud seed and a domain; load-balancer VMs
//! carry HAProxy and keepalived configurations for the API's virtual IP. Everything is named
//! after the cluster; `apply` lists what exists and creates what is missing, checkpointing
//! after each create; `destroy` removes what the cluster owns, from names alone if need be.
//! All libvirt calls go through the host's `hypervisor` import.

mod apply;
mod cloudinit;
mod config;
mod lb;
mod names;
mod xml;

wit_bindgen::generate!({
    world: "backend",
    path: "../../wit",
});

use exports::hacluster::backend::plugin::Guest;
use hacluster::backend::types::*;

pub(crate) use hacluster::backend::{checkpoint, hypervisor, log, progress};

const CONTRACT: &str = "0.1.0";

pub(crate) fn info(message: &str, fields: &[(&str, String)]) {
    let f: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    log::log(log::Level::Info, message, &f);
}

struct Libvirt;

impl Guest for Libvirt {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "libvirt".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract: CONTRACT.into(),
            description: "VMs on libvirt hosts, with HAProxy + keepalived load balancers holding the API's virtual IP"
                .into(),
            supports: Capabilities::VIP | Capabilities::MULTI_HOST | Capabilities::DATA_DISKS,
        }
    }

    fn validate(cluster: Cluster) -> Vec<Diagnostic> {
        config::validate(&cluster)
    }

    fn plan(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Vec<Change>, Error> {
        let cfg = config::Config::from_cluster(&cluster)?;
        apply::plan(&cfg, &cluster, prior)
    }

    fn apply(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Infrastructure, Error> {
        let cfg = config::Config::from_cluster(&cluster)?;
        apply::apply(&cfg, &cluster, prior)
    }

    fn destroy(cluster: Cluster, state: Option<Vec<u8>>) -> Result<(), Error> {
        let cfg = config::Config::from_cluster(&cluster)?;
        apply::destroy(&cfg, &cluster, state)
    }
}

export!(Libvirt);

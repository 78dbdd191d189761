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
    world: "backend-with-files",
    path: "../../wit",
});

use exports::hacluster::backend::files::{self, RenderedFile};
use exports::hacluster::backend::plugin::Guest;
use hacluster::backend::types::*;

pub(crate) use hacluster::backend::{checkpoint, hypervisor, log, progress};

const CONTRACT: &str = "0.1.1";

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

/// What `apply` puts on the machines: every node's NoCloud seed, and the load balancers'
/// HAProxy and keepalived files inside it, as they are rendered there.
impl files::Guest for Libvirt {
    fn rendered_files(cluster: Cluster, _prior: Option<Vec<u8>>) -> Result<Vec<RenderedFile>, Error> {
        let cfg = config::Config::from_cluster(&cluster)?;
        let mut out = Vec::new();
        for node in &cluster.nodes {
            let iso = names::seed(node);
            for (name, content) in cloudinit::seed(&cfg, &cluster, node) {
                let destination =
                    format!("{name} of the NoCloud seed ISO (volume {iso}), read by cloud-init at first boot");
                out.push(RenderedFile { node: node.name.clone(), name: name.into(), destination, content });
            }
            for (path, mode, content) in cloudinit::lb_files(&cfg, &cluster, node) {
                let name = path.rsplit('/').next().unwrap_or(path).to_string();
                let destination = format!("{path} (mode {mode}), written by cloud-init from user-data");
                out.push(RenderedFile { node: node.name.clone(), name, destination, content });
            }
        }
        Ok(out)
    }
}

export!(Libvirt);

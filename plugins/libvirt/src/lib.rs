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
mod destroy;
mod inventory;
mod lb;
mod names;
mod plan;
mod state;
mod xml;

use hacluster_backend::*;

use crate::config::Config;
use crate::state::State;

struct Libvirt;

impl Backend for Libvirt {
    type Config = Config;
    type State = State;

    const NAME: &'static str = "libvirt";
    const DESCRIPTION: &'static str =
        "VMs on libvirt hosts, with HAProxy + keepalived load balancers holding the API's virtual IP";
    const SUPPORTS: Capabilities = Capabilities::VIP.union(Capabilities::MULTI_HOST).union(Capabilities::DATA_DISKS);
    const CONFIG_HELP: &'static str = "see the README's libvirt section for the fields";

    fn configure(mut config: Config, cluster: &Cluster) -> Result<Config, Error> {
        config.cluster = cluster.name.clone();
        Ok(config)
    }

    fn validate(cluster: &Cluster, config: &Config, out: &mut Diagnostics) {
        config::validate(config, cluster, out)
    }

    fn plan(cluster: &Cluster, config: &Config, prior: State) -> Result<Vec<Change>, Error> {
        plan::plan(config, cluster, prior)
    }

    fn apply(cluster: &Cluster, config: &Config, prior: State) -> Result<Provisioned<State>, Error> {
        apply::apply(config, cluster, prior)
    }

    fn destroy(cluster: &Cluster, config: &Config, state: State) -> Result<(), Error> {
        destroy::destroy(config, cluster, state)
    }
}

/// What `apply` puts on the machines: every node's NoCloud seed, and the load balancers'
/// HAProxy and keepalived files inside it, as they are rendered there.
impl RendersFiles for Libvirt {
    fn files(cluster: &Cluster, cfg: &Config, _prior: State) -> Result<Vec<RenderedFile>, Error> {
        let mut out = Vec::new();
        for node in &cluster.nodes {
            let iso = names::seed(node);
            for (name, content) in cloudinit::seed(cfg, cluster, node) {
                let destination =
                    format!("{name} of the NoCloud seed ISO (volume {iso}), read by cloud-init at first boot");
                out.push(RenderedFile { node: node.name.clone(), name: name.into(), destination, content });
            }
            for (path, mode, content) in cloudinit::lb_files(cfg, cluster, node) {
                let name = path.rsplit('/').next().unwrap_or(path).to_string();
                let destination = format!("{path} (mode {mode}), written by cloud-init from user-data");
                out.push(RenderedFile { node: node.name.clone(), name, destination, content });
            }
        }
        Ok(out)
    }
}

register_backend!(Libvirt, files);

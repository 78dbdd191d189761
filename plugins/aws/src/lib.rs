//! The AWS backend for hacluster.
//!
//! Builds what seed 004 builds by hand: a VPC with one subnet per availability zone (internet
//! gateway and routes unless the subnets are private), security groups from the cluster's port
//! matrix (rules between groups, not 0.0.0.0/0), a key pair, EC2 instances with the core's
//! cloud-init user-data, and a Network Load Balancer on TCP 6443 whose DNS name is the API
//! endpoint. Every resource carries `hacluster:cluster=<name>`; `apply` rediscovers what exists
//! by tag and creates only what is missing, checkpointing after each create; `destroy` works
//! from tags alone.

mod aws;
mod config;
mod destroy;
mod inventory;
mod plan;
mod provision;
mod rules;

wit_bindgen::generate!({
    world: "backend",
    path: "../../wit",
});

use exports::hacluster::backend::plugin::Guest;
use hacluster::backend::types::*;

pub(crate) use hacluster::backend::{checkpoint, credentials, log, progress};

const CONTRACT: &str = "0.1.1";

pub(crate) fn info_log(message: &str, fields: &[(&str, String)]) {
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    log::log(log::Level::Info, message, &fields);
}

pub(crate) fn debug_log(message: &str, fields: &[(&str, String)]) {
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    log::log(log::Level::Debug, message, &fields);
}

struct Aws;

impl Guest for Aws {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "aws".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract: CONTRACT.into(),
            description: "VPC, security groups, EC2 instances and a Network Load Balancer on AWS".into(),
            supports: Capabilities::CLOUD_LB | Capabilities::MULTI_HOST,
        }
    }

    fn validate(cluster: Cluster) -> Vec<Diagnostic> {
        config::validate(&cluster)
    }

    fn plan(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Vec<Change>, Error> {
        let cfg = config::Config::from_cluster(&cluster)?;
        let clients = aws::Clients::new(&cfg)?;
        wstd::runtime::block_on(plan::plan(&clients, &cfg, &cluster, prior))
    }

    fn apply(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Infrastructure, Error> {
        let cfg = config::Config::from_cluster(&cluster)?;
        let clients = aws::Clients::new(&cfg)?;
        wstd::runtime::block_on(provision::apply(&clients, &cfg, &cluster, prior))
    }

    fn destroy(cluster: Cluster, state: Option<Vec<u8>>) -> Result<(), Error> {
        let cfg = config::Config::from_cluster(&cluster)?;
        let clients = aws::Clients::new(&cfg)?;
        wstd::runtime::block_on(destroy::destroy(&clients, &cfg, &cluster, state))
    }
}

export!(Aws);

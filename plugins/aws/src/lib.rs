//! The AWS backend for hacluster.
//!
//! Builds what seed 004 builds by hand: a VPC with one subnet per availability zone (internet
//! gateway and routes unless the subnets are private), security groups from the cluster's port
//! matrix (rules between groups, not 0.0.0.0/0), a key pair, EC2 instances with the core's
//! cloud-init user-data, and a Network Load Balancer on TCP 6443 whose DNS name is the API
//! endpoint. Every resource carries `hacluster:cluster=<name>`; `apply` rediscovers what exists
//! by tag and creates only what is missing, checkpointing after each create; `destroy` works
//! from tags alone. Its `endpoint` export takes a control plane out of the NLB's target group
//! before its API server restarts, and puts it back.

mod apply;
mod aws;
mod config;
mod destroy;
mod endpoint;
mod instances;
mod inventory;
mod key_pair;
mod load_balancer;
mod network;
mod plan;
mod retry;
mod rules;
mod security_groups;
mod state;

use hacluster_backend::*;

use crate::config::Config;
use crate::state::State;

struct Aws;

impl Backend for Aws {
    type Config = Config;
    type State = State;

    const NAME: &'static str = "aws";
    const DESCRIPTION: &'static str = "VPC, security groups, EC2 instances and a Network Load Balancer on AWS";
    const SUPPORTS: Capabilities = Capabilities::CLOUD_LB.union(Capabilities::MULTI_HOST);
    const CONFIG_HELP: &'static str = "see examples/aws.yaml";

    fn configure(config: Config, cluster: &Cluster) -> Result<Config, Error> {
        config.for_cluster(cluster)
    }

    fn validate(_cluster: &Cluster, config: &Config, out: &mut Diagnostics) {
        config::validate(config, out)
    }

    fn plan(cluster: &Cluster, config: &Config, _prior: State) -> Result<Vec<Change>, Error> {
        let clients = aws::Clients::new(config)?;
        wstd::runtime::block_on(plan::plan(&clients, config, cluster))
    }

    fn apply(cluster: &Cluster, config: &Config, prior: State) -> Result<Provisioned<State>, Error> {
        let clients = aws::Clients::new(config)?;
        wstd::runtime::block_on(apply::apply(&clients, config, cluster, prior))
    }

    fn destroy(cluster: &Cluster, config: &Config, state: State) -> Result<(), Error> {
        let clients = aws::Clients::new(config)?;
        wstd::runtime::block_on(destroy::destroy(&clients, config, cluster, state))
    }
}

impl DrainsEndpoint for Aws {
    fn drain_member(cluster: &Cluster, config: &Config, state: State, node: &str) -> Result<String, Error> {
        let clients = aws::Clients::new(config)?;
        wstd::runtime::block_on(endpoint::drain(&clients, config, cluster, &state, node))
    }

    fn restore_member(cluster: &Cluster, config: &Config, state: State, node: &str) -> Result<String, Error> {
        let clients = aws::Clients::new(config)?;
        wstd::runtime::block_on(endpoint::restore(&clients, config, cluster, &state, node))
    }
}

register_backend!(Aws, endpoint);

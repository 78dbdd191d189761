//! `apply`: converge the AWS resources of a cluster, creating only what discovery did not find,
//! checkpointing after every create, independent creates running concurrently.

use std::cell::RefCell;

use crate::aws::Clients;
use crate::config::Config;
use crate::instances::{ensure_instances, kube_nodes, remove_dropped, wait_running};
use crate::inventory::discover;
use crate::key_pair::ensure_key_pair;
use crate::load_balancer::{ensure_load_balancer, refuse_nlb_without_group};
use crate::network::ensure_network;
use crate::security_groups::ensure_security_groups;
use crate::state::{State, new_nonce, save};
use crate::{ApiEndpoint, Cluster, EndpointKind, Error, Machine, Provisioned, SshTarget, log};

pub async fn apply(c: &Clients, cfg: &Config, cluster: &Cluster, mut st: State) -> Result<Provisioned<State>, Error> {
    if !matches!(cluster.endpoint, EndpointKind::CloudLoadBalancer) {
        return Err(Error::InvalidInput(
            "the aws backend provides the endpoint itself (a Network Load Balancer)".into(),
        ));
    }
    if st.nonce.is_empty() {
        st.nonce = new_nonce();
    }
    let state = RefCell::new(st);
    save(&state)?;
    let mut inv = discover(c, cfg).await?;
    log::debug("discovered existing resources", &[("count", &inv.count())]);
    refuse_nlb_without_group(cfg, &inv)?;

    let vpc = ensure_network(c, cfg, &mut inv, &state).await?;
    let sgs = ensure_security_groups(c, cfg, cluster, &inv, &vpc, &state).await?;
    let key = ensure_key_pair(c, cfg, cluster, &inv, &state).await?;
    ensure_instances(c, cfg, cluster, &mut inv, &sgs, &key, &state).await?;
    wait_running(c, cluster, &mut inv).await?;
    let removed = remove_dropped(c, cluster, &mut inv, &state).await?;
    if removed > 0 {
        log::info("terminated the instances of nodes no longer in the config", &[("count", &removed)]);
    }
    let dns = ensure_load_balancer(c, cfg, cluster, &mut inv, &vpc, &sgs, &state).await?;

    let mut machines = Vec::new();
    for node in kube_nodes(cluster) {
        let inst =
            inv.instances.get(&node.name).ok_or_else(|| Error::Internal(format!("no instance for {}", node.name)))?;
        let private =
            inst.private_ip.clone().ok_or_else(|| Error::Internal(format!("{} has no private address", inst.id)))?;
        // Public subnets: SSH over the public address; private: over the private one (the
        // operator needs a route into the VPC, e.g. a VPN).
        let ssh_address = if cfg.private_subnets {
            private.clone()
        } else {
            inst.public_ip.clone().unwrap_or_else(|| private.clone())
        };
        machines.push(Machine {
            name: node.name.clone(),
            role: node.role,
            private_address: private,
            ssh: SshTarget {
                address: ssh_address,
                port: 22,
                user: cluster.ssh_user.clone(),
                jump: None,
                host_public_key: node.host_public_key.clone(),
            },
            provider_id: inst.id.clone(),
        });
    }
    Ok(Provisioned { machines, endpoint: ApiEndpoint { host: dns, port: cluster.api_port }, state: state.into_inner() })
}

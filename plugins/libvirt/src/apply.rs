//! `apply`: per host the storage pools, the network and the base image, then per node its
//! disks, seed and domain. Each step lists what exists and creates only what is missing; every
//! create is checkpointed before the next one starts.

use crate::config::Config;
use crate::hypervisor as hv;
use crate::inventory::{HostPlan, Inventory, Step, exists, host_plans, hv_err, inventory, steps};
use crate::state::State;
use crate::{ApiEndpoint, Cluster, EndpointKind, Error, Machine, Provisioned, SshTarget, checkpoint, log};
use crate::{cloudinit, names, progress, xml};

pub fn apply(cfg: &Config, cluster: &Cluster, mut state: State) -> Result<Provisioned<State>, Error> {
    let endpoint = match &cluster.endpoint {
        EndpointKind::Vip(v) => v.address.clone(),
        EndpointKind::LoadBalancer(n) | EndpointKind::ControlPlane(n) => {
            // Resolved after the machines are known.
            n.clone()
        }
        EndpointKind::CloudLoadBalancer => {
            return Err(Error::InvalidInput("the libvirt backend has no cloud load balancer; use a VIP".into()));
        }
    };
    let plans = host_plans(cfg, cluster)?;
    let inv = inventory(cfg, &plans)?;
    let all = steps(cfg, cluster, &plans);
    let total = all.len() as u64;
    let mut created = 0;
    for (i, s) in all.iter().enumerate() {
        progress::report("libvirt resources", i as u64, total);
        let plan = &plans[s.host];
        if exists(&inv, s) {
            match inv.domains.get(&(s.uri.clone(), s.name.clone())) {
                Some((_, false)) if s.kind == "domain" => {
                    return Err(Error::Conflict(format!(
                        "a domain named {} exists on {} but is not this cluster's (it lacks the cluster's mark); hacluster does not adopt or touch it: rename or remove it, or change the node's id",
                        s.name, plan.host.name
                    )));
                }
                Some((false, true)) if s.kind == "domain" => {
                    hv::start_domain(&s.uri, &s.name).map_err(hv_err(&s.name))?;
                }
                _ => {}
            }
            continue;
        }
        create(cfg, cluster, plan, &inv, s)?;
        state.record(s.kind, &s.uri, &s.pool, &s.name)?;
        created += 1;
        log::info("created", &[("kind", &s.kind), ("name", &s.name), ("detail", &s.detail)]);
    }
    progress::report("libvirt resources", total, total);
    let removed = remove_dropped(cfg, cluster, &inv, &mut state)?;
    log::info(
        "libvirt apply finished",
        &[("created", &created), ("kept", &(all.len() - created)), ("removed", &removed)],
    );
    let machines = machines(cfg, cluster, &plans)?;
    let host = match &cluster.endpoint {
        EndpointKind::Vip(_) => endpoint,
        _ => machines
            .iter()
            .find(|m| m.name == endpoint)
            .map(|m| m.private_address.clone())
            .ok_or_else(|| Error::Internal(format!("endpoint node {endpoint} has no machine")))?,
    };
    Ok(Provisioned { machines, endpoint: ApiEndpoint { host, port: cluster.api_port }, state })
}

fn create(cfg: &Config, cluster: &Cluster, plan: &HostPlan, inv: &Inventory, s: &Step) -> Result<(), Error> {
    let uri = &s.uri;
    let err = hv_err(&s.name);
    match s.kind {
        "pool" => {
            let dir = &plan.pools.values().find(|(n, _)| n == &s.name).expect("planned pool").1;
            hv::create_pool(uri, &xml::pool(&s.name, dir)).map_err(err)
        }
        "network" => {
            let net = cluster.network.as_ref().ok_or_else(|| Error::InvalidInput("no cluster.network".into()))?;
            hv::create_network(uri, &xml::network(&s.name, net, &plan.nodes, &xml::taken_addresses(cluster)))
                .map_err(err)
        }
        "volume" => {
            let base = names::base_volume(&cfg.cluster);
            if s.name == base {
                return match (&cfg.image.url, &cfg.image.path) {
                    (Some(src), _) | (None, Some(src)) if !cfg.test_driver() => {
                        hv::import_image(uri, &s.pool, &s.name, src, cfg.image.sha256.as_deref()).map_err(err)
                    }
                    _ => hv::create_volume(uri, &s.pool, &xml::volume(&s.name, 1, None)).map_err(err),
                };
            }
            let node = plan.nodes.iter().find(|n| {
                names::disk(n) == s.name
                    || names::seed(n) == s.name
                    || n.data_disks.iter().any(|d| names::data_disk(n, &d.name) == s.name)
            });
            let node = node.ok_or_else(|| Error::Internal(format!("volume {} has no node", s.name)))?;
            if s.name == names::seed(node) {
                let files: Vec<(String, Vec<u8>)> = cloudinit::seed(cfg, cluster, node)
                    .into_iter()
                    .map(|(name, content)| (name.to_string(), content.into_bytes()))
                    .collect();
                return hv::create_seed_volume(uri, &s.pool, &s.name, &files).map_err(err);
            }
            if s.name == names::disk(node) {
                // The base volume was created earlier in this run or before: read its path.
                let base_path = hv::list_volumes(uri, &s.pool)
                    .map_err(hv_err(&s.pool))?
                    .into_iter()
                    .find(|v| v.name == base)
                    .map(|v| v.path)
                    .or_else(|| inv.volumes.get(&(uri.clone(), s.pool.clone())).and_then(|v| v.get(&base).cloned()))
                    .ok_or_else(|| Error::NotFound(format!("base volume {base} in {}", s.pool)))?;
                return hv::create_volume(
                    uri,
                    &s.pool,
                    &xml::volume(&s.name, node.resources.main_disk_gib as u64, Some(&base_path)),
                )
                .map_err(err);
            }
            let disk = node.data_disks.iter().find(|d| names::data_disk(node, &d.name) == s.name);
            let disk = disk.ok_or_else(|| Error::Internal(format!("volume {} is not planned", s.name)))?;
            hv::create_volume(uri, &s.pool, &xml::volume(&s.name, disk.size_gib as u64, None)).map_err(err)
        }
        "domain" => {
            let node = plan.nodes.iter().find(|n| n.name == s.name).expect("planned node");
            let bridge = plan.network.is_none();
            hv::define_domain(uri, &xml::domain(cfg, cluster, node, &plan.host.name, bridge))
                .map_err(hv_err(&s.name))?;
            hv::start_domain(uri, &s.name).map_err(hv_err(&s.name))
        }
        _ => Err(Error::Internal(format!("unknown step {}", s.kind))),
    }
}

/// The machines and how to reach them: static addresses from the config, or the DHCP lease.
fn machines(cfg: &Config, cluster: &Cluster, plans: &[HostPlan]) -> Result<Vec<Machine>, Error> {
    let mut out = Vec::new();
    for n in &cluster.nodes {
        let plan = plans.iter().find(|p| p.nodes.iter().any(|x| x.name == n.name)).expect("every node has a host");
        let uri = &plan.host.uri;
        let doms = hv::list_domains(uri).map_err(hv_err(uri))?;
        let uuid = doms.iter().find(|d| d.name == n.name).map(|d| d.uuid.clone()).unwrap_or_default();
        let address = match &n.address {
            Some(a) => a.clone(),
            None => dhcp_address(cfg, uri, &n.name)?,
        };
        out.push(Machine {
            name: n.name.clone(),
            role: n.role,
            private_address: address.clone(),
            ssh: SshTarget {
                address,
                port: 22,
                user: cluster.ssh_user.clone(),
                jump: None,
                host_public_key: n.host_public_key.clone(),
            },
            provider_id: uuid,
        });
    }
    Ok(out)
}

/// Waits (bounded) for a domain's DHCP lease.
fn dhcp_address(cfg: &Config, uri: &str, name: &str) -> Result<String, Error> {
    let tries = if cfg.test_driver() { 1 } else { 300 };
    for i in 0..tries {
        if let Ok(addrs) = hv::domain_addresses(uri, name)
            && let Some(a) = addrs.into_iter().next()
        {
            return Ok(a);
        }
        if i + 1 < tries {
            progress::report(&format!("waiting for a DHCP lease of {name}"), i as u64, tries as u64);
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    Err(Error::Transient(format!(
        "{name} has no DHCP lease yet; run `up` again later, or give it a static `ip` in the config"
    )))
}

/// The machines of nodes the config no longer has: their domains (this cluster's by its mark,
/// under a node name of its own) and their volumes in the cluster's pools go. hacluster calls
/// `apply` with fewer nodes only after it has taken them out of the cluster (drained, etcd
/// member removed, `kubeadm reset`), or before the cluster ran.
fn remove_dropped(cfg: &Config, cluster: &Cluster, inv: &Inventory, state: &mut State) -> Result<usize, Error> {
    let mut removed = 0;
    for ((uri, name), (_, ours)) in &inv.domains {
        if !*ours || !names::is_node_name(&cfg.cluster, name) || cluster.nodes.iter().any(|n| &n.name == name) {
            continue;
        }
        hv::delete_domain(uri, name).map_err(hv_err(name))?;
        log::info("removed", &[("kind", &"domain"), ("name", name)]);
        removed += 1;
        for ((vuri, pool), vols) in &inv.volumes {
            for v in vols.keys().filter(|v| vuri == uri && names::is_volume_of(name, v)) {
                hv::delete_volume(uri, pool, v).map_err(hv_err(v))?;
                log::info("removed", &[("kind", &"volume"), ("name", v)]);
            }
        }
        state.created.retain(|c| !(c.uri == *uri && (c.name == *name || names::is_volume_of(name, &c.name))));
        checkpoint(state)?;
    }
    Ok(removed)
}

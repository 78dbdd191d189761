//! Plan, apply and destroy: per host the storage pools, the network and the base image, then
//! per node its disks, seed and domain. Each step lists what exists and creates only what is
//! missing; every create is checkpointed before the next one starts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::hypervisor::{self as hv, HvError};
use crate::{
    ApiEndpoint, Change, ChangeAction, Cluster, EndpointKind, Error, HypervisorHost, Machine, NetworkMode, NodeSpec,
    Provisioned, SshTarget, checkpoint, log,
};
use crate::{cloudinit, names, progress, xml};

/// What this plugin created, by host URI, so `destroy` also finds resources of nodes that
/// have since left the config. Names alone are enough when the state is lost.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    version: u32,
    /// "kind uri pool name" entries, in creation order.
    created: Vec<Created>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Created {
    kind: String,
    uri: String,
    #[serde(default)]
    pool: String,
    name: String,
}

impl Default for State {
    fn default() -> State {
        State { version: 1, created: Vec::new() }
    }
}

impl State {
    fn record(&mut self, kind: &str, uri: &str, pool: &str, name: &str) -> Result<(), Error> {
        let c = Created { kind: kind.into(), uri: uri.into(), pool: pool.into(), name: name.into() };
        if !self.created.contains(&c) {
            self.created.push(c);
        }
        checkpoint(self)
    }
}

fn hv_err(what: &str) -> impl Fn(HvError) -> Error + '_ {
    move |e| match e {
        HvError::Denied(m) => Error::Denied(format!("{what}: {m}")),
        HvError::NotFound(m) => Error::NotFound(format!("{what}: {m}")),
        HvError::Failed(m) => Error::Internal(format!("{what}: {m}")),
    }
}

/// One host as this cluster uses it: its pools, network and nodes.
struct HostPlan<'a> {
    host: &'a HypervisorHost,
    /// Pool key ("main" or a data pool) → (libvirt name, directory).
    pools: BTreeMap<String, (String, String)>,
    /// None in bridge mode: the host's existing bridge is used, never created or removed.
    network: Option<String>,
    nodes: Vec<&'a NodeSpec>,
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn host_plans<'a>(cfg: &Config, cluster: &'a Cluster) -> Result<Vec<HostPlan<'a>>, Error> {
    let default = cluster.hosts.iter().find(|h| h.default).or(cluster.hosts.first());
    let mut plans: Vec<HostPlan> = Vec::new();
    for node in &cluster.nodes {
        let host = match &node.host {
            Some(h) => cluster.hosts.iter().find(|x| &x.name == h),
            None => default,
        }
        .ok_or_else(|| Error::InvalidInput(format!("node {} has no hypervisor host", node.name)))?;
        let i = match plans.iter().position(|p| p.host.name == host.name) {
            Some(i) => i,
            None => {
                let mut pools = BTreeMap::new();
                let main = names::pool(&cfg.cluster, &host.name, "main");
                pools.insert("main".to_string(), (main.clone(), join(&host.main_pool_path, &main)));
                let bridge_mode = cluster.network.as_ref().is_some_and(|n| n.mode == NetworkMode::Bridge);
                plans.push(HostPlan {
                    host,
                    pools,
                    network: (!bridge_mode).then(|| names::network(&cfg.cluster, &host.name)),
                    nodes: Vec::new(),
                });
                plans.len() - 1
            }
        };
        for d in &node.data_disks {
            if d.pool != "main" && !plans[i].pools.contains_key(&d.pool) {
                let path =
                    host.data_pools.iter().find(|(n, _)| n == &d.pool).map(|(_, p)| p.clone()).ok_or_else(|| {
                        Error::InvalidInput(format!("data pool `{}` is not defined on host `{}`", d.pool, host.name))
                    })?;
                let name = names::pool(&cfg.cluster, &host.name, &d.pool);
                let dir = join(&path, &name);
                plans[i].pools.insert(d.pool.clone(), (name, dir));
            }
        }
        plans[i].nodes.push(node);
    }
    Ok(plans)
}

/// Looks at what exists on every host the cluster uses.
struct Inventory {
    pools: BTreeSet<(String, String)>,
    networks: BTreeSet<(String, String)>,
    /// (uri, pool) → volume name → path.
    volumes: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// (uri, domain) → (active, carries this cluster's mark).
    domains: BTreeMap<(String, String), (bool, bool)>,
}

/// This cluster's ownership mark as libvirt shows it in a domain's metadata (the host checks
/// the parsed XML before any change; this finds candidates).
fn marked(cfg: &Config, domain_xml: &str) -> bool {
    domain_xml.contains(&format!(">{}</hac:cluster>", xml::esc(&cfg.cluster)))
}

fn inventory(cfg: &Config, plans: &[HostPlan]) -> Result<Inventory, Error> {
    let mut inv = Inventory {
        pools: BTreeSet::new(),
        networks: BTreeSet::new(),
        volumes: BTreeMap::new(),
        domains: BTreeMap::new(),
    };
    let uris: BTreeSet<&str> = plans.iter().map(|p| p.host.uri.as_str()).collect();
    for uri in uris {
        for p in hv::list_pools(uri).map_err(hv_err(uri))? {
            inv.pools.insert((uri.to_string(), p.name));
        }
        for n in hv::list_networks(uri).map_err(hv_err(uri))? {
            inv.networks.insert((uri.to_string(), n.name));
        }
        for d in hv::list_domains(uri).map_err(hv_err(uri))? {
            let ours = marked(cfg, &d.xml);
            inv.domains.insert((uri.to_string(), d.name), (d.active, ours));
        }
    }
    for plan in plans {
        let uri = &plan.host.uri;
        for (name, _) in plan.pools.values() {
            if inv.pools.contains(&(uri.clone(), name.clone())) {
                let vols = hv::list_volumes(uri, name).map_err(hv_err(name))?;
                inv.volumes.insert((uri.clone(), name.clone()), vols.into_iter().map(|v| (v.name, v.path)).collect());
            }
        }
    }
    Ok(inv)
}

impl Inventory {
    fn has_volume(&self, uri: &str, pool: &str, name: &str) -> bool {
        self.volumes.get(&(uri.to_string(), pool.to_string())).is_some_and(|v| v.contains_key(name))
    }
}

/// Everything `apply` would create, in order, as (kind, uri, pool, name, detail).
struct Step {
    /// Index of the host's plan (several hosts may share one URI, as with the test driver).
    host: usize,
    kind: &'static str,
    uri: String,
    pool: String,
    name: String,
    detail: String,
}

fn steps(cfg: &Config, cluster: &Cluster, plans: &[HostPlan]) -> Vec<Step> {
    let mut out = Vec::new();
    let step = |kind, uri: &str, pool: &str, name: &str, detail: String| Step {
        host: 0,
        kind,
        uri: uri.into(),
        pool: pool.into(),
        name: name.into(),
        detail,
    };
    for (host, plan) in plans.iter().enumerate() {
        let uri = plan.host.uri.as_str();
        let step = |kind, uri: &str, pool: &str, name: &str, detail: String| Step {
            host,
            ..step(kind, uri, pool, name, detail)
        };
        for (name, dir) in plan.pools.values() {
            out.push(step("pool", uri, "", name, format!("dir pool at {dir} on {}", plan.host.name)));
        }
        if let (Some(net), Some(n)) = (&plan.network, &cluster.network) {
            out.push(step(
                "network",
                uri,
                "",
                net,
                format!("{} {} on {}", xml::mode_name(n.mode), n.cidr, plan.host.name),
            ));
        }
        let main = &plan.pools["main"].0;
        let image =
            cfg.image.url.clone().or(cfg.image.path.clone()).unwrap_or_else(|| "an empty volume (test driver)".into());
        out.push(step("volume", uri, main, &names::base_volume(&cfg.cluster), format!("base image from {image}")));
        for n in &plan.nodes {
            out.push(step(
                "volume",
                uri,
                main,
                &names::disk(n),
                format!("{} GiB copy-on-write disk", n.resources.main_disk_gib),
            ));
            for d in &n.data_disks {
                let pool = &plan.pools[&d.pool].0;
                out.push(step(
                    "volume",
                    uri,
                    pool,
                    &names::data_disk(n, &d.name),
                    format!("{} GiB data disk", d.size_gib),
                ));
            }
            out.push(step("volume", uri, main, &names::seed(n), "cloud-init NoCloud seed".into()));
            out.push(step(
                "domain",
                uri,
                "",
                &n.name,
                format!("{} vCPU, {} GiB RAM on {}", n.resources.cpu, n.resources.ram_gib, plan.host.name),
            ));
        }
    }
    out
}

fn exists(inv: &Inventory, s: &Step) -> bool {
    match s.kind {
        "pool" => inv.pools.contains(&(s.uri.clone(), s.name.clone())),
        "network" => inv.networks.contains(&(s.uri.clone(), s.name.clone())),
        "volume" => inv.has_volume(&s.uri, &s.pool, &s.name),
        "domain" => inv.domains.contains_key(&(s.uri.clone(), s.name.clone())),
        _ => false,
    }
}

pub fn plan(cfg: &Config, cluster: &Cluster, _prior: State) -> Result<Vec<Change>, Error> {
    let plans = host_plans(cfg, cluster)?;
    let inv = inventory(cfg, &plans)?;
    Ok(steps(cfg, cluster, &plans)
        .into_iter()
        .map(|s| Change {
            action: if exists(&inv, &s) { ChangeAction::Keep } else { ChangeAction::Create },
            kind: s.kind.into(),
            name: s.name,
            detail: s.detail,
        })
        .collect())
}

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
    let others: Vec<String> = inv
        .domains
        .iter()
        .filter(|((_, d), (_, ours))| *ours && !cluster.nodes.iter().any(|n| &n.name == d))
        .map(|((_, d), _)| d.clone())
        .collect();
    if !others.is_empty() {
        log::warn(
            "domains of this cluster that the config no longer has; `hacluster down` removes them",
            &[("domains", &others.join(","))],
        );
    }
    log::info("libvirt apply finished", &[("created", &created), ("kept", &(all.len() - created))]);
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

/// Removes what the cluster owns on the config's hosts: the domains that carry the cluster's
/// mark in their metadata (also nodes the config no longer has), every volume in the cluster's
/// own pools and the pools themselves, its networks (named after it, on the bridge derived
/// from the name). Nothing goes by its name alone: a domain without the mark stays, whatever
/// it is called. Pools and networks under the names of earlier releases
/// (`<cluster>-<host>-<pool>`, which another cluster's could share) are left, with a warning.
pub fn destroy(cfg: &Config, cluster: &Cluster, mut state: State) -> Result<(), Error> {
    let uris: BTreeSet<String> = cluster.hosts.iter().map(|h| h.uri.clone()).collect();
    let mut removed = 0u64;
    // Domains first: they hold the volumes.
    for uri in &uris {
        for d in hv::list_domains(uri).map_err(hv_err(uri))? {
            if !marked(cfg, &d.xml) {
                continue;
            }
            if !names::is_node_name(&cfg.cluster, &d.name) {
                warn_left("a domain of this cluster named outside its node names", "domain", uri, &d.name);
                continue;
            }
            hv::delete_domain(uri, &d.name).map_err(hv_err(&d.name))?;
            removed += 1;
            log::info("removed", &[("kind", &"domain"), ("name", &d.name)]);
            progress::report("libvirt destroy", removed, 0);
        }
    }
    for uri in &uris {
        let hosts: Vec<&HypervisorHost> = cluster.hosts.iter().filter(|h| &h.uri == uri).collect();
        let pools: BTreeSet<String> = hv::list_pools(uri).map_err(hv_err(uri))?.into_iter().map(|p| p.name).collect();
        for h in &hosts {
            let keys = std::iter::once("main").chain(h.data_pools.iter().map(|(k, _)| k.as_str()));
            for key in keys {
                let pool = names::pool(&cfg.cluster, &h.name, key);
                if pools.contains(&pool) {
                    for v in hv::list_volumes(uri, &pool).map_err(hv_err(&pool))? {
                        hv::delete_volume(uri, &pool, &v.name).map_err(hv_err(&v.name))?;
                        removed += 1;
                        progress::report("libvirt destroy", removed, 0);
                    }
                    hv::delete_pool(uri, &pool).map_err(hv_err(&pool))?;
                    log::info("removed", &[("kind", &"pool"), ("name", &pool)]);
                }
                let legacy = names::legacy_pool(&cfg.cluster, &h.name, key);
                if pools.contains(&legacy) {
                    warn_left("a pool under the name of an earlier release", "pool", uri, &legacy);
                }
            }
        }
        // Networks: ours by name and by the bridge derived from it.
        for n in hv::list_networks(uri).map_err(hv_err(uri))? {
            if hosts.iter().any(|h| names::legacy_network(&cfg.cluster, &h.name) == n.name) {
                warn_left("a network under the name of an earlier release", "network", uri, &n.name);
            }
            if !hosts.iter().any(|h| names::network(&cfg.cluster, &h.name) == n.name) {
                continue;
            }
            if n.xml.contains(&format!("name='{}'", names::bridge(&n.name))) {
                hv::delete_network(uri, &n.name).map_err(hv_err(&n.name))?;
                log::info("removed", &[("kind", &"network"), ("name", &n.name)]);
            } else {
                warn_left("a network with this cluster's name on a bridge of someone else's", "network", uri, &n.name);
            }
        }
        state.created.retain(|c| &c.uri != uri);
        checkpoint(&state)?;
    }
    Ok(())
}

/// What `destroy` leaves on purpose, and how the operator removes it after checking it.
fn warn_left(what: &str, kind: &str, uri: &str, name: &str) {
    let how = match kind {
        "domain" => format!("virsh -c {uri} undefine {name}"),
        "pool" => format!("virsh -c {uri} pool-destroy {name}; virsh -c {uri} pool-undefine {name}"),
        _ => format!("virsh -c {uri} net-destroy {name}; virsh -c {uri} net-undefine {name}"),
    };
    log::warn(
        &format!("left in place: {what}; if it is this cluster's, remove it by hand"),
        &[("name", &name), ("remove", &how)],
    );
}

//! What the config asks for per host, what exists there, and the steps between them: what
//! `plan`, `apply` and `destroy` all start from.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Config;
use crate::hypervisor::{self as hv, HvError};
use crate::{Cluster, Error, HypervisorHost, NetworkMode, NodeSpec};
use crate::{names, xml};

pub(crate) fn hv_err(what: &str) -> impl Fn(HvError) -> Error + '_ {
    move |e| match e {
        HvError::Denied(m) => Error::Denied(format!("{what}: {m}")),
        HvError::NotFound(m) => Error::NotFound(format!("{what}: {m}")),
        HvError::Failed(m) => Error::Internal(format!("{what}: {m}")),
    }
}

/// One host as this cluster uses it: its pools, network and nodes.
pub(crate) struct HostPlan<'a> {
    pub(crate) host: &'a HypervisorHost,
    /// Pool key ("main" or a data pool) → (libvirt name, directory).
    pub(crate) pools: BTreeMap<String, (String, String)>,
    /// None in bridge mode: the host's existing bridge is used, never created or removed.
    pub(crate) network: Option<String>,
    pub(crate) nodes: Vec<&'a NodeSpec>,
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

pub(crate) fn host_plans<'a>(cfg: &Config, cluster: &'a Cluster) -> Result<Vec<HostPlan<'a>>, Error> {
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
pub(crate) struct Inventory {
    pub(crate) pools: BTreeSet<(String, String)>,
    pub(crate) networks: BTreeSet<(String, String)>,
    /// (uri, pool) → volume name → path.
    pub(crate) volumes: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// (uri, domain) → (active, carries this cluster's mark).
    pub(crate) domains: BTreeMap<(String, String), (bool, bool)>,
}

/// This cluster's ownership mark as libvirt shows it in a domain's metadata (the host checks
/// the parsed XML before any change; this finds candidates).
pub(crate) fn marked(cfg: &Config, domain_xml: &str) -> bool {
    domain_xml.contains(&format!(">{}</hac:cluster>", xml::esc(&cfg.cluster)))
}

pub(crate) fn inventory(cfg: &Config, plans: &[HostPlan]) -> Result<Inventory, Error> {
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
    pub(crate) fn has_volume(&self, uri: &str, pool: &str, name: &str) -> bool {
        self.volumes.get(&(uri.to_string(), pool.to_string())).is_some_and(|v| v.contains_key(name))
    }
}

/// Everything `apply` would create, in order, as (kind, uri, pool, name, detail).
pub(crate) struct Step {
    /// Index of the host's plan (several hosts may share one URI, as with the test driver).
    pub(crate) host: usize,
    pub(crate) kind: &'static str,
    pub(crate) uri: String,
    pub(crate) pool: String,
    pub(crate) name: String,
    pub(crate) detail: String,
}

pub(crate) fn steps(cfg: &Config, cluster: &Cluster, plans: &[HostPlan]) -> Vec<Step> {
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

pub(crate) fn exists(inv: &Inventory, s: &Step) -> bool {
    match s.kind {
        "pool" => inv.pools.contains(&(s.uri.clone(), s.name.clone())),
        "network" => inv.networks.contains(&(s.uri.clone(), s.name.clone())),
        "volume" => inv.has_volume(&s.uri, &s.pool, &s.name),
        "domain" => inv.domains.contains_key(&(s.uri.clone(), s.name.clone())),
        _ => false,
    }
}

//! `destroy`: what the cluster owns, found by its marks and names.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::hypervisor as hv;
use crate::inventory::{hv_err, marked};
use crate::state::State;
use crate::{Cluster, Error, HypervisorHost, checkpoint, log};
use crate::{names, progress};

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

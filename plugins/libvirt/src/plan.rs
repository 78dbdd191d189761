//! `plan`: every step `apply` would take, kept where what it creates already exists.

use crate::config::Config;
use crate::inventory::{exists, host_plans, inventory, steps};
use crate::state::State;
use crate::{Change, ChangeAction, Cluster, Error, names};

pub fn plan(cfg: &Config, cluster: &Cluster, _prior: State) -> Result<Vec<Change>, Error> {
    let plans = host_plans(cfg, cluster)?;
    let inv = inventory(cfg, &plans)?;
    let mut changes: Vec<Change> = steps(cfg, cluster, &plans)
        .into_iter()
        .map(|s| Change {
            action: if exists(&inv, &s) { ChangeAction::Keep } else { ChangeAction::Create },
            kind: s.kind.into(),
            name: s.name,
            detail: s.detail,
        })
        .collect();
    // What `apply` removes: the machines of nodes the config no longer has.
    for ((_, name), (_, ours)) in &inv.domains {
        if *ours && names::is_node_name(&cfg.cluster, name) && !cluster.nodes.iter().any(|n| &n.name == name) {
            changes.push(Change {
                action: ChangeAction::Delete,
                kind: "domain".into(),
                name: name.clone(),
                detail: "no longer in the config: the domain, its disks and seed are deleted (hacluster takes the node out of the cluster first)".into(),
            });
        }
    }
    Ok(changes)
}

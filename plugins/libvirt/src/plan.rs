//! `plan`: every step `apply` would take, kept where what it creates already exists.

use crate::config::Config;
use crate::inventory::{exists, host_plans, inventory, steps};
use crate::state::State;
use crate::{Change, ChangeAction, Cluster, Error};

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

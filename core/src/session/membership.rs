//! Changing who is in a running cluster: `up` removes the nodes the config dropped before the
//! backend releases their machines; `replace` removes a dead control plane's member before
//! the backend provisions it again.

use std::path::Path;
use std::sync::Arc;

use super::{Locked, RunError, balancer, over_ssh_masked};
use crate::membership::remove::Remove;
use crate::membership::replace::{Removed, Replace};
use crate::membership::{self, MembershipError, Removals};
use crate::model::ClusterSpec;
use crate::plugin::Plugin;

/// Removes the nodes a running cluster has and the config no longer lists (see
/// `membership::remove`), before `provision` lets the backend release their machines. Returns
/// the nodes removed (none when there is nothing to remove).
pub async fn remove_dropped(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
    plugin: Option<&Plugin<'_>>,
) -> Result<Vec<String>, RunError> {
    let dir = crate::state::StateDir::new(state_root, spec.name.as_str());
    let Some(recorded) = dir.read()? else { return Ok(Vec::new()) };
    if membership::removals(spec, &recorded)?.is_empty() {
        return Ok(Vec::new());
    }
    let Locked { lock, state, infra } = Locked::open(spec, state_root)?;
    let r: Removals = membership::removals(spec, &state)?;
    let balancer = balancer(plugin, spec, &state)?;
    let names = r.in_order().map(|m| m.name.clone()).collect();
    over_ssh_masked(settings, events.clone(), &state, async |exec| {
        Remove::new(spec, &infra, exec, events.as_ref(), &lock, state.clone())
            .with_balancer(balancer.as_ref())
            .run(&r)
            .await
    })
    .await??;
    Ok(names)
}

/// The first half of `hacluster replace NODE`: checks that control plane `node` does not
/// answer and that the others keep quorum without it, removes its etcd member and Node, and
/// records the replacement (`provision` and `bootstrap` then make and join the new machine).
pub async fn replace(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
    plugin: Option<&Plugin<'_>>,
    node: &str,
) -> Result<Option<Removed>, RunError> {
    let Locked { lock, mut state, infra } = Locked::running(spec, state_root)?;
    let balancer = balancer(plugin, spec, &state)?;
    let masked = state.clone();
    let r = over_ssh_masked(settings, events.clone(), &masked, async |exec| {
        let replace =
            Replace { spec, infra: &infra, exec, events: events.as_ref(), lock: &lock, balancer: balancer.as_ref() };
        replace.remove_old(&mut state, node).await
    })
    .await??;
    Ok(r)
}

/// The removal `plan` shows, when the state records nodes the config no longer lists.
pub fn planned_removal(
    spec: &ClusterSpec,
    state_root: &Path,
) -> Result<Option<membership::PlannedRemoval>, MembershipError> {
    let dir = crate::state::StateDir::new(state_root, spec.name.as_str());
    match dir.read()? {
        Some(state) => membership::PlannedRemoval::of(spec, &state),
        None => Ok(None),
    }
}

//! Who is in the cluster, changed on purpose: the control planes and workers the config no
//! longer lists are removed one at a time (quorum checked before every etcd member goes), and a
//! control plane whose machine died is replaced. Adding nodes is the bootstrap's join.
//!
//! Every step is recorded in the state (`remove:<node>:<step>`) when done and checks the node
//! before it acts, so a run killed anywhere resumes where it stopped.

pub mod etcd;
pub mod remove;
pub mod replace;

use serde::Serialize;

use crate::bootstrap::BootstrapError;
use crate::infra::Machine;
use crate::model::{ClusterSpec, NodeRole};
use crate::state::{ClusterState, StateError};

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(
        "the config adds control plane(s) {added} and drops {removed} in one change: etcd's membership changes one member at a time, and a removal first could cost quorum; add the new ones with one `hacluster up`, then drop the old ones with another (nothing was changed)"
    )]
    AddAndRemove { added: String, removed: String },
    #[error(
        "control plane(s) {0} do not answer (API server /readyz and etcd health): a control plane is removed only from a healthy cluster; bring them back, or replace a dead one with `hacluster replace` (nothing was changed)"
    )]
    Unhealthy(String),
    #[error(
        "removing {node}'s etcd member would leave {voting} voting member(s) of which {started} started: {why}; nothing was removed"
    )]
    Quorum { node: String, voting: u32, started: u32, why: &'static str },
    #[error(
        "`{node}` is in the config again, but an earlier `hacluster up` began removing it (done: {done}); finish the removal first: drop it from the config again and run `hacluster up`, then add it back (nothing was changed)"
    )]
    HalfRemoved { node: String, done: String },
    #[error("draining {node}: {reason}")]
    Drain { node: String, reason: String },
    #[error("{0}")]
    NotReplaceable(String),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<crate::ssh::SshError> for MembershipError {
    fn from(e: crate::ssh::SshError) -> Self {
        MembershipError::Bootstrap(e.into())
    }
}

impl MembershipError {
    /// Refused before anything changed, on what the operator asked: a usage error.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            MembershipError::AddAndRemove { .. }
                | MembershipError::HalfRemoved { .. }
                | MembershipError::Unhealthy(_)
                | MembershipError::Quorum { .. }
                | MembershipError::NotReplaceable(_)
        )
    }
}

/// The recorded machines of a running cluster that the config no longer lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removals {
    pub control_planes: Vec<Machine>,
    pub workers: Vec<Machine>,
}

impl Removals {
    pub fn is_empty(&self) -> bool {
        self.control_planes.is_empty() && self.workers.is_empty()
    }

    /// Workers first (their workloads move while every control plane serves), then control
    /// planes one at a time.
    pub fn in_order(&self) -> impl Iterator<Item = &Machine> {
        self.workers.iter().chain(&self.control_planes)
    }
}

/// Whether the state records the cluster as running (kubeadm init done).
pub fn running(state: &ClusterState) -> bool {
    state.bootstrap.as_ref().is_some_and(|b| b.completed.iter().any(|c| c == "kubeadm-init"))
}

/// Whether the state records step `id` as done.
pub fn done(state: &ClusterState, id: &str) -> bool {
    state.bootstrap.as_ref().is_some_and(|b| b.completed.iter().any(|c| c == id))
}

/// What `up` removes before the backend is asked: the running cluster's recorded machines of
/// nodes the config no longer has. Nothing for a cluster that does not run yet (its machines
/// are only released). Adding and removing control planes in one change is refused.
pub fn removals(spec: &ClusterSpec, state: &ClusterState) -> Result<Removals, MembershipError> {
    let Some(infra) = state.infrastructure.as_ref().filter(|_| running(state)) else {
        return Ok(Removals::default());
    };
    // A node whose removal began is not taken back midway: its member may be gone already.
    for n in spec.control_planes.iter().chain(&spec.workers) {
        let prefix = format!("remove:{}", n.name);
        let done: Vec<&str> = state
            .bootstrap
            .iter()
            .flat_map(|b| &b.completed)
            .filter_map(|c| c.strip_prefix(&prefix))
            .filter(|rest| rest.is_empty() || rest.starts_with(':'))
            .map(|rest| rest.trim_start_matches(':'))
            .map(|step| if step.is_empty() { "every step" } else { step })
            .collect();
        if !done.is_empty() {
            return Err(MembershipError::HalfRemoved { node: n.name.to_string(), done: done.join(", ") });
        }
    }
    let listed = |m: &&Machine| spec.control_planes.iter().chain(&spec.workers).any(|n| n.name.as_str() == m.name);
    let gone = |role: NodeRole| -> Vec<Machine> {
        infra.machines.iter().filter(|m| m.role == role && !listed(m)).cloned().collect()
    };
    let r = Removals { control_planes: gone(NodeRole::ControlPlane), workers: gone(NodeRole::Worker) };
    let added: Vec<&str> = spec
        .control_planes
        .iter()
        .filter(|n| infra.machine(n.name.as_str()).is_none())
        .map(|n| n.name.as_str())
        .collect();
    if !r.control_planes.is_empty() && !added.is_empty() {
        return Err(MembershipError::AddAndRemove {
            added: added.join(", "),
            removed: r.control_planes.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(r)
}

/// One step of a removal, as `plan` shows it and the state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// `remove:<node>:<what>`.
    pub id: String,
    pub node: String,
    pub description: String,
}

/// The named steps of removing `m`, in order.
pub fn steps_of(m: &Machine, backend: &str) -> Vec<Step> {
    let step = |what: &str, description: String| Step {
        id: format!("remove:{}:{what}", m.name),
        node: m.name.clone(),
        description,
    };
    let n = &m.name;
    let mut steps = vec![step(
        "drain",
        format!(
            "{n}: cordon and drain (evictions respect PodDisruptionBudgets; DaemonSets stay; gives up after {} s)",
            remove::DRAIN_LIMIT.as_secs()
        ),
    )];
    if m.role == NodeRole::ControlPlane {
        steps.push(step(
            "endpoint",
            format!("{n}: out of the API endpoint (the backend's balancer if it can be told, then the node)"),
        ));
        steps.push(step(
            "member",
            format!("{n}: its etcd member removed through a healthy member, after checking that every member left has started and keeps quorum"),
        ));
    }
    steps.push(step("reset", format!("{n}: `kubeadm reset` on the machine (when it answers), kubelet stopped")));
    steps.push(step("node", format!("{n}: its Node object deleted")));
    steps.push(Step {
        id: format!("remove:{}", m.name),
        node: m.name.clone(),
        description: format!("{n}: backend `{backend}` releases the machine (the next provisioning step)"),
    });
    steps
}

/// The removal `plan` shows: every step, and those a run killed midway has done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedRemoval {
    pub steps: Vec<Step>,
    pub completed: Vec<String>,
}

impl PlannedRemoval {
    pub fn of(spec: &ClusterSpec, state: &ClusterState) -> Result<Option<Self>, MembershipError> {
        let r = removals(spec, state)?;
        if r.is_empty() {
            return Ok(None);
        }
        let steps = steps(&r, &state.backend);
        let completed = steps.iter().filter(|s| done(state, &s.id)).map(|s| s.id.clone()).collect();
        Ok(Some(PlannedRemoval { steps, completed }))
    }
}

/// Every step of `r`, in the order `up` runs them.
pub fn steps(r: &Removals, backend: &str) -> Vec<Step> {
    r.in_order().flat_map(|m| steps_of(m, backend)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::{ApiEndpoint, Infrastructure, SshTarget};
    use crate::state::BootstrapRecord;

    fn machine(name: &str, role: NodeRole, ip: &str) -> Machine {
        Machine {
            name: name.into(),
            role,
            private_address: ip.into(),
            ssh: SshTarget {
                address: ip.into(),
                port: 22,
                user: "k8s".into(),
                jump: None,
                host_public_key: "ssh-ed25519 AAAA".into(),
            },
            provider_id: format!("static:{ip}"),
        }
    }

    fn spec(cps: u32, workers: u32) -> ClusterSpec {
        let ids = |n: u32| (1..=n).map(|i| format!("{{id: {i}}}")).collect::<Vec<_>>().join(", ");
        let mut text = format!(
            "hosts: [{{name: h}}]\ncluster:\n  name: demo\n  network: {{mode: nat, cidr: 10.20.0.0/24}}\n  nodes:\n    loadBalancer: {{instances: [{{id: 1, ip: 10.20.0.100}}]}}\n    master: {{instances: [{}]}}\n",
            ids(cps)
        );
        if workers > 0 {
            text.push_str(&format!("    worker: {{instances: [{}]}}\n", ids(workers)));
        }
        let checked = crate::config::check_str("demo.yaml", &text, &crate::config::Options::default());
        checked.spec.unwrap_or_else(|| panic!("{:?}", checked.diagnostics))
    }

    fn state(cps: u32, workers: u32, running: bool) -> ClusterState {
        let mut s = ClusterState::new("demo", "static");
        let mut machines: Vec<Machine> = (1..=cps)
            .map(|i| machine(&format!("demo-master-{i}"), NodeRole::ControlPlane, &format!("10.0.0.{}", 10 + i)))
            .collect();
        machines.extend(
            (1..=workers)
                .map(|i| machine(&format!("demo-worker-{i}"), NodeRole::Worker, &format!("10.0.0.{}", 20 + i))),
        );
        s.infrastructure =
            Some(Infrastructure { machines, endpoint: ApiEndpoint { host: "127.0.0.1".into(), port: 6443 } });
        if running {
            s.bootstrap = Some(BootstrapRecord { completed: vec!["kubeadm-init".into()], ..Default::default() });
        }
        s
    }

    fn names(ms: &[Machine]) -> Vec<&str> {
        ms.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn nodes_the_config_no_longer_lists_are_removed_workers_first() {
        let r = removals(&spec(3, 1), &state(5, 2, true)).unwrap();
        assert_eq!(names(&r.control_planes), ["demo-master-4", "demo-master-5"]);
        assert_eq!(names(&r.workers), ["demo-worker-2"]);
        let order: Vec<&str> = r.in_order().map(|m| m.name.as_str()).collect();
        assert_eq!(order, ["demo-worker-2", "demo-master-4", "demo-master-5"]);
        let ids: Vec<String> = steps(&r, "static").into_iter().map(|s| s.id).collect();
        assert_eq!(
            ids[..6],
            [
                "remove:demo-worker-2:drain",
                "remove:demo-worker-2:reset",
                "remove:demo-worker-2:node",
                "remove:demo-worker-2",
                "remove:demo-master-4:drain",
                "remove:demo-master-4:endpoint"
            ]
        );
        assert!(ids.contains(&"remove:demo-master-5:member".to_string()));
    }

    #[test]
    fn a_cluster_that_does_not_run_yet_has_nothing_to_remove() {
        assert!(removals(&spec(1, 0), &state(3, 2, false)).unwrap().is_empty());
        assert!(removals(&spec(3, 2), &state(3, 2, true)).unwrap().is_empty());
    }

    #[test]
    fn a_node_whose_removal_began_is_not_taken_back_midway() {
        let mut s = state(5, 0, true);
        s.bootstrap.as_mut().unwrap().completed.extend([
            "remove:demo-master-5:drain".to_string(),
            "remove:demo-master-5:endpoint".to_string(),
            "remove:demo-master-5:member".to_string(),
            // Another node's records do not count (no prefix match on `demo-master-5`).
            "remove:demo-master-50:drain".to_string(),
        ]);
        let e = removals(&spec(5, 0), &s).unwrap_err();
        assert!(e.is_refusal());
        let text = e.to_string();
        assert!(text.contains("`demo-master-5`") && text.contains("drain, endpoint, member"), "{text}");
        // Dropped again, the removal goes on from where it stopped.
        let r = removals(&spec(3, 0), &s).unwrap();
        assert_eq!(names(&r.control_planes), ["demo-master-4", "demo-master-5"]);
    }

    #[test]
    fn adding_and_dropping_control_planes_at_once_is_refused() {
        // master-1..3 in the config, master-1, -2 and -9 recorded: -3 is new, -9 dropped.
        let mut s = state(2, 0, true);
        let infra = s.infrastructure.as_mut().unwrap();
        infra.machines.push(machine("demo-master-9", NodeRole::ControlPlane, "10.0.0.99"));
        let e = removals(&spec(3, 0), &s).unwrap_err();
        assert!(e.is_refusal());
        let text = e.to_string();
        assert!(text.contains("demo-master-3") && text.contains("demo-master-9"), "{text}");
    }
}

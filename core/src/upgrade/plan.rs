//! What an upgrade will do, node by node, in the order kubeadm prescribes, and what it refuses:
//! computed from the cluster's version and the config's, with nothing touched.

use serde::Serialize;

use crate::model::{ClusterSpec, KubeVersion, Node};

/// Why an upgrade is refused before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the cluster runs {from} and the config asks for {to}: a downgrade, which kubeadm does not do; set `kubernetes.version` back to {from} (or a later patch), or build a new cluster at {to} and move the workloads"
    )]
    Downgrade { from: KubeVersion, to: KubeVersion },
    #[error(
        "the cluster runs {from} and the config asks for {to}: that skips {skipped}, and kubeadm upgrades one minor version at a time; set `kubernetes.version` to the newest v{major}.{next}.x first, upgrade, then go on"
    )]
    SkippedMinor { from: KubeVersion, to: KubeVersion, skipped: String, major: u32, next: u32 },
}

/// Checks the step from `from` to `to`: `Ok(false)` when there is nothing to upgrade.
pub fn check(from: KubeVersion, to: KubeVersion) -> Result<bool, Refusal> {
    if to < from {
        return Err(Refusal::Downgrade { from, to });
    }
    if to.minor > from.minor + 1 {
        let skipped = (from.minor + 1..to.minor).map(|m| format!("v{}.{m}", to.major)).collect::<Vec<_>>().join(", ");
        return Err(Refusal::SkippedMinor { from, to, skipped, major: to.major, next: from.minor + 1 });
    }
    Ok(to != from)
}

/// One step of an upgrade; `id` names the point where it starts (`kubeadm:<node>`,
/// `apply:<node>`, ...), in the log and in the state's record of finished steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    pub nodes: Vec<String>,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Health, the target's packages, certificates: refused here, before any change.
    Preflight,
    /// kubeadm unheld, upgraded, held again on one control plane.
    Kubeadm,
    /// `kubeadm upgrade plan` checked, then `kubeadm upgrade apply` on the first control plane,
    /// taken out of the endpoint while its API server and etcd restart.
    Apply,
    /// `kubeadm upgrade node` on another control plane, out of the endpoint meanwhile.
    ControlPlane,
    /// The node drained, kubelet and kubectl upgraded, the kubelet restarted, uncordoned.
    Kubelet,
    /// A batch of workers, at once: kubeadm and `kubeadm upgrade node`, drain, kubelet and
    /// kubectl, restart, uncordon.
    Workers,
    /// The new version recorded in the state.
    Record,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePlan {
    pub from: KubeVersion,
    pub to: KubeVersion,
    pub steps: Vec<Step>,
    /// How each control plane is taken out of the endpoint while it restarts.
    pub endpoint_drain: String,
    /// Risks the operator should know of before starting.
    pub warnings: Vec<String>,
}

/// Whether the backend's balancer is told when a control plane goes out of the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalancerDrain {
    /// Its plugin exports `endpoint` (contract 0.1.2): the balancer is told first.
    Told { backend: String },
    /// Its plugin does not export it.
    CannotBeTold { backend: String, contract: String },
    /// Its plugin was not loaded (not found, `--offline`), so it cannot be asked.
    NotFound { backend: String },
}

impl BalancerDrain {
    /// How a member goes out and comes back.
    fn description(&self) -> String {
        match self {
            BalancerDrain::Told { backend } => format!(
                "backend `{backend}` takes the member out of its balancer first and returns once it is drained (AWS: the NLB target deregistered), and puts it back last; then {}",
                crate::drain::DESCRIPTION
            ),
            _ => crate::drain::DESCRIPTION.to_string(),
        }
    }

    /// The risk an operator should know of before starting, if any.
    pub fn warning(&self) -> Option<String> {
        const RISK: &str = "hacluster takes the member out on the node only; a balancer that checks /readyz or retries refused connections (HAProxy as the libvirt backend renders it) sends no request to a restarting member, one that does neither (an AWS NLB) may until its health check notices";
        match self {
            BalancerDrain::Told { .. } => None,
            BalancerDrain::CannotBeTold { backend, contract } => Some(format!(
                "backend `{backend}` cannot be told to take a control plane out of its load balancer (its plugin, contract {contract}, does not export `endpoint`, new in contract 0.1.2): {RISK}"
            )),
            BalancerDrain::NotFound { backend } => Some(format!(
                "backend `{backend}`'s plugin was not loaded (not found, or --offline), so its load balancer cannot be told to take a control plane out: {RISK}"
            )),
        }
    }
}

/// The steps from `from` to the config's version; `Ok(None)` when the cluster is there.
pub fn plan(spec: &ClusterSpec, from: KubeVersion, balancer: &BalancerDrain) -> Result<Option<UpgradePlan>, Refusal> {
    let to = spec.kubernetes.version;
    if !check(from, to)? {
        return Ok(None);
    }
    let name = |n: &Node| n.name.to_string();
    let mut steps = vec![Step {
        id: "preflight".into(),
        kind: StepKind::Preflight,
        nodes: Vec::new(),
        description: format!(
            "check the cluster: it runs {from}; every node Ready, every etcd member started and voting, quorum, the endpoint answering; {to}'s packages offered by the repository; no certificate expiring within a day"
        ),
    }];
    for (i, cp) in spec.control_planes.iter().enumerate() {
        let n = name(cp);
        steps.push(Step {
            id: format!("kubeadm:{n}"),
            kind: StepKind::Kubeadm,
            nodes: vec![n.clone()],
            description: format!("{n}: kubeadm {to} (unhold, upgrade, hold)"),
        });
        if i == 0 {
            steps.push(Step {
                id: format!("apply:{n}"),
                kind: StepKind::Apply,
                nodes: vec![n.clone()],
                description: format!(
                    "{n}: `kubeadm upgrade plan {to}` checked; out of the endpoint; `kubeadm upgrade apply {to}` (control-plane components, etcd as kubeadm pins it, addons, certificates renewed); back in once /readyz and etcd answer"
                ),
            });
        } else {
            steps.push(Step {
                id: format!("node:{n}"),
                kind: StepKind::ControlPlane,
                nodes: vec![n.clone()],
                description: format!(
                    "{n}: out of the endpoint; `kubeadm upgrade node` (its control-plane components and etcd, certificates renewed); back in once /readyz and etcd answer"
                ),
            });
        }
        steps.push(Step {
            id: format!("kubelet:{n}"),
            kind: StepKind::Kubelet,
            nodes: vec![n.clone()],
            description: format!("{n}: drain; kubelet and kubectl {to}; restart the kubelet; uncordon"),
        });
    }
    let batch = spec.kubernetes.max_unavailable_workers.max(1) as usize;
    let batches: Vec<&[Node]> = spec.workers.chunks(batch).collect();
    for (i, b) in batches.iter().enumerate() {
        let nodes: Vec<String> = b.iter().map(name).collect();
        steps.push(Step {
            id: format!("workers:{}", nodes.join(",")),
            kind: StepKind::Workers,
            nodes: nodes.clone(),
            description: format!(
                "workers {}/{} ({}): kubeadm {to} and `kubeadm upgrade node`; drain; kubelet and kubectl {to}; restart the kubelet; uncordon",
                i + 1,
                batches.len(),
                nodes.join(", ")
            ),
        });
    }
    steps.push(Step {
        id: "record".into(),
        kind: StepKind::Record,
        nodes: Vec::new(),
        description: format!("record {to} as the cluster's version"),
    });
    // A backend that cannot be told is said before starting, so that an operator whose
    // balancer neither checks /readyz nor retries knows.
    let warnings = balancer.warning().into_iter().collect();
    Ok(Some(UpgradePlan { from, to, steps, endpoint_drain: balancer.description(), warnings }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        s.parse().unwrap()
    }

    #[test]
    fn one_minor_up_or_a_patch_is_an_upgrade_and_the_same_version_is_none() {
        assert_eq!(check(v("v1.36.3"), v("v1.37.2")), Ok(true));
        assert_eq!(check(v("v1.37.0"), v("v1.37.2")), Ok(true));
        assert_eq!(check(v("v1.37.2"), v("v1.37.2")), Ok(false));
    }

    #[test]
    fn a_skipped_minor_is_refused_and_names_what_to_do() {
        let e = check(v("v1.35.4"), v("v1.37.2")).unwrap_err();
        assert!(matches!(e, Refusal::SkippedMinor { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("skips v1.36"), "{text}");
        assert!(text.contains("newest v1.36.x first"), "{text}");
        let e = check(v("v1.33.0"), v("v1.36.1")).unwrap_err().to_string();
        assert!(e.contains("skips v1.34, v1.35"), "{e}");
    }

    #[test]
    fn only_a_balancer_that_cannot_be_told_is_warned_about() {
        let told = BalancerDrain::Told { backend: "aws".into() };
        assert_eq!(told.warning(), None);
        assert!(told.description().starts_with("backend `aws` takes the member out of its balancer first"));
        assert!(told.description().ends_with(crate::drain::DESCRIPTION));
        let old = BalancerDrain::CannotBeTold { backend: "mine".into(), contract: "0.1.1".into() };
        let w = old.warning().unwrap();
        assert!(w.contains("backend `mine` cannot be told") && w.contains("contract 0.1.1"), "{w}");
        assert_eq!(old.description(), crate::drain::DESCRIPTION);
        let gone = BalancerDrain::NotFound { backend: "aws".into() }.warning().unwrap();
        assert!(gone.contains("plugin was not loaded") && gone.contains("an AWS NLB"), "{gone}");
    }

    #[test]
    fn a_downgrade_is_refused_also_between_patches() {
        assert!(matches!(check(v("v1.37.2"), v("v1.36.3")), Err(Refusal::Downgrade { .. })));
        assert!(matches!(check(v("v1.37.2"), v("v1.37.1")), Err(Refusal::Downgrade { .. })));
    }
}

//! Rolling upgrades to the config's `kubernetes.version`, in the order kubeadm prescribes:
//! kubeadm then `kubeadm upgrade apply` on the first control plane, `kubeadm upgrade node` on
//! each other one at a time, each control plane's kubelet after it, then the workers in
//! batches; every control plane out of the endpoint while it restarts (`drain`).
//!
//! Refused before anything changes: a downgrade, a skipped minor, a target the repository does
//! not offer, an unhealthy cluster, a certificate about to expire. Every step checks the node
//! before it acts and is recorded in the state when done, so a run killed anywhere is resumed
//! by the next one, and a run on an upgraded cluster changes nothing.

pub mod plan;
pub mod scripts;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::bootstrap::{BootstrapError, jobs, kubectl, verify};
use crate::drain;
use crate::events::{Events, LogLevel};
use crate::infra::{Infrastructure, Machine};
use crate::model::{ClusterSpec, KubeVersion};
use crate::ssh::{Executor, Script, SshError, shell_quote};
use crate::state::{ClusterState, StateError, StateLock};
pub use plan::{BalancerDrain, Refusal, Step, StepKind, UpgradePlan};

const SRC: &str = "upgrade";

/// How long one `kubeadm upgrade apply`/`node` may take before this run stops waiting (it goes
/// on on the node; the next run waits for it).
const KUBEADM_LIMIT: Duration = Duration::from_secs(1800);
/// How long a restarted kubelet may take to report its version and Ready.
const READY_LIMIT: Duration = Duration::from_secs(300);
/// Certificates must outlive the upgrade by this much.
pub const CERT_MARGIN_SECS: i64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("upgrade refused, nothing was changed: {0}")]
    Precondition(String),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl UpgradeError {
    /// Whether the config asks for what cannot be done (exit 1), not a failure of the run.
    pub fn is_config(&self) -> bool {
        matches!(self, UpgradeError::Refused(_))
    }
}

/// An upgrade under way, in the state: what it goes from and to, and the steps done.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeRecord {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub completed: Vec<String>,
    /// Nodes this upgrade cordoned (a node the operator had cordoned stays cordoned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cordoned: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub from: KubeVersion,
    pub to: KubeVersion,
    /// Steps this run carried out (the others were done before it, or there was nothing to do).
    pub ran: Vec<String>,
    pub steps: usize,
    pub resumed: bool,
}

/// The version the running cluster is at, as far as an upgrade is concerned: its recorded
/// upgrade's start when one is under way, else the lowest of the control plane's
/// (kubeadm's ClusterConfiguration) and every kubelet's.
pub fn starting_version(
    record: Option<&UpgradeRecord>,
    to: KubeVersion,
    control_plane: KubeVersion,
    kubelets: &[KubeVersion],
) -> KubeVersion {
    if let Some(r) = record.filter(|r| r.to == to.to_string())
        && let Ok(v) = r.from.parse()
    {
        return v;
    }
    kubelets.iter().copied().chain([control_plane]).min().unwrap_or(control_plane)
}

/// A node as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    pub name: String,
    pub kubelet: Option<KubeVersion>,
    pub ready: bool,
    pub unschedulable: bool,
}

/// `kubectl get nodes -o json`, read for the upgrade.
pub fn parse_nodes(json: &str) -> Vec<NodeReport> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| NodeReport {
            name: n["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            kubelet: n["status"]["nodeInfo"]["kubeletVersion"].as_str().and_then(|s| s.parse().ok()),
            ready: n["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")),
            unschedulable: n["spec"]["unschedulable"].as_bool().unwrap_or(false),
        })
        .collect()
}

pub struct Upgrade<'a> {
    pub spec: &'a ClusterSpec,
    pub infra: &'a Infrastructure,
    pub exec: &'a Executor,
    pub events: Arc<dyn Events>,
    pub lock: &'a StateLock,
    /// The backend's balancer, when it can be told to drain a member.
    pub balancer: Option<&'a drain::Balancer<'a>>,
    state: Mutex<ClusterState>,
}

impl<'a> Upgrade<'a> {
    pub fn new(
        spec: &'a ClusterSpec,
        infra: &'a Infrastructure,
        exec: &'a Executor,
        events: Arc<dyn Events>,
        lock: &'a StateLock,
        state: ClusterState,
    ) -> Self {
        Upgrade { spec, infra, exec, events, lock, balancer: None, state: Mutex::new(state) }
    }

    /// Tells `balancer` too when a control plane goes out of the endpoint and back.
    pub fn with_balancer(mut self, balancer: Option<&'a drain::Balancer<'a>>) -> Self {
        self.balancer = balancer;
        self
    }

    fn info(&self, msg: &str) {
        self.events.log(SRC, LogLevel::Info, msg, &[]);
    }

    fn machine(&self, node: &str) -> Result<&'a Machine, BootstrapError> {
        self.infra.machine(node).ok_or_else(|| BootstrapError::NoMachine(node.to_string()))
    }

    fn init(&self) -> Result<&'a Machine, BootstrapError> {
        self.machine(self.spec.init_node().name.as_str())
    }

    fn failed(step: &'static str, node: &str, reason: impl Into<String>) -> BootstrapError {
        BootstrapError::Step { step, node: node.into(), reason: reason.into() }
    }

    async fn save(&self, f: impl FnOnce(&mut ClusterState)) -> Result<(), StateError> {
        let mut st = self.state.lock().await;
        f(&mut st);
        self.lock.save(&st)
    }

    /// The control plane's version and every node's report, asked through the first control
    /// plane (whose admin.conf reaches the API through the endpoint).
    async fn live(&self) -> Result<(KubeVersion, Vec<NodeReport>), UpgradeError> {
        let m = self.init()?;
        let out = self.exec.run(m, &Script::root("the cluster's version", scripts::cluster_version_query())).await?;
        let cp = scripts::parse_cluster_version(&out.stdout).ok_or_else(|| {
            Self::failed("upgrade", &m.name, "kubeadm's ClusterConfiguration names no kubernetesVersion")
        })?;
        let nodes = self.exec.run(m, &Script::root("list nodes", kubectl("get nodes -o json")).quiet()).await?;
        Ok((cp, parse_nodes(&nodes.stdout)))
    }

    /// The plan from where the cluster stands (`None`: it is at the config's version).
    pub async fn plan(&self) -> Result<Option<UpgradePlan>, UpgradeError> {
        let (cp, nodes) = self.live().await?;
        let kubelets: Vec<KubeVersion> = nodes.iter().filter_map(|n| n.kubelet).collect();
        let record = self.state.lock().await.upgrade.clone();
        let from = starting_version(record.as_ref(), self.spec.kubernetes.version, cp, &kubelets);
        let backend = self.spec.backend.name.to_string();
        let balancer = match self.balancer {
            Some(b) => BalancerDrain::Told { backend: b.backend().to_string() },
            None => BalancerDrain::NotFound { backend },
        };
        Ok(plan::plan(self.spec, from, &balancer)?)
    }

    pub async fn run(&self) -> Result<Outcome, UpgradeError> {
        let to = self.spec.kubernetes.version;
        let Some(plan) = self.plan().await? else {
            // At the target: the state says so too (a run killed after the last node).
            self.save(|st| {
                st.upgrade = None;
                if let Some(b) = st.bootstrap.as_mut() {
                    b.kubernetes_version = Some(to.to_string());
                }
            })
            .await?;
            return Ok(Outcome { from: to, to, ran: Vec::new(), steps: 0, resumed: false });
        };
        let total = plan.steps.len();
        let mut ran = Vec::new();
        let resumed = self.state.lock().await.upgrade.as_ref().is_some_and(|r| r.to == to.to_string());
        if resumed {
            self.info(&format!("resuming the upgrade from {} to {to} an earlier run began", plan.from));
        } else {
            // Checked before anything is recorded or changed: a refusal leaves no trace.
            let first = &plan.steps[0];
            self.info(&format!("upgrade step 1/{total}: {}: {}", first.id, first.description));
            self.preflight(&plan).await?;
            ran.push(first.id.clone());
            self.save(|st| {
                st.upgrade = Some(UpgradeRecord {
                    from: plan.from.to_string(),
                    to: to.to_string(),
                    completed: vec![first.id.clone()],
                    cordoned: Vec::new(),
                })
            })
            .await?;
        }
        for (i, step) in plan.steps.iter().enumerate() {
            let done = self.state.lock().await.upgrade.as_ref().is_some_and(|r| r.completed.contains(&step.id));
            if done {
                continue;
            }
            self.events.progress(SRC, "upgrade", i as u64, total as u64);
            self.info(&format!("upgrade step {}/{total}: {}: {}", i + 1, step.id, step.description));
            let started = std::time::Instant::now();
            match step.kind {
                // Run above, before the upgrade was recorded; a record without it is not ours.
                StepKind::Preflight => self.preflight(&plan).await?,
                StepKind::Kubeadm => self.packages(&step.nodes[0], &["kubeadm"]).await.map(|_| ())?,
                StepKind::Apply => self.control_plane(&step.nodes[0], true).await?,
                StepKind::ControlPlane => self.control_plane(&step.nodes[0], false).await?,
                StepKind::Kubelet => self.kubelet(&step.nodes[0], false).await?,
                StepKind::Workers => {
                    let batch = step.nodes.iter().map(|n| self.kubelet(n, true));
                    for r in join_all(batch).await {
                        r?;
                    }
                }
                StepKind::Record => {
                    self.save(|st| {
                        if let Some(b) = st.bootstrap.as_mut() {
                            b.kubernetes_version = Some(to.to_string());
                        }
                    })
                    .await?;
                }
            }
            self.info(&format!("upgrade step {}/{total} done in {:.1} s", i + 1, started.elapsed().as_secs_f64()));
            ran.push(step.id.clone());
            if step.kind == StepKind::Record {
                self.save(|st| st.upgrade = None).await?;
            } else {
                let id = step.id.clone();
                self.save(|st| {
                    if let Some(r) = st.upgrade.as_mut() {
                        r.completed.push(id);
                    }
                })
                .await?;
            }
        }
        self.events.progress(SRC, "upgrade", total as u64, total as u64);
        Ok(Outcome { from: plan.from, to, ran, steps: total, resumed })
    }

    /// The checks before anything changes.
    async fn preflight(&self, plan: &UpgradePlan) -> Result<(), UpgradeError> {
        let h = verify::health(self.spec, self.infra, self.exec).await;
        let mut problems = Vec::new();
        if !h.endpoint_ok {
            problems.push(format!("the API does not answer through the endpoint {}", h.endpoint));
        }
        for c in h.control_planes.iter().filter(|c| !c.apiserver || !c.etcd) {
            let what = match (c.apiserver, c.etcd) {
                (false, false) => "API server and etcd",
                (false, true) => "API server",
                _ => "etcd member",
            };
            problems.push(format!("{}: its {what} does not answer", c.name));
        }
        match &h.etcd_member_list {
            Some(list) => {
                for m in list.iter().filter(|m| !m.started || m.learner) {
                    let name = if m.name.is_empty() { m.peer_urls.join(",") } else { m.name.clone() };
                    let what = if m.started { "a learner, not voting" } else { "added and never started" };
                    problems.push(format!("etcd member {name} is {what}"));
                }
            }
            None => problems.push("etcd's member list could not be read".into()),
        }
        if !h.quorum_ok {
            problems.push(format!("etcd has {} healthy members of the {} its quorum needs", h.etcd_healthy, h.quorum));
        }
        let missing: Vec<String> = self
            .spec
            .control_planes
            .iter()
            .chain(&self.spec.workers)
            .map(|n| n.name.to_string())
            .filter(|n| !h.nodes_ready.contains(n))
            .collect();
        if !missing.is_empty() {
            problems.push(format!("not Ready: {}", missing.join(", ")));
        }
        if !problems.is_empty() {
            return Err(UpgradeError::Precondition(format!(
                "the cluster is not healthy ({}); `hacluster status` shows it, fix it first",
                problems.join("; ")
            )));
        }
        // The target's packages, from the repository the nodes will use.
        let m = self.init()?;
        let out =
            self.exec.run_unchecked(m, &Script::root("the target's packages", scripts::offered(self.spec))).await?;
        let offered: Vec<&str> = out.stdout.lines().map(str::trim).collect();
        let absent: Vec<&str> =
            ["kubeadm", "kubelet", "kubectl"].into_iter().filter(|p| !offered.contains(p)).collect();
        if out.status != 0 || !absent.is_empty() {
            return Err(UpgradeError::Precondition(format!(
                "the package repository {} does not offer {} at {} (asked from {}); set `kubernetes.version` to a version it has, or add it to the mirror",
                crate::bootstrap::scripts::package_repo(self.spec),
                if absent.is_empty() { "its index".to_string() } else { absent.join(", ") },
                plan.to,
                m.name
            )));
        }
        // Certificates that would expire before the upgrade renews them.
        for cp in &self.spec.control_planes {
            let m = self.machine(cp.name.as_str())?;
            let certs = crate::certs::read(self.exec, m).await?;
            if let Some(c) = certs.iter().find(|c| !c.external && c.residual_secs < CERT_MARGIN_SECS) {
                return Err(UpgradeError::Precondition(format!(
                    "{}: certificate {} expires {} ({}); renew it first with `hacluster certs renew`, or kubeadm's `certs renew` on that node",
                    cp.name,
                    c.name,
                    c.expires,
                    if c.residual_secs <= 0 { "expired" } else { "within a day" }
                )));
            }
        }
        self.info(&format!(
            "preflight: healthy ({} etcd members voting, {} nodes Ready), {} offered, no certificate expiring within a day; kubeadm renews the control planes' certificates as it upgrades them",
            h.etcd_members,
            h.nodes_ready.len(),
            plan.to
        ));
        Ok(())
    }

    /// kubeadm (and others) at the target on `node`; `true` when something was installed.
    async fn packages(&self, node: &str, names: &[&str]) -> Result<bool, UpgradeError> {
        let m = self.machine(node)?;
        let out = self
            .exec
            .run(
                m,
                &Script::root(
                    format!("{} {}", names.join(", "), self.spec.kubernetes.version),
                    scripts::packages(self.spec, names),
                )
                .timeout(Duration::from_secs(900)),
            )
            .await?;
        let changed = out.stdout.lines().any(|l| l.trim() == "changed");
        let now: Vec<&str> = out.stdout.lines().filter(|l| l.trim() != "changed").collect();
        self.info(&format!("{node}: {}{}", now.join(", "), if changed { "" } else { " (already)" }));
        Ok(changed)
    }

    /// `kubeadm upgrade apply` (`first`) or `node` on a control plane, out of the endpoint
    /// while it restarts, back in once it answers.
    async fn control_plane(&self, node: &str, first: bool) -> Result<(), UpgradeError> {
        let m = self.machine(node)?;
        let to = self.spec.kubernetes.version;
        let (name, proof) = (scripts::job_name(to), scripts::proof(to));
        let owner = self.state.lock().await.bootstrap.as_ref().map(|b| b.id.clone()).unwrap_or_default();
        let job = jobs::Job { name: &name, proof: &proof, owner: &owner, adopt_unowned: owner.is_empty() };
        let status = jobs::status(self.exec, m, &job).await?;
        if status != jobs::Status::Succeeded {
            if first && status == jobs::Status::None {
                let out = self
                    .exec
                    .run_unchecked(
                        m,
                        &Script::root("kubeadm upgrade plan", scripts::upgrade_plan(self.spec))
                            .timeout(Duration::from_secs(300)),
                    )
                    .await?;
                let apply = format!("kubeadm upgrade apply {to}");
                if out.status != 0 || !out.stdout.contains(&apply) {
                    let shown = crate::text::bounded(&crate::text::printable(out.stdout.trim()), 600);
                    return Err(Self::failed(
                        "kubeadm upgrade plan",
                        node,
                        format!("it does not offer `{apply}` (exit {}): {shown}", out.status),
                    )
                    .into());
                }
                self.info(&format!("{node}: `kubeadm upgrade plan {to}` offers `{apply}`"));
            }
            self.out_of_endpoint(m).await?;
            let what = if first { "kubeadm upgrade apply" } else { "kubeadm upgrade node" };
            self.info(&format!("{node}: {what} {to}"));
            let done =
                jobs::run(self.exec, m, &job, &scripts::upgrade_job(self.spec, first), &[], KUBEADM_LIMIT).await?;
            // kubeadm says which certificates it renewed; the operator hears that it did.
            let renewed = done.log.lines().filter(|l| l.contains("Renewing")).count();
            self.info(&format!("{node}: {what} {to} done; kubeadm renewed {renewed} certificate(s) as it upgraded"));
        }
        self.back_in(m).await
    }

    fn drain(&self) -> drain::Drain<'_> {
        drain::Drain { exec: self.exec, events: self.events.as_ref(), balancer: self.balancer }
    }

    async fn out_of_endpoint(&self, m: &Machine) -> Result<(), UpgradeError> {
        self.drain().take_out(m).await?;
        Ok(())
    }

    async fn back_in(&self, m: &Machine) -> Result<(), UpgradeError> {
        self.drain().put_back(m).await?;
        Ok(())
    }

    async fn node_report(&self, node: &str) -> Result<NodeReport, UpgradeError> {
        let init = self.init()?;
        let out = self
            .exec
            .run(
                init,
                &Script::root("node status", kubectl(&format!("get node {} -o json", shell_quote(node)))).quiet(),
            )
            .await?;
        let wrapped = format!("{{\"items\": [{}]}}", out.stdout);
        parse_nodes(&wrapped)
            .into_iter()
            .next()
            .ok_or_else(|| Self::failed("upgrade", node, "the API returned no Node object").into())
    }

    /// The kubelet (and, on a worker, kubeadm and `kubeadm upgrade node` first): drained,
    /// upgraded, restarted, uncordoned.
    async fn kubelet(&self, node: &str, worker: bool) -> Result<(), UpgradeError> {
        let to = self.spec.kubernetes.version;
        let m = self.machine(node)?;
        let init = self.init()?;
        if worker {
            self.packages(node, &["kubeadm"]).await?;
            self.exec
                .run(
                    m,
                    &Script::root("kubeadm upgrade node", scripts::upgrade_worker(self.spec))
                        .timeout(Duration::from_secs(600)),
                )
                .await?;
        }
        let report = self.node_report(node).await?;
        let ours = self.state.lock().await.upgrade.as_ref().is_some_and(|r| r.cordoned.iter().any(|c| c == node));
        if report.kubelet == Some(to) && (!report.unschedulable || !ours) {
            if !worker {
                // A run killed while this control plane was out of the endpoint left it so.
                self.back_in(m).await?;
            }
            self.info(&format!("{node}: the kubelet runs {to}"));
            return Ok(());
        }
        // Cordoned by the operator before: drained, upgraded, and left cordoned.
        let operators = report.unschedulable && !ours;
        if !operators {
            let n = node.to_string();
            self.save(move |st| {
                if let Some(r) = st.upgrade.as_mut()
                    && !r.cordoned.contains(&n)
                {
                    r.cordoned.push(n);
                }
            })
            .await?;
        }
        let drain =
            kubectl(&format!("drain {} --ignore-daemonsets --delete-emptydir-data --timeout=600s", shell_quote(node)));
        let out =
            self.exec.run_unchecked(init, &Script::root("drain", drain).timeout(Duration::from_secs(660))).await?;
        if out.status != 0 {
            return Err(Self::failed(
                "drain",
                node,
                format!(
                    "{} (a PodDisruptionBudget that allows no eviction keeps a node from draining; the node stays cordoned, and the next `hacluster upgrade` tries again)",
                    crate::text::bounded(&crate::text::printable(out.stderr.trim()), 600)
                ),
            )
            .into());
        }
        self.info(&format!("{node}: drained"));
        let changed = self.packages(node, &["kubelet", "kubectl"]).await?;
        if (changed || report.kubelet != Some(to)) && worker {
            self.exec.run(m, &Script::root("restart the kubelet", scripts::RESTART_KUBELET)).await?;
        } else if changed || report.kubelet != Some(to) {
            // The new kubelet may restart the API server and etcd: out of the endpoint first.
            self.out_of_endpoint(m).await?;
            let out = self
                .exec
                .run(
                    m,
                    &Script::root("restart the kubelet", scripts::RESTART_CONTROL_PLANE_KUBELET)
                        .timeout(Duration::from_secs(300)),
                )
                .await?;
            self.info(&format!("{node}: kubelet restarted, {}", out.stdout.trim()));
        }
        let deadline = tokio::time::Instant::now() + READY_LIMIT;
        loop {
            let r = self.node_report(node).await?;
            if r.kubelet == Some(to) && r.ready {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Self::failed(
                    "upgrade",
                    node,
                    format!("its kubelet did not report {to} and Ready within {} s", READY_LIMIT.as_secs()),
                )
                .into());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if !worker {
            self.back_in(m).await?;
        }
        if operators {
            self.info(&format!("{node}: kubelet {to}, Ready; left cordoned, as it was before the upgrade"));
        } else {
            self.exec.run(init, &Script::root("uncordon", kubectl(&format!("uncordon {}", shell_quote(node))))).await?;
            let n = node.to_string();
            self.save(move |st| {
                if let Some(r) = st.upgrade.as_mut() {
                    r.cordoned.retain(|c| *c != n);
                }
            })
            .await?;
            self.info(&format!("{node}: kubelet {to}, Ready, uncordoned"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        s.parse().unwrap()
    }

    #[test]
    fn an_upgrade_under_way_starts_from_its_record_and_a_new_one_from_the_oldest_part() {
        let r = UpgradeRecord { from: "v1.36.3".into(), to: "v1.37.2".into(), ..Default::default() };
        // After `apply`, kubeadm's record says v1.37.2 already.
        assert_eq!(starting_version(Some(&r), v("v1.37.2"), v("v1.37.2"), &[v("v1.37.2")]), v("v1.36.3"));
        // Another target than the record's: the cluster's own versions count.
        assert_eq!(starting_version(Some(&r), v("v1.37.3"), v("v1.37.2"), &[v("v1.37.2")]), v("v1.37.2"));
        // No record (a state lost mid-upgrade): the oldest kubelet.
        assert_eq!(starting_version(None, v("v1.37.2"), v("v1.37.2"), &[v("v1.37.2"), v("v1.36.3")]), v("v1.36.3"));
        assert_eq!(starting_version(None, v("v1.37.2"), v("v1.36.3"), &[]), v("v1.36.3"));
    }

    #[test]
    fn nodes_are_read_with_version_readiness_and_cordon() {
        let json = r#"{"items":[
          {"metadata":{"name":"a"},"spec":{"unschedulable":true},"status":{"nodeInfo":{"kubeletVersion":"v1.36.3"},"conditions":[{"type":"Ready","status":"True"}]}},
          {"metadata":{"name":"b"},"spec":{},"status":{"nodeInfo":{"kubeletVersion":"v1.37.2"},"conditions":[{"type":"Ready","status":"Unknown"}]}}]}"#;
        let n = parse_nodes(json);
        assert_eq!(
            n,
            vec![
                NodeReport { name: "a".into(), kubelet: Some(v("v1.36.3")), ready: true, unschedulable: true },
                NodeReport { name: "b".into(), kubelet: Some(v("v1.37.2")), ready: false, unschedulable: false },
            ]
        );
    }
}

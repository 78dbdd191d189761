//! Removing the nodes the config no longer lists, one at a time: drain, out of the endpoint,
//! the etcd member through a healthy member (control planes), `kubeadm reset`, the Node
//! object; the backend then releases or destroys the machine. Each step is recorded when done
//! and checks before it acts.

use std::time::Duration;

use tokio::sync::Mutex;

use super::etcd::{AfterRemoval, remove_members_at};
use super::{MembershipError, Removals};
use crate::bootstrap::kubectl;
use crate::drain::Balancer;
use crate::events::{Events, LogLevel};
use crate::infra::{Infrastructure, Machine};
use crate::model::{ClusterSpec, NodeRole};
use crate::ssh::{Executor, Script, shell_quote};
use crate::state::{BootstrapRecord, ClusterState, StateLock};

/// How long a drain may wait for evictions (a PodDisruptionBudget can hold one back).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// A pod whose deletion is this far past its grace period is not waited for any more: on a
/// node that is down, evicted pods stay Terminating forever (no kubelet deletes them).
const SKIP_DELETED_AFTER: Duration = Duration::from_secs(30);

/// How long a control plane that stays may take to answer again (an etcd election after a
/// member went) before it counts as down.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

const SRC: &str = "membership";

/// Cordons and drains `node` unless its Node is gone; prints `gone` or kubectl's last lines.
pub fn drain_script(node: &str) -> String {
    let n = shell_quote(node);
    format!(
        r#"set -u
found=$({get}) || exit 1
if [ -z "$found" ]; then echo gone; exit 0; fi
out=$({drain} 2>&1); rc=$?
printf '%s\n' "$out" | tail -n 8
exit $rc
"#,
        get = kubectl(&format!("get node {n} --ignore-not-found -o name")),
        drain = kubectl(&format!(
            "drain {n} --ignore-daemonsets --delete-emptydir-data --skip-wait-for-delete-timeout={} --timeout={}s",
            SKIP_DELETED_AFTER.as_secs(),
            DRAIN_LIMIT.as_secs()
        )),
    )
}

/// On a machine that leaves the cluster (`leaving`: its kubelet is also stopped and disabled),
/// or that joins again as a new one: kubeadm's own cleanup, with the etcd member phase skipped
/// (the member is removed through a healthy one first) and, on a control plane, etcd's data
/// emptied instead (kubeadm does that only in the skipped phase) in the data directory its
/// manifest names; hacluster's job records and endpoint rule removed.
pub fn reset_script(role: NodeRole, leaving: bool) -> String {
    let etcd = if role == NodeRole::ControlPlane {
        r#"data=$(sed -n 's/.*--data-dir=//p' /etc/kubernetes/manifests/etcd.yaml 2>/dev/null | head -n 1)
data=${data:-/var/lib/etcd}
"#
    } else {
        "data=\n"
    };
    let kubelet = if leaving { "systemctl disable --now kubelet >/dev/null 2>&1 || true\n" } else { "" };
    format!(
        r#"set -u
{etcd}if [ -e /etc/kubernetes/kubelet.conf ] || [ -d /etc/kubernetes/manifests ] || {{ [ -n "$data" ] && [ -d "$data/member" ]; }}; then
  out=$(kubeadm reset -f --skip-phases=remove-etcd-member 2>&1) || {{ printf '%s\n' "$out" | tail -n 5 >&2; exit 1; }}
fi
# An absolute path with a name in it, never `/` nor one through `.` or `..`.
case "$data" in *'/.'*) ;; /*[!/]*) [ -d "$data" ] && find "$data" -mindepth 1 -delete ;; esac
{kubelet}rm -rf {dir}
{back}"#,
        dir = crate::bootstrap::kubeadm::NODE_DIR,
        back = crate::drain::back()
    )
}

pub struct Remove<'a> {
    pub spec: &'a ClusterSpec,
    /// The recorded infrastructure: it still has the machines that leave.
    pub infra: &'a Infrastructure,
    pub exec: &'a Executor,
    pub events: &'a dyn Events,
    pub lock: &'a StateLock,
    pub balancer: Option<&'a Balancer<'a>>,
    state: Mutex<ClusterState>,
}

impl<'a> Remove<'a> {
    pub fn new(
        spec: &'a ClusterSpec,
        infra: &'a Infrastructure,
        exec: &'a Executor,
        events: &'a dyn Events,
        lock: &'a StateLock,
        state: ClusterState,
    ) -> Self {
        Remove { spec, infra, exec, events, lock, balancer: None, state: Mutex::new(state) }
    }

    pub fn with_balancer(mut self, balancer: Option<&'a Balancer<'a>>) -> Self {
        self.balancer = balancer;
        self
    }

    fn info(&self, msg: &str) {
        self.events.log(SRC, LogLevel::Info, msg, &[]);
    }

    fn warn(&self, msg: &str) {
        self.events.log(SRC, LogLevel::Warn, msg, &[]);
    }

    async fn done(&self, id: &str) -> Result<(), MembershipError> {
        let mut st = self.state.lock().await;
        let rec = st.bootstrap.get_or_insert_with(BootstrapRecord::default);
        if !rec.completed.iter().any(|c| c == id) {
            rec.completed.push(id.to_string());
        }
        self.lock.save(&st)?;
        Ok(())
    }

    async fn is_done(&self, id: &str) -> bool {
        super::done(&*self.state.lock().await, id)
    }

    /// The control planes that stay, in the config's order.
    fn staying(&self) -> Vec<&'a Machine> {
        self.spec.control_planes.iter().filter_map(|n| self.infra.machine(n.name.as_str())).collect()
    }

    /// The first control plane that stays and answers (API server and etcd): where kubectl
    /// and etcdctl run. Asked again for a while: right after a member goes (the leader, it may
    /// be) etcd elects, and its health and the API servers' readyz say no for a moment.
    async fn admin(&self) -> Result<&'a Machine, MembershipError> {
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        loop {
            for m in self.staying() {
                if crate::drain::answers(self.exec, m).await.unwrap_or(false) {
                    return Ok(m);
                }
            }
            if tokio::time::Instant::now() > deadline {
                let names: Vec<&str> = self.staying().iter().map(|m| m.name.as_str()).collect();
                return Err(MembershipError::Unhealthy(names.join(", ")));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The control planes that stay and do not answer, after asking again for a while.
    async fn down(&self) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        loop {
            let mut down = Vec::new();
            for m in self.staying() {
                if !crate::drain::answers(self.exec, m).await.unwrap_or(false) {
                    down.push(m.name.clone());
                }
            }
            if down.is_empty() || tokio::time::Instant::now() > deadline {
                return down;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Removes every node of `r`, workers first, then control planes one at a time.
    pub async fn run(&self, r: &Removals) -> Result<(), MembershipError> {
        if r.is_empty() {
            return Ok(());
        }
        if !r.control_planes.is_empty() {
            // Refused up front, before the first step, when a control plane that stays is down.
            let down = self.down().await;
            if !down.is_empty() {
                return Err(MembershipError::Unhealthy(down.join(", ")));
            }
        }
        let total = (r.workers.len() + r.control_planes.len()) as u64;
        for (i, m) in r.in_order().enumerate() {
            self.events.progress(SRC, "remove nodes", i as u64, total);
            if self.is_done(&format!("remove:{}", m.name)).await {
                continue;
            }
            self.remove(m).await?;
        }
        self.events.progress(SRC, "remove nodes", total, total);
        Ok(())
    }

    async fn remove(&self, m: &Machine) -> Result<(), MembershipError> {
        let step = |what: &str| format!("remove:{}:{what}", m.name);
        self.info(&format!("removing {} ({})", m.name, m.role));
        if !self.is_done(&step("drain")).await {
            self.drain(m).await?;
            self.done(&step("drain")).await?;
        }
        if m.role == NodeRole::ControlPlane {
            if !self.is_done(&step("endpoint")).await {
                self.out_of_endpoint(m).await;
                self.done(&step("endpoint")).await?;
            }
            if !self.is_done(&step("member")).await {
                self.remove_member(m).await?;
                self.done(&step("member")).await?;
            }
        }
        if !self.is_done(&step("reset")).await {
            self.reset(m).await;
            self.done(&step("reset")).await?;
        }
        if !self.is_done(&step("node")).await {
            let admin = self.admin().await?;
            let script = kubectl(&format!("delete node {} --ignore-not-found", shell_quote(&m.name)));
            self.exec.run(admin, &Script::root("delete the Node", script)).await?;
            self.info(&format!("{}: Node object deleted", m.name));
            self.done(&step("node")).await?;
        }
        self.done(&format!("remove:{}", m.name)).await
    }

    async fn drain(&self, m: &Machine) -> Result<(), MembershipError> {
        let admin = self.admin().await?;
        let script =
            Script::root("drain the node", drain_script(&m.name)).timeout(DRAIN_LIMIT + Duration::from_secs(60));
        let out = self.exec.run_unchecked(admin, &script).await?;
        if out.status != 0 {
            let said = crate::text::bounded(&crate::text::printable(out.stdout.trim()), 1200);
            return Err(MembershipError::Drain {
                node: m.name.clone(),
                reason: format!(
                    "kubectl drain did not finish within {} s: {said} (a PodDisruptionBudget that allows no disruption holds evictions back: see `kubectl get pdb -A`; nothing was removed, and `hacluster up` tries again)",
                    DRAIN_LIMIT.as_secs()
                ),
            });
        }
        if out.stdout.trim() == "gone" {
            self.info(&format!("{}: no Node object (already deleted)", m.name));
        } else {
            self.info(&format!("{}: drained", m.name));
        }
        Ok(())
    }

    /// The balancer told first (when it can be), then the node; a node that does not answer
    /// is left to the balancer's health check.
    async fn out_of_endpoint(&self, m: &Machine) {
        if let Some(b) = self.balancer {
            match b.drain(&m.name).await {
                Ok(done) => self.info(&format!("{}: out of backend `{}`'s balancer: {done}", m.name, b.backend())),
                Err(e) => self.warn(&format!(
                    "{}: backend `{}` could not take it out of its balancer: {e}",
                    m.name,
                    b.backend()
                )),
            }
        }
        if let Err(e) = crate::drain::take_out(self.exec, self.events, m).await {
            self.warn(&format!("{}: could not refuse new API connections on the node ({e}); the balancer's health check takes it out once its API server stops", m.name));
        }
    }

    async fn remove_member(&self, m: &Machine) -> Result<(), MembershipError> {
        let admin = self.admin().await?;
        let list = crate::bootstrap::verify::member_list(self.exec, admin).await.ok_or_else(|| {
            MembershipError::Unhealthy(format!("{} (its etcd member list could not be read)", admin.name))
        })?;
        let after = AfterRemoval::of(&list, &m.private_address);
        if after.safe().is_none() {
            return Err(MembershipError::Quorum {
                node: m.name.clone(),
                voting: after.voting,
                started: after.started,
                why: if after.voting == 0 {
                    "the last member is never removed"
                } else {
                    "every member that stays must have started first, or one more failure would cost quorum"
                },
            });
        }
        let removed = remove_members_at(self.exec, admin, &m.private_address).await?;
        if removed.is_empty() {
            self.info(&format!("{}: its etcd member was already removed", m.name));
        }
        for r in removed {
            self.info(&format!(
                "{}: etcd member {} ({}) removed through {}; {} voting member(s) left, quorum {}",
                m.name,
                r.id,
                r.describe(),
                admin.name,
                after.voting,
                after.safe().map(|q| q.size()).unwrap_or_default()
            ));
        }
        Ok(())
    }

    async fn reset(&self, m: &Machine) {
        let script = Script::root("kubeadm reset", reset_script(m.role, true)).timeout(Duration::from_secs(300));
        match self.exec.run(m, &script).await {
            Ok(_) => self.info(&format!("{}: kubeadm reset, kubelet stopped", m.name)),
            Err(e) => self.warn(&format!(
                "{}: could not reset the machine ({e}); it leaves the cluster anyway (a machine the backend keeps, as `static` does, keeps its Kubernetes files until `kubeadm reset`)",
                m.name
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_skips_a_node_already_deleted_and_shows_kubectls_last_lines() {
        let s = drain_script("demo-worker-2");
        assert!(s.contains("get node 'demo-worker-2' --ignore-not-found -o name"), "{s}");
        assert!(
            s.contains("--ignore-daemonsets --delete-emptydir-data --skip-wait-for-delete-timeout=30 --timeout=300s"),
            "{s}"
        );
        assert!(s.contains("echo gone"));
        // A name is quoted, never pasted into the shell.
        assert!(drain_script("x; rm -rf /").contains("'x; rm -rf /'"));
    }

    #[test]
    fn the_reset_keeps_the_etcd_member_phase_off_and_removes_the_endpoint_rule() {
        let s = reset_script(NodeRole::ControlPlane, true);
        assert!(s.contains("kubeadm reset -f --skip-phases=remove-etcd-member"));
        assert!(s.contains("iptables -D"));
        assert!(s.contains("rm -rf /etc/kubernetes/hacluster"));
        assert!(s.contains("systemctl disable --now kubelet"));
        // A machine that joins again keeps its kubelet enabled (kubeadm join starts it).
        assert!(!reset_script(NodeRole::ControlPlane, false).contains("disable"));
        // A worker has no etcd data of the cluster's: /var/lib/etcd there is left alone.
        let w = reset_script(NodeRole::Worker, true);
        assert!(w.contains("data=\n") && !w.contains("/var/lib/etcd"), "{w}");
        // etcd's data goes too (kubeadm removes it in the phase that is skipped).
        assert!(s.contains("--data-dir=") && s.contains("find \"$data\" -mindepth 1 -delete"), "{s}");
    }
}

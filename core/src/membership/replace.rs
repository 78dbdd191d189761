//! Replacing a control plane whose machine died or no longer answers: its etcd member (through
//! a healthy one, when the others keep quorum without it) and its Node go first, then the
//! backend provisions the machine again and the bootstrap joins it as a new one. The
//! state records `replace:<node>` from the member's removal until the new member is healthy.

use super::MembershipError;
use super::etcd::{AfterRemoval, remove_members_at};
use crate::bootstrap::kubectl;
use crate::drain::Balancer;
use crate::events::{Events, LogLevel};
use crate::infra::{Infrastructure, Machine};
use crate::model::{ClusterSpec, NodeRole};
use crate::ssh::{Executor, Script, shell_quote};
use crate::state::{BootstrapRecord, ClusterState, StateLock};

/// The state's record of a replacement under way: `replace:<node>`.
pub const RECORD: &str = "replace:";

/// The state's record that the replaced machine was reset before its join: `replace-reset:<node>`.
pub const RESET_RECORD: &str = "replace-reset:";

const SRC: &str = "membership";

/// What `replace` did before the new machine joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub node: String,
    /// The etcd members removed (none when an earlier run had removed it).
    pub members: Vec<String>,
    /// The control plane etcd was asked through.
    pub via: String,
    /// Voting members left, all started.
    pub voting: u32,
}

pub struct Replace<'a> {
    pub spec: &'a ClusterSpec,
    /// The recorded infrastructure (the old machine's address and host key).
    pub infra: &'a Infrastructure,
    pub exec: &'a Executor,
    pub events: &'a dyn Events,
    pub lock: &'a StateLock,
    pub balancer: Option<&'a Balancer<'a>>,
}

impl Replace<'_> {
    fn info(&self, msg: &str) {
        self.events.log(SRC, LogLevel::Info, msg, &[]);
    }

    /// Checks that `node` is a control plane that does not answer, and that the others keep
    /// quorum without it; removes its etcd member and its Node, and records the replacement.
    /// Refused, with nothing changed, for a control plane that answers. `None` when an earlier
    /// run removed it already (the new machine's join, perhaps half done, is the bootstrap's).
    pub async fn remove_old(&self, state: &mut ClusterState, node: &str) -> Result<Option<Removed>, MembershipError> {
        let Some(m) = self.infra.machine(node).filter(|m| m.role == NodeRole::ControlPlane) else {
            let cps: Vec<&str> = self.spec.control_planes.iter().map(|n| n.name.as_str()).collect();
            return Err(MembershipError::NotReplaceable(format!(
                "`{node}` is not a control plane of cluster `{}` (its control planes: {}); a worker that died is replaced by `hacluster up` once the backend has a machine for it",
                self.spec.name,
                cps.join(", ")
            )));
        };
        if !self.spec.control_planes.iter().any(|n| n.name.as_str() == node) {
            return Err(MembershipError::NotReplaceable(format!(
                "`{node}` is no longer in the config: `hacluster up` removes it; replace is for a control plane that stays"
            )));
        }
        if state.bootstrap.iter().flat_map(|b| &b.completed).any(|c| *c == format!("{RECORD}{node}")) {
            self.info(&format!("{node}: its old etcd member and Node were removed by an earlier run"));
            return Ok(None);
        }
        if crate::drain::answers(self.exec, m).await.unwrap_or(false) {
            return Err(MembershipError::NotReplaceable(format!(
                "{node}'s API server and etcd member answer: it is healthy, there is nothing to replace (to move it to another machine, add a control plane and drop this one from the config) — nothing was changed"
            )));
        }
        let via = self.healthy_other(m).await?;
        let list = crate::bootstrap::verify::member_list(self.exec, via).await.ok_or_else(|| {
            MembershipError::Unhealthy(format!("{} (its etcd member list could not be read)", via.name))
        })?;
        let after = AfterRemoval::of(&list, &m.private_address);
        if after.safe().is_none() {
            return Err(MembershipError::Quorum {
                node: node.to_string(),
                voting: after.voting,
                started: after.started,
                why: "another member is down too: bring it back first (with quorum lost, only `hacluster restore` from a backup rebuilds the cluster)",
            });
        }
        if let Some(b) = self.balancer {
            match b.drain(node).await {
                Ok(done) => self.info(&format!("{node}: out of backend `{}`'s balancer: {done}", b.backend())),
                Err(e) => {
                    self.events.log(SRC, LogLevel::Warn, &format!("{node}: the balancer could not be told: {e}"), &[])
                }
            }
        }
        let removed = remove_members_at(self.exec, via, &m.private_address).await?;
        // Recorded at once: from here the node must join as a new machine.
        let rec = state.bootstrap.get_or_insert_with(BootstrapRecord::default);
        let record = format!("{RECORD}{node}");
        if !rec.completed.contains(&record) {
            rec.completed.push(record);
        }
        rec.completed.retain(|c| *c != format!("join:{node}") && *c != format!("{RESET_RECORD}{node}"));
        self.lock.save(state)?;
        for r in &removed {
            self.info(&format!("{node}: etcd member {} ({}) removed through {}", r.id, r.describe(), via.name));
        }
        let script = kubectl(&format!("delete node {} --ignore-not-found --wait=false", shell_quote(node)));
        self.exec.run(via, &Script::root("delete the Node", script)).await?;
        self.info(&format!("{node}: Node object deleted; {} voting etcd member(s) left, all started", after.voting));
        Ok(Some(Removed {
            node: node.to_string(),
            members: removed.into_iter().map(|r| r.id).collect(),
            via: via.name.clone(),
            voting: after.voting,
        }))
    }

    /// Another control plane whose API server and etcd answer.
    async fn healthy_other(&self, dead: &Machine) -> Result<&Machine, MembershipError> {
        for n in self.spec.control_planes.iter().filter(|n| n.name.as_str() != dead.name) {
            if let Some(m) = self.infra.machine(n.name.as_str())
                && crate::drain::answers(self.exec, m).await.unwrap_or(false)
            {
                return Ok(m);
            }
        }
        Err(MembershipError::NotReplaceable(format!(
            "no control plane other than {} answers: etcd has no quorum to remove a member with; rebuild the cluster from a backup (`hacluster restore`)",
            dead.name
        )))
    }
}

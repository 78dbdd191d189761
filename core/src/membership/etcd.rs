//! etcd membership through a healthy member: the list, and the removal of the member(s) at a
//! machine's address. One home for both, used by the bootstrap (a failed join's member), the
//! removal of control planes and the replacement of a dead one.

use crate::bootstrap::etcdctl;
use crate::bootstrap::kubeadm::etcd_peer_marker;
use crate::bootstrap::verify::EtcdMember;
use crate::infra::Machine;
use crate::model::Quorum;
use crate::ssh::{Executor, Script, SshError, shell_quote};

/// A member that was removed: its id, etcd's status word for it (`started`/`unstarted`) and
/// whether it was a learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub id: String,
    pub status: String,
    pub learner: bool,
}

impl Removed {
    /// How the member stood, in words.
    pub fn describe(&self) -> &'static str {
        match (self.status.as_str(), self.learner) {
            ("unstarted", true) => "a learner that never started",
            ("unstarted", false) => "a voting member that never started",
            (_, true) => "a learner, never promoted",
            (_, false) => "a voting member",
        }
    }
}

/// Removes every member whose peer URL is at `address`, asked through control plane `via`'s
/// etcd pod; nothing when there is none (idempotent). etcd itself refuses a removal that
/// would cost quorum.
pub async fn remove_members_at(exec: &Executor, via: &Machine, address: &str) -> Result<Vec<Removed>, SshError> {
    let etcdctl = etcdctl(&via.name);
    // `member list` prints `ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER`.
    let script = format!(
        r#"set -eu
members=$({etcdctl} member list | awk -F', ' -v p={peer} 'index($4, p) {{ print $1, $2, $6 }}')
printf '%s\n' "$members" | while read -r id status learner; do
  [ -n "$id" ] || continue
  {etcdctl} member remove "$id" >/dev/null
  echo "$id $status $learner"
done
"#,
        peer = shell_quote(&etcd_peer_marker(address))
    );
    let out = exec.run(via, &Script::root("remove an etcd member", script)).await?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            let (id, status) = (w.next()?, w.next()?);
            Some(Removed { id: id.into(), status: status.into(), learner: w.next() == Some("true") })
        })
        .collect())
}

/// What removing the member at `address` leaves: the voting members after it, and how many of
/// them have started (and so count towards quorum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterRemoval {
    pub voting: u32,
    pub started: u32,
}

impl AfterRemoval {
    pub fn of(members: &[EtcdMember], address: &str) -> Self {
        let marker = etcd_peer_marker(address);
        let stay: Vec<&EtcdMember> =
            members.iter().filter(|m| !m.learner && !m.peer_urls.iter().any(|u| u.contains(&marker))).collect();
        AfterRemoval { voting: stay.len() as u32, started: stay.iter().filter(|m| m.started).count() as u32 }
    }

    /// The quorum of the members left, when they keep it: every one of them has started (etcd
    /// lists it with client URLs; whether each answers now is asked of the control planes
    /// before: a member that is down while another goes leaves the cluster one failure from
    /// losing quorum), and at least one is left. etcd itself refuses a removal that would cost
    /// quorum.
    pub fn safe(self) -> Option<Quorum> {
        let q = Quorum::new(self.voting)?;
        (self.started == self.voting).then_some(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, ip: &str, started: bool, learner: bool) -> EtcdMember {
        EtcdMember { name: name.into(), peer_urls: vec![format!("https://{ip}:2380")], started, learner }
    }

    #[test]
    fn removing_one_of_five_healthy_members_keeps_a_quorum_of_three() {
        let ms: Vec<EtcdMember> =
            (1..=5).map(|i| member(&format!("m{i}"), &format!("10.0.0.{i}"), true, false)).collect();
        let after = AfterRemoval::of(&ms, "10.0.0.5");
        assert_eq!(after, AfterRemoval { voting: 4, started: 4 });
        assert_eq!(after.safe().map(|q| q.size()), Some(3));
        // The address must match the whole host: 10.0.0.1 is not 10.0.0.15.
        let after = AfterRemoval::of(&ms, "10.0.0.15");
        assert_eq!(after.voting, 5);
    }

    #[test]
    fn a_removal_waits_while_another_member_is_down_and_never_removes_the_last() {
        let ms = vec![
            member("a", "10.0.0.1", true, false),
            member("b", "10.0.0.2", false, false),
            member("c", "10.0.0.3", true, false),
        ];
        assert_eq!(AfterRemoval::of(&ms, "10.0.0.3").safe(), None);
        // Removing the member that is down is what `replace` does: the rest have started.
        assert_eq!(AfterRemoval::of(&ms, "10.0.0.2").safe().map(|q| q.members()), Some(2));
        let one = vec![member("a", "10.0.0.1", true, false)];
        assert_eq!(AfterRemoval::of(&one, "10.0.0.1").safe(), None);
        // Learners do not vote, and do not hold a removal back.
        let ms = vec![member("a", "10.0.0.1", true, false), member("l", "10.0.0.9", false, true)];
        assert_eq!(AfterRemoval::of(&ms, "10.0.0.9").safe().map(|q| q.members()), Some(1));
    }

    #[test]
    fn removed_members_are_described_as_etcd_listed_them() {
        let r = Removed { id: "8e9e05c52164694d".into(), status: "unstarted".into(), learner: true };
        assert_eq!(r.describe(), "a learner that never started");
        let r = Removed { id: "1".into(), status: "started".into(), learner: false };
        assert_eq!(r.describe(), "a voting member");
    }
}

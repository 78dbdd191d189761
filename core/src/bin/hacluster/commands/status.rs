use std::fmt;

use hacluster::bootstrap::verify::Health;
use hacluster::certs::{NodeCertificates, WARN_SECS};
use hacluster::infra::{ApiEndpoint, Machine};
use hacluster::model::NodeRole;
use hacluster::session;
use serde::Serialize;

use super::open::{self, Backend};
use super::{ConfigArgs, HostArgs};
use crate::error::{CliError, CliResult};
use crate::exit;
use crate::shell::Shell;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `status`: machines and roles from the state, and live health of nodes, etcd and endpoint.
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    let root = args.host.state_root();
    open::with_config(shell, &args.config, &args.host, Backend::Provisioned(&root), async |cfg| {
        let spec = &cfg.spec;
        let (state, h) = session::health(spec, &root, shell.events(), session::ssh_settings(spec)).await?;
        let certificates = session::certificates(spec, &root, shell.events(), session::ssh_settings(spec)).await?;
        let infra = state.infrastructure.as_ref().expect("health reads a provisioned cluster only");
        let completed = state.bootstrap.as_ref().map(|b| b.completed.clone()).unwrap_or_default();
        shell.print(&Status {
            cluster: spec.name.as_str(),
            backend: &state.backend,
            endpoint: &infra.endpoint,
            machines: &infra.machines,
            bootstrap_completed: &completed,
            health: &h,
            certificates: &certificates,
        });
        if h.all_ok() { Ok(()) } else { Err(CliError::code(exit::FAILED)) }
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    cluster: &'a str,
    backend: &'a str,
    endpoint: &'a ApiEndpoint,
    machines: &'a [Machine],
    bootstrap_completed: &'a [String],
    health: &'a Health,
    certificates: &'a [NodeCertificates],
}

pub fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAILED" }
}

impl fmt::Display for Status<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, completed) = (self.health, self.bootstrap_completed);
        writeln!(f, "Cluster {} — endpoint {} ({})", self.cluster, h.endpoint, mark(h.endpoint_ok))?;
        writeln!(f, "Machines:")?;
        for m in self.machines {
            let ready = if m.role == NodeRole::LoadBalancer {
                "-"
            } else if h.nodes_ready.contains(&m.name) {
                "Ready"
            } else {
                "not ready"
            };
            writeln!(f, "  {:<32} {:<14} {:<16} {}", m.name, m.role.to_string(), m.private_address, ready)?;
        }
        writeln!(f, "Control planes:")?;
        for c in &h.control_planes {
            writeln!(
                f,
                "  {:<32} apiserver {:<7} etcd {}{}",
                c.name,
                mark(c.apiserver),
                mark(c.etcd),
                c.problem.as_ref().map(|p| format!("  ({p})")).unwrap_or_default()
            )?;
        }
        writeln!(
            f,
            "etcd: {} of {} members healthy, quorum {} ({}), tolerates {} failure(s)",
            h.etcd_healthy,
            h.etcd_members,
            h.quorum,
            if h.quorum_ok { "kept" } else { "LOST" },
            h.tolerated_failures
        )?;
        match &h.etcd_member_list {
            Some(list) => {
                for m in list.iter().filter(|m| !m.started) {
                    // kubeadm adds a joining control plane's member as a learner, which does not
                    // vote; etcd takes one learner at a time, so it blocks every other join.
                    let why =
                        if m.learner { "a learner that never started" } else { "a voting member that never started" };
                    let effect = if m.learner {
                        "it does not count toward the quorum, but etcd takes no other learner while it is there, so no other control plane can join"
                    } else {
                        "it raises the quorum"
                    };
                    writeln!(
                        f,
                        "  etcd has {why} ({}): {effect}; `hacluster up` removes it before that node joins again",
                        m.peer_urls.join(", ")
                    )?;
                }
            }
            None => {
                writeln!(f, "  (etcd's member list could not be read; the count is the configured one)")?;
            }
        }
        writeln!(
            f,
            "Bootstrap steps done: {}",
            if completed.is_empty() { "none".into() } else { completed.join(", ") }
        )?;
        certificates_view(f, self.certificates)
    }
}

fn days(secs: i64) -> String {
    if secs <= 0 { "EXPIRED".into() } else { format!("{} days", secs / 86400) }
}

/// Per node, the certificate that expires first; a line of its own for each under 30 days.
pub fn certificates_view(f: &mut fmt::Formatter<'_>, nodes: &[NodeCertificates]) -> fmt::Result {
    writeln!(f, "Certificates (`hacluster certs renew` renews kubeadm's; kubelets rotate their own):")?;
    for n in nodes {
        if let Some(p) = &n.problem {
            writeln!(f, "  {:<32} could not be read: {p}", n.node)?;
            continue;
        }
        let leaves = n.all().filter(|c| !c.authority);
        match leaves.min_by_key(|c| c.residual_secs) {
            Some(c) => writeln!(
                f,
                "  {:<32} {} certificate(s), the first to expire: {} on {} ({})",
                n.node,
                n.all().count(),
                c.name,
                c.expires,
                days(c.residual_secs)
            )?,
            None => writeln!(f, "  {:<32} none found", n.node)?,
        }
        for c in n.all().filter(|c| c.residual_secs < WARN_SECS) {
            let what = if c.authority { "certificate authority" } else { "certificate" };
            writeln!(f, "    WARNING: {what} {} expires {} ({})", c.name, c.expires, days(c.residual_secs))?;
        }
    }
    Ok(())
}

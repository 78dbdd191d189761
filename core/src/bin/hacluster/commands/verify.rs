use std::fmt;

use hacluster::bootstrap::verify::{Chaos, Health};
use hacluster::session;
use serde::Serialize;

use super::open::{self, Backend};
use super::status::mark;
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
    /// Stop one control plane (kubelet and its static pods), check the API still answers
    /// through the endpoint and etcd keeps quorum, then restore it. Refused when stopping one
    /// would lose quorum.
    #[arg(long)]
    pub chaos: bool,
}

/// `verify`: the HA promise, checked (and with --chaos, demonstrated).
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    let root = args.host.state_root();
    open::with_config(shell, &args.config, &args.host, Backend::Provisioned(&root), async |cfg| {
        let spec = &cfg.spec;
        let ssh = || session::ssh_settings(spec);
        if args.chaos {
            session::restore_interrupted_chaos(spec, &root, shell.events(), ssh()).await?;
        }
        let (_, h) = session::health(spec, &root, shell.events(), ssh()).await?;
        // Chaos needs a working API and quorum to start from; it refuses itself when stopping
        // one more control plane would lose quorum.
        let chaos = if args.chaos && h.endpoint_ok && h.quorum_ok {
            Some(match session::chaos(spec, &root, shell.events(), ssh()).await {
                Ok(c) => ChaosOutcome::Ran(c),
                Err(e) => ChaosOutcome::Failed { error: e.to_string() },
            })
        } else {
            None
        };
        let chaos_ok = match &chaos {
            None => !args.chaos,
            Some(ChaosOutcome::Ran(c)) => c.api_answered && c.quorum_kept && c.restored,
            Some(ChaosOutcome::Failed { .. }) => false,
        };
        // An expired certificate is an outage waiting for the next restart: verify fails on it.
        let certificates = session::certificates(spec, &root, shell.events(), ssh()).await?;
        let expired: Vec<String> = certificates
            .iter()
            .flat_map(|n| n.all().filter(|c| c.residual_secs <= 0).map(move |c| format!("{}: {}", n.node, c.name)))
            .collect();
        let healthy = h.all_ok() && expired.is_empty();
        shell.print(&Verified {
            cluster: spec.name.as_str(),
            health: &h,
            expired_certificates: &expired,
            healthy,
            chaos,
            asked: args.chaos,
        });
        if healthy && chaos_ok { Ok(()) } else { Err(CliError::code(exit::FAILED)) }
    })
}

#[derive(Serialize)]
struct Verified<'a> {
    cluster: &'a str,
    health: &'a Health,
    /// `node: certificate` of every expired one.
    expired_certificates: &'a [String],
    healthy: bool,
    chaos: Option<ChaosOutcome>,
    /// Whether `--chaos` was given, to say why it did not run.
    #[serde(skip)]
    asked: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChaosOutcome {
    Ran(Chaos),
    Failed { error: String },
}

impl fmt::Display for Verified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.health;
        writeln!(f, "Cluster {}:", self.cluster)?;
        writeln!(f, "  API through the endpoint {:<30} {}", h.endpoint, mark(h.endpoint_ok))?;
        for c in &h.control_planes {
            writeln!(f, "  {:<40} apiserver {:<7} etcd {}", c.name, mark(c.apiserver), mark(c.etcd))?;
        }
        if h.quorum_ok {
            writeln!(
                f,
                "  etcd quorum kept: {} of {} healthy, {} needed; tolerates {} more failure(s)",
                h.etcd_healthy,
                h.etcd_members,
                h.quorum,
                h.etcd_healthy - h.quorum
            )?;
        } else {
            writeln!(
                f,
                "  etcd QUORUM LOST: {} of {} members healthy, {} needed — the cluster cannot accept writes until a member returns",
                h.etcd_healthy, h.etcd_members, h.quorum
            )?;
        }
        writeln!(f, "  nodes Ready: {} of {}", h.nodes_ready.len(), h.nodes_total)?;
        if self.expired_certificates.is_empty() {
            writeln!(f, "  certificates: none expired")?;
        } else {
            writeln!(
                f,
                "  certificates EXPIRED: {} (`hacluster certs renew -c FILE` renews kubeadm's)",
                self.expired_certificates.join(", ")
            )?;
        }
        match &self.chaos {
            Some(ChaosOutcome::Ran(c)) => {
                writeln!(f, "Chaos: stopped {} (static pods and kubelet)", c.stopped)?;
                writeln!(
                    f,
                    "  API through the endpoint: {}, longest gap {:.1} s (limit {:.0} s), {} of {} samples failed",
                    if c.api_answered { "kept" } else { "LOST" },
                    c.api_gap_secs,
                    c.api_gap_limit_secs,
                    c.api_failures,
                    c.api_samples
                )?;
                writeln!(
                    f,
                    "  etcd during: {} healthy, quorum {}",
                    c.etcd_healthy_during,
                    if c.quorum_kept { "kept" } else { "LOST" }
                )?;
                writeln!(f, "  restored: {} ({:.1} s)", mark(c.restored), c.restore_secs)?;
            }
            Some(ChaosOutcome::Failed { error: e }) => {
                writeln!(f, "Chaos: {e}")?;
            }
            None if self.asked => {
                writeln!(f, "Chaos: not run, the API or etcd quorum is already down")?;
            }
            None => {}
        }
        Ok(())
    }
}

use std::fmt;
use std::path::Path;

use hacluster::certs::Renewed;
use hacluster::session;
use serde::Serialize;

use super::open::{self, Backend};
use super::{ConfigArgs, HostArgs};
use crate::error::CliResult;
use crate::shell::Shell;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Renew kubeadm's certificates on every control plane, one at a time, each out of the
    /// endpoint while its components restart; rewrites the admin kubeconfig. `status` shows
    /// when each expires.
    Renew(Args),
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
}

pub fn exec(shell: &Shell, cmd: &Command) -> CliResult {
    match cmd {
        Command::Renew(args) => renew(shell, args),
    }
}

fn renew(shell: &Shell, args: &Args) -> CliResult {
    let root = args.host.state_root();
    open::with_config(shell, &args.config, &args.host, Backend::Optional, async |cfg| {
        let spec = &cfg.spec;
        open::warn_untold_balancer(shell, &cfg);
        let (renewed, kubeconfig) =
            session::renew_certificates(spec, &root, shell.events(), session::ssh_settings(spec), cfg.plugin.as_ref())
                .await?;
        shell.print(&RenewedView { cluster: spec.name.as_str(), renewed: &renewed, kubeconfig: &kubeconfig });
        Ok(())
    })
}

#[derive(Serialize)]
struct RenewedView<'a> {
    cluster: &'a str,
    renewed: &'a [Renewed],
    kubeconfig: &'a Path,
}

impl fmt::Display for RenewedView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Cluster {}: certificates renewed", self.cluster)?;
        for r in self.renewed {
            writeln!(f, "  {:<32} first expiry {} -> {}", r.node, r.before, r.after)?;
        }
        writeln!(f, "kubeconfig rewritten: {}", self.kubeconfig.display())
    }
}

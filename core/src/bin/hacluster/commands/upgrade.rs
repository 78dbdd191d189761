use std::fmt;

use hacluster::session::{self, RunError};
use hacluster::upgrade::Outcome;
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

/// `upgrade`: the cluster, rolled to the config's `kubernetes.version` (resumable).
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    let root = args.host.state_root();
    // The plugin, when found, tells its balancer (contract 0.1.2 `endpoint`).
    open::with_config(shell, &args.config, &args.host, Backend::Optional, async |cfg| {
        let spec = &cfg.spec;
        open::warn_untold_balancer(shell, &cfg);
        let plugin = cfg.plugin.as_ref();
        let o = match session::upgrade(spec, &root, shell.events(), session::ssh_settings(spec), plugin).await {
            Ok(o) => o,
            // The config asks for what cannot be done: say which file.
            Err(RunError::Upgrade(e)) if e.is_config() => {
                return Err(CliError::new(format!("{}: {e}", args.config.config.display()), exit::INVALID));
            }
            Err(e) => return Err(e.into()),
        };
        shell.print(&Upgraded { cluster: spec.name.as_str(), outcome: &o });
        Ok(())
    })
}

#[derive(Serialize)]
struct Upgraded<'a> {
    cluster: &'a str,
    #[serde(flatten)]
    outcome: &'a Outcome,
}

impl fmt::Display for Upgraded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.outcome;
        if o.steps == 0 {
            return writeln!(f, "Cluster {} runs {}: nothing to upgrade", self.cluster, o.to);
        }
        writeln!(
            f,
            "Cluster {} upgraded from {} to {}: {} steps, {} in this run{}",
            self.cluster,
            o.from,
            o.to,
            o.steps,
            o.ran.len(),
            if o.resumed { " (resumed)" } else { "" }
        )?;
        writeln!(f, "The control planes' certificates were renewed by kubeadm as it upgraded them.")
    }
}

use std::path::PathBuf;

use hacluster::session;

use super::open::{self, Backend};
use super::provision::Provisioned;
use super::{ConfigArgs, HostArgs};
use crate::error::CliResult;
use crate::shell::Shell;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
    /// Also add the cluster to this kubeconfig as a context (e.g. ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub merge_kubeconfig: Option<PathBuf>,
}

/// `up`: the nodes the config dropped removed (a running cluster), provision, then bootstrap.
/// Resumable: a second run continues where the first stopped.
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    open::with_config(shell, &args.config, &args.host, Backend::Required, async |cfg| {
        shell.diagnostics(&cfg.checked);
        let plugin = cfg.plugin();
        let root = args.host.state_root();
        session::refuse_version_change(&cfg.spec, &root)?;
        let spec = &cfg.spec;
        let removed =
            session::remove_dropped(spec, &root, shell.events(), session::ssh_settings(spec), Some(plugin)).await?;
        // JSON readers have the removal's events (`membership`), one per step.
        if !removed.is_empty() && !shell.is_json() {
            shell.note(&format!(
                "removed from the cluster: {}; the backend releases their machines now",
                removed.join(", ")
            ));
        }
        let p = session::provision(plugin, &cfg.spec, &root).await?;
        // People see the machines before the bootstrap; JSON has the bootstrap's result only.
        if !shell.is_json() {
            shell.text(&Provisioned::new(cfg.spec.name.as_str(), plugin, &p, cfg.host.http_counts()));
        }
        super::bootstrap::finish(shell, &cfg.spec, &root, args.merge_kubeconfig.as_deref(), None).await
    })
}

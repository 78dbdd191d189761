use std::path::PathBuf;

use hacluster::backup::{archive, restore::Restore};
use hacluster::session;

use super::open::{self, Backend};
use super::provision::Provisioned;
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
    /// The backup (`hacluster backup`).
    #[arg(long, value_name = "ARCHIVE")]
    pub from: PathBuf,
    /// Your age identity file (`AGE-SECRET-KEY-1…`, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub identity: PathBuf,
    /// Also add the cluster to this kubeconfig as a context (e.g. ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub merge_kubeconfig: Option<PathBuf>,
}

/// `restore`: a new cluster on the machines the backend provisions now, from a backup's etcd
/// snapshot and PKI. Everything that can refuse it does before a machine is made.
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    let ids = archive::identities(&args.identity).map_err(CliError::usage)?;
    let sealed =
        std::fs::read(&args.from).map_err(|e| CliError::usage(format!("cannot read {}: {e}", args.from.display())))?;
    let (manifest, files) = archive::open(&args.from, &sealed, &ids).map_err(CliError::usage)?;
    open::with_config(shell, &args.config, &args.host, Backend::Required, async |cfg| {
        shell.diagnostics(&cfg.checked);
        let restore = Restore::new(&cfg.spec, manifest, files)
            .map_err(|e| CliError::new(format!("{}: {e}", args.config.config.display()), exit::INVALID))?;
        let root = args.host.state_root();
        let plugin = cfg.plugin();
        session::begin_restore(&cfg.spec, &root, plugin.name(), &restore.manifest)?;
        let p = session::provision(plugin, &cfg.spec, &root).await?;
        if !shell.is_json() {
            shell.text(&Provisioned::new(cfg.spec.name.as_str(), plugin, &p, cfg.host.http_counts()));
        }
        super::bootstrap::finish(shell, &cfg.spec, &root, args.merge_kubeconfig.as_deref(), Some(&restore)).await
    })
}

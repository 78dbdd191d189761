use std::fmt;
use std::path::{Path, PathBuf};

use hacluster::model::ClusterSpec;
use hacluster::session;
use serde::Serialize;

use super::open::{self, Backend};
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

/// `bootstrap`: Kubernetes on infrastructure already provisioned (in the state).
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    let root = args.host.state_root();
    open::with_config(shell, &args.config, &args.host, Backend::Provisioned(&root), async |cfg| {
        session::refuse_version_change(&cfg.spec, &root)?;
        finish(shell, &cfg.spec, &root, args.merge_kubeconfig.as_deref(), None).await
    })
}

/// The bootstrap and its report, shared by `up`, `bootstrap` and `restore`.
pub async fn finish(
    shell: &Shell,
    spec: &ClusterSpec,
    root: &Path,
    merge: Option<&Path>,
    restore: Option<&hacluster::backup::restore::Restore>,
) -> CliResult {
    let b = session::bootstrap(spec, root, shell.events(), session::ssh_settings(spec), merge, restore).await?;
    shell.print(&Bootstrapped { cluster: spec.name.as_str(), endpoint: &b.endpoint, kubeconfig: &b.kubeconfig });
    Ok(())
}

#[derive(Serialize)]
struct Bootstrapped<'a> {
    cluster: &'a str,
    endpoint: &'a str,
    kubeconfig: &'a Path,
}

impl fmt::Display for Bootstrapped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Cluster {} is up: API at https://{}", self.cluster, self.endpoint)?;
        let path = self.kubeconfig.display();
        writeln!(f, "kubeconfig: {path} (export KUBECONFIG={path})")
    }
}

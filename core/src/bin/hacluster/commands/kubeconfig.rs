use std::fmt;
use std::path::{Path, PathBuf};

use hacluster::session;
use serde::Serialize;

use super::open::{self, Backend};
use super::{ConfigArgs, HostArgs};
use crate::error::{CliError, CliResult};
use crate::shell::Shell;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
    /// Add the cluster to this kubeconfig as a context (e.g. ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub merge: Option<PathBuf>,
}

/// `kubeconfig`: where the cluster's admin kubeconfig is (and optionally merge it).
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    let root = args.host.state_root();
    open::with_config(shell, &args.config, &args.host, Backend::Provisioned(&root), async |cfg| {
        let cluster = cfg.spec.name.as_str();
        let (_, state, _) = session::provisioned(&cfg.spec, &root).map_err(CliError::usage)?;
        let path = state.bootstrap.and_then(|b| b.kubeconfig).ok_or_else(|| {
            CliError::failed(format!("cluster {cluster} has no kubeconfig yet; run `hacluster up` (or `bootstrap`)"))
        })?;
        if let Some(target) = &args.merge {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
            hacluster::bootstrap::kubeconfig::merge_into(target, cluster, &text).map_err(CliError::failed)?;
        }
        shell.print(&Kubeconfig { cluster, kubeconfig: &path });
        Ok(())
    })
}

#[derive(Serialize)]
struct Kubeconfig<'a> {
    cluster: &'a str,
    kubeconfig: &'a Path,
}

impl fmt::Display for Kubeconfig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.kubeconfig.display())
    }
}

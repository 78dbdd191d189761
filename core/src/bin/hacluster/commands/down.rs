use std::fmt;
use std::path::Path;

use hacluster::plugin::HttpCounts;
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
}

/// `down`: the cluster's infrastructure removed through its backend, then its state.
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    open::with_config(shell, &args.config, &args.host, Backend::Required, async |cfg| {
        let plugin = cfg.plugin();
        let gone = session::destroy(plugin, &cfg.spec, &args.host.state_root()).await?;
        shell.print(&Destroyed {
            cluster: cfg.spec.name.as_str(),
            destroyed: true,
            kubeconfig_removed: gone.kubeconfig.as_deref(),
            http: cfg.host.http_counts(),
            backend: plugin.name(),
        });
        Ok(())
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Destroyed<'a> {
    cluster: &'a str,
    destroyed: bool,
    kubeconfig_removed: Option<&'a Path>,
    http: HttpCounts,
    #[serde(skip)]
    backend: &'a str,
}

impl fmt::Display for Destroyed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Cluster {} removed (backend {}); its state is deleted.", self.cluster, self.backend)?;
        if let Some(path) = self.kubeconfig_removed {
            // The admin kubeconfig went with the state; a copy merged elsewhere (`--merge`, not
            // recorded) is the user's to remove, by the names `merge_into` gave it.
            let cluster = self.cluster;
            writeln!(
                f,
                "Its admin kubeconfig {} is deleted. If you merged it into another kubeconfig (--merge), remove it there: kubectl config delete-context {cluster}; kubectl config delete-cluster {cluster}; kubectl config delete-user {cluster}-admin",
                path.display()
            )?;
        }
        Ok(())
    }
}

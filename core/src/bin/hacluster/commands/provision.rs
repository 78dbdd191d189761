use std::fmt;
use std::path::Path;

use hacluster::infra::{ApiEndpoint, Machine};
use hacluster::plugin::{HttpCounts, Plugin};
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
}

/// `provision`: the infrastructure only, through the backend; writes the cluster's state.
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    open::with_config(shell, &args.config, &args.host, Backend::Required, async |cfg| {
        shell.diagnostics(&cfg.checked);
        let plugin = cfg.plugin();
        // What the plugin sent, throttled or was refused helps explain a failure.
        let p = session::provision(plugin, &cfg.spec, &args.host.state_root())
            .await
            .map_err(|e| CliError::from(e).with_http(cfg.host.http_counts()))?;
        let http = cfg.host.http_counts();
        shell.print(&Provisioned::new(cfg.spec.name.as_str(), plugin, &p, http));
        if shell.verbose() > 0 && !shell.is_json() {
            shell.note(&format!(
                "http requests: {} sent, {} throttled, {} denied, {} answers lost",
                http.sent, http.throttled, http.denied, http.lost
            ));
        }
        Ok(())
    })
}

/// The infrastructure a backend provisioned; `up` shows its text before the bootstrap.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned<'a> {
    cluster: &'a str,
    backend: &'a str,
    endpoint: &'a ApiEndpoint,
    machines: &'a [Machine],
    state_dir: &'a Path,
    http: HttpCounts,
    #[serde(skip)]
    plugin_version: &'a str,
    #[serde(skip)]
    contract: &'a str,
}

impl<'a> Provisioned<'a> {
    pub fn new(cluster: &'a str, plugin: &'a Plugin, p: &'a session::Provisioned, http: HttpCounts) -> Self {
        Provisioned {
            cluster,
            backend: plugin.name(),
            endpoint: &p.infrastructure.endpoint,
            machines: &p.infrastructure.machines,
            state_dir: &p.state_dir,
            http,
            plugin_version: &plugin.info.version,
            contract: plugin.contract(),
        }
    }
}

impl fmt::Display for Provisioned<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Provisioned cluster {} with backend {} (plugin {}, contract {})",
            self.cluster, self.backend, self.plugin_version, self.contract
        )?;
        writeln!(f, "API endpoint: {}", self.endpoint)?;
        writeln!(f, "Machines:")?;
        for m in self.machines {
            let via =
                m.ssh.jump.as_ref().map(|j| format!(" via {}@{}:{}", j.user, j.address, j.port)).unwrap_or_default();
            writeln!(
                f,
                "  {:<32} {:<14} {:<16} ssh {}@{}:{}{}  {}",
                m.name,
                m.role.to_string(),
                m.private_address,
                m.ssh.user,
                m.ssh.address,
                m.ssh.port,
                via,
                m.provider_id
            )?;
        }
        writeln!(f, "State: {}", self.state_dir.join(hacluster::state::STATE_FILE).display())?;
        writeln!(f, "Pinned host keys: {}", self.state_dir.join("known_hosts").display())?;
        Ok(())
    }
}

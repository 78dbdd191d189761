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
    /// The control plane to replace (`<cluster>-master-<id>`): one whose API server or etcd
    /// member does not answer.
    pub node: String,
}

/// `replace`: a dead control plane's etcd member and Node removed (the others keeping quorum),
/// then the backend provisions its machine again and it joins as a new one (resumable).
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    open::with_config(shell, &args.config, &args.host, Backend::Required, async |cfg| {
        shell.diagnostics(&cfg.checked);
        let spec = &cfg.spec;
        let plugin = cfg.plugin();
        let root = args.host.state_root();
        session::refuse_version_change(spec, &root)?;
        let removed =
            session::replace(spec, &root, shell.events(), session::ssh_settings(spec), Some(plugin), &args.node)
                .await?;
        if !shell.is_json() {
            match &removed {
                Some(r) => shell.note(&format!(
                    "{}: old etcd member {} removed through {} ({} voting member(s) left, all started), Node deleted; provisioning its machine",
                    r.node,
                    if r.members.is_empty() { "(already gone)".to_string() } else { r.members.join(", ") },
                    r.via,
                    r.voting
                )),
                None => shell.note(&format!("{}: removed by an earlier run; provisioning its machine", args.node)),
            }
        }
        let p = session::provision(plugin, spec, &root).await?;
        if !shell.is_json() {
            shell.text(&Provisioned::new(spec.name.as_str(), plugin, &p, cfg.host.http_counts()));
        }
        super::bootstrap::finish(shell, spec, &root, None, None).await
    })
}

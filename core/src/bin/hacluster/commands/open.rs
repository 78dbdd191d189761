//! The step every command starts with: a plugin host and a runtime of its own, then the config
//! read and checked for its backend, and a stop with the findings when it is invalid.

use std::path::Path;

use hacluster::config::{Checked, Options};
use hacluster::model::ClusterSpec;
use hacluster::plugin::{Limits, NotFound, Plugin, PluginHost};
use hacluster::session::{self, Opened};

use super::{ConfigArgs, HostArgs, block_on};
use crate::error::{CliError, CliResult};
use crate::exit;
use crate::shell::Shell;

/// What a command needs of the config's backend.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    /// Its plugin must be found and loaded.
    Required,
    /// Its plugin's checks when it is found; the built-in profile of the backend otherwise.
    Optional,
    /// No plugin at all: the config alone.
    Offline,
    /// The backend recorded in the cluster's state under this root, for a cluster that may be
    /// provisioned.
    Provisioned(&'a Path),
}

/// A valid config, ready for the command's work.
pub struct Ready<'h> {
    pub host: &'h PluginHost,
    /// The findings, warnings only.
    pub checked: Checked,
    pub spec: ClusterSpec,
    pub plugin: Option<Plugin<'h>>,
    /// Why there is no plugin, when one was looked for.
    pub missing: Option<NotFound>,
}

impl<'h> Ready<'h> {
    /// The plugin of a config opened with [`Backend::Required`].
    pub fn plugin(&self) -> &Plugin<'h> {
        self.plugin.as_ref().expect("Backend::Required opens the plugin or fails")
    }
}

/// Before control planes go out of the endpoint: says so when the backend's balancer cannot be
/// told (its plugin lacks the `endpoint` export, or was not found).
pub fn warn_untold_balancer(shell: &Shell, cfg: &Ready<'_>) {
    if let Some(w) = session::balancer_drain(cfg.plugin.as_ref(), &cfg.spec).warning() {
        shell.note(&format!("warning: {w}"));
    }
}

/// Runs `work` with a plugin host whose events go to the shell, on a runtime of its own.
pub fn with_host(shell: &Shell, limits: Limits, work: impl AsyncFnOnce(&PluginHost) -> CliResult) -> CliResult {
    let host =
        PluginHost::new(shell.events(), limits, hacluster::plugin::default_cache_dir()).map_err(CliError::failed)?;
    block_on(work(&host))
}

/// Runs `work` on the config of `args`, once it is read and valid; an invalid config ends the
/// command with its findings and exit code 1.
pub fn with_config(
    shell: &Shell,
    args: &ConfigArgs,
    host: &HostArgs,
    backend: Backend<'_>,
    work: impl for<'h> AsyncFnOnce(Ready<'h>) -> CliResult,
) -> CliResult {
    with_host(shell, host.limits(), async |plugins| {
        let opened = open(plugins, args, backend).await?;
        let Some(spec) = opened.spec().cloned() else {
            shell.findings(&opened.checked);
            return Err(CliError::code(exit::INVALID));
        };
        let Opened { checked, plugin, missing } = opened;
        work(Ready { host: plugins, checked, spec, plugin, missing }).await
    })
}

/// Reads and checks the config, valid or not, with what the command needs of its backend.
pub async fn open<'h>(host: &'h PluginHost, args: &ConfigArgs, backend: Backend<'_>) -> Result<Opened<'h>, CliError> {
    let sel = args.selection();
    let opts = Options::default();
    let mut opened = match backend {
        Backend::Offline => {
            let checked = hacluster::config::load(&args.config, &opts).map_err(CliError::usage)?;
            Opened { checked, plugin: None, missing: None }
        }
        Backend::Required => session::open(host, &args.config, &sel, true, &opts).await?,
        Backend::Optional => session::open(host, &args.config, &sel, false, &opts).await?,
        Backend::Provisioned(root) => session::open_provisioned(host, &args.config, &sel, root, &opts).await?,
    };
    if let Some(p) = opened.plugin.as_mut() {
        p.grant_credentials(&args.grant_credentials);
    }
    Ok(opened)
}

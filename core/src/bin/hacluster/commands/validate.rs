use std::fmt;

use hacluster::model::{ClusterSpec, Endpoint};
use serde::Serialize;

use super::ConfigArgs;
use super::open::{self, Backend};
use crate::diagnostics::Findings;
use crate::error::{CliError, CliResult};
use crate::exit;
use crate::shell::Shell;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `validate`: every finding of the config, and what cluster it describes when it is valid.
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    open::with_host(shell, Default::default(), async |host| {
        let opened = open::open(host, &args.config, Backend::Optional).await?;
        let checked = &opened.checked;
        let valid = checked.is_valid();
        if !shell.is_json() {
            shell.diagnostics(checked);
            if let Some(nf) = &opened.missing
                && args.config.explicit()
            {
                shell.note(&format!("note: backend-specific checks skipped: {nf}"));
            }
        }
        shell.print(&Validated {
            findings: Findings::of(checked),
            cluster: opened.spec().map(Summary::of),
            backend_checks: opened.plugin.is_some(),
        });
        if valid { Ok(()) } else { Err(CliError::code(exit::INVALID)) }
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Validated<'a> {
    #[serde(flatten)]
    findings: Findings<'a>,
    cluster: Option<Summary<'a>>,
    backend_checks: bool,
}

impl fmt::Display for Validated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cluster {
            Some(summary) => writeln!(f, "{} is valid: {summary}", self.findings.file()),
            None => Ok(()),
        }
    }
}

/// The shape of a valid cluster, in one line of text.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    name: &'a str,
    backend: &'a str,
    control_planes: u32,
    quorum: u32,
    tolerated_failures: u32,
    workers: usize,
    load_balancers: usize,
    endpoint: &'a Endpoint,
    kubernetes_version: &'a hacluster::model::KubeVersion,
}

impl<'a> Summary<'a> {
    fn of(spec: &'a ClusterSpec) -> Self {
        Summary {
            name: spec.name.as_str(),
            backend: &spec.backend.name,
            control_planes: spec.quorum.members(),
            quorum: spec.quorum.size(),
            tolerated_failures: spec.quorum.tolerated_failures(),
            workers: spec.workers.len(),
            load_balancers: spec.load_balancers.len(),
            endpoint: &spec.endpoint,
            kubernetes_version: &spec.kubernetes.version,
        }
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} control plane(s) (etcd quorum {}, tolerates {}), {} worker(s), {} load balancer(s); endpoint: {}",
            self.control_planes,
            self.quorum,
            super::plan::tolerates(self.tolerated_failures),
            self.workers,
            self.load_balancers,
            self.endpoint
        )
    }
}

use std::path::{Path, PathBuf};

use hacluster::model::ClusterSpec;
use hacluster::session;

use super::{ConfigArgs, Ctx, HostArgs};
use crate::{Output, exit, render};

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

/// The bootstrap and its report, shared by `up` and `bootstrap`.
pub async fn finish(spec: &ClusterSpec, root: &Path, ctx: &Ctx, merge: Option<&Path>) -> u8 {
    let events = super::printer(ctx);
    match session::bootstrap(spec, root, events, session::ssh_settings(spec), merge).await {
        Ok(b) => {
            match ctx.output {
                Output::Json => render::print_json(&serde_json::json!({
                    "cluster": spec.name,
                    "endpoint": b.endpoint,
                    "kubeconfig": b.kubeconfig,
                })),
                Output::Text => {
                    outln!("Cluster {} is up: API at https://{}", spec.name, b.endpoint);
                    outln!("kubeconfig: {} (export KUBECONFIG={})", b.kubeconfig.display(), b.kubeconfig.display());
                }
            }
            exit::OK
        }
        Err(e) => {
            render::error(&e, ctx.output);
            if e.is_usage() { exit::USAGE } else { exit::FAILED }
        }
    }
}

/// `bootstrap`: Kubernetes on infrastructure already provisioned (in the state).
pub fn run(args: &Args, ctx: &Ctx) -> u8 {
    let Ok(host) = super::host(ctx, args.host.limits()) else { return exit::FAILED };
    super::block_on(async {
        let opened = match super::open_provisioned(&host, &args.config, &args.host, ctx).await {
            Ok(o) => o,
            Err(code) => return code,
        };
        if super::stop_if_invalid(&opened, ctx) {
            return exit::INVALID;
        }
        let spec = opened.spec().expect("valid");
        finish(spec, &args.host.state_root(), ctx, args.merge_kubeconfig.as_deref()).await
    })
}

use std::path::PathBuf;

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

/// `up`: provision, then bootstrap. Resumable: a second run continues where the first stopped.
pub fn run(args: &Args, ctx: &Ctx) -> u8 {
    let Ok(host) = super::host(ctx, args.host.limits()) else { return exit::FAILED };
    super::block_on(async {
        let opened = match super::open(&host, &args.config, true, ctx).await {
            Ok(o) => o,
            Err(code) => return code,
        };
        if super::stop_if_invalid(&opened, ctx) {
            return exit::INVALID;
        }
        if ctx.output == Output::Text {
            render::diagnostics(&opened.checked);
        }
        let spec = opened.spec().expect("valid");
        let plugin = opened.plugin.as_ref().expect("required");
        let root = args.host.state_root();
        let provisioned = match session::provision(plugin, spec, &root).await {
            Ok(p) => p,
            Err(e) => {
                render::error(&e, ctx.output);
                return super::code_for(&e);
            }
        };
        if ctx.output == Output::Text {
            render::infrastructure(spec, plugin, &provisioned);
        }
        super::bootstrap::finish(spec, &root, ctx, args.merge_kubeconfig.as_deref()).await
    })
}

use hacluster::session;

use super::{ConfigArgs, Ctx, HostArgs};
use crate::{Output, exit, render};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
}

/// `status`: machines and roles from the state, and live health of nodes, etcd and endpoint.
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
        match session::health(spec, &args.host.state_root(), super::printer(ctx), session::ssh_settings(spec)).await {
            Ok((state, h)) => {
                let infra = state.infrastructure.clone().expect("provisioned");
                let completed = state.bootstrap.as_ref().map(|b| b.completed.clone()).unwrap_or_default();
                match ctx.output {
                    Output::Json => render::print_json(&serde_json::json!({
                        "cluster": spec.name,
                        "backend": state.backend,
                        "endpoint": infra.endpoint,
                        "machines": infra.machines,
                        "bootstrapCompleted": completed,
                        "health": h,
                    })),
                    Output::Text => render::status(spec, &infra, &completed, &h),
                }
                if h.all_ok() { exit::OK } else { exit::FAILED }
            }
            Err(e) => {
                render::error(&e, ctx.output);
                if e.is_usage() { exit::USAGE } else { exit::FAILED }
            }
        }
    })
}

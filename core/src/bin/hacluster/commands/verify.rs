use hacluster::session;

use super::{ConfigArgs, Ctx, HostArgs};
use crate::{Output, exit, render};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
    /// Stop one control plane (kubelet and its static pods), check the API still answers
    /// through the endpoint and etcd keeps quorum, then restore it. Refused when stopping one
    /// would lose quorum.
    #[arg(long)]
    pub chaos: bool,
}

/// `verify`: the HA promise, checked (and with --chaos, demonstrated).
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
        let root = args.host.state_root();
        if args.chaos
            && let Err(e) =
                session::restore_interrupted_chaos(spec, &root, super::printer(ctx), session::ssh_settings(spec)).await
        {
            render::error(&e, ctx.output);
            return if e.is_usage() { exit::USAGE } else { exit::FAILED };
        }
        let h = match session::health(spec, &root, super::printer(ctx), session::ssh_settings(spec)).await {
            Ok((_, h)) => h,
            Err(e) => {
                render::error(&e, ctx.output);
                return if e.is_usage() { exit::USAGE } else { exit::FAILED };
            }
        };
        // Chaos needs a working API and quorum to start from; it refuses itself when stopping
        // one more control plane would lose quorum.
        let chaos = if args.chaos && h.endpoint_ok && h.quorum_ok {
            Some(session::chaos(spec, &root, super::printer(ctx), session::ssh_settings(spec)).await)
        } else {
            None
        };
        let chaos_ok = match &chaos {
            None => !args.chaos,
            Some(Ok(c)) => c.api_answered && c.quorum_kept && c.restored,
            Some(Err(_)) => false,
        };
        match ctx.output {
            Output::Json => render::print_json(&serde_json::json!({
                "cluster": spec.name,
                "health": h,
                "healthy": h.all_ok(),
                "chaos": chaos.as_ref().map(|c| match c {
                    Ok(c) => serde_json::to_value(c).expect("serializes"),
                    Err(e) => serde_json::json!({"error": e.to_string()}),
                }),
            })),
            Output::Text => render::verify(spec, &h, chaos.as_ref(), args.chaos),
        }
        if h.all_ok() && chaos_ok { exit::OK } else { exit::FAILED }
    })
}

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
        match session::provision(plugin, spec, &args.host.state_root()).await {
            Ok(p) => {
                match ctx.output {
                    Output::Json => render::print_json(&serde_json::json!({
                        "cluster": spec.name,
                        "backend": plugin.name(),
                        "endpoint": p.infrastructure.endpoint,
                        "machines": p.infrastructure.machines,
                        "stateDir": p.state_dir,
                        "http": host.http_counts(),
                    })),
                    Output::Text => {
                        render::infrastructure(spec, plugin, &p);
                        if ctx.verbose > 0 {
                            let h = host.http_counts();
                            errln!(
                                "http requests: {} sent, {} throttled, {} denied, {} answers lost",
                                h.sent,
                                h.throttled,
                                h.denied,
                                h.lost
                            );
                        }
                    }
                }
                exit::OK
            }
            Err(e) => {
                match ctx.output {
                    // What the plugin sent, throttled or was refused helps explain the failure.
                    Output::Json => {
                        render::print_json(&serde_json::json!({"error": e.to_string(), "http": host.http_counts()}))
                    }
                    Output::Text => render::error(&e, ctx.output),
                }
                super::code_for(&e)
            }
        }
    })
}

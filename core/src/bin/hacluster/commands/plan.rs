use hacluster::plan::Plan;
use hacluster::session;

use super::{ConfigArgs, Ctx, HostArgs};
use crate::{Output, exit, render};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
    /// Do not run the backend plugin: no provider or hypervisor calls, no credentials needed.
    /// Shows the topology, quorum, endpoint, ports and steps only.
    #[arg(long, conflicts_with_all = ["backend", "plugin"])]
    pub offline: bool,
}

pub fn run(args: &Args, ctx: &Ctx) -> u8 {
    let Ok(host) = super::host(ctx, args.host.limits()) else { return exit::FAILED };
    super::runtime().block_on(async {
        // A backend named explicitly must be there; an inferred one is optional for a plan.
        let opened = if args.offline {
            match hacluster::config::load(&args.config.config, &Default::default()) {
                Ok(checked) => session::Opened { checked, plugin: None, missing: None },
                Err(e) => {
                    render::error(&e, ctx.output);
                    return exit::USAGE;
                }
            }
        } else {
            match super::open(&host, &args.config, args.config.explicit(), ctx).await {
                Ok(o) => o,
                Err(code) => return code,
            }
        };
        if super::stop_if_invalid(&opened, ctx) {
            return exit::INVALID;
        }
        let spec = opened.spec().expect("valid");
        let plan = Plan::for_cluster(spec);
        // With an inferred backend, a plan whose backend cannot look (no daemon, no
        // credentials) still shows the topology and says why the changes are missing.
        let mut unavailable = None;
        let changes = match &opened.plugin {
            Some(p) => match session::plan_changes(p, spec, &args.host.state_root()).await {
                Ok(c) => Some(c),
                Err(e) if !args.config.explicit() => {
                    unavailable = Some(e.to_string());
                    None
                }
                Err(e) => {
                    render::error(&e, ctx.output);
                    return super::code_for(&e);
                }
            },
            None => None,
        };
        match ctx.output {
            Output::Json => {
                let mut v = render::findings_json(&opened.checked);
                v["plan"] = serde_json::to_value(&plan).expect("plan serializes");
                v["changes"] = serde_json::to_value(&changes).expect("changes serialize");
                if let Some(u) = &unavailable {
                    v["changesUnavailable"] = u.clone().into();
                }
                render::print_json(&v);
            }
            Output::Text => {
                render::diagnostics(&opened.checked);
                render::plan(&plan);
                match (&changes, &opened.missing) {
                    (Some(c), _) => render::changes(c),
                    (None, _) if unavailable.is_some() => outln!(
                        "\nInfrastructure changes: not shown, the backend could not look: {}\n(--backend NAME makes this an error; --offline skips the backend)",
                        unavailable.as_deref().unwrap_or_default()
                    ),
                    (None, Some(nf)) => outln!("\nInfrastructure changes: not shown ({nf})"),
                    (None, None) => {}
                }
            }
        }
        exit::OK
    })
}

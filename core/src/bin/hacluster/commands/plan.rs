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
    /// Also write every file `up` would put on each machine into DIR, one directory per node
    /// (kubeadm configs, cloud-init user-data, the node preparation script, the backend's own
    /// files such as HAProxy and keepalived configs), secrets replaced by placeholders, with a
    /// README saying what each file is. DIR must be new, empty, or an earlier plan output.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(args: &Args, ctx: &Ctx) -> u8 {
    let Ok(host) = super::host(ctx, args.host.limits()) else { return exit::FAILED };
    super::block_on(async {
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
        let written = match &args.out {
            None => None,
            Some(dir) => {
                let no_backend = if args.offline {
                    Some("--offline: no backend plugin was run".to_string())
                } else {
                    unavailable.clone().or_else(|| opened.missing.as_ref().map(|m| m.to_string()))
                };
                let plugin = if unavailable.is_some() { None } else { opened.plugin.as_ref() };
                match session::plan_files(plugin, spec, &args.host.state_root(), no_backend).await {
                    Ok((files, secrets)) => {
                        let secrets: Vec<(&'static str, &str)> =
                            secrets.iter().map(|(w, s)| (*w, s.as_str())).collect();
                        if let Err(e) = hacluster::node_files::write(dir, spec, &files, &secrets) {
                            render::error(&e, ctx.output);
                            let usage = matches!(e, hacluster::node_files::OutError::NotOurs(_));
                            return if usage { exit::USAGE } else { exit::FAILED };
                        }
                        Some((dir, files))
                    }
                    Err(e) => {
                        render::error(&e, ctx.output);
                        return super::code_for(&e);
                    }
                }
            }
        };
        match ctx.output {
            Output::Json => {
                let mut v = render::findings_json(&opened.checked);
                v["plan"] = serde_json::to_value(&plan).expect("plan serializes");
                v["changes"] = serde_json::to_value(&changes).expect("changes serialize");
                if let Some(u) = &unavailable {
                    v["changesUnavailable"] = u.clone().into();
                }
                if let Some((dir, files)) = &written {
                    let mut out = serde_json::to_value(files).expect("files serialize");
                    out["dir"] = dir.display().to_string().into();
                    v["out"] = out;
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
                if let Some((dir, files)) = &written {
                    render::plan_files(dir, files);
                }
            }
        }
        exit::OK
    })
}

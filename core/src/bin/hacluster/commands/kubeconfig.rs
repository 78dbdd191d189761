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
    /// Add the cluster to this kubeconfig as a context (e.g. ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub merge: Option<PathBuf>,
}

/// `kubeconfig`: where the cluster's admin kubeconfig is (and optionally merge it).
pub fn run(args: &Args, ctx: &Ctx) -> u8 {
    let Ok(host) = super::host(ctx, args.host.limits()) else { return exit::FAILED };
    let opened = match super::block_on(super::open_provisioned(&host, &args.config, &args.host, ctx)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let checked = opened.checked;
    let Some(spec) = checked.spec.as_ref().filter(|_| checked.is_valid()) else {
        render::diagnostics(&checked);
        return exit::INVALID;
    };
    let state = match session::provisioned(spec, &args.host.state_root()) {
        Ok((_, s, _)) => s,
        Err(e) => {
            render::error(&e, ctx.output);
            return exit::USAGE;
        }
    };
    let Some(path) = state.bootstrap.and_then(|b| b.kubeconfig) else {
        errln!("error: cluster {} has no kubeconfig yet; run `hacluster up` (or `bootstrap`)", spec.name);
        return exit::FAILED;
    };
    if let Some(target) = &args.merge {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errln!("error: cannot read {}: {e}", path.display());
                return exit::USAGE;
            }
        };
        if let Err(e) = hacluster::bootstrap::kubeconfig::merge_into(target, spec.name.as_str(), &text) {
            render::error(&e, ctx.output);
            return exit::FAILED;
        }
    }
    match ctx.output {
        Output::Json => render::print_json(&serde_json::json!({"cluster": spec.name, "kubeconfig": path})),
        Output::Text => outln!("{}", path.display()),
    }
    exit::OK
}

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
        let spec = opened.spec().expect("valid");
        let plugin = opened.plugin.as_ref().expect("required");
        match session::destroy(plugin, spec, &args.host.state_root()).await {
            Ok(gone) => {
                match ctx.output {
                    Output::Json => render::print_json(&serde_json::json!({
                        "cluster": spec.name,
                        "destroyed": true,
                        "kubeconfigRemoved": gone.kubeconfig,
                        "http": host.http_counts()
                    })),
                    Output::Text => {
                        outln!("Cluster {} removed (backend {}); its state is deleted.", spec.name, plugin.name());
                        if let Some(path) = &gone.kubeconfig {
                            outln!("{}", kubeconfig_note(spec.name.as_str(), path));
                        }
                    }
                }
                exit::OK
            }
            Err(e) => {
                render::error(&e, ctx.output);
                super::code_for(&e)
            }
        }
    })
}

/// The admin kubeconfig went with the state; a copy merged elsewhere (`--merge`, not recorded)
/// is the user's to remove, by the names `merge_into` gave it.
fn kubeconfig_note(cluster: &str, path: &std::path::Path) -> String {
    format!(
        "Its admin kubeconfig {} is deleted. If you merged it into another kubeconfig (--merge), remove it there: kubectl config delete-context {cluster}; kubectl config delete-cluster {cluster}; kubectl config delete-user {cluster}-admin",
        path.display()
    )
}

use hacluster::plan::Plan;

use super::ConfigArgs;
use crate::{Output, exit, render};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(args: &Args, output: Output) -> u8 {
    let checked = match args.config.load(output) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(spec) = &checked.spec else {
        match output {
            Output::Json => render::print_json(&serde_json::json!({
                "file": checked.source.name,
                "valid": false,
                "errors": checked.located().iter().filter(|d| d.severity == hacluster::config::Severity::Error).collect::<Vec<_>>(),
            })),
            Output::Text => render::diagnostics(&checked),
        }
        return exit::INVALID;
    };
    let plan = Plan::for_cluster(spec);
    match output {
        Output::Json => render::print_json(&serde_json::json!({
            "file": checked.source.name,
            "valid": true,
            "warnings": checked.located(),
            "plan": plan,
        })),
        Output::Text => {
            render::diagnostics(&checked);
            render::plan(&plan);
        }
    }
    exit::OK
}

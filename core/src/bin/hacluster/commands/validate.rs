use serde_json::json;

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
    match output {
        Output::Json => {
            let summary = checked.spec.as_ref().map(render::summary_json);
            render::print_json(&json!({
                "file": checked.source.name,
                "valid": checked.is_valid(),
                "errors": checked.located().iter().filter(|d| d.severity == hacluster::config::Severity::Error).collect::<Vec<_>>(),
                "warnings": checked.located().iter().filter(|d| d.severity == hacluster::config::Severity::Warning).collect::<Vec<_>>(),
                "cluster": summary,
            }));
        }
        Output::Text => {
            render::diagnostics(&checked);
            if let Some(spec) = &checked.spec {
                println!("{} is valid: {}", checked.source.name, render::summary_line(spec));
            }
        }
    }
    if checked.is_valid() { exit::OK } else { exit::INVALID }
}

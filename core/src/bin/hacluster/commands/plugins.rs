use std::path::PathBuf;

use hacluster::plugin::{Plugin, PluginError, PluginHost, Silent, discovery};

use super::Ctx;
use crate::{Output, exit, render};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Plugins `--backend NAME` can find.
    List,
    /// Name, version, contract and the capabilities a plugin imports.
    Inspect {
        /// A plugin name, or a path to a .wasm component.
        plugin: String,
    },
}

fn describe(p: &Plugin) -> serde_json::Value {
    serde_json::json!({
        "name": p.name(),
        "path": p.found.path,
        "origin": p.found.origin,
        "sha256": p.sha256,
        "info": p.info,
        "contract": p.contract(),
        "imports": p.imports(),
        "rendersFiles": p.renders_files(),
        "compiledFromCache": p.from_cache(),
        "loadMillis": p.load_time().as_secs_f64() * 1e3,
    })
}

pub fn run(cmd: &Command, ctx: &Ctx) -> u8 {
    let host = match PluginHost::new(
        std::sync::Arc::new(Silent),
        Default::default(),
        hacluster::plugin::default_cache_dir(),
    ) {
        Ok(h) => h,
        Err(e) => {
            render::error(&e, ctx.output);
            return exit::FAILED;
        }
    };
    super::block_on(async {
        match cmd {
            Command::List => {
                let mut rows = Vec::new();
                for f in discovery::list() {
                    match host.load(&f).await {
                        Ok(p) => rows.push(describe(&p)),
                        Err(e) => rows.push(serde_json::json!({"name": f.name, "path": f.path, "origin": f.origin, "error": e.to_string()})),
                    }
                }
                match ctx.output {
                    Output::Json => render::print_json(&serde_json::Value::Array(rows)),
                    Output::Text => render::plugin_list(&rows),
                }
                exit::OK
            }
            Command::Inspect { plugin } => {
                let path = PathBuf::from(plugin);
                let found = if plugin.ends_with(".wasm") || path.is_file() {
                    Ok(discovery::from_path(&path))
                } else {
                    discovery::resolve(plugin)
                };
                let loaded = match found {
                    Ok(f) => host.load(&f).await,
                    Err(nf) => Err(PluginError::from(nf)),
                };
                match loaded {
                    Ok(p) => {
                        match ctx.output {
                            Output::Json => render::print_json(&describe(&p)),
                            Output::Text => render::plugin_inspect(&describe(&p)),
                        }
                        exit::OK
                    }
                    Err(e) => {
                        render::error(&e, ctx.output);
                        match e {
                            PluginError::NotFound(_) | PluginError::Read { .. } => exit::USAGE,
                            _ => exit::FAILED,
                        }
                    }
                }
            }
        }
    })
}

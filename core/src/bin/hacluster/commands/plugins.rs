use std::fmt;
use std::path::PathBuf;

use hacluster::plugin::discovery::{self, Origin};
use hacluster::plugin::{Import, Plugin, PluginError, PluginHost, PluginInfo, Silent};
use serde::Serialize;

use crate::error::{CliError, CliResult};
use crate::shell::Shell;

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

pub fn exec(shell: &Shell, cmd: &Command) -> CliResult {
    // Loading a plugin to describe it runs none of its code: nothing to show of its events.
    let host = PluginHost::new(std::sync::Arc::new(Silent), Default::default(), hacluster::plugin::default_cache_dir())
        .map_err(CliError::failed)?;
    super::block_on(async {
        match cmd {
            Command::List => {
                let mut rows = Vec::new();
                for f in discovery::list() {
                    rows.push(match host.load(&f).await {
                        Ok(p) => Row::Loaded(Description::of(&p)),
                        Err(e) => Row::Unusable { name: f.name, path: f.path, origin: f.origin, error: e.to_string() },
                    });
                }
                shell.print(&Listed(rows));
            }
            Command::Inspect { plugin } => {
                let path = PathBuf::from(plugin);
                let found = if plugin.ends_with(".wasm") || path.is_file() {
                    discovery::from_path(&path)
                } else {
                    discovery::resolve(plugin).map_err(PluginError::from)?
                };
                shell.print(&Description::of(&host.load(&found).await?));
            }
        }
        Ok(())
    })
}

/// What a loaded plugin is and asks for.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    name: String,
    path: PathBuf,
    origin: Origin,
    sha256: String,
    info: PluginInfo,
    contract: String,
    imports: Vec<Import>,
    renders_files: bool,
    drains_endpoint: bool,
    compiled_from_cache: bool,
    load_millis: f64,
}

impl Description {
    fn of(p: &Plugin) -> Self {
        Description {
            name: p.name().to_string(),
            path: p.found.path.clone(),
            origin: p.found.origin,
            sha256: p.sha256.clone(),
            info: p.info.clone(),
            contract: p.contract().to_string(),
            imports: p.imports(),
            renders_files: p.renders_files(),
            drains_endpoint: p.drains_endpoint(),
            compiled_from_cache: p.from_cache(),
            load_millis: p.load_time().as_secs_f64() * 1e3,
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Row {
    Loaded(Description),
    Unusable { name: String, path: PathBuf, origin: Origin, error: String },
}

#[derive(Serialize)]
#[serde(transparent)]
struct Listed(Vec<Row>);

/// The origin as JSON spells it.
fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Builtin => "builtin",
        Origin::User => "user",
        Origin::Path => "path",
    }
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(
                f,
                "No plugins found. Built-in ones come from ./scripts/build-plugins; yours go in {}.",
                discovery::user_dir().display()
            );
        }
        for r in &self.0 {
            match r {
                Row::Unusable { name, path, error, .. } => {
                    writeln!(f, "{:<12} {}  (unusable: {})", name, path.display(), error)?
                }
                Row::Loaded(d) => writeln!(
                    f,
                    "{:<12} {:<8} contract {:<7} {:<8} {}",
                    d.name,
                    d.info.version,
                    d.contract,
                    origin_name(d.origin),
                    d.info.description
                )?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "name:        {}", self.name)?;
        writeln!(f, "version:     {}", self.info.version)?;
        writeln!(f, "contract:    hacluster:backend@{}", self.contract)?;
        writeln!(f, "description: {}", self.info.description)?;
        let caps = &self.info.supports;
        let supports: Vec<&str> = [
            ("vip", caps.vip),
            ("cloudLb", caps.cloud_lb),
            ("multiHost", caps.multi_host),
            ("dataDisks", caps.data_disks),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        writeln!(f, "supports:    {}", if supports.is_empty() { "-".into() } else { supports.join(", ") })?;
        let files = if self.renders_files {
            "renders the files it puts on machines (`files` export, shown by `plan --out`)"
        } else {
            "-"
        };
        writeln!(f, "files:       {files}")?;
        let endpoint = if self.drains_endpoint {
            "can be told to drain a control plane from its balancer (`endpoint` export)"
        } else {
            "- (upgrades and `certs renew` drain members on the node only)"
        };
        writeln!(f, "endpoint:    {endpoint}")?;
        writeln!(f, "path:        {} ({})", self.path.display(), origin_name(self.origin))?;
        writeln!(f, "sha256:      {}", self.sha256)?;
        writeln!(f, "imports (what it asks the host for):")?;
        for i in &self.imports {
            writeln!(f, "  {:<44} {}", i.interface, i.capability)?;
        }
        Ok(())
    }
}

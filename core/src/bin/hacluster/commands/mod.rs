pub mod completions;
pub mod plan;
pub mod schema;
pub mod validate;

use std::path::PathBuf;

use hacluster::config::{self, Checked, Options};
use hacluster::model::BackendProfile;

use crate::{Output, exit, render};

/// The arguments every config-reading command takes.
#[derive(clap::Args)]
pub struct ConfigArgs {
    /// Cluster config file (YAML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Backend to check the config for (default: inferred from the config; libvirt for
    /// Kubitect files).
    #[arg(long, short = 'b', value_name = "NAME")]
    pub backend: Option<String>,
}

impl ConfigArgs {
    /// Loads and checks the config, printing diagnostics; `Err(code)` when the command must
    /// stop with that exit code.
    pub fn load(&self, output: Output) -> Result<Checked, u8> {
        let opts = Options { backend: self.backend.as_deref().map(BackendProfile::builtin), ..Options::default() };
        match config::load(&self.config, &opts) {
            Ok(c) => Ok(c),
            Err(e) => {
                render::io_error(&e, output);
                Err(exit::USAGE)
            }
        }
    }
}

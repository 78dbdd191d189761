//! How a command ends when it does not succeed: the error, if it is still to be told, and the
//! exit code it carries. `main` prints it once, through the [`Shell`](crate::shell::Shell).

use hacluster::plugin::{HttpCounts, PluginError};
use hacluster::session::{RunError, SessionError};

use crate::exit;

pub type CliResult = Result<(), CliError>;

#[derive(Debug)]
pub struct CliError {
    /// `None` when the command already said why (a report with failures, invalid findings).
    pub error: Option<Box<dyn std::error::Error>>,
    pub code: u8,
    /// What the plugins sent over HTTP, shown with the error in JSON: it helps explain a
    /// failed provision.
    pub http: Option<HttpCounts>,
}

impl CliError {
    pub fn new(error: impl Into<Box<dyn std::error::Error>>, code: u8) -> Self {
        CliError { error: Some(error.into()), code, http: None }
    }

    /// A usage or I/O error: exit 2.
    pub fn usage(error: impl Into<Box<dyn std::error::Error>>) -> Self {
        Self::new(error, exit::USAGE)
    }

    /// The operation failed: exit 3.
    pub fn failed(error: impl Into<Box<dyn std::error::Error>>) -> Self {
        Self::new(error, exit::FAILED)
    }

    /// The command has reported what went wrong; only the exit code is left.
    pub fn code(code: u8) -> Self {
        CliError { error: None, code, http: None }
    }

    pub fn with_http(mut self, http: HttpCounts) -> Self {
        self.http = Some(http);
        self
    }
}

impl From<SessionError> for CliError {
    fn from(e: SessionError) -> Self {
        let code = if e.is_usage() { exit::USAGE } else { exit::FAILED };
        Self::new(e, code)
    }
}

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        let code = match &e {
            RunError::Upgrade(u) if u.is_config() => exit::INVALID,
            e if e.is_usage() => exit::USAGE,
            _ => exit::FAILED,
        };
        Self::new(e, code)
    }
}

impl From<PluginError> for CliError {
    fn from(e: PluginError) -> Self {
        let code = match e {
            PluginError::NotFound(_) | PluginError::Read { .. } => exit::USAGE,
            _ => exit::FAILED,
        };
        Self::new(e, code)
    }
}

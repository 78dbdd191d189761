//! Where what happens goes while a command runs: plugins' logs and progress, and the
//! bootstrap's and SSH's own. The CLI shows them as text or JSON lines; the library only
//! reports them. Its own module so that ssh, bootstrap and session report without reaching
//! into the plugin host.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where plugin logs and progress go (the CLI shows them as text or JSON lines).
pub trait Events: Send + Sync {
    fn log(&self, plugin: &str, level: LogLevel, message: &str, fields: &[(String, String)]);
    fn progress(&self, plugin: &str, step: &str, done: u64, total: u64);
}

/// Drops everything; for loading plugins just to inspect them.
pub struct Silent;

impl Events for Silent {
    fn log(&self, _: &str, _: LogLevel, _: &str, _: &[(String, String)]) {}
    fn progress(&self, _: &str, _: &str, _: u64, _: u64) {}
}

//! Logging, shown to the user with the backend's name (stdout and stderr are discarded).
//!
//! ```ignore
//! log::info("created", &[("kind", &"volume"), ("name", &name)]);
//! ```

use std::fmt::Display;

use crate::bindings::hacluster::backend::log::{self as host, Level};

/// A field of a log line: a name and anything that displays.
pub type Field<'a> = (&'a str, &'a dyn Display);

fn log(level: Level, message: &str, fields: &[Field]) {
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    host::log(level, message, &fields);
}

/// Detail for tracing a problem.
pub fn trace(message: &str, fields: &[Field]) {
    log(Level::Trace, message, fields);
}

/// Detail shown with `--verbose`.
pub fn debug(message: &str, fields: &[Field]) {
    log(Level::Debug, message, fields);
}

/// What the backend did.
pub fn info(message: &str, fields: &[Field]) {
    log(Level::Info, message, fields);
}

/// Something the user should look at.
pub fn warn(message: &str, fields: &[Field]) {
    log(Level::Warn, message, fields);
}

/// Something failed.
pub fn error(message: &str, fields: &[Field]) {
    log(Level::Error, message, fields);
}

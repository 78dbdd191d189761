//! The `log` import: a plugin's log lines, made safe for a terminal and bounded per call.

use super::HostState;
use super::bindings::hacluster::backend as iface;
use crate::events::LogLevel;

/// Log lines accepted per call; a plugin cannot flood the terminal.
const MAX_LOG_LINES: u32 = 10_000;
const MAX_LOG_LINE: usize = 8 << 10;
/// Fields of one log line, and the size of each key and value.
const MAX_LOG_FIELDS: usize = 32;
const MAX_FIELD_KEY: usize = 64;
const MAX_FIELD_VALUE: usize = 1 << 10;

impl iface::log::Host for HostState {
    async fn log(
        &mut self,
        level: iface::log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                self.events.log(
                    &self.plugin,
                    LogLevel::Warn,
                    "too many log lines; dropping the rest of this call's",
                    &[],
                );
            }
            return Ok(());
        }
        let level = match level {
            iface::log::Level::Trace => LogLevel::Trace,
            iface::log::Level::Debug => LogLevel::Debug,
            iface::log::Level::Info => LogLevel::Info,
            iface::log::Level::Warn => LogLevel::Warn,
            iface::log::Level::Error => LogLevel::Error,
        };
        // What a plugin says reaches the terminal: printable, secrets by shape masked, bounded.
        let message = crate::text::untrusted(&message, MAX_LOG_LINE);
        let cut = fields.len().saturating_sub(MAX_LOG_FIELDS);
        let mut fields: Vec<(String, String)> = fields
            .iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| (crate::text::untrusted(k, MAX_FIELD_KEY), crate::text::untrusted(v, MAX_FIELD_VALUE)))
            .collect();
        if cut > 0 {
            fields.push(("fields-cut".into(), cut.to_string()));
        }
        self.events.log(&self.plugin, level, &message, &fields);
        Ok(())
    }
}

//! Plugin logs and progress on the terminal: text lines (and progress bars on a terminal),
//! or JSON lines for machines. Everything goes to stderr; stdout carries the result.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use hacluster::plugin::{Events, LogLevel};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::Output;

pub struct Printer {
    output: Output,
    min_level: LogLevel,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl Printer {
    pub fn new(output: Output, verbose: u8) -> Self {
        let min_level = match verbose {
            0 => LogLevel::Info,
            1 => LogLevel::Debug,
            _ => LogLevel::Trace,
        };
        let bars = (output == Output::Text && std::io::stderr().is_terminal())
            .then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        Printer { output, min_level, bars }
    }

    /// One line on stderr, printed above the progress bars when they are shown.
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    fn json_line(&self, event: &EventLine) {
        self.line(&serde_json::to_string(event).expect("events serialize"));
    }
}

/// An event as a JSON line on stderr, for machines.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum EventLine<'a> {
    Log { plugin: &'a str, level: LogLevel, message: &'a str, fields: serde_json::Map<String, serde_json::Value> },
    Progress { plugin: &'a str, step: &'a str, done: u64, total: u64 },
}

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

impl Events for Printer {
    fn log(&self, plugin: &str, level: LogLevel, message: &str, fields: &[(String, String)]) {
        if level < self.min_level {
            return;
        }
        match self.output {
            Output::Json => {
                // A map: a key a plugin repeats is shown once, with its last value.
                let fields = fields.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
                self.json_line(&EventLine::Log { plugin, level, message, fields });
            }
            Output::Text => {
                let mut text = format!("[{plugin}] {}: {message}", level_name(level));
                for (k, v) in fields {
                    text.push_str(&format!(" {k}={v}"));
                }
                self.line(&text);
            }
        }
    }

    fn progress(&self, plugin: &str, step: &str, done: u64, total: u64) {
        match (&self.output, &self.bars) {
            (Output::Json, _) => self.json_line(&EventLine::Progress { plugin, step, done, total }),
            (Output::Text, Some((multi, bars))) => {
                let mut bars = bars.lock().expect("progress bars");
                let key = format!("{plugin}/{step}");
                let bar = bars.entry(key).or_insert_with(|| {
                    let b = multi.add(if total > 0 { ProgressBar::new(total) } else { ProgressBar::new_spinner() });
                    b.set_style(
                        ProgressStyle::with_template("{prefix} {msg} [{bar:30}] {pos}/{len} {elapsed}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    b.set_prefix(format!("[{plugin}]"));
                    b.set_message(step.to_string());
                    b
                });
                if total > 0 {
                    bar.set_length(total);
                }
                bar.set_position(done);
                if total > 0 && done >= total {
                    bar.finish();
                }
            }
            // Not a terminal: one line when a step completes.
            (Output::Text, None) => {
                if total > 0 && done == total {
                    self.line(&format!("[{plugin}] {step}: {done}/{total} done"));
                }
            }
        }
    }
}

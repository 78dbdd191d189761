//! All the CLI's output, in one place: results to stdout (text or JSON), errors, findings,
//! notes and the events of plugins and nodes to stderr.

use std::fmt::Display;
use std::io::Write as _;
use std::sync::Arc;

use hacluster::config::Checked;
use hacluster::plugin::{Events, HttpCounts};
use serde::Serialize;

use crate::error::CliError;
use crate::events::Printer;
use crate::{Output, diagnostics, exit};

pub struct Shell {
    output: Output,
    verbose: u8,
    /// One printer for the whole command, so there is one progress display however many
    /// steps report to it.
    events: Arc<Printer>,
}

impl Shell {
    pub fn new(output: Output, verbose: u8) -> Self {
        Shell { output, verbose, events: Arc::new(Printer::new(output, verbose)) }
    }

    pub fn is_json(&self) -> bool {
        self.output == Output::Json
    }

    pub fn verbose(&self) -> u8 {
        self.verbose
    }

    /// Where logs and progress of plugins and nodes go.
    pub fn events(&self) -> Arc<dyn Events> {
        self.events.clone()
    }

    /// A command's result: its JSON, or its text view.
    pub fn print<R: Serialize + Display>(&self, report: &R) {
        match self.output {
            Output::Json => self.json(report),
            Output::Text => self.text(report),
        }
    }

    /// The text view alone, for a step whose result only people read (JSON gets the final one).
    pub fn text(&self, view: &dyn Display) {
        let s = view.to_string();
        if !s.is_empty() {
            write_out(&s);
        }
    }

    /// JSON on stdout whatever `--output` says (the schema is JSON).
    pub fn json(&self, v: &impl Serialize) {
        write_out(&format!("{}\n", serde_json::to_string_pretty(v).expect("reports serialize")));
    }

    /// Raw bytes of a result on stdout (completion scripts).
    pub fn out(&self, s: &str) {
        write_out(s);
    }

    /// A line for people on stderr, above any progress bars.
    pub fn note(&self, line: &str) {
        self.events.line(line);
    }

    /// The findings of a config: as JSON on stdout, or with snippets on stderr.
    pub fn findings(&self, c: &Checked) {
        match self.output {
            Output::Json => self.json(&diagnostics::Findings::of(c)),
            Output::Text => diagnostics::print(c),
        }
    }

    /// The findings of a config for people, in text only (JSON results carry them where they
    /// belong).
    pub fn diagnostics(&self, c: &Checked) {
        if self.output == Output::Text {
            diagnostics::print(c);
        }
    }

    /// How a command failed: `error: ...` on stderr, or `{"error": ...}` on stdout.
    pub fn error(&self, e: &CliError) {
        let Some(error) = &e.error else { return };
        match self.output {
            Output::Json => self.json(&ErrorReport { error: error.to_string(), http: e.http }),
            Output::Text => {
                let _ = writeln!(std::io::stderr(), "error: {error}");
            }
        }
    }
}

#[derive(Serialize)]
struct ErrorReport {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpCounts>,
}

/// Writes a result to stdout. A closed pipe ends the program quietly with
/// [`exit::CLOSED_PIPE`]; any other write error is reported once and exits with USAGE (an I/O
/// error).
fn write_out(s: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(exit::CLOSED_PIPE);
        }
        let _ = writeln!(std::io::stderr(), "error: cannot write to standard output: {e}");
        std::process::exit(exit::USAGE as i32);
    }
}

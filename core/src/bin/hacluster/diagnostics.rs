//! Config findings for people (a `file:line:col` headline and a snippet of the file, through
//! miette) and for machines (`{file, valid, errors, warnings}`).

use std::fmt::Write as _;
use std::io::IsTerminal;

use hacluster::config::{Checked, Diagnostic, Located, Severity, SourceFile};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A config diagnostic as a miette report, so it prints with a snippet of the file.
#[derive(Debug)]
struct Report {
    d: Diagnostic,
    src: NamedSource<String>,
    label: Option<LabeledSpan>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.d.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.label.as_ref().map(|_| &self.src as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.label.clone().map(|l| Box::new(std::iter::once(l)) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
}

/// Prints every diagnostic to stderr: a `file:line:col` headline for grep and editors, then
/// the snippet, then a count.
pub fn print(c: &Checked) {
    if c.diagnostics.is_empty() {
        return;
    }
    let theme = if color() { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1).with_wrap_lines(false);
    let mut out = String::new();
    // Large inputs can produce thousands of findings; the first hundred with snippets are
    // enough to act on, the rest as one line each.
    for (i, d) in c.diagnostics.iter().enumerate() {
        let loc = Located::new(d, &c.source);
        let _ = writeln!(out, "{}", headline(&loc, i >= 100));
        if i < 100 {
            let report = to_report(d, &c.source);
            let _ = handler.render_report(&mut out, &report);
            out.push('\n');
        }
    }
    let errors = c.errors().count();
    let warnings = c.warnings().count();
    let _ = writeln!(out, "{}: {errors} error(s), {warnings} warning(s)", c.source.name);
    {
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), "{out}");
    }
}

/// `error[code]: file:line:col: field.path`, with the message when no snippet follows.
fn headline(l: &Located, with_message: bool) -> String {
    let sev = match l.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut h = format!("{sev}[{}]: {}:{}:{}: {}", l.code, l.file, l.line, l.column, l.path);
    if with_message {
        h.push_str(": ");
        h.push_str(&l.message);
    }
    h
}

fn to_report(d: &Diagnostic, src: &SourceFile) -> Report {
    let label = d.span.filter(|_| !src.text.is_empty()).map(|s| {
        let (offset, len) = src.byte_range(s);
        // Keep labels on one line so snippets stay short.
        let line_end = src.text[offset..].find('\n').map(|e| offset + e).unwrap_or(src.text.len());
        let len = len.min(line_end.saturating_sub(offset)).max(1);
        LabeledSpan::new(Some(d.path.to_string()), offset, len)
    });
    Report { d: d.clone(), src: NamedSource::new(&src.name, src.text.to_string()), label }
}

/// Config findings as JSON: `{file, valid, errors, warnings}`; other reports add to it.
#[derive(Serialize)]
pub struct Findings<'a> {
    file: &'a str,
    valid: bool,
    errors: Vec<Located>,
    warnings: Vec<Located>,
}

impl<'a> Findings<'a> {
    pub fn of(c: &'a Checked) -> Self {
        let (errors, warnings) = c.located().into_iter().partition(|d| d.severity == Severity::Error);
        Findings { file: &c.source.name, valid: c.is_valid(), errors, warnings }
    }

    pub fn file(&self) -> &str {
        self.file
    }
}

//! Diagnostics about a config file: what is wrong, where (file, line, column, field path),
//! and how to fix it. Errors and warnings share one type and are kept apart by severity.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::yaml::{Node, Pos, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One step of a field path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A path into the config, displayed as `cluster.nodes.master.instances[1].ip`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<PathSeg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Parses the display form (`a.b[2].c`); used by tests and by callers naming paths.
    pub fn parse(s: &str) -> Self {
        let mut segs = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(i) = rest.find('[') {
                segs.push(PathSeg::Key(rest[..i].to_string()));
                rest = &rest[i..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let end = stripped.find(']').unwrap_or(stripped.len());
                    if let Ok(n) = stripped[..end].parse() {
                        segs.push(PathSeg::Index(n));
                    }
                    rest = stripped.get(end + 1..).unwrap_or("");
                }
            } else {
                segs.push(PathSeg::Key(rest.to_string()));
            }
        }
        FieldPath(segs)
    }

    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(k.into()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(i));
        p
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier of the rule, e.g. `even-control-planes`.
    pub code: &'static str,
    pub path: FieldPath,
    pub message: String,
    pub help: Option<String>,
    /// Where in the file; `None` only when the file itself could not be read.
    pub span: Option<Span>,
}

impl Diagnostic {
    pub fn error(code: &'static str, path: FieldPath, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, code, path, message: message.into(), help: None, span: None }
    }

    pub fn warning(code: &'static str, path: FieldPath, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, path, message) }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The text of a config file and its name, shared by every diagnostic that points into it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
    line_starts: Arc<[usize]>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        SourceFile { name: name.into(), text, line_starts: line_starts.into() }
    }

    /// Byte offset of a parser position (which counts characters, not bytes).
    pub fn byte_offset(&self, pos: Pos) -> usize {
        let line = pos.line.max(1) - 1;
        let Some(&start) = self.line_starts.get(line) else {
            return self.text.len();
        };
        let line_text = &self.text[start..];
        match line_text.char_indices().nth(pos.col) {
            Some((i, _)) => start + i,
            None => self.text.len(),
        }
    }

    /// Byte range of a span, never empty so that a label has something to point at.
    pub fn byte_range(&self, span: Span) -> (usize, usize) {
        let start = self.byte_offset(span.start);
        let end = self.byte_offset(span.end).max(start);
        let len = (end - start).max(1);
        (start.min(self.text.len()), len)
    }
}

/// A diagnostic as shown to users and machines: with file, line and column spelled out.
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    pub severity: Severity,
    pub code: &'static str,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: FieldPath,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Located {
    pub fn new(d: &Diagnostic, file: &SourceFile) -> Self {
        let (line, column) = d.span.map(|s| (s.start.line, s.start.col + 1)).unwrap_or((0, 0));
        Located {
            severity: d.severity,
            code: d.code,
            file: file.name.clone(),
            line,
            column,
            path: d.path.clone(),
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}[{}]: {}:{}:{}: {}: {}",
            self.code, self.file, self.line, self.column, self.path, self.message
        )?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

/// Finds the source span for a field path in the parsed YAML tree.
///
/// A path that does not exist (a missing field) resolves to its nearest existing ancestor, so
/// that "missing field" errors still point at the mapping that should hold it.
pub fn span_of(root: &Node, path: &FieldPath) -> Span {
    let mut node = root;
    let mut key_span = None;
    for seg in &path.0 {
        let next = match seg {
            PathSeg::Key(k) => node.entry(k).map(|e| {
                key_span = Some(e.key_span);
                &e.value
            }),
            PathSeg::Index(i) => {
                key_span = None;
                node.index(*i)
            }
        };
        match next {
            Some(n) => node = n,
            None => return node.span,
        }
    }
    // An empty value (`key:` with nothing after it) has an empty span; point at the key.
    if node.span.start == node.span.end
        && let Some(k) = key_span
    {
        return k;
    }
    node.span
}

/// The span of the key itself (for unknown or ignored fields), falling back to the value.
pub fn key_span_of(root: &Node, path: &FieldPath) -> Span {
    let Some((PathSeg::Key(last), parent)) = path.0.split_last() else {
        return span_of(root, path);
    };
    let parent_path = FieldPath(parent.to_vec());
    let mut node = root;
    for seg in &parent_path.0 {
        let next = match seg {
            PathSeg::Key(k) => node.get(k),
            PathSeg::Index(i) => node.index(*i),
        };
        match next {
            Some(n) => node = n,
            None => return node.span,
        }
    }
    node.entry(last).map(|e| e.key_span).unwrap_or(node.span)
}

/// "Did you mean" for a misspelt name among the accepted ones.
pub fn did_you_mean<'a>(got: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = got.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        if c.to_ascii_lowercase() == lower {
            return Some(c);
        }
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_and_parse_round_trip() {
        let p = FieldPath::root().key("cluster").key("nodes").key("master").key("instances").index(1).key("ip");
        assert_eq!(p.to_string(), "cluster.nodes.master.instances[1].ip");
        assert_eq!(FieldPath::parse("cluster.nodes.master.instances[1].ip"), p);
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("instnces", ["default", "instances"]), Some("instances"));
        assert_eq!(did_you_mean("VIP", ["vip", "instances"]), Some("vip"));
        assert_eq!(did_you_mean("zzz", ["vip", "instances"]), None);
    }

    #[test]
    fn byte_offsets_count_characters() {
        let f = SourceFile::new("x", "a: é\nb: 1\n");
        assert_eq!(f.byte_offset(Pos { index: 8, line: 2, col: 3 }), 9);
    }
}

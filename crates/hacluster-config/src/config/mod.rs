//! Reading a cluster config: YAML text → structural check → typed raw config → semantic
//! validation → `ClusterSpec`. Every step adds diagnostics that point into the file.

pub mod diagnostic;
pub mod raw;
pub mod structural;
pub mod validate;
pub mod yaml;

use std::path::Path;
use std::sync::OnceLock;

pub use diagnostic::{Diagnostic, FieldPath, Located, Severity, SourceFile};
pub use validate::Options;

use crate::model::ClusterSpec;

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// The JSON Schema of the config (draft 2020-12), generated from the `raw` types.
pub fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut s = serde_json::to_value(schemars::schema_for!(raw::RawConfig)).expect("schema serializes");
        s["title"] = "hacluster cluster config".into();
        s
    })
}

/// The outcome of checking a config: diagnostics, and the model when there was no error.
#[derive(Debug, Clone)]
pub struct Checked {
    pub source: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
    pub spec: Option<ClusterSpec>,
    /// The parsed YAML, to locate findings added later (e.g. by a backend's `validate`).
    pub root: Option<std::sync::Arc<yaml::Node>>,
    /// The backend the config was checked for (named, or inferred from the config).
    pub backend: Option<crate::model::BackendProfile>,
}

impl Checked {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    pub fn located(&self) -> Vec<Located> {
        self.diagnostics.iter().map(|d| Located::new(d, &self.source)).collect()
    }

    pub fn is_valid(&self) -> bool {
        self.spec.is_some() && !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Adds findings from elsewhere (a backend's own checks), locating them in the file.
    pub fn add(&mut self, more: impl IntoIterator<Item = Diagnostic>) {
        for mut d in more {
            if d.span.is_none() {
                d.span = self.root.as_deref().map(|r| diagnostic::span_of(r, &d.path));
            }
            self.diagnostics.push(d);
        }
        self.diagnostics.sort_by_key(|d| (d.span.map(|s| s.start.index).unwrap_or(0), d.severity));
    }
}

/// The `cluster.name` written in the file, whether or not the config is valid otherwise.
pub fn cluster_name(c: &Checked) -> Option<String> {
    let root = c.root.as_deref()?;
    match &root.get("cluster")?.get("name")?.kind {
        yaml::NodeKind::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// Reading the file failed before it could be checked (not a config error).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Reads and checks a config file.
pub fn load(path: &Path, opts: &Options) -> Result<Checked, LoadError> {
    let name = path.display().to_string();
    let io = |source| LoadError::Io { path: name.clone(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() as usize > MAX_FILE_BYTES {
        let source = SourceFile::new(name.clone(), "");
        return Ok(Checked {
            source,
            diagnostics: vec![
                Diagnostic::error(
                    "file-too-large",
                    FieldPath::root(),
                    format!("the file is {} bytes; configs are limited to {MAX_FILE_BYTES}", meta.len()),
                )
                .help("a cluster config is a few KiB; check that this is the right file")
                .at(yaml::Span::default()),
            ],
            spec: None,
            root: None,
            backend: None,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    Ok(check_bytes(&name, bytes, opts))
}

/// Checks config bytes that claim to come from file `name`.
pub fn check_bytes(name: &str, bytes: Vec<u8>, opts: &Options) -> Checked {
    match String::from_utf8(bytes) {
        Ok(text) => check_str(name, &text, opts),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let col = valid.iter().rev().take_while(|b| **b != b'\n').count();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let pos = yaml::Pos { index: 0, line, col };
            Checked {
                source: SourceFile::new(name, text),
                diagnostics: vec![
                    Diagnostic::error("not-utf8", FieldPath::root(), "the file is not UTF-8 text")
                        .help("save the file as UTF-8")
                        .at(yaml::Span { start: pos, end: pos }),
                ],
                spec: None,
                root: None,
                backend: None,
            }
        }
    }
}

/// Checks config text.
pub fn check_str(name: &str, text: &str, opts: &Options) -> Checked {
    let source = SourceFile::new(name, text);
    let fail = |diagnostics| Checked { source: source.clone(), diagnostics, spec: None, root: None, backend: None };
    let root = match yaml::parse_with_path(text, yaml::Limits::default()) {
        Ok(Some(root)) if root.resolve() != Some(yaml::Resolved::Null) => root,
        Ok(_) => {
            return fail(vec![
                Diagnostic::error("empty", FieldPath::root(), "the file holds no configuration")
                    .help("a config needs at least `cluster:` with a name and nodes; see examples/multi-master.yaml")
                    .at(yaml::Span::default()),
            ]);
        }
        Err((e, path)) => {
            let mut d = Diagnostic::error("yaml", path, e.to_string()).at(yaml::Span { start: e.pos(), end: e.pos() });
            d.help = e.help();
            return fail(vec![d]);
        }
    };
    let mut checker = structural::Checker::new(schema());
    let value = checker.check_root(&root);
    let mut diagnostics = checker.diagnostics;
    let Some(value) = value else {
        return fail(diagnostics);
    };
    let raw: raw::RawConfig = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => {
            // The structural check mirrors the types, so this means the two disagree: a bug,
            // reported rather than hidden.
            diagnostics.push(
                Diagnostic::error(
                    "internal",
                    FieldPath::root(),
                    format!("config passed the structural check but not deserialization: {e}"),
                )
                .help("please report this as a hacluster bug, with the config")
                .at(root.span),
            );
            return fail(diagnostics);
        }
    };
    let backend = opts.backend.clone().unwrap_or_else(|| validate::infer_backend(&raw));
    let opts = Options { backend: Some(backend.clone()), ..opts.clone() };
    let (spec, more) = validate::validate(&raw, &root, &opts);
    diagnostics.extend(more);
    // Stable order: by position, errors before warnings at the same place.
    diagnostics.sort_by_key(|d| (d.span.map(|s| s.start.index).unwrap_or(0), d.severity));
    Checked { source, diagnostics, spec, root: Some(std::sync::Arc::new(root)), backend: Some(backend) }
}

//! YAML text → a tree of nodes that remember where they came from.
//!
//! We parse with `saphyr-parser`'s event stream and build the tree ourselves, because the
//! diagnostics need a source span for every node, and because the tree builder is where the
//! resource limits live: a hostile file (alias "billion laughs", a huge scalar aliased many
//! times, deep nesting, aliases nested in aliases, millions of nodes) ends with a clear error
//! instead of exhausting memory or the stack. Limits count what aliases copy, before the copy
//! is made. The builder is iterative, and the tree it returns is never deeper than the depth
//! limit, so the functions that recurse on it stay far from the end of the Rust stack.

use std::borrow::Cow;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

use super::diagnostic::FieldPath;

/// A position in the source: character index, 1-based line, 0-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub index: usize,
    pub line: usize,
    pub col: usize,
}

/// The source range a node (or key) was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    fn from_parser(s: YSpan) -> Span {
        let p = |m: saphyr_parser::Marker| Pos { index: m.index(), line: m.line(), col: m.col() };
        Span { start: p(s.start), end: p(s.end) }
    }

    fn join(self, end: Span) -> Span {
        Span { start: self.start, end: end.end.max(self.end) }
    }
}

/// One YAML node with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar as written. `plain` is false for quoted and block scalars (and `!!str`), which
    /// YAML always reads as strings; plain scalars are resolved by the YAML 1.2 core schema.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

/// A plain scalar's meaning under the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i128),
    /// Looks like an integer but does not fit in 128 bits.
    HugeInt,
    Float(f64),
    Str(&'a str),
}

impl Node {
    /// How YAML reads this scalar; `None` for collections.
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        match &self.kind {
            NodeKind::Scalar { text, plain: false } => Some(Resolved::Str(text)),
            NodeKind::Scalar { text, plain: true } => Some(resolve_plain(text)),
            _ => None,
        }
    }

    /// A short description of what this node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Seq(_) => "a list".into(),
            NodeKind::Map(_) => "a mapping".into(),
            NodeKind::Scalar { .. } => match self.resolve() {
                Some(Resolved::Null) => "nothing (null)".into(),
                Some(Resolved::Bool(b)) => format!("the boolean {b}"),
                Some(Resolved::Int(i)) => format!("the integer {i}"),
                Some(Resolved::HugeInt) => "an integer too large to use".into(),
                Some(Resolved::Float(f)) => format!("the number {f}"),
                Some(Resolved::Str(s)) => format!("the string {:?}", truncate(s, 40)),
                None => unreachable!("scalar always resolves"),
            },
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn index(&self, i: usize) -> Option<&Node> {
        match &self.kind {
            NodeKind::Seq(items) => items.get(i),
            _ => None,
        }
    }
}

/// What a finished node costs, tracked while the tree is built (never by walking it, so an
/// aliased subtree is priced without recursion): its nodes (a mapping's keys count as nodes),
/// the bytes of its scalars and keys, and its height (0 for a scalar, 1 for a flat list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Size {
    nodes: usize,
    bytes: usize,
    height: usize,
}

impl Size {
    fn scalar(text: &str) -> Size {
        Size { nodes: 1, bytes: text.len(), height: 0 }
    }

    fn collection() -> Size {
        Size { nodes: 1, bytes: 0, height: 1 }
    }

    /// Adds a child of this collection (a list item, a mapping's key or value).
    fn add(&mut self, child: Size) {
        self.nodes = self.nodes.saturating_add(child.nodes);
        self.bytes = self.bytes.saturating_add(child.bytes);
        self.height = self.height.max(child.height + 1);
    }
}

fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
pub fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let (neg, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let radix_digits = if let Some(hex) = text.strip_prefix("0x") {
        Some((16, hex))
    } else {
        text.strip_prefix("0o").map(|oct| (8, oct))
    };
    if let Some((radix, ds)) = radix_digits {
        if !ds.is_empty() && ds.chars().all(|c| c.is_digit(radix)) {
            return match i128::from_str_radix(ds, radix) {
                Ok(v) => Resolved::Int(v),
                Err(_) => Resolved::HugeInt,
            };
        }
        return Resolved::Str(text);
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match digits.parse::<i128>() {
            Ok(v) => Resolved::Int(if neg { -v } else { v }),
            Err(_) => Resolved::HugeInt,
        };
    }
    if is_float(digits)
        && let Ok(f) = text.parse::<f64>()
    {
        return Resolved::Float(f);
    }
    Resolved::Str(text)
}

/// `[0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)?` with at least one digit before the exponent.
fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut mantissa_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mantissa_digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Resource limits for reading untrusted YAML.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nodes in the finished tree, counting every copy an anchor or an alias makes.
    pub max_nodes: usize,
    /// Nesting of lists and mappings, an alias's subtree included where it is used.
    pub max_depth: usize,
    /// Bytes of scalars and keys, counting every copy an anchor or an alias makes.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A 1,000-node cluster is ~15k YAML nodes; two million leaves room for generated
        // configs while bounding memory to a few hundred MiB. The text may be as large as
        // the largest file read, not larger: aliases of a big scalar would otherwise copy it
        // without bound.
        Limits { max_nodes: 2_000_000, max_depth: 64, max_bytes: super::MAX_FILE_BYTES }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum YamlError {
    #[error("this is not valid YAML: {message}")]
    Syntax { message: String, at: Pos },
    #[error("the file holds more than one YAML document; a cluster config is one document")]
    MultipleDocuments { at: Pos },
    #[error("lists and mappings are nested more than {limit} levels deep")]
    TooDeep { limit: usize, at: Pos },
    #[error("the document expands to more than {limit} YAML nodes (anchors and aliases count once per copy)")]
    TooManyNodes { limit: usize, at: Pos },
    #[error("the document expands to more than {limit} bytes of text (anchors and aliases count once per copy)")]
    TooLarge { limit: usize, at: Pos },
    #[error("mapping keys must be plain text, not lists or mappings")]
    ComplexKey { at: Pos },
    #[error("the key `{key}` appears twice in the same mapping")]
    DuplicateKey { key: String, at: Pos, first: Pos },
    #[error("the alias refers to an anchor that is not defined before it")]
    UnknownAnchor { at: Pos },
    #[error("the tag `{tag}` is not supported; only `!!str` is")]
    UnsupportedTag { tag: String, at: Pos },
    #[error("a merge key (`<<`) must be followed by a mapping or a list of mappings")]
    BadMerge { at: Pos },
}

impl YamlError {
    pub fn pos(&self) -> Pos {
        match self {
            YamlError::Syntax { at, .. }
            | YamlError::MultipleDocuments { at }
            | YamlError::TooDeep { at, .. }
            | YamlError::TooManyNodes { at, .. }
            | YamlError::TooLarge { at, .. }
            | YamlError::ComplexKey { at }
            | YamlError::DuplicateKey { at, .. }
            | YamlError::UnknownAnchor { at }
            | YamlError::UnsupportedTag { at, .. }
            | YamlError::BadMerge { at } => *at,
        }
    }

    pub fn help(&self) -> Option<String> {
        match self {
            YamlError::Syntax { .. } => Some(
                "check indentation (spaces only, no tabs) and that every `key: value` has a space after the colon"
                    .into(),
            ),
            YamlError::MultipleDocuments { .. } => {
                Some("remove the second `---` document or split it into its own file".into())
            }
            YamlError::DuplicateKey { first, .. } => Some(format!(
                "the first `{}` is on line {}; keep one of them",
                match self {
                    YamlError::DuplicateKey { key, .. } => key.as_str(),
                    _ => "",
                },
                first.line
            )),
            YamlError::TooManyNodes { .. } => Some(
                "this usually means aliases that expand exponentially (\"billion laughs\"); write the values out"
                    .into(),
            ),
            YamlError::TooLarge { .. } => Some(
                "an alias copies its anchor's whole value; write a large value out once instead of aliasing it".into(),
            ),
            YamlError::TooDeep { .. } => {
                Some("an alias nests its anchor's whole value where it is used; flatten the structure".into())
            }
            YamlError::UnsupportedTag { .. } => Some("remove the tag".into()),
            _ => None,
        }
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        start: Span,
        anchor: usize,
        size: Size,
    },
    Map {
        entries: Vec<Entry>,
        /// Keys merged in with `<<`; explicit keys win over them.
        merged: Vec<Entry>,
        pending_key: Option<(String, Span)>,
        start: Span,
        anchor: usize,
        /// Merged keys that explicit ones later replace are still counted: an upper bound.
        size: Size,
    },
}

/// Reads one YAML document into a tree. An empty document gives `Ok(None)`.
pub fn parse(text: &str, limits: Limits) -> Result<Option<Node>, YamlError> {
    parse_with_path(text, limits).map_err(|(e, _)| e)
}

/// Like [`parse`], and on failure also the field path being read when it happened.
pub fn parse_with_path(text: &str, limits: Limits) -> Result<Option<Node>, (YamlError, FieldPath)> {
    let mut stack: Vec<Frame> = Vec::new();
    build(text, limits, &mut stack).map_err(|e| {
        let mut path = path_of(&stack);
        if let YamlError::DuplicateKey { key, .. } = &e {
            path = path.key(key.clone());
        }
        (e, path)
    })
}

/// The path of the node being built: the open key of each mapping, the next index of each list.
fn path_of(stack: &[Frame]) -> FieldPath {
    let mut p = FieldPath::root();
    for f in stack {
        match f {
            Frame::Seq { items, .. } => p = p.index(items.len()),
            Frame::Map { pending_key: Some((k, _)), .. } => p = p.key(k.clone()),
            Frame::Map { .. } => {}
        }
    }
    p
}

/// What the builder has allocated so far, against the limits: every node and every byte of
/// text, each copy an anchor or an alias makes included.
struct Budget {
    limits: Limits,
    nodes: usize,
    bytes: usize,
}

impl Budget {
    /// Takes `size` from the budget, or says which limit it would pass. Called before the copy
    /// is made, so an exponential alias chain stops at the limit instead of after allocating.
    fn take(&mut self, size: Size, at: Pos) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(size.nodes);
        self.bytes = self.bytes.saturating_add(size.bytes);
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError::TooManyNodes { limit: self.limits.max_nodes, at });
        }
        if self.bytes > self.limits.max_bytes {
            return Err(YamlError::TooLarge { limit: self.limits.max_bytes, at });
        }
        Ok(())
    }

    /// Refuses a collection (or an aliased subtree of `height`) that would end deeper than
    /// the limit when it starts at nesting `depth`.
    fn fits(&self, depth: usize, height: usize, at: Pos) -> Result<(), YamlError> {
        if depth.saturating_add(height) > self.limits.max_depth {
            return Err(YamlError::TooDeep { limit: self.limits.max_depth, at });
        }
        Ok(())
    }
}

/// An anchor the document defined: its id, a copy of its node, and what a copy costs.
struct Anchor {
    id: usize,
    node: Node,
    size: Size,
}

fn build(text: &str, limits: Limits, stack: &mut Vec<Frame>) -> Result<Option<Node>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut anchors: Vec<Anchor> = Vec::new();
    let mut budget = Budget { limits, nodes: 0, bytes: 0 };
    let mut root: Option<Node> = None;
    let mut documents = 0usize;

    while let Some(ev) = parser.next_event() {
        let (event, yspan) = ev.map_err(|e| {
            let mut at = Pos { index: e.marker().index(), line: e.marker().line(), col: e.marker().col() };
            // The scanner reports a tab where the token it was reading began (often the end
            // of the previous line); the tab itself is what the user must fix.
            if e.info().contains("tab")
                && let Some(tab) = find_char_from(text, at, '\t')
            {
                at = tab;
            }
            YamlError::Syntax { message: e.info().to_string(), at }
        })?;
        let span = Span::from_parser(yspan);
        // (node, its anchor id or 0, its size)
        let finished: Option<(Node, usize, Size)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::MultipleDocuments { at: span.start });
                }
                None
            }
            Event::Scalar(value, style, anchor, tag) => {
                let mut plain = matches!(style, ScalarStyle::Plain);
                if let Some(tag) = tag {
                    if tag.suffix == "str" && (tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!") {
                        plain = false;
                    } else {
                        return Err(YamlError::UnsupportedTag {
                            tag: format!("{}{}", tag.handle, tag.suffix),
                            at: span.start,
                        });
                    }
                }
                let size = Size::scalar(&value);
                budget.take(size, span.start)?;
                let node = Node { kind: NodeKind::Scalar { text: value.into_owned(), plain }, span };
                Some((node, anchor, size))
            }
            Event::Alias(id) => {
                let Some(a) = anchors.iter().rev().find(|a| a.id == id) else {
                    return Err(YamlError::UnknownAnchor { at: span.start });
                };
                budget.fits(stack.len(), a.size.height, span.start)?;
                budget.take(a.size, span.start)?;
                let mut copy = a.node.clone();
                copy.span = span;
                Some((copy, 0, a.size))
            }
            Event::SequenceStart(anchor, tag) => {
                reject_tag(tag, span)?;
                budget.fits(stack.len(), 1, span.start)?;
                budget.take(Size::collection(), span.start)?;
                stack.push(Frame::Seq { items: Vec::new(), start: span, anchor, size: Size::collection() });
                None
            }
            Event::MappingStart(anchor, tag) => {
                reject_tag(tag, span)?;
                budget.fits(stack.len(), 1, span.start)?;
                budget.take(Size::collection(), span.start)?;
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    merged: Vec::new(),
                    pending_key: None,
                    start: span,
                    anchor,
                    size: Size::collection(),
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { items, start, anchor, size }) => {
                    Some((Node { kind: NodeKind::Seq(items), span: start.join(span) }, anchor, size))
                }
                _ => unreachable!("parser emits balanced sequence events"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { mut entries, merged, start, anchor, size, .. }) => {
                    for m in merged {
                        if !entries.iter().any(|e| e.key == m.key) {
                            entries.push(m);
                        }
                    }
                    Some((Node { kind: NodeKind::Map(entries), span: start.join(span) }, anchor, size))
                }
                _ => unreachable!("parser emits balanced mapping events"),
            },
        };

        let Some((node, anchor, size)) = finished else {
            continue;
        };
        if anchor != 0 {
            // The anchor table keeps a copy of its own: that copy is memory too.
            budget.take(size, node.span.start)?;
            anchors.push(Anchor { id: anchor, node: node.clone(), size });
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, size: parent, .. }) => {
                parent.add(size);
                items.push(node);
            }
            Some(Frame::Map { entries, merged, pending_key, size: parent, .. }) => {
                parent.add(size);
                match pending_key.take() {
                    None => match node.kind {
                        NodeKind::Scalar { text, .. } => {
                            if text != "<<"
                                && let Some(first) = entries.iter().find(|e| e.key == text)
                            {
                                return Err(YamlError::DuplicateKey {
                                    key: text,
                                    at: node.span.start,
                                    first: first.key_span.start,
                                });
                            }
                            *pending_key = Some((text, node.span));
                        }
                        _ => return Err(YamlError::ComplexKey { at: node.span.start }),
                    },
                    Some((key, key_span)) => {
                        if key == "<<" {
                            merge_into(merged, node)?;
                        } else {
                            entries.push(Entry { key, key_span, value: node });
                        }
                    }
                }
            }
        }
    }
    Ok(root)
}

/// The position of the first `c` at or after `from`.
fn find_char_from(text: &str, from: Pos, c: char) -> Option<Pos> {
    let mut pos = from;
    for ch in text.chars().skip(from.index) {
        if ch == c {
            return Some(pos);
        }
        pos.index += 1;
        if ch == '\n' {
            pos.line += 1;
            pos.col = 0;
        } else {
            pos.col += 1;
        }
    }
    None
}

fn merge_into(merged: &mut Vec<Entry>, node: Node) -> Result<(), YamlError> {
    let at = node.span.start;
    match node.kind {
        NodeKind::Map(entries) => {
            for e in entries {
                if !merged.iter().any(|m| m.key == e.key) {
                    merged.push(e);
                }
            }
            Ok(())
        }
        NodeKind::Seq(items) => {
            for item in items {
                if !matches!(item.kind, NodeKind::Map(_)) {
                    return Err(YamlError::BadMerge { at });
                }
                merge_into(merged, item)?;
            }
            Ok(())
        }
        NodeKind::Scalar { .. } => Err(YamlError::BadMerge { at }),
    }
}

fn reject_tag(tag: Option<Cow<'_, saphyr_parser::Tag>>, span: Span) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) => Err(YamlError::UnsupportedTag { tag: format!("{}{}", t.handle, t.suffix), at: span.start }),
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<Node>, YamlError> {
        parse(s, Limits::default())
    }

    #[test]
    fn core_schema_resolution() {
        assert_eq!(resolve_plain("12"), Resolved::Int(12));
        assert_eq!(resolve_plain("-3"), Resolved::Int(-3));
        assert_eq!(resolve_plain("0x1f"), Resolved::Int(31));
        assert_eq!(resolve_plain("~"), Resolved::Null);
        assert_eq!(resolve_plain("True"), Resolved::Bool(true));
        assert_eq!(resolve_plain("1.5"), Resolved::Float(1.5));
        assert_eq!(resolve_plain("v1.23.7"), Resolved::Str("v1.23.7"));
        assert_eq!(resolve_plain("52:54:00:00:00:01"), Resolved::Str("52:54:00:00:00:01"));
        assert_eq!(resolve_plain("yes"), Resolved::Str("yes"));
        assert_eq!(resolve_plain("999999999999999999999999999999999999999999"), Resolved::HugeInt);
        assert_eq!(resolve_plain("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve_plain("1.2.3"), Resolved::Str("1.2.3"));
    }

    #[test]
    fn spans_point_at_values() {
        let root = p("a:\n  b: 1\n  c: [x, y]\n").unwrap().unwrap();
        let b = root.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.span.start.line, b.span.start.col), (2, 5));
        let y = root.get("a").unwrap().get("c").unwrap().index(1).unwrap();
        assert_eq!((y.span.start.line, y.span.start.col), (3, 9));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(
            matches!(e, YamlError::DuplicateKey { ref key, at, first } if key == "a" && at.line == 3 && first.line == 1)
        );
    }

    #[test]
    fn billion_laughs_is_stopped() {
        let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            s.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                std::iter::repeat_n(prev.as_str(), 10).collect::<Vec<_>>().join(", ")
            ));
        }
        let e = p(&s).unwrap_err();
        assert!(matches!(e, YamlError::TooManyNodes { .. }), "{e:?}");
    }

    /// A 1 MiB scalar aliased 100 times would be 100 MiB of text from a 1 MiB file.
    #[test]
    fn aliases_of_a_large_scalar_are_stopped_by_their_bytes() {
        let doc = |aliases: usize| {
            let mut s = format!("big: &big {}\nlist:\n", "x".repeat(1 << 20));
            s.push_str(&"  - *big\n".repeat(aliases));
            s
        };
        let limits = Limits { max_bytes: 64 << 20, ..Limits::default() };
        let e = parse(&doc(100), limits).unwrap_err();
        assert!(matches!(e, YamlError::TooLarge { limit, at } if limit == 64 << 20 && at.line > 2), "{e:?}");
        assert!(e.to_string().contains("bytes of text"), "{e}");
        // Well below the limit, the copies are made.
        let root = parse(&doc(10), limits).unwrap().unwrap();
        assert!(matches!(&root.get("list").unwrap().kind, NodeKind::Seq(items) if items.len() == 10));
    }

    /// Each anchor wraps the one before: the nesting grows with every link, though no line
    /// of the file is nested more than two levels.
    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        let chain = |links: usize| {
            let mut s = String::from("a0: &a0 [x]\n");
            for i in 1..links {
                s.push_str(&format!("a{i}: &a{i} [*a{}]\n", i - 1));
            }
            s
        };
        let e = p(&chain(70)).unwrap_err();
        assert!(matches!(e, YamlError::TooDeep { limit: 64, at } if at.line == 64), "{e:?}");
        assert!(p(&chain(60)).is_ok());
    }

    #[test]
    fn deep_nesting_is_stopped_without_stack_overflow() {
        let s = "[".repeat(200) + &"]".repeat(200);
        assert!(matches!(p(&s).unwrap_err(), YamlError::TooDeep { .. }));
        let mut block = String::new();
        for i in 0..500 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        assert!(matches!(p(&block).unwrap_err(), YamlError::TooDeep { .. }));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let root = p("base: &b {cpu: 2, ram: 4}\nnode:\n  <<: *b\n  ram: 8\n").unwrap().unwrap();
        let node = root.get("node").unwrap();
        assert_eq!(node.get("ram").unwrap().resolve(), Some(Resolved::Int(8)));
        assert_eq!(node.get("cpu").unwrap().resolve(), Some(Resolved::Int(2)));
    }

    #[test]
    fn tabs_and_garbage_are_syntax_errors() {
        assert!(matches!(p("a:\n\tb: 1\n").unwrap_err(), YamlError::Syntax { .. }));
        assert!(matches!(p("{{{{").unwrap_err(), YamlError::Syntax { .. }));
        assert!(matches!(p("a: 1\n---\nb: 2\n").unwrap_err(), YamlError::MultipleDocuments { .. }));
        assert_eq!(p("").unwrap(), None);
        assert_eq!(p("# only a comment\n").unwrap(), None);
    }
}

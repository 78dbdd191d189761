//! The structural check: the YAML tree against the config's JSON Schema (generated from the
//! `raw` types), collecting every unknown field, wrong type and out-of-range number at once,
//! each with its span, and producing the JSON value that serde then reads into the types.
//!
//! This walks only the subset of JSON Schema that `schemars` emits for our types (`$ref`,
//! `anyOf` with null, `type`, `enum`, `properties`/`additionalProperties`/`required`,
//! `items`, `minimum`/`maximum`). A general validator would report an `Option<Struct>`
//! mismatch as "matches no branch of anyOf"; here the message names the field that is wrong.

use serde_json::{Map, Number, Value};

use super::diagnostic::{Diagnostic, FieldPath, did_you_mean};
use super::yaml::{Node, NodeKind, Resolved};

pub struct Checker<'s> {
    root_schema: &'s Value,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Checker<'s> {
    pub fn new(root_schema: &'s Value) -> Self {
        Checker { root_schema, diagnostics: Vec::new() }
    }

    /// Checks `node` against the whole schema and converts it. `None` when it has errors.
    pub fn check_root(&mut self, node: &Node) -> Option<Value> {
        let schema = self.root_schema;
        self.check(node, schema, &FieldPath::root())
    }

    fn resolve(&self, mut schema: &'s Value) -> &'s Value {
        // `$ref: "#/$defs/Name"` → the definition; chains are followed, bounded for safety.
        for _ in 0..16 {
            let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
                return schema;
            };
            let name = r.trim_start_matches("#/$defs/");
            match self.root_schema.get("$defs").and_then(|d| d.get(name)) {
                Some(def) => schema = def,
                None => return schema,
            }
        }
        schema
    }

    fn err(&mut self, node: &Node, path: &FieldPath, code: &'static str, msg: String, help: Option<String>) {
        let mut d = Diagnostic::error(code, path.clone(), msg).at(node.span);
        d.help = help;
        self.diagnostics.push(d);
    }

    fn check(&mut self, node: &Node, schema: &'s Value, path: &FieldPath) -> Option<Value> {
        let schema = self.resolve(schema);
        if schema == &Value::Bool(true) || schema.as_object().is_some_and(is_any) {
            return Some(to_json(node));
        }
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            return self.check_any_of(node, branches, path);
        }
        let types = type_set(schema);
        let is_null = matches!(node.resolve(), Some(Resolved::Null));
        if is_null && types.contains(&"null") {
            return Some(Value::Null);
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            return self.check_enum(node, options, path);
        }
        let wanted = types.iter().copied().find(|t| *t != "null").unwrap_or("any");
        match wanted {
            "object" => self.check_object(node, schema, path),
            "array" => self.check_array(node, schema, path),
            "string" => self.check_string(node, path),
            "integer" => self.check_integer(node, schema, path),
            "boolean" => match node.resolve() {
                Some(Resolved::Bool(b)) => Some(Value::Bool(b)),
                _ => {
                    self.err(
                        node,
                        path,
                        "wrong-type",
                        format!("expected true or false, found {}", node.describe()),
                        Some("write `true` or `false` (without quotes)".into()),
                    );
                    None
                }
            },
            _ => Some(to_json(node)),
        }
    }

    fn check_any_of(&mut self, node: &Node, branches: &'s [Value], path: &FieldPath) -> Option<Value> {
        let is_null = matches!(node.resolve(), Some(Resolved::Null));
        let (nulls, others): (Vec<&Value>, Vec<&Value>) =
            branches.iter().partition(|b| b.get("type").and_then(Value::as_str) == Some("null"));
        if is_null && !nulls.is_empty() {
            return Some(Value::Null);
        }
        if others.len() == 1 {
            return self.check(node, others[0], path);
        }
        // Several real branches: take the first that fits, else report the closest one.
        let mut best: Option<Vec<Diagnostic>> = None;
        for b in others {
            let saved = std::mem::take(&mut self.diagnostics);
            let out = self.check(node, b, path);
            let errs = std::mem::replace(&mut self.diagnostics, saved);
            if errs.is_empty() {
                return out;
            }
            if best.as_ref().is_none_or(|e| errs.len() < e.len()) {
                best = Some(errs);
            }
        }
        self.diagnostics.extend(best.unwrap_or_default());
        None
    }

    fn check_enum(&mut self, node: &Node, options: &'s [Value], path: &FieldPath) -> Option<Value> {
        let names: Vec<&str> = options.iter().filter_map(Value::as_str).collect();
        let text = match &node.kind {
            NodeKind::Scalar { text, .. } => Some(text.as_str()),
            _ => None,
        };
        if let Some(t) = text
            && names.contains(&t)
        {
            return Some(Value::String(t.to_string()));
        }
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let help = match text.and_then(|t| did_you_mean(t, names.iter().copied())) {
            Some(s) => format!("did you mean `{s}`? accepted values: {list}"),
            None => format!("use one of {list}"),
        };
        self.err(node, path, "unknown-value", format!("{} is not an accepted value", node.describe()), Some(help));
        None
    }

    fn check_object(&mut self, node: &Node, schema: &'s Value, path: &FieldPath) -> Option<Value> {
        let NodeKind::Map(entries) = &node.kind else {
            let fields = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().take(6).map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            self.err(
                node,
                path,
                "wrong-type",
                format!("expected a mapping (`key: value` lines), found {}", node.describe()),
                (!fields.is_empty()).then(|| format!("this section takes fields such as {fields}")),
            );
            return None;
        };
        let props = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        let mut out = Map::new();
        let mut ok = true;
        for e in entries {
            let child_path = path.key(e.key.clone());
            let child_schema = props.and_then(|p| p.get(&e.key));
            // `key:` with nothing after it means "the default" where the field has one
            // (`instances:` with no items is an empty list, not an error).
            let is_null = matches!(e.value.resolve(), Some(Resolved::Null));
            if is_null && child_schema.is_some_and(|s| s.get("default").is_some()) {
                continue;
            }
            let result = match (child_schema, extra) {
                (Some(s), _) => self.check(&e.value, s, &child_path),
                (None, Some(Value::Bool(false))) => {
                    let known: Vec<&str> = props.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                    let help = match did_you_mean(&e.key, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "fields allowed here: {}",
                            known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    let d = Diagnostic::error("unknown-field", child_path, format!("unknown field `{}`", e.key))
                        .at(e.key_span)
                        .help(help);
                    self.diagnostics.push(d);
                    None
                }
                (None, Some(s)) if s.is_object() => self.check(&e.value, s, &child_path),
                (None, _) => Some(to_json(&e.value)),
            };
            match result {
                Some(v) => {
                    out.insert(e.key.clone(), v);
                }
                None => ok = false,
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !entries.iter().any(|e| e.key == r) {
                    let desc = props
                        .and_then(|p| p.get(r))
                        .and_then(|s| s.get("description"))
                        .and_then(Value::as_str)
                        .map(|d| d.lines().next().unwrap_or(d).to_string());
                    let d = Diagnostic::error("missing-field", path.key(r), format!("required field `{r}` is missing"))
                        .at(node.span);
                    self.diagnostics.push(match desc {
                        Some(desc) => d.help(format!("add `{r}:` here ({desc})")),
                        None => d.help(format!("add `{r}:` here")),
                    });
                    ok = false;
                }
            }
        }
        ok.then_some(Value::Object(out))
    }

    fn check_array(&mut self, node: &Node, schema: &'s Value, path: &FieldPath) -> Option<Value> {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node,
                path,
                "wrong-type",
                format!("expected a list, found {}", node.describe()),
                Some("write each item on its own line starting with `- `".into()),
            );
            return None;
        };
        let item_schema = schema.get("items").unwrap_or(&Value::Bool(true));
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.check(item, item_schema, &path.index(i)) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(Value::Array(out))
    }

    fn check_string(&mut self, node: &Node, path: &FieldPath) -> Option<Value> {
        match (&node.kind, node.resolve()) {
            (_, Some(Resolved::Null)) => {
                self.err(
                    node,
                    path,
                    "wrong-type",
                    "expected text, found nothing".into(),
                    Some("give this field a value or remove it".into()),
                );
                None
            }
            // Plain numbers and booleans are read as their text where text is expected, as
            // Kubitect does (`id: 1`).
            (NodeKind::Scalar { text, .. }, Some(_)) => Some(Value::String(text.clone())),
            _ => {
                self.err(node, path, "wrong-type", format!("expected text, found {}", node.describe()), None);
                None
            }
        }
    }

    fn check_integer(&mut self, node: &Node, schema: &'s Value, path: &FieldPath) -> Option<Value> {
        let min = schema.get("minimum").and_then(Value::as_i64);
        let max = schema.get("maximum").and_then(Value::as_i64);
        let range_help = match (min, max) {
            (Some(a), Some(b)) => Some(format!("use a whole number from {a} to {b}")),
            (Some(a), None) => Some(format!("use a whole number of at least {a}")),
            _ => None,
        };
        match node.resolve() {
            Some(Resolved::Int(v)) => {
                let out_of_range = min.is_some_and(|m| v < m as i128)
                    || max.is_some_and(|m| v > m as i128)
                    || i64::try_from(v).is_err();
                if out_of_range {
                    let msg = match (min, max) {
                        (Some(a), Some(b)) => format!("{v} is out of range: it must be between {a} and {b}"),
                        (Some(a), None) => format!("{v} is too small: it must be at least {a}"),
                        _ => format!("{v} is too large"),
                    };
                    self.err(node, path, "out-of-range", msg, range_help);
                    return None;
                }
                Some(Value::Number(Number::from(v as i64)))
            }
            Some(Resolved::HugeInt) => {
                self.err(node, path, "out-of-range", "the number is far too large".into(), range_help);
                None
            }
            _ => {
                let hint = match node.resolve() {
                    Some(Resolved::Float(_)) => Some("use a whole number (no decimal point)".to_string()),
                    Some(Resolved::Str(s)) if s.trim().parse::<i64>().is_ok() => {
                        Some("remove the quotes around the number".to_string())
                    }
                    Some(Resolved::Str(s))
                        if s.to_ascii_lowercase().ends_with("gb") || s.to_ascii_lowercase().ends_with("gib") =>
                    {
                        Some("sizes are whole GiB without a unit, e.g. `32`".to_string())
                    }
                    _ => range_help,
                };
                self.err(node, path, "wrong-type", format!("expected a whole number, found {}", node.describe()), hint);
                None
            }
        }
    }
}

fn is_any(o: &Map<String, Value>) -> bool {
    !o.keys()
        .any(|k| matches!(k.as_str(), "type" | "$ref" | "anyOf" | "oneOf" | "enum" | "properties" | "items" | "const"))
}

fn type_set(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Schema-less conversion, for sections handed to third-party backends unchanged.
pub fn to_json(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Map(entries) => Value::Object(entries.iter().map(|e| (e.key.clone(), to_json(&e.value))).collect()),
        NodeKind::Scalar { text, .. } => match node.resolve() {
            Some(Resolved::Null) => Value::Null,
            Some(Resolved::Bool(b)) => Value::Bool(b),
            Some(Resolved::Int(i)) => match i64::try_from(i) {
                Ok(v) => Value::Number(v.into()),
                Err(_) => Value::String(text.clone()),
            },
            Some(Resolved::Float(f)) => {
                Number::from_f64(f).map(Value::Number).unwrap_or_else(|| Value::String(text.clone()))
            }
            _ => Value::String(text.clone()),
        },
    }
}

//! Every validation rule, through the library alone: each case of the invalid-config table
//! (`cases/invalid.rs`) must be reported as an error at its field path and marked line, with
//! its phrase in the message or help, and a help on how to fix it. The base configs the cases
//! break are valid. The e2e tests run the same table through the `hacluster` binary.

use hacluster_config::config::diagnostic::Severity;
use hacluster_config::config::{self, Options};

include!("cases/invalid.rs");

#[test]
fn the_base_configs_are_valid() {
    for (name, base) in [("BASE", BASE), ("AWS_BASE", AWS_BASE)] {
        let checked = config::check_str("cluster.yaml", base, &Options::default());
        let errors: Vec<String> = checked.errors().map(|d| format!("{}: {}", d.path, d.message)).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn every_rule_reports_its_mistake_at_its_path_and_line() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for c in CASES {
        let (text, line) = build(c);
        let checked = config::check_str("cluster.yaml", &text, &Options::default());
        let found = checked.located();
        let Some(e) = found.iter().find(|d| d.severity == Severity::Error && d.path.to_string() == c.path) else {
            let all: Vec<String> = found.iter().map(|d| format!("{} {}: {}", d.code, d.path, d.message)).collect();
            failures.push(format!("{}: no error at {} in {all:#?}", c.name, c.path));
            continue;
        };
        let said = format!("{} {}", e.message, e.help.as_deref().unwrap_or(""));
        if e.line != line {
            failures.push(format!("{}: error at line {} (want {line})", c.name, e.line));
        }
        if !said.contains(c.says) {
            failures.push(format!("{}: does not say {:?}: {said}", c.name, c.says));
        }
        if e.help.as_deref().unwrap_or("").is_empty() {
            failures.push(format!("{}: no help on how to fix it", c.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), CASES.len(), failures.join("\n\n"));
}

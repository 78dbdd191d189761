//! Command-line behaviour: exit codes, schema, completions.

use crate::support::{Scratch, bin, example, plugin, run, write_config};

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["validate"]).code, 2, "missing -c");
    assert_eq!(run(&["frobnicate"]).code, 2, "unknown subcommand");
    let r = run(&["validate", "-c", "/nonexistent/cluster.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot read /nonexistent/cluster.yaml"), "{}", r.stderr);
    let r = run(&["validate", "-c", "/nonexistent/cluster.yaml", "-o", "json"]);
    assert_eq!(r.code, 2);
    assert!(r.json()["error"].as_str().unwrap().contains("cannot read"));
}

#[test]
fn schema_is_json_schema_of_the_config() {
    let r = run(&["schema"]);
    assert_eq!(r.code, 0);
    let s = r.json();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["additionalProperties"], false);
    let lb = &s["$defs"]["LoadBalancer"]["properties"];
    assert!(lb["vip"].is_object() && lb["virtualRouterId"].is_object() && lb["forwardPorts"].is_object());
    assert_eq!(s["$defs"]["NetworkPlugin"]["enum"], serde_json::json!(["calico", "cilium", "flannel", "kube-router"]));
    // What an air-gapped site sets, with its documentation.
    let k = &s["$defs"]["Kubernetes"]["properties"];
    for field in ["imageRepository", "registryMirrors", "containerd", "ignorePreflightErrors", "kubelet"] {
        assert!(k[field]["description"].is_string(), "kubernetes.{field} is not in the schema with a description: {k}");
    }
    assert_eq!(s["$defs"]["ContainerdSource"]["enum"], serde_json::json!(["docker", "mirror", "distro"]));
    assert!(s["$defs"]["Aws"]["properties"]["nlbScheme"].is_object());
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let r = run(&["completions", shell]);
        assert_eq!(r.code, 0);
        assert!(r.stdout.contains("validate") && r.stdout.contains("plan"), "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"]).code, 2);
}

#[test]
fn backend_flag_changes_the_endpoint_rules() {
    // The multi-master seed for aws: LB instances are ignored (the NLB takes their place),
    // and the missing backends.aws section is an error that says what to add.
    let r = run(&["validate", "-c", example("multi-master.yaml").to_str().unwrap(), "--backend", "aws", "-o", "json"]);
    assert_eq!(r.code, 1);
    let v = r.json();
    assert!(v["errors"].as_array().unwrap().iter().any(|e| e["path"] == "backends.aws"));
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "lb-ignored"));
}

#[test]
fn json_and_text_report_the_same_findings() {
    let (_d, p) =
        write_config("c.yaml", b"cluster:\n  name: x\n  nodes:\n    master:\n      instances: [{id: 1}, {id: 2}]\n");
    let j = run(&["validate", "-c", p.to_str().unwrap(), "-o", "json"]).json();
    let t = run(&["validate", "-c", p.to_str().unwrap()]);
    for e in j["errors"].as_array().unwrap() {
        let line = format!(
            "error[{}]: {}:{}:{}: {}",
            e["code"].as_str().unwrap(),
            p.display(),
            e["line"],
            e["column"],
            e["path"].as_str().unwrap()
        );
        assert!(t.stderr.contains(&line), "text lacks {line}:\n{}", t.stderr);
    }
}

/// A closed stdout (`hacluster plan | head`) ends a command quietly with 141, what a shell
/// reports for a tool SIGPIPE ended, instead of a `println!` panic (exit 101, a backtrace).
#[test]
fn a_closed_stdout_ends_quietly_not_with_a_panic() {
    let seed = example("multi-master.yaml");
    let seed = seed.to_str().unwrap();
    let cases: [&[&str]; 5] = [
        &["validate", "-c", seed],
        &["validate", "-c", seed, "-o", "json"],
        &["plan", "-c", seed],
        &["schema"],
        &["completions", "bash"],
    ];
    for args in cases {
        // The reading end is gone before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(bin())
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `kubeconfig -o json` answers in JSON as every other command does: the findings of an invalid
/// config, each error, and the path.
#[test]
fn kubeconfig_honours_json_output() {
    let s = Scratch::new();
    let bad = s.write("bad.yaml", "cluster:\n  name: x\n  nodes:\n    master:\n      instances: [{id: 1}, {id: 2}]\n");
    let r = s.run(&["kubeconfig", "-c", bad.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.json()["valid"], false);
    assert!(!r.json()["errors"].as_array().unwrap().is_empty());

    let text = std::fs::read_to_string(example("static.yaml")).unwrap().replace("~/.ssh/id_ed25519", "OPKEY");
    let cfg = s.write("static.yaml", &text);
    let wasm = plugin("hacluster_plugin_static.wasm");
    let (cfg, wasm) = (cfg.to_str().unwrap(), wasm.to_str().unwrap());
    let r = s.run(&["provision", "-c", cfg, "--plugin", wasm]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = s.run(&["kubeconfig", "-c", cfg, "--plugin", wasm, "-o", "json"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.json()["error"].as_str().unwrap().contains("has no kubeconfig yet"), "{}", r.stdout);

    // As a bootstrap records it; the file itself is not there yet.
    let kubeconfig = s.state().join("metal/kubeconfig");
    let dir = hacluster::state::StateDir::new(&s.state(), "metal");
    let lock = dir.lock().unwrap();
    let mut state = lock.load_or_new("metal", "static").unwrap();
    state.bootstrap =
        Some(hacluster::state::BootstrapRecord { kubeconfig: Some(kubeconfig.clone()), ..Default::default() });
    lock.save(&state).unwrap();
    drop(lock);
    let r = s.run(&["kubeconfig", "-c", cfg, "--plugin", wasm, "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json(), serde_json::json!({"cluster": "metal", "kubeconfig": kubeconfig}));
    let merged = s.path("merged");
    let r = s.run(&["kubeconfig", "-c", cfg, "--plugin", wasm, "--merge", merged.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.json()["error"].as_str().unwrap().starts_with("cannot read"), "{}", r.stdout);
}

//! Hostile and broken input: never a panic, always exit 1 with a message that locates it.

use crate::support::{run, write_config};

fn validate_bytes(name: &str, bytes: &[u8]) -> crate::support::Run {
    let (dir, path) = write_config(name, bytes);
    let r = run(&["validate", "-c", path.to_str().unwrap(), "-o", "json"]);
    drop(dir);
    r
}

fn first_error(r: &crate::support::Run) -> serde_json::Value {
    r.json()["errors"][0].clone()
}

#[test]
fn empty_and_comment_only_files() {
    for text in ["", "\n\n", "# nothing here\n", "---\n", "null\n", "~"] {
        let r = validate_bytes("empty.yaml", text.as_bytes());
        assert_eq!(r.code, 1, "{text:?}: {}", r.stderr);
        assert_eq!(first_error(&r)["code"], "empty");
    }
}

#[test]
fn not_yaml() {
    let r = validate_bytes("junk.yaml", b"{{{ this: is [not yaml");
    assert_eq!(r.code, 1);
    let e = first_error(&r);
    assert_eq!(e["code"], "yaml");
    assert_eq!(e["line"], 1);
    let r = validate_bytes("binary.yaml", &[0xff, 0xfe, 0x00, 0x41, 0x0a]);
    assert_eq!(r.code, 1);
    assert_eq!(first_error(&r)["code"], "not-utf8");
}

#[test]
fn scalars_and_lists_at_the_top() {
    for text in ["42", "just a string", "- a\n- b\n", "true"] {
        let r = validate_bytes("top.yaml", text.as_bytes());
        assert_eq!(r.code, 1, "{text}");
        assert!(first_error(&r)["message"].as_str().unwrap().contains("expected a mapping"), "{text}: {}", r.stdout);
    }
}

#[test]
fn tabs_point_at_their_line() {
    let r = validate_bytes("tabs.yaml", b"cluster:\n  name: x\n\tnodes: {}\n");
    assert_eq!(r.code, 1);
    let e = first_error(&r);
    assert_eq!(e["line"], 3, "{e}");
}

#[test]
fn billion_laughs_is_refused_quickly() {
    let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        s.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    s.push_str("cluster: *a9\n");
    let r = validate_bytes("lol.yaml", s.as_bytes());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(first_error(&r)["message"].as_str().unwrap().contains("more than"), "{}", r.stdout);
}

/// A 30 MB scalar aliased 1,000 times is 30 GB of text from a 30 MB file. Run with 1 GiB of
/// address space (the run needs a few hundred MiB): it must end with the byte limit, quickly,
/// not with a failed allocation.
#[test]
fn aliases_of_a_huge_scalar_are_refused_within_a_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    let mut text = format!("big: &big {}\n", "x".repeat(30_000_000));
    text.push_str(&format!("cluster: [{}]\n", vec!["*big"; 1000].join(", ")));
    std::fs::write(&path, text).unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 1048576 && exec \"$0\" validate -c \"$1\" -o json"])
        .arg(crate::support::bin())
        .arg(&path)
        .output()
        .unwrap();
    let r = crate::support::Run::from(out);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let e = first_error(&r);
    assert_eq!(e["code"], "yaml");
    assert_eq!(e["line"], 2, "{e}");
    assert!(e["message"].as_str().unwrap().contains("more than 67108864 bytes of text"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
}

#[test]
fn deep_nesting() {
    let r = validate_bytes("deep.yaml", format!("cluster: {}{}", "[".repeat(5000), "]".repeat(5000)).as_bytes());
    assert_eq!(r.code, 1, "{}", r.stderr);
}

#[test]
fn ten_megabyte_file() {
    // A syntactically valid config with ~120k workers (10 MB): it must finish with a verdict.
    let mut s = String::from(
        "hosts: [{name: h}]\ncluster:\n  name: big\n  network: {mode: nat, cidr: 10.0.0.0/8}\n  nodes:\n    loadBalancer: {instances: [{id: lb, ip: 10.255.255.1}]}\n    master: {instances: [{id: '1'}, {id: '2'}, {id: '3'}]}\n    worker:\n      instances:\n",
    );
    let mut i = 0u32;
    while s.len() < 10 * 1024 * 1024 {
        s.push_str(&format!(
            "        - {{id: w{i}, ip: 10.{}.{}.{}}}\n",
            1 + (i >> 16) % 250,
            (i >> 8) & 255,
            (i & 255).max(1)
        ));
        i += 1;
    }
    let r = validate_bytes("big.yaml", s.as_bytes());
    // Address collisions from the generator are real errors; the point is a clean verdict.
    assert!(r.code == 0 || r.code == 1, "exit {}: {}", r.code, r.stderr);
    let v = r.json();
    assert!(v["valid"].is_boolean());
}

#[test]
fn wrong_types_everywhere() {
    let text = "\
hosts: localhost
cluster:
  name: [a, b]
  network: 5
  nodes:
    master: {instances: [{id: 1, cpu: true, ram: 1.5, mainDiskSize: \"32\"}]}
kubernetes: {version: 1.23}
";
    let r = validate_bytes("types.yaml", text.as_bytes());
    assert_eq!(r.code, 1);
    let v = r.json();
    let paths: Vec<&str> = v["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    for want in [
        "hosts",
        "cluster.name",
        "cluster.network",
        "cluster.nodes.master.instances[0].cpu",
        "cluster.nodes.master.instances[0].ram",
        "cluster.nodes.master.instances[0].mainDiskSize",
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    let disk = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "cluster.nodes.master.instances[0].mainDiskSize")
        .unwrap();
    assert!(disk["help"].as_str().unwrap().contains("remove the quotes"));
}

#[test]
fn negative_and_huge_numbers() {
    for (field, value) in [
        ("cpu", "-1"),
        ("cpu", "99999999999999999999999999999999999999999"),
        ("ram", "-9223372036854775809"),
        ("mainDiskSize", "1e400"),
    ] {
        let text = format!("cluster:\n  name: x\n  nodes:\n    master: {{instances: [{{id: 1, {field}: {value}}}]}}\n");
        let r = validate_bytes("n.yaml", text.as_bytes());
        assert_eq!(r.code, 1, "{field}={value}: {}", r.stderr);
        let v = r.json();
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["path"] == format!("cluster.nodes.master.instances[0].{field}")),
            "{field}={value}: {}",
            r.stdout
        );
    }
}

//! `hacluster plan --out DIR`: every file `up` would put on each machine, one directory per
//! node, each file parseable by what reads it, and no secret in any of them, whether the
//! cluster is only planned or already provisioned (with real host keys and bootstrap secrets
//! in its state), and whatever a hostile backend returns as its files.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::{Scratch, example, libvirt_plugin, needs, plugin, test_driver_config};

/// Checks that every file under `out` parses as what reads it will read it; returns the
/// node directories.
fn all_parse(out: &Path) -> BTreeSet<String> {
    let mut nodes = BTreeSet::new();
    for e in std::fs::read_dir(out).unwrap().flatten() {
        if !e.path().is_dir() {
            assert_eq!(e.file_name(), "README", "only node directories and the README");
            continue;
        }
        nodes.insert(e.file_name().to_string_lossy().to_string());
        for f in std::fs::read_dir(e.path()).unwrap().flatten() {
            let (path, name) = (f.path(), f.file_name().to_string_lossy().to_string());
            let text = std::fs::read_to_string(&path).unwrap();
            let json = |t: &str| {
                serde_json::from_str::<serde_json::Value>(t).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            };
            match name.as_str() {
                n if n.starts_with("kubeadm-") => {
                    let docs: Vec<_> = text.split("\n---\n").map(json).collect();
                    assert!(docs.iter().all(|d| d["apiVersion"].is_string() && d["kind"].is_string()), "{name}");
                }
                "user-data" => {
                    let body = text.strip_prefix("#cloud-config\n").unwrap_or_else(|| panic!("{name}: no header"));
                    assert!(json(body)["users"].is_array(), "{}", path.display());
                }
                "network-config" => assert_eq!(json(&text)["version"], 2),
                "meta-data" => assert!(text.lines().all(|l| l.split_once(": ").is_some()), "{text}"),
                "prepare.sh" | "check_haproxy.sh" => {
                    let st = Command::new("bash").arg("-n").arg(&path).status().unwrap();
                    assert!(st.success(), "bash -n {}", path.display());
                }
                "haproxy.cfg" => {
                    let o = Command::new("haproxy").args(["-c", "-f"]).arg(&path).output().unwrap();
                    assert!(o.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&o.stderr));
                }
                // keepalived -t needs its check script where the config says: see the VIP test.
                "keepalived.conf" => assert!(text.contains("vrrp_instance"), "{text}"),
                other => panic!("unexpected file {other} in {}", e.path().display()),
            }
        }
    }
    nodes
}

/// Every file's content under `out`, concatenated.
fn everything(out: &Path) -> String {
    let mut all = String::new();
    for e in walk(out) {
        all += &std::fs::read_to_string(e).unwrap();
    }
    all
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn plan_out_of_the_ha_example_writes_one_directory_per_node() {
    needs!(Plugins);
    let s = Scratch::new();
    let out = s.path("ha");
    let r = s.run(&["plan", "--offline", "-c", example("ha.yaml").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let nodes = all_parse(&out);
    let want: BTreeSet<String> =
        ["lb-1", "lb-2", "master-1", "master-2", "master-3", "worker-1", "worker-2", "worker-3"]
            .iter()
            .map(|n| format!("kubitect-ha-{n}"))
            .collect();
    assert_eq!(nodes, want);
    assert!(out.join("kubitect-ha-master-1/kubeadm-init.yaml").is_file());
    assert!(out.join("kubitect-ha-worker-2/kubeadm-join.yaml").is_file());
    assert!(!out.join("kubitect-ha-lb-1/kubeadm-join.yaml").exists(), "balancers run no kubeadm");
    assert!(r.stdout.contains("--offline: no backend plugin was run"), "{}", r.stdout);
    let all = everything(&out);
    assert!(!all.contains("PRIVATE KEY-----"), "a private key in the plan output");
    assert!(all.contains("xxxxxx.placeholdertoken"));

    // A second run replaces its own output; a directory that is not one is left alone.
    let r = s.run(&["plan", "--offline", "-c", example("ha.yaml").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let other = s.path("mine");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let r = s.run(&["plan", "--offline", "-c", example("ha.yaml").to_str().unwrap(), "--out", other.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is not an earlier `hacluster plan --out` directory"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
}

/// After `provision` the state holds the nodes' real private host keys, and (here written into
/// it, as the bootstrap would) a real token and certificate key: none reaches the output, the
/// addresses are those the backend reported, and the load balancers' files are the plugin's.
#[test]
fn plan_out_of_a_provisioned_cluster_holds_no_secret() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = test_driver_config(&s, "ha.yaml");
    let p = libvirt_plugin();
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap(), "--plugin", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let dir = hacluster::state::StateDir::new(&s.state(), "kubitect-ha");
    let mut state = dir.read().unwrap().expect("state");
    assert_eq!(state.identities.len(), 8);
    let secrets = hacluster::bootstrap::kubeadm::Secrets {
        token: hacluster::bootstrap::kubeadm::new_token(),
        certificate_key: hacluster::bootstrap::kubeadm::new_certificate_key(),
        ..Default::default()
    };
    state.bootstrap = Some(hacluster::state::BootstrapRecord { secrets: secrets.clone(), ..Default::default() });
    dir.lock().unwrap().save(&state).unwrap();

    let out = s.path("out");
    let r =
        s.run(&["plan", "-c", cfg.to_str().unwrap(), "--plugin", p.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    all_parse(&out);
    let all = everything(&out);
    for id in state.identities.values() {
        let body: String = id.host_private_key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!all.contains(&body[..40]), "a node's private host key is in the plan output");
        assert!(all.contains(&id.host_public_key), "the pinned public keys are shown");
    }
    assert!(!all.contains(&secrets.token) && !all.contains(&secrets.certificate_key));
    assert!(!all.contains("PRIVATE KEY-----"));
    // Exactly what provisioning delivered: each node's seed (the host keeps a copy in the
    // state directory) is the plan's file but for the private key in its place.
    for (node, id) in &state.identities {
        for f in ["user-data", "meta-data", "network-config"] {
            let seed = std::fs::read_to_string(s.state().join(format!("kubitect-ha/seeds/{node}-seed/{f}"))).unwrap();
            let real = serde_json::to_string(&id.host_private_key).unwrap();
            let shown = serde_json::to_string(hacluster::node_files::PLACEHOLDER_PRIVATE_KEY).unwrap();
            let planned = std::fs::read_to_string(out.join(node).join(f)).unwrap();
            assert_eq!(planned, seed.replace(&real, &shown), "{node}/{f} is not what the seed carries");
        }
    }
    let readme = std::fs::read_to_string(out.join("README")).unwrap();
    assert!(readme.contains("addresses and the endpoint are those the backend reported"), "{readme}");
    assert!(!readme.contains("198.51.100."), "no placeholder address once provisioned:\n{readme}");
    assert!(readme.contains("haproxy.cfg") && readme.contains("[rendered by libvirt]"), "{readme}");
}

/// A hostile backend's files: each misdeed is refused with a clear error, and nothing is
/// written, in the output directory or anywhere else.
#[test]
fn plan_out_refuses_a_hostile_backends_files() {
    needs!(Plugins);
    let adversary = plugin("hacluster_plugin_adversary.wasm");
    for (mode, said) in [
        ("files-traversal", "rendered a file named \"../../adversary-was-here\""),
        ("files-absolute", "rendered a file named \"/tmp/adversary-was-here\""),
        ("files-foreign-node", "rendered a file for `someone-elses-machine`, which is not a node of the cluster"),
        ("files-private-key", "it holds a private key, and plan --out never writes a secret"),
        ("files-huge", "returned too large a set of rendered files"),
    ] {
        let s = Scratch::new();
        let cfg = s.write("adv.yaml", &crate::support::adversary_config(mode, ""));
        let out = s.path("out/plan");
        let r = s.run(&[
            "plan",
            "-c",
            cfg.to_str().unwrap(),
            "--plugin",
            adversary.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 3, "{mode}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(said), "{mode}: {}", r.stderr);
        assert!(!out.exists(), "{mode}: the output directory was written");
        assert!(walk(s.dir.path()).iter().all(|p| !p.to_string_lossy().contains("adversary-was-here")), "{mode}");
        assert!(!Path::new("/tmp/adversary-was-here").exists(), "{mode}");
    }
    // What a backend is given to render from holds no private key: it echoes user-data back.
    let s = Scratch::new();
    let cfg = s.write("adv.yaml", &crate::support::adversary_config("files-echo", ""));
    let out = s.path("out");
    let r = s.run(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "--plugin",
        adversary.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let echo = std::fs::read_to_string(out.join("adv-master-1/echo")).unwrap();
    assert!(echo.contains(hacluster::node_files::PLACEHOLDER_PRIVATE_KEY), "{echo}");
    let readme = std::fs::read_to_string(out.join("README")).unwrap();
    assert!(!readme.contains('\u{1b}'), "control characters from the backend reach the README");
}

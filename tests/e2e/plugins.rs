//! The plugin host with real components: the third-party `static` example end to end, and
//! adversarial plugins that must each end in a clear error within their limit while the host
//! stays usable. The components are built by `./scripts/build-plugins` (run by
//! `./scripts/test` before `cargo test`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hacluster::config::{self, Options};
use hacluster::plugin::{ClusterInput, Grants, Limits, PluginError, PluginHost, Silent, discovery};
use hacluster::state::ClusterState;

use crate::support::{Run, Scratch, adversary_config, example, needs, plugin, shared_cache};

#[test]
fn static_example_provisions_and_plans() {
    needs!(Plugins);
    let s = Scratch::new();
    let text = std::fs::read_to_string(example("static.yaml")).unwrap().replace("~/.ssh/id_ed25519", "OPKEY");
    let cfg = s.write("static.yaml", &text);
    let wasm = plugin("hacluster_plugin_static.wasm");
    let (cfg, wasm) = (cfg.to_str().unwrap(), wasm.to_str().unwrap());

    // Before provisioning, the plan adopts all five machines.
    let r = s.run(&["plan", "-c", cfg, "--plugin", wasm, "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let changes = r.json()["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 5);
    assert!(changes.iter().all(|c| c["action"] == "create" && c["kind"] == "machine"), "{changes:?}");

    let r = s.run(&["provision", "-c", cfg, "--plugin", wasm]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("API endpoint: 192.0.2.10:6443"), "{}", r.stdout);
    assert!(r.stdout.contains("metal-master-2") && r.stdout.contains("ssh k8s@192.0.2.12:22"), "{}", r.stdout);

    // State: 0600, the adopted machines as the backend's own state, a key per node, pins.
    let file = s.state().join("metal/state.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let st = s.state_of("metal").unwrap();
    assert_eq!(st.backend, "static");
    let adopted: serde_json::Value = serde_json::from_slice(st.backend_state.as_deref().unwrap()).unwrap();
    assert_eq!(adopted["adopted"].as_array().unwrap().len(), 5);
    assert_eq!(st.identities.len(), 5);
    let infra = st.infrastructure.unwrap();
    assert_eq!(infra.endpoint.host, "192.0.2.10");
    let w2 = infra.machines.iter().find(|m| m.name == "metal-worker-2").unwrap();
    assert!(w2.ssh.host_public_key.ends_with("auSO1"));
    let known = std::fs::read_to_string(s.state().join("metal/known_hosts")).unwrap();
    assert!(known.lines().any(|l| l.starts_with("192.0.2.22 ssh-ed25519 AAAA")), "{known}");

    // Afterwards the plan keeps everything.
    let r = s.run(&["plan", "-c", cfg, "--plugin", wasm, "-o", "json"]);
    let changes = r.json()["changes"].as_array().unwrap().clone();
    assert!(changes.iter().all(|c| c["action"] == "keep"), "{changes:?}");

    // Down releases and deletes the state, and the admin kubeconfig a bootstrap leaves there
    // (cluster-admin credentials): written here as `bootstrap` writes it.
    let kubeconfig = s.state().join("metal/kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\nusers: [{name: admin, user: {token: secret}}]\n")
        .unwrap();
    let r = s.run(&["down", "-c", cfg, "--plugin", wasm]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(s.state_of("metal").is_none());
    assert!(!kubeconfig.exists(), "down left the admin kubeconfig behind");
    assert!(r.stdout.contains("kubectl config delete-context metal"), "{}", r.stdout);
}

/// `provision` alone refuses a running cluster's config that drops nodes, before the backend is
/// asked (each is still in the cluster, a control plane an etcd member: `up` removes them
/// first), and leaves the state as it was; `plan` shows what `up` would do, step by step. (The
/// static example's addresses are never dialled: `up` would, and it is the lab's test,
/// `real_membership`.)
#[test]
fn a_running_clusters_nodes_are_not_released_by_provision_alone() {
    needs!(Plugins);
    let s = Scratch::new();
    let text = std::fs::read_to_string(example("static.yaml")).unwrap().replace("~/.ssh/id_ed25519", "OPKEY");
    let cfg = s.write("static.yaml", &text);
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dir = hacluster::state::StateDir::new(&s.state(), "metal");
    s.edit_state("metal", "static", |state| {
        state.bootstrap =
            Some(hacluster::state::BootstrapRecord { completed: vec!["kubeadm-init".into()], ..Default::default() });
    });
    let saved = std::fs::read(dir.file()).unwrap();
    let one =
        text.replace("        - id: 1\n        - id: 2\n        - id: 3\n    worker:", "        - id: 1\n    worker:");
    let one = one.split("      - node: master-2").next().unwrap().to_string()
        + &one[one.find("      - node: worker-1").unwrap()..];
    assert_ne!(one, text);
    let smaller = s.write("one.yaml", &one);
    let r = s.run(&["provision", "-c", smaller.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("runs node(s) metal-master-2, metal-master-3 that the config no longer lists")
            && r.stderr.contains("`hacluster up` removes them"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(dir.file()).unwrap(), saved, "provision changed the state");
    let p = s.run(&["plan", "-c", smaller.to_str().unwrap(), "--offline", "-o", "json"]);
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    let steps: Vec<String> = p.json()["removal"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = ["metal-master-2", "metal-master-3"]
        .iter()
        .flat_map(|n| {
            ["drain", "endpoint", "member", "reset", "node"]
                .iter()
                .map(move |w| format!("remove:{n}:{w}"))
                .chain([format!("remove:{n}")])
        })
        .collect();
    assert_eq!(steps, want);
    let p = s.run(&["plan", "-c", smaller.to_str().unwrap(), "--offline"]);
    assert!(p.stdout.contains("Removal of nodes the config no longer lists"), "{}", p.stdout);
    assert!(p.stdout.contains("metal-master-2: its etcd member removed through a healthy member"), "{}", p.stdout);
    assert_eq!(std::fs::read(dir.file()).unwrap(), saved, "plan changed the state");
    // Adding control planes while dropping others: refused by `plan` and `provision` alike.
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBKhXl6s/par0brj767oP/bkb9Sqaoh1Dbpg3p4dCtla";
    let swapped = one
        .replace("        - id: 1\n    worker:", "        - id: 1\n        - id: 4\n        - id: 5\n    worker:")
        + &format!(
            "      - node: master-4\n        address: 192.0.2.14\n        hostKey: {key}\n      - node: master-5\n        address: 192.0.2.15\n        hostKey: {key}\n"
        );
    let swapped = s.write("swapped.yaml", &swapped);
    let p = s.run(&["plan", "-c", swapped.to_str().unwrap()]);
    assert_eq!(p.code, 1, "{}{}", p.stdout, p.stderr);
    assert!(
        p.stdout.contains("Removal REFUSED")
            && p.stdout.contains(
                "adds control plane(s) metal-master-4, metal-master-5 and drops metal-master-2, metal-master-3"
            ),
        "{}{}",
        p.stdout,
        p.stderr
    );
    let r = s.run(&["provision", "-c", swapped.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("one member at a time"), "{}", r.stderr);
    assert_eq!(std::fs::read(dir.file()).unwrap(), saved, "a refused change changed the state");
}

/// While a restore is recorded (from before its first machine until `kubeadm init` has run on
/// the restored data), `up` and `bootstrap` refuse to start an empty cluster in its place; no
/// machine is reached (the static example's addresses are never dialled).
#[test]
fn up_does_not_start_an_empty_cluster_where_a_restore_is_under_way() {
    needs!(Plugins);
    let s = Scratch::new();
    let text = std::fs::read_to_string(example("static.yaml")).unwrap().replace("~/.ssh/id_ed25519", "OPKEY");
    let cfg = s.write("static.yaml", &text);
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    s.edit_state("metal", "static", |state| {
        state.restoring = Some("the backup of metal taken at 2026-12-06T19:00:00Z".into());
    });
    for cmd in ["up", "bootstrap"] {
        let r = s.run(&[cmd, "-c", cfg.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{cmd}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("a restore of the backup of metal taken at 2026-12-06T19:00:00Z is under way")
                && r.stderr.contains("finish it with `hacluster restore`"),
            "{cmd}: {}",
            r.stderr
        );
    }
}

#[test]
fn static_backend_checks_its_section() {
    needs!(Plugins);
    let s = Scratch::new();
    let text = std::fs::read_to_string(example("static.yaml"))
        .unwrap()
        .replace("~/.ssh/id_ed25519", "OPKEY")
        .replace("      - node: worker-2\n", "      - node: worker-9\n")
        .replace("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINpROdjjX0bg//Qi7hlz264uJ9AXGRsTKDhbZit7ACal", "not-a-key");
    let cfg = s.write("static.yaml", &text);
    let wasm = plugin("hacluster_plugin_static.wasm");
    let r = s.run(&["validate", "-c", cfg.to_str().unwrap(), "--plugin", wasm.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = r.json();
    let errs = v["errors"].as_array().unwrap();
    let find = |path: &str| errs.iter().find(|e| e["path"] == path).unwrap_or_else(|| panic!("{path} in {errs:?}"));
    assert!(find("backends.static.machines[4].node")["message"].as_str().unwrap().contains("no node `worker-9`"));
    let key = find("backends.static.machines[2].hostKey");
    // Located in the file: the hostKey line of the third machine.
    let line = text.lines().position(|l| l.contains("not-a-key")).unwrap() + 1;
    assert_eq!(key["line"], line as u64);
}

#[test]
fn plugins_are_found_in_the_user_directory_and_inspected() {
    needs!(Plugins);
    let s = Scratch::new();
    let user = s.path("data/hacluster/plugins");
    std::fs::create_dir_all(&user).unwrap();
    // A third party's backend (the static example, which hacluster also ships as `static`)
    // installed under a name of its own.
    std::fs::copy(plugin("hacluster_plugin_static.wasm"), user.join("bare-metal.wasm")).unwrap();

    let r = s.run(&["plugins", "list", "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = r.json();
    let st = list.as_array().unwrap().iter().find(|p| p["origin"] == "user").expect("the user's plugin listed");
    assert!(st["path"].as_str().unwrap().ends_with("bare-metal.wasm"), "{st}");
    assert_eq!(st["contract"], "0.1.2");
    let builtin = list.as_array().unwrap().iter().find(|p| p["name"] == "static" && p["origin"] == "builtin");
    assert!(builtin.is_some(), "static is shipped: {list}");

    let r = s.run(&["plugins", "inspect", "bare-metal", "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["info"]["name"], "static");
    assert_eq!(v["info"]["supports"]["cloudLb"], true);
    let imports: Vec<&str> =
        v["imports"].as_array().unwrap().iter().map(|i| i["interface"].as_str().unwrap()).collect();
    assert!(imports.iter().any(|i| i.starts_with("hacluster:backend/checkpoint@")), "{imports:?}");
    // The static backend needs no network and no hypervisor, and does not ask for them.
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:http/outgoing-handler") || i.contains("hypervisor")),
        "{imports:?}"
    );
    // The second load comes from the compiled-component cache.
    assert_eq!(v["compiledFromCache"], true, "list compiled it already");

    // The adversary asks for outbound HTTP; inspect says so.
    let r = s.run(&["plugins", "inspect", plugin("hacluster_plugin_adversary.wasm").to_str().unwrap(), "-o", "json"]);
    let v = r.json();
    assert!(
        v["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["interface"].as_str().unwrap().starts_with("wasi:http/outgoing-handler"))
    );

    let r = s.run(&["plugins", "inspect", "nonesuch"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no backend plugin named `nonesuch`"), "{}", r.stderr);
}

#[test]
fn wrong_contract_version_is_refused_with_the_versions_spoken() {
    needs!(Plugins);
    let s = Scratch::new();
    let r = s.run(&["plugins", "inspect", plugin("hacluster_plugin_wrong_contract.wasm").to_str().unwrap()]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("speaks contract 9.0.0")
            && r.stderr.contains("speaks hacluster:backend 0.1.2 (and every earlier release of the same 0.x line)"),
        "{}",
        r.stderr
    );
}

/// Contract 0.1.1 added an optional export; a component built against 0.1.0 (generated from
/// today's wit/ with its version put back, without the later files) loads and plans as
/// before, and `plan --out` writes the core's files and says why the backend's are missing.
#[test]
fn a_component_of_contract_0_1_0_still_loads_and_plans() {
    needs!(Plugins);
    let s = Scratch::new();
    let old = plugin("hacluster_plugin_old_contract.wasm");
    let r = s.run(&["plugins", "inspect", old.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["contract"], "0.1.0");
    assert_eq!(v["rendersFiles"], false);
    assert_eq!(v["drainsEndpoint"], false);
    let imports: Vec<&str> =
        v["imports"].as_array().unwrap().iter().map(|i| i["interface"].as_str().unwrap()).collect();
    assert!(imports.contains(&"hacluster:backend/types@0.1.0"), "{imports:?}");
    let cfg = s.write("static.yaml", &std::fs::read_to_string(example("static.yaml")).unwrap());
    let out = s.path("out");
    let r = s.run(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "--plugin",
        old.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["changes"].as_array().unwrap().len(), 5, "one planned machine per node: {v}");
    assert!(
        v["out"]["backendFilesMissing"].as_str().unwrap().contains("contract 0.1.0) does not export `files`"),
        "{v}"
    );
    assert!(out.join("metal-master-1/kubeadm-init.yaml").is_file());
    // The libvirt plugin of this release does export them; the aws plugin exports `endpoint`
    // (contract 0.1.2).
    let r = s.run(&["plugins", "inspect", crate::support::libvirt_plugin().to_str().unwrap(), "-o", "json"]);
    assert_eq!((r.json()["rendersFiles"].as_bool(), r.json()["drainsEndpoint"].as_bool()), (Some(true), Some(false)));
    let r = s.run(&["plugins", "inspect", plugin("hacluster_plugin_aws.wasm").to_str().unwrap(), "-o", "json"]);
    assert_eq!((r.json()["rendersFiles"].as_bool(), r.json()["drainsEndpoint"].as_bool()), (Some(false), Some(true)));
}

/// A third party's backend is the SDK crate and its own code: the static example, copied out
/// of the repository with its dependency pointed at the SDK by path, builds offline from its
/// lock file, loads, says the contract version of `wit/`, and provisions.
#[test]
fn the_static_example_builds_outside_the_repository() {
    needs!(Plugins);
    let s = Scratch::new();
    let copy = s.path("mine");
    copy_tree(&example("static-backend"), &copy);
    let manifest = copy.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let sdk = crate::support::repo().join("crates/hacluster-backend");
    let pointed = text.replace("\"../../crates/hacluster-backend\"", &format!("{:?}", sdk.to_str().unwrap()));
    assert_ne!(pointed, text, "the example depends on the SDK by a path relative to the repository");
    std::fs::write(&manifest, pointed).unwrap();

    // Kept beside this test binary, so that only the first run compiles the dependencies.
    let target = shared_cache().with_file_name("static-backend-outside");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--locked", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&copy)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let wasm = target.join("wasm32-wasip2/release/hacluster_plugin_static.wasm");
    let r = s.run(&["plugins", "inspect", wasm.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["info"]["name"], "static");
    let wit = std::fs::read_to_string(crate::support::repo().join("wit/backend.wit")).unwrap();
    let contract =
        wit.lines().find_map(|l| l.strip_prefix("package hacluster:backend@")).unwrap().trim_end_matches(';');
    assert_eq!(v["contract"], contract, "built against the contract of wit/");
    assert_eq!(v["info"]["contract"], contract, "the SDK stamps the contract of wit/ into `info`");
    assert_eq!(v["rendersFiles"], false);

    // And it provisions: the machines of the example adopted, their host keys pinned.
    let text = std::fs::read_to_string(example("static.yaml")).unwrap().replace("~/.ssh/id_ed25519", "OPKEY");
    let cfg = s.write("static.yaml", &text);
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap(), "--plugin", wasm.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("API endpoint: 192.0.2.10:6443"), "{}", r.stdout);
    let st = s.state_of("metal").expect("the state of the provisioned cluster");
    assert_eq!(st.backend, "static");
    assert_eq!(st.infrastructure.expect("its machines").machines.len(), 5);
}

/// Copies a source tree, without build output.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "target" {
            continue;
        }
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn not_a_component_is_refused() {
    needs!(Plugins);
    let s = Scratch::new();
    let fake = s.write("fake.wasm", "this is not wasm");
    let r = s.run(&["plugins", "inspect", fake.to_str().unwrap()]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("is not a WebAssembly component"), "{}", r.stderr);
}

/// Each misdeed through the CLI: exit 3 and a message naming the plugin and the limit.
#[test]
fn adversaries_end_in_clear_errors_within_their_limits() {
    needs!(Plugins);
    let s = Scratch::new();
    let cases: &[(&str, &[&str], &str)] = &[
        ("loop", &["--plugin-cpu-secs", "1"], "plugin `adversary` exceeded its CPU limit (1.0 s of guest time)"),
        ("sleep", &["--plugin-timeout-secs", "2"], "plugin `adversary` did not finish within its time limit (2.0 s)"),
        ("memory", &["--plugin-memory-mib", "64"], "plugin `adversary` exceeded its memory limit (64 MiB)"),
        ("trap", &[], "plugin `adversary` crashed: it panicked"),
        ("huge", &[], "plugin `adversary` returned too large a state: 67108864 bytes"),
        ("egress", &[], "the host refused requests to http://127.0.0.1:9 (not on the plugin's egress allow-list)"),
    ];
    for (mode, args, want) in cases {
        let cfg = s.write(&format!("{mode}.yaml"), &adversary_config(mode, ""));
        let mut a = vec!["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary"];
        a.extend_from_slice(args);
        let t = Instant::now();
        let r = s.run(&a);
        let took = t.elapsed();
        assert_eq!(r.code, 3, "{mode}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{mode}: want {want:?} in\n{}", r.stderr);
        // Not a timing assertion on the limit itself: a runaway would hang the test instead.
        assert!(took < Duration::from_secs(60), "{mode} took {took:?}");
    }
}

/// What a plugin says cannot drive the operator's terminal, hide or reorder what is shown,
/// flood it, or show a private key: escape sequences and bidirectional overrides in messages,
/// field names and values, progress steps and errors; 2,000 fields of 4 KiB and a 1 MiB
/// message; 1,000 progress steps; the node's user-data (its private host key) echoed.
#[test]
fn what_a_plugin_says_cannot_drive_the_terminal_or_show_a_key() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = s.write("terminal.yaml", &adversary_config("terminal", ""));
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary", "-vv"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("failed red"),
        "the error itself is shown: {}",
        &r.stderr[r.stderr.len().saturating_sub(2000)..]
    );
    for bad in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!r.stderr.contains(bad), "{bad:?} reached the terminal");
    }
    assert!(r.stderr.len() < 1 << 20, "{} bytes of output", r.stderr.len());
    assert!(r.stderr.contains("fields-cut"), "the fields beyond the bound are counted");
    assert!(r.stderr.contains("too many progress steps"), "{}", &r.stderr[..r.stderr.len().min(3000)]);
    let st = s.state_of("adv").expect("state with the identities");
    for id in st.identities.values() {
        for line in id.host_private_key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!r.stderr.contains(line), "a line of a private host key reached the terminal");
        }
    }
    assert!(r.stderr.contains("[REDACTED]"), "the key shows as masked");
}

#[test]
fn sandbox_gives_no_files_environment_or_sockets() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = s.write("snoop.yaml", &adversary_config("snoop", ""));
    let r = s
        .cmd(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary"])
        .env("SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    let r: Run = r.into();
    assert_eq!(r.code, 3, "{}", r.stderr);
    // The plugin reports what it saw: no file, no environment, no connection.
    assert!(r.stderr.contains("file=error"), "{}", r.stderr);
    assert!(r.stderr.contains("env=0"), "{}", r.stderr);
    assert!(r.stderr.contains("tcp=error"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2"));
}

/// Addresses and user names from a plugin reach root shell scripts on the nodes: anything that
/// is not an IP address, a DNS name or a user name is refused as bad plugin output, and no state
/// records it.
#[test]
fn a_command_where_an_address_belongs_is_refused() {
    needs!(Plugins);
    let s = Scratch::new();
    for (field, says) in [
        ("private", "private address that is not an IP address"),
        ("ssh", "SSH address that is neither an IP address nor a DNS name"),
        ("user", "unusable SSH user name"),
        ("endpoint", "API endpoint's host is neither an IP address nor a DNS name"),
    ] {
        let cfg =
            s.write(&format!("inject-{field}.yaml"), &adversary_config("inject", &format!("    field: {field}\n")));
        let r = s.run(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary"]);
        assert_eq!(r.code, 3, "{field}: {}", r.stderr);
        assert!(r.stderr.contains(says) && r.stderr.contains("adversary-was-here"), "{field}: {}", r.stderr);
        assert!(s.state_of("adv").is_none_or(|st| st.infrastructure.is_none()), "{field}: recorded");
    }
}

/// A tiny HTTP server on a free loopback port answering one request with `body`. It reads the
/// whole request by its framing (chunked or Content-Length) before answering: answering and
/// closing with request bytes still unread makes the kernel reset the connection, which a
/// timing-based drain only avoids when the machine is idle.
fn http_server(body: &'static str) -> (u16, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(false).unwrap();
    let h = std::thread::spawn(move || {
        let Ok((mut c, _)) = l.accept() else { return 0 };
        let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let mut read_until = |buf: &mut Vec<u8>, done: &dyn Fn(&[u8]) -> bool| {
            while !done(buf) {
                match c.read(&mut chunk) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            true
        };
        if !read_until(&mut buf, &|b| b.windows(4).any(|w| w == b"\r\n\r\n")) {
            return 0;
        }
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length =
            head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
        let complete = if head.contains("transfer-encoding: chunked") {
            read_until(&mut buf, &|b| b[head_end..].windows(5).any(|w| w == b"0\r\n\r\n"))
        } else {
            let want = head_end + length.unwrap_or(0);
            read_until(&mut buf, &|b| b.len() >= want)
        };
        if !complete {
            return 0;
        }
        let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        let _ = c.flush();
        1
    });
    (port, h)
}

#[test]
fn egress_allow_list_lets_listed_origins_through_and_only_those() {
    needs!(Plugins);
    let s = Scratch::new();
    let (port, server) = http_server("hello from the allowed origin");
    let extra = format!("    url: http://127.0.0.1:{port}/x\n    egress: [\"http://127.0.0.1:{port}\"]\n");
    let cfg = s.write("allowed.yaml", &adversary_config("egress", &extra));
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary"]);
    // The adversary reports what it fetched as its (internal) error.
    assert!(r.stderr.contains("fetched: 200 hello from the allowed origin"), "{}", r.stderr);
    assert_eq!(server.join().unwrap(), 1);

    // Same server, a port not on the list: refused by the host, nothing reaches the network.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let other_port = other.local_addr().unwrap().port();
    let extra = format!("    url: http://127.0.0.1:{other_port}/x\n    egress: [\"http://127.0.0.1:{port}\"]\n");
    let cfg = s.write("denied.yaml", &adversary_config("egress", &extra));
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains(&format!("refused requests to http://127.0.0.1:{other_port}")), "{}", r.stderr);
    assert!(other.accept().is_err(), "the denied request must not connect");
}

/// All misdeeds against one host in one process, then a well-behaved call on the same host.
#[test]
fn host_stays_usable_after_every_failure() {
    needs!(Plugins);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let limits = Limits {
            memory_bytes: 256 << 20,
            cpu: Duration::from_secs(1),
            wall: Duration::from_secs(2),
            ..Limits::default()
        };
        let host = PluginHost::new(Arc::new(Silent), limits, Some(shared_cache())).unwrap();
        let plugin = host.load(&discovery::from_path(&plugin("hacluster_plugin_adversary.wasm"))).await.unwrap();
        let key = hacluster::identity::generate_host_key().unwrap();
        for mode in ["loop", "memory", "sleep", "trap", "huge", "egress", "loop", "ok"] {
            let text = adversary_config(mode, "").replace("OPKEY", "/nonexistent");
            let checked = config::check_str(
                "adv.yaml",
                &text,
                &Options { backend: Some(plugin.profile()), ..Options::default() },
            );
            let spec = checked.spec.expect("valid config");
            let mut state = ClusterState::new("adv", "adversary");
            hacluster::identity::ensure_identities(&spec, &mut state).unwrap();
            let input = ClusterInput {
                spec: &spec,
                identities: &state.identities,
                authorized_key: &key.host_public_key,
                backend: "adversary",
            };
            let t = Instant::now();
            let out = plugin.apply(&input, None, Grants::none(), Box::new(|_| Ok(()))).await;
            let took = t.elapsed();
            match (mode, out) {
                ("loop", Err(PluginError::CpuLimit { .. })) => assert!(took < Duration::from_secs(20), "{took:?}"),
                ("memory", Err(PluginError::MemoryLimit { limit_bytes, .. })) => assert_eq!(limit_bytes, 256 << 20),
                ("sleep", Err(PluginError::Timeout { limit, .. })) => assert_eq!(limit, Duration::from_secs(2)),
                ("trap", Err(PluginError::Trap { .. })) => {}
                ("huge", Err(PluginError::OutputTooLarge { .. })) => {}
                ("egress", Err(PluginError::Backend { denied_egress, .. })) => {
                    assert_eq!(denied_egress, ["http://127.0.0.1:9"])
                }
                ("ok", Ok((infra, state))) => {
                    assert_eq!(infra.machines.len(), 4);
                    assert_eq!(String::from_utf8(state).unwrap(), "ok after 0 bytes of prior state");
                }
                (m, other) => panic!("{m}: unexpected {other:?}"),
            }
        }
        // info() still answers on the same loaded plugin.
        assert_eq!(plugin.call_info().await.unwrap().name, "adversary");
    });
}

/// Reads the backend state from the state file and checks it is one whole checkpoint: the
/// adversary writes `step N ` followed by 256 KiB of the digit N % 10.
fn checkpoint_step(state_file: &Path) -> Option<u64> {
    let bytes = std::fs::read(state_file).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("state file must always parse (atomic writes)");
    let blob = base64::engine::general_purpose::STANDARD.decode(v["backendState"].as_str()?).unwrap();
    let text = std::str::from_utf8(&blob).unwrap();
    let rest = text.strip_prefix("step ")?;
    let (n, payload) = rest.split_once(' ').unwrap();
    let n: u64 = n.parse().unwrap();
    let digit = (b'0' + (n % 10) as u8) as char;
    assert_eq!(payload.len(), 256 << 10, "torn checkpoint: step {n} payload {} bytes", payload.len());
    assert!(payload.chars().all(|c| c == digit), "torn checkpoint: step {n} mixes digits");
    Some(n)
}

#[test]
fn killed_during_apply_keeps_every_checkpoint_whole() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = s.write("ckpt.yaml", &adversary_config("checkpoint", "    count: 400\n    intervalMs: 10\n"));
    let state_file = s.state().join("adv/state.json");
    let mut last = 0;
    for kill_after in [3u64, 9, 17] {
        let mut child = s
            .cmd(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let step = checkpoint_step(&state_file).unwrap_or(0);
            // Each run starts over from step 1; wait until this run has passed the mark.
            if step >= kill_after && step != last {
                break;
            }
            assert!(Instant::now() < deadline, "no progress to step {kill_after}");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        last = checkpoint_step(&state_file).expect("a checkpoint survived the kill");
        assert!(last >= kill_after, "{last} < {kill_after}");
    }
    // The next run receives the last checkpoint as its prior state.
    let prior = std::fs::read(&state_file).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&prior).unwrap();
    let prior_len =
        base64::engine::general_purpose::STANDARD.decode(v["backendState"].as_str().unwrap()).unwrap().len();
    let ok = s.write("ok.yaml", &adversary_config("ok", ""));
    let r = s.run(&["provision", "-c", ok.to_str().unwrap(), "--backend", "adversary"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let st = s.state_of("adv").unwrap();
    assert_eq!(
        String::from_utf8(st.backend_state.unwrap()).unwrap(),
        format!("ok after {prior_len} bytes of prior state")
    );
    // No temporary file outlives the runs that were killed.
    let leftovers: Vec<_> = std::fs::read_dir(s.state().join("adv"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn two_runs_cannot_hold_the_state_at_once() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = s.write("slow.yaml", &adversary_config("checkpoint", "    count: 200\n    intervalMs: 20\n"));
    let mut first = s
        .cmd(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state_file = s.state().join("adv/state.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoint_step(&state_file).unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "adversary"]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("another hacluster run is working on this cluster"), "{}", r.stderr);
}

#[test]
fn compiled_components_are_cached_by_content() {
    needs!(Plugins);
    let s = Scratch::new();
    let fresh = s.path("fresh-cache");
    let wasm = plugin("hacluster_plugin_static.wasm");
    let inspect = || -> serde_json::Value {
        let out = s
            .cmd(&["plugins", "inspect", wasm.to_str().unwrap(), "-o", "json"])
            .env("HACLUSTER_CACHE_DIR", &fresh)
            .output()
            .unwrap();
        Run::from(out).json()
    };
    assert_eq!(inspect()["compiledFromCache"], false);
    let files: Vec<String> =
        std::fs::read_dir(&fresh).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let sha = inspect()["sha256"].as_str().unwrap().to_string();
    // Named by the component's hash and the engine's compatibility hash.
    assert!(files.iter().any(|f| f.starts_with(&sha) && f.ends_with(".cwasm")), "{files:?}");
    assert_eq!(inspect()["compiledFromCache"], true);
    // The cache holds native code: a file others may write, or in a directory others may
    // change, is not loaded (compiled again, and written back with our own modes).
    use std::os::unix::fs::PermissionsExt;
    let cached = fresh.join(files.iter().find(|f| f.starts_with(&sha)).unwrap());
    std::fs::set_permissions(&cached, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(inspect()["compiledFromCache"], false, "a world-writable cache file was loaded");
    assert_eq!(std::fs::metadata(&cached).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(inspect()["compiledFromCache"], true);
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o777)).unwrap();
    let v = inspect();
    assert_eq!(v["compiledFromCache"], false, "a cache in a world-writable directory was loaded");
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
    // A link in place of the file is not followed.
    let elsewhere = s.path("elsewhere.cwasm");
    std::fs::rename(&cached, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &cached).unwrap();
    assert_eq!(inspect()["compiledFromCache"], false, "a link was followed");
    // A changed component is a different key: the cache never serves stale code.
    let copy = s.path("copy.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    // Append a custom section (id 0, name "x", no payload): same code, different hash.
    bytes.extend_from_slice(&[0, 2, 1, b'x']);
    std::fs::write(&copy, bytes).unwrap();
    let out = s
        .cmd(&["plugins", "inspect", copy.to_str().unwrap(), "-o", "json"])
        .env("HACLUSTER_CACHE_DIR", &fresh)
        .output()
        .unwrap();
    let v = Run::from(out).json();
    assert_eq!(v["compiledFromCache"], false, "{v}");
}

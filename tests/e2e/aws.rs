//! The AWS backend against moto's server (PyPI `moto[server]`), started by each test on a free
//! 127.0.0.1 port: the real plugin, the real host, the AWS SDK inside the component, wasi:http
//! through the host's egress hook. What moto does not emulate (signatures, health checks,
//! `net/` ARNs, client-token idempotency) only a real account proves; see the README.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::{Moto, Run, Scratch, example, needs};

fn aws_plugin() -> PathBuf {
    crate::support::plugin("hacluster_plugin_aws.wasm")
}

/// examples/aws.yaml pointed at moto, with `workers` workers.
fn config(s: &Scratch, moto: &Moto, workers: usize) -> PathBuf {
    let mut text = std::fs::read_to_string(example("aws.yaml")).unwrap().replace("~/.ssh/id_ed25519", "OPKEY").replace(
        "    adminCidrs: [203.0.113.0/24]",
        &format!("    adminCidrs: [203.0.113.0/24]\n    endpoint: {}", moto.endpoint()),
    );
    if workers != 3 {
        let list: String = (1..=workers).map(|i| format!("        - id: {i}\n")).collect();
        text = text
            .replace("        - id: 1\n        - id: 2\n        - id: 3\n\nkubernetes", &format!("{list}\nkubernetes"));
        // The master list is the first `- id: 1..3`; the worker list follows `worker:`.
        let w = text.find("    worker:\n      instances:\n").unwrap();
        let head = &text[..w];
        let tail = &text[w..];
        let end = tail.find("\nkubernetes").unwrap();
        text = format!("{head}    worker:\n      instances:\n{list}{}", &tail[end..]);
    }
    s.write("aws.yaml", &text)
}

fn hacluster(s: &Scratch, args: &[&str]) -> Command {
    let mut c = s.cmd(args);
    c.env("AWS_ACCESS_KEY_ID", "testing").env("AWS_SECRET_ACCESS_KEY", "testing").env_remove("AWS_SESSION_TOKEN");
    c
}

fn provision(s: &Scratch, cfg: &Path, extra_env: &[(&str, &str)]) -> Run {
    let mut c = hacluster(s, &["provision", "-c", cfg.to_str().unwrap(), "--backend", "aws", "-o", "json"]);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap().into()
}

fn down(s: &Scratch, cfg: &Path) -> Run {
    hacluster(s, &["down", "-c", cfg.to_str().unwrap(), "--backend", "aws", "-o", "json"]).output().unwrap().into()
}

fn ids(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap_or_else(|| x["arn"].as_str().unwrap()).to_string())
        .collect();
    out.sort();
    out
}

/// The rules of one group, as (protocol, from, to, source) strings.
fn rules(inv: &serde_json::Value, role: &str) -> Vec<String> {
    let g = inv["securityGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["role"] == role)
        .unwrap_or_else(|| panic!("no {role} group"));
    let mut r: Vec<String> = g["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!("{} {}-{} {}", r["protocol"].as_str().unwrap(), r["from"], r["to"], r["source"].as_str().unwrap())
        })
        .collect();
    r.sort();
    r
}

fn assert_expected_resources(inv: &serde_json::Value, workers: usize) {
    let n = |k: &str| inv[k].as_array().unwrap().len();
    assert_eq!(n("vpcs"), 1, "{inv}");
    let vpc = &inv["vpcs"][0];
    assert_eq!(vpc["cidr"], "10.0.0.0/16");
    assert_eq!(vpc["dnsSupport"], true);
    assert_eq!(vpc["dnsHostnames"], true);
    let subnets: Vec<(String, String)> = inv["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["zone"].as_str().unwrap().to_string(), s["cidr"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        subnets,
        [("eu-central-1a", "10.0.0.0/20"), ("eu-central-1b", "10.0.16.0/20"), ("eu-central-1c", "10.0.32.0/20")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(inv["subnets"].as_array().unwrap().iter().all(|s| s["publicIp"] == true));
    assert_eq!(n("internetGateways"), 1);
    assert_eq!(inv["internetGateways"][0]["attachedTo"], serde_json::json!([vpc["id"]]));
    assert_eq!(n("routeTables"), 1);
    let rt = &inv["routeTables"][0];
    assert!(
        rt["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["destination"] == "0.0.0.0/0" && r["gateway"] == inv["internetGateways"][0]["id"])
    );
    assert_eq!(rt["subnets"].as_array().unwrap().len(), 3);

    // Security groups: seed 004's list, as rules between groups, never 0.0.0.0/0.
    assert_eq!(n("securityGroups"), 3);
    let cp = rules(inv, "control-plane");
    let want_cp = [
        "tcp 22-22 cidr:203.0.113.0/24",
        "tcp 179-179 group:control-plane",
        "tcp 179-179 group:worker",
        "tcp 2379-2380 group:control-plane",
        "tcp 6443-6443 group:api-load-balancer",
        "tcp 6443-6443 cidr:203.0.113.0/24",
        "tcp 6443-6443 group:control-plane",
        "tcp 6443-6443 group:worker",
        "tcp 10250-10250 group:control-plane",
        "tcp 10257-10257 group:control-plane",
        "tcp 10259-10259 group:control-plane",
        "4 -1--1 group:control-plane",
        "4 -1--1 group:worker",
    ];
    let mut want_cp: Vec<String> = want_cp.iter().map(|s| s.to_string()).collect();
    want_cp.sort();
    assert_eq!(cp, want_cp);
    let worker = rules(inv, "worker");
    let mut want_w: Vec<String> = [
        "tcp 22-22 cidr:203.0.113.0/24",
        "tcp 179-179 group:control-plane",
        "tcp 179-179 group:worker",
        "tcp 10250-10250 group:control-plane",
        "tcp 30000-32767 cidr:10.0.0.0/16",
        "udp 30000-32767 cidr:10.0.0.0/16",
        "4 -1--1 group:control-plane",
        "4 -1--1 group:worker",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want_w.sort();
    assert_eq!(worker, want_w);
    assert!(!inv.to_string().contains("0.0.0.0/0\"") || !cp.iter().chain(&worker).any(|r| r.contains("0.0.0.0/0")));

    assert_eq!(inv["keyPairs"], serde_json::json!(["aws-ha-key"]));

    // Instances: types per role, control planes one per zone, user-data with the pinned key.
    let inst = inv["instances"].as_array().unwrap();
    assert_eq!(inst.len(), 3 + workers);
    let cps: Vec<&serde_json::Value> = inst.iter().filter(|i| i["role"] == "control-plane").collect();
    assert_eq!(cps.len(), 3);
    let mut zones: Vec<&str> = cps.iter().map(|i| i["zone"].as_str().unwrap()).collect();
    zones.sort();
    assert_eq!(zones, ["eu-central-1a", "eu-central-1b", "eu-central-1c"]);
    for i in inst {
        assert_eq!(i["state"], "running", "{i}");
        assert_eq!(i["keyName"], "aws-ha-key");
        let (ty, group) =
            if i["role"] == "control-plane" { ("t3.medium", "control-plane") } else { ("t3.large", "worker") };
        assert_eq!(i["type"], ty, "{i}");
        assert_eq!(i["groups"], serde_json::json!([group]));
        let ud = i["userData"].as_str().unwrap();
        assert!(ud.starts_with("#cloud-config\n"), "{ud}");
        let doc: serde_json::Value = serde_json::from_str(&ud["#cloud-config\n".len()..]).unwrap();
        assert_eq!(doc["hostname"], i["node"]);
        assert!(doc["ssh_keys"]["ed25519_public"].as_str().unwrap().starts_with("ssh-ed25519 "));
        assert_eq!(doc["users"][0]["name"], "k8s");
    }

    // The NLB: network, internet-facing, TCP 6443 with an HTTPS /readyz health check, every
    // control plane registered.
    assert_eq!(n("loadBalancers"), 1);
    let lb = &inv["loadBalancers"][0];
    assert_eq!(lb["type"], "network");
    assert_eq!(lb["scheme"], "internet-facing");
    // The NLB has its own group: the API port from the admin network, the nodes inside the VPC
    // and — internet-facing — each node by its public address. It forwards with its own
    // address (no client-address preservation), which the control planes admit by group.
    assert_eq!(lb["groups"], serde_json::json!(["api-load-balancer"]));
    let mut want_lb: Vec<String> =
        ["tcp 6443-6443 cidr:203.0.113.0/24", "tcp 6443-6443 group:control-plane", "tcp 6443-6443 group:worker"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    for i in inst {
        let ip = i["publicIp"].as_str().unwrap_or_else(|| panic!("moto gives public addresses in public subnets: {i}"));
        want_lb.push(format!("tcp 6443-6443 cidr:{ip}/32"));
    }
    want_lb.sort();
    assert_eq!(rules(inv, "api-load-balancer"), want_lb);
    assert_eq!(n("targetGroups"), 1);
    let tg = &inv["targetGroups"][0];
    assert_eq!((tg["protocol"].as_str(), tg["port"].as_u64()), (Some("TCP"), Some(6443)));
    assert_eq!(tg["healthCheckProtocol"], "HTTPS");
    assert_eq!(tg["healthCheckPath"], "/readyz");
    assert_eq!(tg["targetType"], "instance");
    assert_eq!(tg["attributes"]["preserve_client_ip.enabled"], "false", "{tg}");
    let mut cp_ids: Vec<&str> = cps.iter().map(|i| i["id"].as_str().unwrap()).collect();
    cp_ids.sort();
    assert_eq!(tg["targets"], serde_json::json!(cp_ids));
    assert_eq!(n("listeners"), 1);
    let l = &inv["listeners"][0];
    assert_eq!((l["protocol"].as_str(), l["port"].as_u64()), (Some("TCP"), Some(6443)));
    assert_eq!(l["forwardTo"], serde_json::json!([tg["arn"]]));
}

#[test]
fn provision_creates_exactly_the_expected_resources_and_a_second_run_nothing() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 3);
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = r.json();
    let inv = moto.inventory("aws-ha");
    assert_expected_resources(&inv, 3);
    // The endpoint is the NLB's DNS name; machines carry the pinned keys.
    assert_eq!(out["endpoint"]["host"], inv["loadBalancers"][0]["dns"]);
    let st = s.state_of("aws-ha").unwrap();
    for m in out["machines"].as_array().unwrap() {
        let id = &st.identities[m["name"].as_str().unwrap()];
        assert_eq!(m["ssh"]["hostPublicKey"], id.host_public_key.as_str());
        // The instance's user-data delivers exactly that key pair (so the pin is the key the
        // machine will present), and the operator's key for the login user.
        let inst = inv["instances"].as_array().unwrap().iter().find(|i| i["node"] == m["name"]).unwrap();
        let ud = inst["userData"].as_str().unwrap();
        let doc: serde_json::Value = serde_json::from_str(&ud["#cloud-config\n".len()..]).unwrap();
        assert_eq!(doc["ssh_keys"]["ed25519_public"], id.host_public_key.as_str());
        assert_eq!(doc["ssh_keys"]["ed25519_private"], id.host_private_key.as_str());
        let operator = std::fs::read_to_string(s.path("op.pub")).unwrap();
        assert_eq!(doc["users"][0]["ssh_authorized_keys"][0].as_str().unwrap().trim(), operator.trim());
    }
    let first_requests = out["http"]["sent"].as_u64().unwrap();

    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let again = moto.inventory("aws-ha");
    for key in [
        "vpcs",
        "subnets",
        "internetGateways",
        "routeTables",
        "securityGroups",
        "instances",
        "loadBalancers",
        "targetGroups",
    ] {
        assert_eq!(ids(&inv, key), ids(&again, key), "{key} changed on the second run");
    }
    assert_eq!(inv["total"], again["total"]);
    assert_eq!(rules(&inv, "control-plane"), rules(&again, "control-plane"));
    // Converged: the second run only looks.
    assert!(r.json()["http"]["sent"].as_u64().unwrap() < first_requests);

    let r = down(&s, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
    assert!(s.state_of("aws-ha").is_none());
}

/// A config with fewer workers: `plan` names the instances that go, `provision` terminates them
/// (hacluster takes a running cluster's nodes out of Kubernetes first: `real_membership` shows
/// that on the lab), and every other resource stays the same one.
#[test]
fn the_instances_of_dropped_nodes_are_terminated_and_the_rest_kept() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 3);
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let before = moto.inventory("aws-ha");
    let cfg = config(&s, &moto, 1);
    let p = hacluster(&s, &["plan", "-c", cfg.to_str().unwrap(), "--backend", "aws", "-o", "json"]).output().unwrap();
    let p: Run = p.into();
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    let deleted: Vec<String> = p.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "delete")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deleted, ["aws-ha-worker-2", "aws-ha-worker-3"]);
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let after = moto.inventory("aws-ha");
    let nodes = |inv: &serde_json::Value| -> Vec<String> {
        let mut n: Vec<String> =
            inv["instances"].as_array().unwrap().iter().map(|i| i["node"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(nodes(&after), ["aws-ha-master-1", "aws-ha-master-2", "aws-ha-master-3", "aws-ha-worker-1"]);
    let kept: Vec<&serde_json::Value> = before["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            !i["node"].as_str().unwrap().ends_with("worker-2") && !i["node"].as_str().unwrap().ends_with("worker-3")
        })
        .collect();
    let kept_ids: Vec<&str> = kept.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let mut after_ids: Vec<&str> =
        after["instances"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    after_ids.sort();
    let mut kept_ids = kept_ids;
    kept_ids.sort();
    assert_eq!(after_ids, kept_ids, "the instances that stay are the same ones");
    for key in ["vpcs", "subnets", "securityGroups", "loadBalancers", "targetGroups"] {
        assert_eq!(ids(&before, key), ids(&after, key), "{key} changed");
    }
    let st = backend_state(&s).unwrap();
    let recorded: Vec<&String> = st["instances"].as_object().unwrap().keys().collect();
    assert_eq!(recorded, ["aws-ha-master-1", "aws-ha-master-2", "aws-ha-master-3", "aws-ha-worker-1"]);
    let r = down(&s, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

/// The contract's `endpoint` export (0.1.2), through `hacluster endpoint --balancer-only` (the
/// machines moto makes answer no SSH): a control plane's instance leaves the NLB's target group
/// and comes back healthy, each call idempotent; the target group drains for 30 s, not 300 s;
/// a worker is refused. `plan` for an upgrade says the balancer is told, with no warning.
#[test]
fn the_nlb_target_of_a_control_plane_is_drained_and_restored() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 1);
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let c = cfg.to_str().unwrap();
    let member = |action: &str, node: &str| -> Run {
        hacluster(&s, &["endpoint", action, "-c", c, "--backend", "aws", node, "--balancer-only", "-o", "json"])
            .output()
            .unwrap()
            .into()
    };
    let instance = backend_state(&s).unwrap()["instances"]["aws-ha-master-2"].as_str().unwrap().to_string();
    let targets = || -> Vec<String> {
        let inv = moto.inventory("aws-ha");
        inv["targetGroups"][0]["targets"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(targets().len(), 3);
    assert!(targets().contains(&instance));
    let attrs = &moto.inventory("aws-ha")["targetGroups"][0]["attributes"];
    assert_eq!(attrs["deregistration_delay.timeout_seconds"], "30", "{attrs}");

    let r = member("drain", "aws-ha-master-2");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!((v["action"].as_str(), v["onNode"].as_bool()), (Some("drained"), Some(false)), "{v}");
    assert!(v["balancer"].as_str().unwrap().starts_with(&format!("deregistered {instance} from target group")), "{v}");
    assert_eq!(targets().len(), 2);
    assert!(!targets().contains(&instance), "still a target after the drain");
    let r = member("drain", "aws-ha-master-2");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.json()["balancer"].as_str().unwrap().contains("was not registered"), "{}", r.stdout);

    let r = member("restore", "aws-ha-master-2");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.json()["balancer"].as_str().unwrap().contains("healthy after"), "{}", r.stdout);
    assert_eq!(targets().len(), 3);
    assert!(targets().contains(&instance));
    let r = member("restore", "aws-ha-master-2");
    assert!(r.json()["balancer"].as_str().unwrap().contains("was registered and healthy"), "{}", r.stdout);

    let r = member("drain", "aws-ha-worker-1");
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not a control plane"), "{}", r.stdout);
    assert_eq!(targets().len(), 3);

    // An upgrade from a recorded older version: the balancer is told, nothing to warn about.
    {
        let dir = hacluster::state::StateDir::new(&s.state(), "aws-ha");
        let lock = dir.lock().unwrap();
        let mut state = lock.load_or_new("aws-ha", "aws").unwrap();
        state.bootstrap = Some(hacluster::state::BootstrapRecord {
            completed: vec!["kubeadm-init".into()],
            kubernetes_version: Some("v1.36.3".into()),
            ..Default::default()
        });
        lock.save(&state).unwrap();
    }
    let p: Run = hacluster(&s, &["plan", "-c", c, "--backend", "aws", "-o", "json"]).output().unwrap().into();
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    let u = &p.json()["upgrade"];
    assert_eq!(u["warnings"].as_array().map(Vec::len), Some(0), "{u}");
    assert!(
        u["endpointDrain"].as_str().unwrap().starts_with("backend `aws` takes the member out of its balancer"),
        "{u}"
    );

    let r = down(&s, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// The backend's own state inside state.json, decoded.
fn backend_state(s: &Scratch) -> Option<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state().join("aws-ha/state.json")).ok()?).ok()?;
    let blob = base64::engine::general_purpose::STANDARD.decode(v["backendState"].as_str()?).ok()?;
    serde_json::from_slice(&blob).ok()
}

#[test]
fn killed_at_five_points_converges_without_duplicates_and_down_leaves_nothing() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 3);
    type Point = (&'static str, fn(&serde_json::Value) -> bool);
    let points: [Point; 5] = [
        ("after the VPC", |b| b["vpc"].is_string()),
        ("after two subnets", |b| b["subnets"].as_object().is_some_and(|m| m.len() >= 2)),
        ("after the security groups", |b| b["sgWorker"].is_string()),
        ("after two instances", |b| b["instances"].as_object().is_some_and(|m| m.len() >= 2)),
        ("after the target group", |b| b["targetGroup"].is_string()),
    ];
    for (name, reached) in points {
        // Slow every request down so each window is wide enough to hit.
        let mut child = hacluster(&s, &["provision", "-c", cfg.to_str().unwrap(), "--backend", "aws"])
            .env("HACLUSTER_FAULT_INJECTION", "delay=150ms")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if backend_state(&s).is_some_and(|b| reached(&b)) {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("provision ended ({status}) before reaching the point {name}");
            }
            assert!(Instant::now() < deadline, "never reached {name}");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_expected_resources(&moto.inventory("aws-ha"), 3);

    let r = down(&s, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let left = moto.inventory("aws-ha");
    assert_eq!(left["total"], 0, "{left}");
}

#[test]
fn down_without_state_finds_everything_by_tags() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 2);
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(moto.inventory("aws-ha")["total"].as_u64().unwrap() > 10);
    std::fs::remove_dir_all(s.state().join("aws-ha")).unwrap();
    let r = down(&s, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

#[test]
fn throttling_is_ridden_out_without_duplicate_instances() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 3);
    let r = provision(&s, &cfg, &[("HACLUSTER_FAULT_INJECTION", "throttle=30,seed=11")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let http = &r.json()["http"];
    assert!(http["throttled"].as_u64().unwrap() >= 5, "{http}");
    assert_expected_resources(&moto.inventory("aws-ha"), 3);
}

/// Flannel: the CNI's VXLAN (UDP 4789) between all nodes instead of Calico's BGP and IP-in-IP,
/// in both node groups.
#[test]
fn flannel_gets_vxlan_between_the_node_groups_instead_of_bgp() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let text = std::fs::read_to_string(config(&s, &moto, 1)).unwrap();
    assert!(text.contains("networkPlugin: calico"), "the example's CNI changed");
    let cfg = s.write("flannel.yaml", &text.replace("networkPlugin: calico", "networkPlugin: flannel"));
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let inv = moto.inventory("aws-ha");
    for role in ["control-plane", "worker"] {
        let r = rules(&inv, role);
        assert!(r.contains(&"udp 4789-4789 group:control-plane".to_string()), "{role}: {r:?}");
        assert!(r.contains(&"udp 4789-4789 group:worker".to_string()), "{role}: {r:?}");
        assert!(!r.iter().any(|x| x.starts_with("tcp 179-") || x.starts_with("4 ")), "no Calico rules: {r:?}");
    }
    assert_eq!(down(&s, &cfg).code, 0);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

/// `nlbScheme: internal`: nodes reach the NLB inside the VPC, so its group admits them by
/// group only, with no public addresses.
#[test]
fn an_internal_nlb_admits_nodes_by_group_and_no_public_address() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let text = std::fs::read_to_string(config(&s, &moto, 1)).unwrap();
    assert!(text.contains("nlbScheme: internet-facing"), "the example's scheme changed");
    let cfg = s.write("internal.yaml", &text.replace("nlbScheme: internet-facing", "nlbScheme: internal"));
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let inv = moto.inventory("aws-ha");
    assert_eq!(inv["loadBalancers"][0]["scheme"], "internal");
    assert_eq!(
        rules(&inv, "api-load-balancer"),
        ["tcp 6443-6443 cidr:203.0.113.0/24", "tcp 6443-6443 group:control-plane", "tcp 6443-6443 group:worker"]
    );
    assert_eq!(down(&s, &cfg).code, 0);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

/// RunInstances calls that reach EC2 but whose answers never come back (the host's `lose`
/// fault: sent, answered, the answer dropped). The plugin finds each launched instance by its
/// node tag instead of launching again: moto ignores ClientToken, so a second launch would
/// show here as a seventh instance.
#[test]
fn lost_run_instances_answers_launch_nothing_twice() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 3);
    let r = provision(&s, &cfg, &[("HACLUSTER_FAULT_INJECTION", "lose=50:RunInstances,seed=11")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    let lost = v["http"]["lost"].as_u64().unwrap();
    assert!(lost >= 1, "the fault must have struck: {v}");
    let inv = moto.inventory("aws-ha");
    assert_expected_resources(&inv, 3);
    assert_eq!(r.stderr.matches("the launch went through; its answer was lost").count() as u64, lost, "{}", r.stderr);
    assert_eq!(down(&s, &cfg).code, 0);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

#[test]
fn a_denied_endpoint_fails_clearly_and_is_not_retried() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 3);
    let deny = format!("deny={}", moto.endpoint());
    let r = provision(&s, &cfg, &[("HACLUSTER_FAULT_INJECTION", &deny)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let v = r.json();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains(&format!("refused requests to {}", moto.endpoint())), "{msg}");
    assert_eq!(v["http"]["denied"], 1, "a denied request must not be retried: {v}");
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

#[test]
fn errors_from_aws_keep_the_code_and_message_but_no_credentials() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    // A VPC id that does not exist: the API's own error code and message must come through.
    let text = std::fs::read_to_string(config(&s, &moto, 3)).unwrap().replace(
        "    vpc:\n      cidr: 10.0.0.0/16\n",
        "    vpc:\n      id: vpc-0123456789abcdef0\n      subnetIds: [subnet-0123456789abcdef0, subnet-0123456789abcdef1, subnet-0123456789abcdef2]\n",
    );
    assert!(text.contains("vpc-0123456789abcdef0"));
    let cfg = s.write("existing-vpc.yaml", &text);
    let mut c = hacluster(&s, &["provision", "-c", cfg.to_str().unwrap(), "--backend", "aws"]);
    c.env("AWS_SECRET_ACCESS_KEY", "SECRET-should-never-print");
    let r: Run = c.output().unwrap().into();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("DescribeVpcs: InvalidVpcID.NotFound"), "{}", r.stderr);
    assert!(r.stderr.contains("vpc-0123456789abcdef0"), "{}", r.stderr);
    assert!(!r.stderr.contains("SECRET-should-never-print") && !r.stdout.contains("SECRET-should-never-print"));
    // Checked before anything was created in it.
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

/// A component's name is what it says it is: loaded by path, a plugin calling itself `aws`
/// gets no AWS credentials (and no AWS endpoints) until the operator grants them on the
/// command line; the built-in one gets them (every other test here).
#[test]
fn credentials_go_to_the_built_in_aws_plugin_or_by_explicit_grant_only() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 1);
    let path = aws_plugin();
    let (cfg, path) = (cfg.to_str().unwrap(), path.to_str().unwrap());

    let r: Run = hacluster(&s, &["provision", "-c", cfg, "--plugin", path]).output().unwrap().into();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("the host does not grant `aws` credentials to plugin `aws`")
            && r.stderr.contains("--grant-credentials aws"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("testing"), "no credential value in the error: {}", r.stderr);
    assert_eq!(moto.inventory("aws-ha")["total"], 0, "nothing was created without credentials");

    // A shipped plugin found under another name that declares itself `aws` gets nothing either:
    // the name asked for and the name declared must agree.
    let shipped = s.path("shipped");
    std::fs::create_dir_all(&shipped).unwrap();
    std::fs::copy(path, shipped.join("mycloud.wasm")).unwrap();
    let r: Run = hacluster(&s, &["provision", "-c", cfg, "--backend", "mycloud"])
        .env("HACLUSTER_BUILTIN_PLUGINS", &shipped)
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("the host does not grant `aws` credentials"), "{}", r.stderr);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);

    let r: Run = hacluster(&s, &["provision", "-c", cfg, "--plugin", path, "--grant-credentials", "aws", "-o", "json"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["machines"].as_array().unwrap().len(), 4);
    let r: Run =
        hacluster(&s, &["down", "-c", cfg, "--plugin", path, "--grant-credentials", "aws"]).output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

/// No credentials in the environment: the host reads the shared credentials file, for
/// `AWS_PROFILE`; a profile that is not there is a clear error naming the profile and the file.
#[test]
fn credentials_come_from_the_shared_file_for_the_profile() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 1);
    let creds = s.write(
        "credentials",
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = SECRET-default\n\n[lab]\naws_access_key_id = AKIALAB\naws_secret_access_key = SECRET-lab\n",
    );
    let run = |profile: &str| -> Run {
        // Scratch::cmd removes every AWS variable; only the file and the profile are set.
        s.cmd(&["provision", "-c", cfg.to_str().unwrap(), "--backend", "aws", "-o", "json"])
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_PROFILE", profile)
            .output()
            .unwrap()
            .into()
    };
    let r = run("nowhere");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("profile `nowhere` in {} has no aws_access_key_id", creds.display())),
        "{}",
        r.stdout
    );
    assert_eq!(moto.inventory("aws-ha")["total"], 0, "nothing without credentials");
    let r = run("lab");
    assert_eq!(r.code, 0, "{}", r.stderr);
    for secret in ["SECRET-lab", "SECRET-default"] {
        assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "a secret key was printed");
    }
    assert_eq!(moto.inventory("aws-ha")["instances"].as_array().unwrap().len(), 4);
    assert_eq!(down(&s, &cfg).code, 0);
}

/// An existing VPC and subnets from the config: hacluster creates its groups, key, instances and
/// NLB in them, and neither creates nor — on `down` — removes the network.
#[test]
fn an_existing_vpc_is_used_and_left_alone() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let made = Command::new("python3")
        .args([
            "-c",
            r#"
import boto3, json, sys
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="eu-central-1", aws_access_key_id="testing", aws_secret_access_key="testing")
vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.50.{i * 16}.0/20", AvailabilityZone=z)["Subnet"]["SubnetId"]
           for i, z in enumerate(["eu-central-1a", "eu-central-1b", "eu-central-1c"])]
print(json.dumps({"vpc": vpc, "subnets": subnets}))
"#,
            &moto.endpoint(),
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let (vpc, subnets) = (made["vpc"].as_str().unwrap(), made["subnets"].as_array().unwrap());
    let ids: Vec<&str> = subnets.iter().map(|s| s.as_str().unwrap()).collect();
    let text = std::fs::read_to_string(config(&s, &moto, 1)).unwrap().replace(
        "    vpc:\n      cidr: 10.0.0.0/16\n",
        &format!("    vpc:\n      id: {vpc}\n      subnetIds: [{}]\n", ids.join(", ")),
    );
    assert!(text.contains(vpc), "the example's vpc section changed");
    let cfg = s.write("existing.yaml", &text);
    let r = provision(&s, &cfg, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let inv = moto.inventory("aws-ha");
    for key in ["vpcs", "subnets", "internetGateways", "routeTables"] {
        assert!(inv[key].as_array().unwrap().is_empty(), "hacluster made no {key}: {}", inv[key]);
    }
    assert!(inv["securityGroups"].as_array().unwrap().iter().all(|g| g["vpc"] == vpc), "{}", inv["securityGroups"]);
    let instances = inv["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 4);
    assert!(instances.iter().all(|i| ids.contains(&i["subnet"].as_str().unwrap())), "{instances:?}");
    assert_eq!(inv["loadBalancers"].as_array().unwrap().len(), 1);

    assert_eq!(down(&s, &cfg).code, 0);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
    let still = Command::new("python3")
        .args([
            "-c",
            r#"
import boto3, sys
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="eu-central-1", aws_access_key_id="testing", aws_secret_access_key="testing")
print(len(ec2.describe_vpcs(VpcIds=[sys.argv[2]])["Vpcs"]), len(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [sys.argv[2]]}])["Subnets"]))
"#,
            &moto.endpoint(),
            vpc,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&still.stdout).trim(), "1 3", "{}", String::from_utf8_lossy(&still.stderr));
}

/// An NLB of ours without a security group (made by hand, or by a hacluster before NLBs got
/// one) can never get one, and the control planes would refuse its traffic: `provision` says so
/// and how to fix it before creating anything, and `down` removes it.
#[test]
fn an_nlb_without_a_security_group_is_refused_before_anything_is_created() {
    needs!(Plugins, Moto);
    let moto = Moto::start();
    let s = Scratch::new();
    let cfg = config(&s, &moto, 1);
    let made = Command::new("python3")
        .args([
            "-c",
            r#"
import boto3, sys
kw = dict(endpoint_url=sys.argv[1], region_name="eu-central-1", aws_access_key_id="testing", aws_secret_access_key="testing")
ec2, elb = boto3.client("ec2", **kw), boto3.client("elbv2", **kw)
vpc = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.60.0.0/20", AvailabilityZone="eu-central-1a")["Subnet"]["SubnetId"]
lb = elb.create_load_balancer(Name="aws-ha-api", Type="network", Scheme="internet-facing", Subnets=[subnet],
                              Tags=[{"Key": "hacluster:cluster", "Value": "aws-ha"}])["LoadBalancers"][0]
print(lb["LoadBalancerArn"], len(lb.get("SecurityGroups", [])))
"#,
            &moto.endpoint(),
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let made = String::from_utf8_lossy(&made.stdout).to_string();
    let (arn, groups) = made.trim().split_once(' ').unwrap();
    assert_eq!(groups, "0", "the hand-made NLB has no group");

    let r = provision(&s, &cfg, &[]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    // `-o json`: the error is the document on stdout.
    let error = r.json()["error"].to_string();
    for part in ["aws-ha-api", "has no security group", arn, "hacluster down"] {
        assert!(error.contains(part), "missing {part:?} in: {}", r.stdout);
    }
    let inv = moto.inventory("aws-ha");
    assert!(inv["instances"].as_array().unwrap().is_empty(), "nothing launched: {}", inv["instances"]);
    assert!(inv["securityGroups"].as_array().unwrap().is_empty(), "no group made: {}", inv["securityGroups"]);
    assert_eq!(inv["loadBalancers"].as_array().unwrap().len(), 1);

    assert_eq!(down(&s, &cfg).code, 0);
    assert_eq!(moto.inventory("aws-ha")["total"], 0);
}

//! The kubeadm configuration the bootstrap renders, per API version, against golden files
//! (tests/golden), compared field by field. To update after an intended change:
//! `HACLUSTER_UPDATE_GOLDEN=1 cargo test -p hacluster --test e2e kubeadm_config`.

use hacluster::bootstrap::kubeadm::{self, Secrets};
use hacluster::config::{self, Options};
use hacluster::infra::{ApiEndpoint, Infrastructure, Machine, SshTarget};
use hacluster::model::NodeRole;
use serde_json::Value;

use crate::support::repo;

fn spec(version: &str) -> hacluster::model::ClusterSpec {
    let text = format!(
        "hosts: [{{name: h}}]\ncluster:\n  name: golden\n  network: {{mode: nat, cidr: 192.168.113.0/24}}\n  nodes:\n    loadBalancer:\n      vip: 192.168.113.200\n      instances: [{{id: 1, ip: 192.168.113.101}}, {{id: 2, ip: 192.168.113.102}}]\n    master:\n      instances:\n        - {{id: 1, ip: 192.168.113.10}}\n        - {{id: 2, ip: 192.168.113.11}}\n        - {{id: 3, ip: 192.168.113.12}}\n    worker:\n      instances:\n        - {{id: 1, ip: 192.168.113.20, labels: {{tier: web}}, taints: [\"dedicated=web:NoSchedule\"]}}\nkubernetes:\n  version: {version}\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n"
    );
    let c = config::check_str("golden.yaml", &text, &Options { backend: None, today: "2026-11-22".into() });
    assert!(c.is_valid(), "{:?}", c.errors().collect::<Vec<_>>());
    c.spec.unwrap()
}

fn infra(spec: &hacluster::model::ClusterSpec) -> Infrastructure {
    Infrastructure {
        machines: spec
            .nodes()
            .map(|n| Machine {
                name: n.name.to_string(),
                role: n.role,
                private_address: n.address.unwrap().to_string(),
                ssh: SshTarget {
                    address: n.address.unwrap().to_string(),
                    port: 22,
                    user: "k8s".into(),
                    jump: None,
                    host_public_key: "ssh-ed25519 AAAA".into(),
                },
                provider_id: "x".into(),
            })
            .collect(),
        endpoint: ApiEndpoint { host: "192.168.113.200".into(), port: 6443 },
    }
}

fn secrets() -> Secrets {
    Secrets {
        token: "abcdef.0123456789abcdef".into(),
        certificate_key: "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204".into(),
        token_created: 0,
        certs_uploaded: 0,
        ca_cert_hash: Some("sha256:1cfc9754212d1769e92d661dcd86298a1897e328e094efd6a447aa7ca24f9743".into()),
    }
}

fn docs(text: &str) -> Vec<Value> {
    text.split("\n---\n").map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("not JSON ({e}): {d}"))).collect()
}

/// Every difference between two JSON values, as `path: golden != rendered`.
fn diff(path: &str, golden: &Value, got: &Value, out: &mut Vec<String>) {
    match (golden, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k}: missing (golden {v})")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: not in the golden file ({})", b[k]));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: golden {a} != rendered {b}")),
    }
}

fn check(name: &str, rendered: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("HACLUSTER_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, rendered).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} missing", path.display()));
    let (g, r) = (docs(&golden), docs(rendered));
    assert_eq!(g.len(), r.len(), "{name}: number of documents");
    let mut out = Vec::new();
    for (i, (a, b)) in g.iter().zip(&r).enumerate() {
        diff(&format!("doc[{i}]"), a, b, &mut out);
    }
    assert!(out.is_empty(), "{name} differs from its golden file:\n{}", out.join("\n"));
}

#[test]
fn init_and_join_configs_per_api_version() {
    for (version, api, tag) in
        [("v1.30.8", "kubeadm.k8s.io/v1beta3", "v1beta3"), ("v1.35.0", "kubeadm.k8s.io/v1beta4", "v1beta4")]
    {
        let spec = spec(version);
        let infra = infra(&spec);
        let s = secrets();
        let init = kubeadm::init_config(&spec, &infra, &s);
        assert!(docs(&init).iter().take(2).all(|d| d["apiVersion"] == api), "{version} must render {api}");
        check(&format!("kubeadm-{tag}-init.json"), &init);
        let cp = spec.control_planes.iter().find(|n| n.id == "2").unwrap();
        check(&format!("kubeadm-{tag}-join-control-plane.json"), &kubeadm::join_config(&spec, &infra, cp, &s));
        let w = spec.workers.iter().find(|n| n.role == NodeRole::Worker).unwrap();
        check(&format!("kubeadm-{tag}-join-worker.json"), &kubeadm::join_config(&spec, &infra, w, &s));
    }
}

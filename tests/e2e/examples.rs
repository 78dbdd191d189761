//! The shipped examples: the seeds' Kubitect files validate unchanged, the AWS example gives
//! the seed-004 topology.

use crate::support::{example, repo, run};

/// The "Final cluster configuration" block of a seed, as a user would copy it.
fn seed_block(seed_prefix: &str, title: &str) -> Option<String> {
    let dir = repo().join("..").join("shared").join("seeds");
    let entry =
        std::fs::read_dir(&dir).ok()?.flatten().find(|e| e.file_name().to_string_lossy().starts_with(seed_prefix))?;
    let s = std::fs::read_to_string(entry.path()).ok()?;
    let i = s.find("Final cluster configuration")?;
    let start = s[i..].find(&format!("```yaml title=\"{title}\""))? + i;
    let body = start + s[start..].find('\n')? + 1;
    let end = body + s[body..].find("    ```")?;
    let lines: Vec<&str> = s[body..end].lines().map(|l| l.strip_prefix("    ").unwrap_or(l.trim_start())).collect();
    Some(lines.join("\n") + "\n")
}

/// SHA-256 of each seed's "Final cluster configuration" block, taken from the seeds. CI clones
/// only the repository, so the shipped files are compared with these; where the seeds are at
/// hand (`../shared/seeds`), the pins are compared with the seeds too.
const SEED_SHA256: [(&str, &str, &str); 2] = [
    ("000_", "multi-master.yaml", "60ad1d8bc0b20d26093ae756c55e729a554fa9414e54822b4c1cacde9bf9bcff"),
    ("002_", "ha.yaml", "a7984d62e66bb62d2d29c292c637e1700ef2378727fd9c152eeca475871bafc2"),
];

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn seed_files_are_shipped_byte_for_byte() {
    for (seed, title, pinned) in SEED_SHA256 {
        let shipped = std::fs::read(example(title)).unwrap();
        assert_eq!(sha256(&shipped), pinned, "examples/{title} is no longer the seed's file byte for byte");
        if let Some(block) = seed_block(seed, title) {
            assert_eq!(sha256(block.as_bytes()), pinned, "the pin of {title} does not match seed {seed}");
        }
    }
}

#[test]
fn seed_multi_master_validates_unchanged() {
    let r = run(&["validate", "-c", example("multi-master.yaml").to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["valid"], true);
    assert_eq!(v["cluster"]["controlPlanes"], 3);
    assert_eq!(v["cluster"]["workers"], 3);
    assert_eq!(v["cluster"]["endpoint"]["kind"], "load-balancer");
    assert_eq!(v["cluster"]["endpoint"]["address"], "192.168.113.100");
    let codes: Vec<&str> = v["warnings"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect();
    // Kubitect-only fields and the end-of-life version are warnings, not errors.
    assert!(codes.contains(&"ignored-field"), "{codes:?}");
    assert!(codes.contains(&"k8s-end-of-life"), "{codes:?}");
    let eol = v["warnings"].as_array().unwrap().iter().find(|w| w["code"] == "k8s-end-of-life").unwrap();
    assert!(eol["message"].as_str().unwrap().contains("pkgs.k8s.io"), "{eol}");
    assert_eq!(eol["line"], 41);
}

#[test]
fn seed_ha_validates_unchanged() {
    let r = run(&["validate", "-c", example("ha.yaml").to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["cluster"]["endpoint"]["kind"], "vip");
    assert_eq!(v["cluster"]["endpoint"]["address"], "10.10.13.200");
    assert_eq!(v["cluster"]["loadBalancers"], 2);
}

#[test]
fn ha_plan_places_nodes_on_their_hosts_with_data_disks() {
    let r = run(&["plan", "--offline", "-c", example("ha.yaml").to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan = &r.json()["plan"];
    let nodes = plan["nodes"].as_array().unwrap();
    let find = |n: &str| nodes.iter().find(|x| x["name"] == n).unwrap_or_else(|| panic!("{n}"));
    assert_eq!(find("kubitect-ha-master-1")["host"], "host3");
    assert_eq!(find("kubitect-ha-lb-2")["host"], "host2");
    assert_eq!(find("kubitect-ha-worker-3")["dataDisks"], 1);
    assert_eq!(plan["placement"]["domainFailuresTolerated"], 1);
    assert_eq!(plan["joinOrder"]["init"], "kubitect-ha-master-1");
    assert_eq!(
        plan["joinOrder"]["controlPlanesSerial"],
        serde_json::json!(["kubitect-ha-master-2", "kubitect-ha-master-3"])
    );
}

#[test]
fn aws_example_spreads_control_planes_over_three_zones() {
    let r = run(&["plan", "--offline", "-c", example("aws.yaml").to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan = &r.json()["plan"];
    assert_eq!(plan["backend"], "aws");
    assert_eq!(plan["endpoint"]["kind"], "cloud-load-balancer");
    let zones: Vec<&str> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["role"] == "control-plane")
        .map(|n| n["failureDomain"].as_str().unwrap())
        .collect();
    assert_eq!(zones, ["eu-central-1a", "eu-central-1b", "eu-central-1c"]);
    assert_eq!(plan["placement"]["domainFailuresTolerated"], 1);
    let workers = plan["nodes"].as_array().unwrap().iter().filter(|n| n["role"] == "worker").count();
    assert!(workers >= 2);
    // etcd only between control planes; the API from the NLB and admins.
    let rules = plan["ports"]["rules"].as_array().unwrap();
    let etcd: Vec<_> = rules.iter().filter(|r| r["ports"] == serde_json::json!([2379, 2380])).collect();
    assert_eq!(etcd.len(), 1);
    assert_eq!(etcd[0]["from"], "control-planes");
    assert!(rules.iter().any(|r| r["ports"] == serde_json::json!([6443, 6443]) && r["from"] == "cloud-load-balancer"));
}

#[test]
fn plan_text_shows_quorum_endpoint_and_ordered_steps() {
    let r = run(&["plan", "--offline", "-c", example("multi-master.yaml").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    assert!(out.contains("3 etcd member(s), quorum 2, tolerates 1 failure"), "{out}");
    assert!(out.contains("load balancer local-k8s-cluster-lb-1 at 192.168.113.100:6443"), "{out}");
    let init = out.find("kubeadm init on local-k8s-cluster-master-1").expect("init step");
    let cni = out.find("install the calico CNI").expect("cni step");
    let j2 = out.find("join local-k8s-cluster-master-2 as a control plane").expect("join 2");
    let j3 = out.find("join local-k8s-cluster-master-3 as a control plane").expect("join 3");
    let workers = out.find("join 3 worker(s) at once [parallel]").expect("workers");
    assert!(init < cni && cni < j2 && j2 < j3 && j3 < workers, "steps out of order:\n{out}");
}

/// VM sizes: an instance's own, else its role's `default`, else `nodeTemplate`, else built-in
/// (2 vCPU, 4 GiB, 32 GiB).
#[test]
fn vm_sizes_come_from_the_instance_then_the_role_default_then_the_node_template() {
    let text = "hosts:\n  - name: h\n    connection: {type: local}\ncluster:\n  name: sz\n  network: {mode: nat, cidr: 10.9.0.0/24}\n  nodeTemplate: {cpu: 6, ram: 12}\n  nodes:\n    loadBalancer:\n      instances: [{id: 1, ip: 10.9.0.5}]\n    master:\n      default: {ram: 16}\n      instances: [{id: 1, ip: 10.9.0.10, mainDiskSize: 100}, {id: 2, ip: 10.9.0.11, cpu: 8}, {id: 3, ip: 10.9.0.12}]\n    worker:\n      instances: [{id: 1, ip: 10.9.0.20}]\nkubernetes: {version: v1.35.0}\n";
    let (_d, p) = crate::support::write_config("sz.yaml", text.as_bytes());
    let r = run(&["plan", "-c", p.to_str().unwrap(), "--offline", "-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    let size = |name: &str| -> (u64, u64, u64) {
        let n = v["plan"]["nodes"].as_array().unwrap().iter().find(|n| n["name"] == name).unwrap();
        let r = &n["resources"];
        (r["cpu"].as_u64().unwrap(), r["ramGib"].as_u64().unwrap(), r["mainDiskGib"].as_u64().unwrap())
    };
    assert_eq!(size("sz-master-1"), (6, 16, 100), "instance disk, role RAM, template CPU");
    assert_eq!(size("sz-master-2"), (8, 16, 32), "instance CPU, built-in disk");
    assert_eq!(size("sz-master-3"), (6, 16, 32));
    assert_eq!(size("sz-worker-1"), (6, 12, 32), "template CPU and RAM");
    assert_eq!(size("sz-lb-1"), (6, 12, 32), "load balancers too");
    // Out of range is an error with the field's path, like every other size.
    let (_d, p) = crate::support::write_config("sz0.yaml", text.replace("cpu: 6", "cpu: 0").as_bytes());
    let r = run(&["validate", "-c", p.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 1);
    assert!(
        r.json()["errors"].as_array().unwrap().iter().any(|e| e["path"] == "cluster.nodeTemplate.cpu"),
        "{}",
        r.stdout
    );
}

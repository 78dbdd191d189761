//! REAL changes of membership, on the lab (tests/lab/README.md): a cluster of 3 control planes
//! and 2 workers made by `hacluster up` on a lab of 5 + 2 machines, grown to 5 control planes
//! and shrunk to 3 again (the first control plane among those removed, the run killed with
//! SIGKILL after an etcd member went, and resumed), a worker removed with a workload and its
//! PodDisruptionBudget on it (killed after its drain, and resumed), an even count refused; then
//! a control plane's machine killed and replaced with `hacluster replace` (the config's first,
//! by then; killed once its old member went, and resumed) while `scripts/lab sample` asks the
//! API through the VIP. At every step etcd's member list is the config's control planes and
//! `verify` passes.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Lab, Sampler, Scratch, eventually, json, kill_at, kubectl};

/// The names of etcd's members (all started and voting, or the test fails) and the Nodes.
fn members_and_nodes(s: &Scratch, cfg: &str, kc: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let st = s.run(&["status", "-c", cfg, "-o", "json"]);
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);
    let h = &st.json()["health"];
    let list = h["etcdMemberList"].as_array().unwrap_or_else(|| panic!("no member list: {h}"));
    assert!(list.iter().all(|m| m["started"] == true && m["learner"] == false), "{list:?}");
    let mut members: Vec<String> = list.iter().map(|m| m["name"].as_str().unwrap().to_string()).collect();
    members.sort();
    let mut nodes: Vec<String> = json(kc, &["get", "nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    nodes.sort();
    (members, nodes)
}

fn names(n: u32, shorts: &[&str]) -> Vec<String> {
    shorts.iter().map(|x| format!("lab{n}-{x}")).collect()
}

fn verify(s: &Scratch, cfg: &str, what: &str) {
    eventually(what, Duration::from_secs(300), || {
        let v = s.run(&["verify", "-c", cfg, "-o", "json"]);
        if v.code == 0 { Ok(()) } else { Err(v.stdout) }
    });
}

#[test]
#[ignore = "a real cluster takes both cores: scripts/test runs it alone, after the other tests"]
fn real_cluster_grown_shrunk_worker_removed_and_a_dead_control_plane_replaced() {
    let lab = Lab::up(5, 2);
    let n = lab.n;
    let s = Scratch::new();
    let cluster = format!("lab{n}");
    let config = |keep: &[&str]| -> String {
        let text = lab.config_of(&cluster, keep);
        let name = keep.join("+");
        s.write(&format!("{name}.yaml"), &text).to_str().unwrap().to_string()
    };
    let three = config(&["master-1", "master-2", "master-3", "worker-1", "worker-2"]);
    let t0 = Instant::now();
    let r = s.run(&["up", "-c", &three]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    eprintln!("real membership: 3 + 2 up in {:.0} s", t0.elapsed().as_secs_f64());
    let kc = s.state().join(&cluster).join("kubeconfig");
    let (members, nodes) = members_and_nodes(&s, &three, &kc);
    assert_eq!(members, names(n, &["master-1", "master-2", "master-3"]));
    assert_eq!(nodes.len(), 5, "{nodes:?}");

    // An even count is refused before anything is asked of a machine, and the state stays.
    let state_file = s.state().join(&cluster).join("state.json");
    let before = std::fs::read(&state_file).unwrap();
    let four = config(&["master-1", "master-2", "master-3", "master-4", "worker-1", "worker-2"]);
    let r = s.run(&["up", "-c", &four]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("odd"), "{}", r.stderr);
    assert_eq!(std::fs::read(&state_file).unwrap(), before, "a refused run changed the state");

    // 3 -> 5: joined one at a time.
    let all = ["master-1", "master-2", "master-3", "master-4", "master-5", "worker-1", "worker-2"];
    let five = config(&all);
    let t0 = Instant::now();
    let r = s.run(&["up", "-c", &five]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    eprintln!("real membership: 3 -> 5 control planes in {:.0} s", t0.elapsed().as_secs_f64());
    let (members, nodes) = members_and_nodes(&s, &five, &kc);
    assert_eq!(members, names(n, &all[..5]));
    assert_eq!(nodes, names(n, &all));
    verify(&s, &five, "verify passes with 5 control planes");

    // 5 -> 3, master-1 (the first, where kubeadm init ran) and master-5 dropped; `plan` shows
    // every step first.
    let three_again = config(&["master-2", "master-3", "master-4", "worker-1", "worker-2"]);
    let p = s.run(&["plan", "-c", &three_again, "-o", "json"]);
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    let steps: Vec<String> = p.json()["removal"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    for what in ["drain", "endpoint", "member", "reset", "node"] {
        for node in ["master-1", "master-5"] {
            assert!(steps.contains(&format!("remove:lab{n}-{node}:{what}")), "{steps:?}");
        }
    }
    let t0 = Instant::now();
    let up = ["up", "-c", three_again.as_str(), "-v"];
    kill_at(&s, &up, &format!("lab{n}-master-1: etcd member"), || {});
    eprintln!("real membership: killed right after master-1's etcd member was removed");
    let st = s.state_of(&cluster).unwrap();
    let completed = &st.bootstrap.as_ref().unwrap().completed;
    assert!(completed.contains(&format!("remove:lab{n}-master-1:drain")), "{completed:?}");
    let r = s.run(&["up", "-c", &three_again, "-v"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("removed from the cluster: lab{n}-master-1, lab{n}-master-5")), "{}", r.stderr);
    eprintln!(
        "real membership: 5 -> 3 control planes, killed once and resumed, in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    let (members, nodes) = members_and_nodes(&s, &three_again, &kc);
    assert_eq!(members, names(n, &["master-2", "master-3", "master-4"]));
    assert_eq!(nodes, names(n, &["master-2", "master-3", "master-4", "worker-1", "worker-2"]));
    verify(&s, &three_again, "verify passes after 5 -> 3");
    // The machines that left were reset: no kubelet config, no etcd data, the kubelet stopped.
    let root = lab.shell(s.dir.path());
    for ip in [format!("10.232.{n}.11"), format!("10.232.{n}.15")] {
        let left = root.ok(
            &ip,
            "ls /etc/kubernetes/kubelet.conf /etc/kubernetes/manifests/etcd.yaml /var/lib/etcd/member 2>/dev/null; systemctl is-active kubelet || true",
        );
        assert_eq!(left.trim(), "inactive", "{ip} was not reset: {left}");
    }
    let st = s.state_of(&cluster).unwrap();
    let completed = &st.bootstrap.as_ref().unwrap().completed;
    assert!(!completed.iter().any(|c| c.contains("master-1") || c.contains("master-5")), "{completed:?}");

    // 2 -> 1 worker, with a workload and its PodDisruptionBudget (minAvailable 1) on it.
    let web = s.write("web.yaml", crate::real_upgrade::WEB);
    let (ok, out) = kubectl(&kc, &["apply", "-f", web.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&kc, &["rollout", "status", "deployment/web", "--timeout=300s"]);
    assert!(ok, "{out}\n{}", lab.diagnose(&kc, s.dir.path(), "app=web"));
    let on_worker_2 = |kc: &std::path::Path| -> usize {
        json(kc, &["get", "pods", "-l", "app=web"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["spec"]["nodeName"] == format!("lab{n}-worker-2"))
            .count()
    };
    // Both replicas onto worker-2 first, so its removal has to move them.
    let (ok, out) = kubectl(&kc, &["cordon", &format!("lab{n}-worker-1")]);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&kc, &["rollout", "restart", "deployment/web"]);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&kc, &["rollout", "status", "deployment/web", "--timeout=300s"]);
    assert!(ok, "{out}");
    eventually("both web pods on worker-2", Duration::from_secs(120), || {
        let k = on_worker_2(&kc);
        if k == 2 { Ok(()) } else { Err(format!("{k} on worker-2")) }
    });
    let (ok, out) = kubectl(&kc, &["uncordon", &format!("lab{n}-worker-1")]);
    assert!(ok, "{out}");
    let one_worker = config(&["master-2", "master-3", "master-4", "worker-1"]);
    let t0 = Instant::now();
    let up = ["up", "-c", one_worker.as_str(), "-v"];
    kill_at(&s, &up, &format!("lab{n}-worker-2: drained"), || {});
    eprintln!("real membership: killed right after worker-2 was drained");
    let r = s.run(&up);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("lab{n}-worker-2: kubeadm reset")), "{}", r.stderr);
    eprintln!("real membership: worker-2 drained and removed in {:.0} s", t0.elapsed().as_secs_f64());
    let pods = json(&kc, &["get", "pods", "-l", "app=web"]);
    let ready: Vec<&Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["spec"]["nodeName"] == format!("lab{n}-worker-1"))
        .collect();
    assert!(!ready.is_empty(), "no web pod moved to worker-1: {pods}");
    let (ok, out) = kubectl(&kc, &["rollout", "status", "deployment/web", "--timeout=300s"]);
    assert!(ok, "{out}");
    assert_eq!(on_worker_2(&kc), 0);
    let (members, nodes) = members_and_nodes(&s, &one_worker, &kc);
    assert_eq!(members, names(n, &["master-2", "master-3", "master-4"]));
    assert_eq!(nodes, names(n, &["master-2", "master-3", "master-4", "worker-1"]));
    verify(&s, &one_worker, "verify passes after 2 -> 1 worker");

    // `replace` refuses a control plane that answers, and changes nothing.
    let before = std::fs::read(&state_file).unwrap();
    let r = s.run(&["replace", "-c", &one_worker, &format!("lab{n}-master-3")]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("nothing to replace"), "{}", r.stderr);
    assert_eq!(std::fs::read(&state_file).unwrap(), before);

    // master-2's machine dies (now the config's first control plane: where the cluster-wide
    // commands ran); the site puts a new machine at its address (new disk, new host key, which
    // the operator writes into the config); `replace` removes the old member and joins the new
    // machine, while clients ask the API through the VIP.
    let sampler = Sampler::start(&s, &kc, &format!("http://10.232.{n}.200:8080/"));
    let t0 = Instant::now();
    let lab_cmd = |args: &[&str]| {
        let o = std::process::Command::new(crate::support::repo().join("scripts/lab")).args(args).output().unwrap();
        assert!(o.status.success(), "scripts/lab {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let old_key = lab.node("master-2").host_key;
    lab_cmd(&["kill", &n.to_string(), "master-2"]);
    let r = s.run(&["status", "-c", &one_worker, "-o", "json"]);
    let h = &r.json()["health"];
    assert_eq!(h["quorumOk"], true, "{h}");
    let new_key = lab_cmd(&["renew", &n.to_string(), "master-2"]);
    assert_ne!(new_key, old_key);
    let replaced = s.write("replaced.yaml", &std::fs::read_to_string(&one_worker).unwrap().replace(&old_key, &new_key));
    let replaced = replaced.to_str().unwrap().to_string();
    let replace = ["replace", "-c", replaced.as_str(), &format!("lab{n}-master-2"), "-v"];
    // Killed once the old member is gone (and recorded): the next run does not look for it
    // again, and joins the new machine.
    kill_at(&s, &replace, &format!("lab{n}-master-2: Node object deleted"), || {});
    eprintln!("real membership: replace killed right after master-2's old member and Node went");
    let st = s.state_of(&cluster).unwrap();
    assert!(st.bootstrap.as_ref().unwrap().completed.contains(&format!("replace:lab{n}-master-2")), "not recorded");
    let r = s.run(&replace);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("lab{n}-master-2: its old etcd member and Node were removed by an earlier run")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&format!("lab{n}-master-2 was replaced: it joins")), "{}", r.stderr);
    let took = t0.elapsed().as_secs_f64();
    let (samples, secs) = sampler.finish();
    for (name, t) in samples.as_object().unwrap() {
        eprintln!(
            "real membership: replace: {name}: {} requests in {secs:.0} s, {} failed, longest gap {:.2} s {}",
            t["requests"],
            t["failed"],
            t["longestGapSeconds"].as_f64().unwrap(),
            t["errors"]
        );
    }
    eprintln!("real membership: master-2 killed, renewed and replaced in {took:.0} s");
    // The API answered through the VIP throughout: ~10 requests a second each, and at most the
    // requests in flight to master-2 when it was killed lost (the balancer cannot retry a
    // request its server took and never answered; seen: one, an EOF, per path).
    for name in ["readyz", "get", "service"] {
        let t = &samples[name];
        assert!(t["requests"].as_f64().unwrap() >= 9.0 * secs, "{name}: {t}");
        assert!(t["failed"].as_u64().unwrap() <= 2, "{name}: more than the requests in flight lost: {t}");
    }
    let (members, nodes) = members_and_nodes(&s, &replaced, &kc);
    assert_eq!(members, names(n, &["master-2", "master-3", "master-4"]));
    assert_eq!(nodes, names(n, &["master-2", "master-3", "master-4", "worker-1"]));
    verify(&s, &replaced, "verify passes after the replacement");
    let st = s.state_of(&cluster).unwrap();
    assert!(!st.bootstrap.as_ref().unwrap().completed.iter().any(|c| c.starts_with("replace:")), "still replacing");
}

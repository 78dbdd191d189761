//! REAL rolling upgrade, on the lab (tests/lab/README.md): a cluster of 3 control planes and 2
//! workers made by `hacluster up` at the pinned previous minor, with a Deployment, its
//! PodDisruptionBudget and a NodePort Service serving, upgraded by `hacluster upgrade` to the
//! pinned default while `scripts/lab sample` sends 10 requests a second each to the API's
//! /readyz and a real object through the VIP, and to the Service. The upgrade is killed with
//! SIGKILL at named points and resumed; the clients must not have seen one failed request.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Lab, Sampler, Scratch, eventually, json, kill_at, kubectl, needs};

pub(crate) const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.lab:5000/hacluster/web:1
          args: ["serve", ":8080"]
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
          # Still serving while the Service's endpoints forget it, as a workload that wants
          # no failed request during a drain does.
          lifecycle: {preStop: {sleep: {seconds: 5}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"#;

fn minor(v: &str) -> u32 {
    v.trim_start_matches('v').split('.').nth(1).and_then(|m| m.parse().ok()).expect("v1.MINOR.PATCH")
}

/// (pod, image) of every container of the running kube-system pods.
fn images(kc: &std::path::Path) -> Vec<(String, String)> {
    let pods = json(kc, &["-n", "kube-system", "get", "pods"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .flat_map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or_default().to_string();
            p["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| (name.clone(), c["image"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

#[test]
#[ignore = "a real cluster takes both cores: scripts/test runs it alone, after the other tests"]
fn real_cluster_upgrade_one_minor_no_failed_request_killed_and_resumed() {
    let pinned = crate::real_kubeadm::pinned();
    let to = pinned[0].0.clone();
    let from = pinned.iter().find(|(v, _)| minor(v) + 1 == minor(&to)).expect("a pinned previous minor").0.clone();
    let lab = Lab::up_at(3, 2, Some(&from));
    let n = lab.n;
    let s = Scratch::new();
    let cfg = lab.config.to_str().unwrap().to_string();
    let r = s.run(&["up", "-c", &cfg]);
    assert_eq!(r.code, 0, "hacluster up at {from}: {}{}", r.stdout, r.stderr);
    let kc = s.state().join(format!("lab{n}")).join("kubeconfig");
    let web = s.write("web.yaml", WEB);
    let (ok, out) = kubectl(&kc, &["apply", "-f", web.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&kc, &["rollout", "status", "deployment/web", "--timeout=300s"]);
    assert!(ok, "{out}\n{}", lab.diagnose(&kc, s.dir.path(), "app=web"));
    let target = s.write(
        "target.yaml",
        &std::fs::read_to_string(&cfg).unwrap().replace(&format!("version: {from}"), &format!("version: {to}")),
    );
    let target = target.to_str().unwrap().to_string();
    let root = lab.shell(s.dir.path());
    let (m1, m2) = (format!("10.232.{n}.11"), format!("10.232.{n}.12"));
    let kubeadm_version = |ip: &str| root.ok(ip, "dpkg-query -W -f='${Version}' kubeadm");
    let before = kubeadm_version(&m1);

    // `up` does not change the version; `plan` shows the upgrade, node by node.
    let u = s.run(&["up", "-c", &target]);
    assert_eq!(u.code, 2, "{}{}", u.stdout, u.stderr);
    assert!(
        u.stderr.contains(&format!("runs {from} and the config asks for {to}"))
            && u.stderr.contains("hacluster upgrade"),
        "{}",
        u.stderr
    );
    let p = s.run(&["plan", "-c", &target]);
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    assert!(p.stdout.contains(&format!("Upgrade from {from} to {to}")), "{}", p.stdout);
    let steps: Vec<&str> = p.stdout.lines().skip_while(|l| !l.starts_with("Upgrade from")).collect();
    let at = |what: &str| {
        steps.iter().position(|l| l.contains(what)).unwrap_or_else(|| panic!("no `{what}` in:\n{}", steps.join("\n")))
    };
    assert!(
        at(&format!("lab{n}-master-1: `kubeadm upgrade plan")) < at(&format!("lab{n}-master-2: out of the endpoint"))
    );
    assert!(at(&format!("lab{n}-master-3: drain")) < at(&format!("workers 1/2 (lab{n}-worker-1)")));

    // An unhealthy cluster is refused, and nothing changes: master-2's API server stopped.
    root.ok(&m2, "mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/kube-apiserver.parked");
    eventually("master-2's API server gone", Duration::from_secs(120), || {
        let o = root.run(&m2, "curl -sk --max-time 2 https://127.0.0.1:6443/readyz");
        if o.status.success() { Err(String::from_utf8_lossy(&o.stdout).to_string()) } else { Ok(()) }
    });
    let refused = s.run(&["upgrade", "-c", &target]);
    assert_eq!(refused.code, 3, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("upgrade refused, nothing was changed")
            && refused.stderr.contains(&format!("lab{n}-master-2: its API server does not answer")),
        "{}",
        refused.stderr
    );
    assert_eq!(kubeadm_version(&m1), before, "a refused upgrade changed kubeadm");
    root.ok(&m2, "mv /etc/kubernetes/kube-apiserver.parked /etc/kubernetes/manifests/kube-apiserver.yaml");
    eventually("the cluster healthy again", Duration::from_secs(240), || {
        let v = s.run(&["verify", "-c", &cfg, "-o", "json"]);
        if v.code == 0 { Ok(()) } else { Err(v.stdout) }
    });

    // The upgrade, killed at named points and resumed, while clients sample the endpoint and
    // the Service.
    // The Service as clients outside the cluster reach it: through the VIP's port 8080, which
    // the balancers forward to the workers' NodePort (tests/lab/README.md).
    let sampler = Sampler::start(&s, &kc, &format!("http://10.232.{n}.200:8080/"));
    let t0 = Instant::now();
    let up = ["upgrade", "-c", target.as_str(), "-v"];
    kill_at(&s, &up, &format!("lab{n}-master-1: kubeadm upgrade apply {to}"), || {
        std::thread::sleep(Duration::from_secs(15))
    });
    eprintln!("real upgrade: killed during kubeadm upgrade apply on master-1");
    kill_at(&s, &up, &format!("lab{n}-master-2: drained"), || {});
    eprintln!("real upgrade: killed with master-2 drained, before its kubelet");
    kill_at(&s, &up, &format!("lab{n}-worker-1: drained"), || {});
    eprintln!("real upgrade: killed with worker-1 drained, before its kubelet");
    let last = s.run(&["upgrade", "-c", &target, "-o", "json"]);
    assert_eq!(last.code, 0, "the last upgrade: {}{}", last.stdout, last.stderr);
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(last.json()["resumed"], true, "{}", last.stdout);
    let (samples, secs) = sampler.finish();
    for (name, t) in samples.as_object().unwrap() {
        eprintln!(
            "real upgrade: {name}: {} requests in {secs:.0} s ({:.1}/s), {} failed, longest gap {:.2} s {}",
            t["requests"],
            t["requests"].as_f64().unwrap() / secs,
            t["failed"],
            t["longestGapSeconds"].as_f64().unwrap(),
            t["errors"]
        );
    }
    eprintln!("real upgrade: {from} to {to} with three kills and resumes took {took:.0} s");
    for name in ["readyz", "get", "service"] {
        let t = &samples[name];
        assert_eq!(t["failed"], 0, "{name}: failed requests during the upgrade: {t}");
        assert!(t["requests"].as_f64().unwrap() >= 9.0 * secs, "{name}: fewer than ~10 requests a second: {t}");
    }

    let restarts: Vec<String> = json(&kc, &["-n", "kube-system", "get", "pods"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap_or(0) > 0)
        .map(|p| {
            format!(
                "{} {}",
                p["metadata"]["name"].as_str().unwrap_or(""),
                p["status"]["containerStatuses"][0]["restartCount"]
            )
        })
        .collect();
    eprintln!("real upgrade: kube-system containers restarted in place during the upgrade: {restarts:?}");

    // A second run changes nothing.
    let again = s.run(&["upgrade", "-c", &target, "-o", "json"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(again.json()["steps"], 0, "{}", again.stdout);

    // Every kubelet, every control-plane component and etcd at what kubeadm {to} expects.
    let nodes = json(&kc, &["get", "nodes"]);
    let versions: Vec<(String, String)> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(versions.len(), 5, "{versions:?}");
    assert!(versions.iter().all(|(_, v)| *v == to), "{versions:?}");
    assert!(
        nodes["items"].as_array().unwrap().iter().all(|n| n["spec"]["unschedulable"].is_null()),
        "a node stayed cordoned"
    );
    let expected = root
        .ok(&m1, &format!("kubeadm config images list --kubernetes-version {to} --image-repository registry.lab:5000"));
    let expected: Vec<&str> = expected.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let running = images(&kc);
    for component in ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"] {
        let want = expected.iter().find(|i| i.contains(&format!("/{component}:"))).unwrap();
        let pods: Vec<&(String, String)> =
            running.iter().filter(|(p, _)| p.starts_with(&format!("{component}-lab{n}-master"))).collect();
        assert_eq!(pods.len(), 3, "{component}: {running:?}");
        assert!(pods.iter().all(|(_, i)| i == want), "{component}: want {want}: {pods:?}");
    }
    let st = s.run(&["status", "-c", &target, "-o", "json"]);
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);
    let members = st.json()["health"]["etcdMemberList"].as_array().unwrap().clone();
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m["started"] == true && m["learner"] == false), "{members:?}");
    let v = s.run(&["verify", "-c", &target]);
    assert_eq!(v.code, 0, "verify after the upgrade: {}{}", v.stdout, v.stderr);
    assert_eq!(
        s.state_of(&format!("lab{n}")).unwrap().bootstrap.unwrap().kubernetes_version.as_deref(),
        Some(to.as_str())
    );

    // Certificates: `status -o json` carries every expiry; `certs renew` moves them later, one
    // control plane at a time, and the renewed admin kubeconfig works.
    let expiry = |st: &Value, node: &str, cert: &str| -> String {
        let nodes = st["certificates"].as_array().unwrap();
        let n = nodes.iter().find(|c| c["node"] == node).unwrap_or_else(|| panic!("{node}: {st}"));
        let mut all = n["kubeadm"].as_array().cloned().unwrap_or_default();
        all.extend(n.get("kubeletClient").cloned());
        let c = all.into_iter().find(|c| c["name"] == cert).unwrap_or_else(|| panic!("{node} {cert}: {n}"));
        assert!(c["residualSecs"].as_i64().unwrap() > 300 * 86400, "{c}");
        c["expires"].as_str().unwrap().to_string()
    };
    let before = st.json();
    let old: Vec<String> = (1..=3).map(|i| expiry(&before, &format!("lab{n}-master-{i}"), "apiserver")).collect();
    for w in 1..=2 {
        expiry(&before, &format!("lab{n}-worker-{w}"), "kubelet-client");
    }
    std::thread::sleep(Duration::from_secs(2)); // a renewal in the same second would look unchanged
    let renew = s.run(&["certs", "renew", "-c", &target, "-o", "json"]);
    assert_eq!(renew.code, 0, "certs renew: {}{}", renew.stdout, renew.stderr);
    let after = s.run(&["status", "-c", &target, "-o", "json"]);
    assert_eq!(after.code, 0, "{}{}", after.stdout, after.stderr);
    let new: Vec<String> = (1..=3).map(|i| expiry(&after.json(), &format!("lab{n}-master-{i}"), "apiserver")).collect();
    for (o, n) in old.iter().zip(&new) {
        assert!(n > o, "apiserver certificate not renewed: {o} -> {n}");
    }
    eprintln!("real upgrade: certs renew moved the API servers' certificates from {old:?} to {new:?}");
    let (ok, out) = kubectl(&kc, &["get", "nodes"]);
    assert!(ok, "the renewed admin kubeconfig: {out}");
    let v = s.run(&["verify", "-c", &target]);
    assert_eq!(v.code, 0, "verify after the renewal: {}{}", v.stdout, v.stderr);
}

/// The refusals an upgrade makes from the recorded version alone, before any node is asked
/// (no lab: the static backend's machines are never reached): a skipped minor and a downgrade
/// (exit 1, from `upgrade` and from `plan`), a version change through `bootstrap` (exit 2), and
/// nothing written to the state by any of them. `plan` shows an allowed upgrade with its steps
/// and warns that the backend cannot be told to drain a member; `endpoint drain
/// --balancer-only` is refused for it.
#[test]
fn upgrade_refusals_and_plan_from_the_recorded_version() {
    needs!(Plugins);
    let s = Scratch::new();
    let text =
        std::fs::read_to_string(crate::support::example("static.yaml")).unwrap().replace("~/.ssh/id_ed25519", "OPKEY");
    let cfg = s.write("static.yaml", &text);
    let wasm = crate::support::plugin("hacluster_plugin_static.wasm");
    let (cfg, wasm) = (cfg.to_str().unwrap(), wasm.to_str().unwrap());
    let r = s.run(&["provision", "-c", cfg, "--plugin", wasm]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let record = |version: &str| {
        let dir = hacluster::state::StateDir::new(&s.state(), "metal");
        let lock = dir.lock().unwrap();
        let mut state = lock.load_or_new("metal", "static").unwrap();
        state.bootstrap = Some(hacluster::state::BootstrapRecord {
            completed: vec!["kubeadm-init".into()],
            kubernetes_version: Some(version.into()),
            ..Default::default()
        });
        lock.save(&state).unwrap();
        std::fs::read(dir.file()).unwrap()
    };
    let state_file = hacluster::state::StateDir::new(&s.state(), "metal").file();
    assert!(text.contains("version: v1.37.2"), "examples/static.yaml asks for v1.37.2");

    let saved = record("v1.35.4");
    let r = s.run(&["upgrade", "-c", cfg]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("runs v1.35.4 and the config asks for v1.37.2: that skips v1.36"), "{}", r.stderr);
    assert!(r.stderr.contains("kubernetes.version"), "names the field: {}", r.stderr);
    let p = s.run(&["plan", "-c", cfg, "--plugin", wasm, "-o", "json"]);
    assert_eq!(p.code, 1, "{}{}", p.stdout, p.stderr);
    assert!(p.json()["upgradeRefused"].as_str().unwrap().contains("skips v1.36"), "{}", p.stdout);
    let b = s.run(&["bootstrap", "-c", cfg]);
    assert_eq!(b.code, 2, "{}{}", b.stdout, b.stderr);
    assert!(
        b.stderr.contains("`up` does not change a running cluster's version") && b.stderr.contains("hacluster upgrade"),
        "{}",
        b.stderr
    );
    assert_eq!(std::fs::read(&state_file).unwrap(), saved, "a refusal changed the state");

    let saved = record("v1.37.5");
    let r = s.run(&["upgrade", "-c", cfg]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("runs v1.37.5 and the config asks for v1.37.2: a downgrade"), "{}", r.stderr);
    assert_eq!(std::fs::read(&state_file).unwrap(), saved, "a refusal changed the state");

    record("v1.36.3");
    let p = s.run(&["plan", "-c", cfg, "--plugin", wasm, "-o", "json"]);
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    let u = &p.json()["upgrade"];
    assert_eq!((u["from"].as_str(), u["to"].as_str()), (Some("v1.36.3"), Some("v1.37.2")), "{u}");
    let ids: Vec<&str> = u["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    let (m1, m2, w1) = ("metal-master-1", "metal-master-2", "metal-worker-1");
    let at = |id: String| ids.iter().position(|i| *i == id).unwrap_or_else(|| panic!("no {id} in {ids:?}"));
    assert_eq!(ids[0], "preflight");
    assert!(at(format!("kubeadm:{m1}")) < at(format!("apply:{m1}")));
    assert!(at(format!("apply:{m1}")) < at(format!("kubelet:{m1}")));
    assert!(at(format!("kubelet:{m1}")) < at(format!("node:{m2}")));
    assert!(ids.iter().position(|i| i.starts_with("workers:")).unwrap() > at(format!("kubelet:{m2}")), "{ids:?}");
    assert!(ids.iter().any(|i| i.starts_with("workers:") && i.contains(w1)), "{ids:?}");
    let warnings = u["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("backend `static` cannot be told")), "{u}");
    let text = s.run(&["plan", "-c", cfg, "--plugin", wasm]);
    assert!(
        text.stdout.contains("Upgrade from v1.36.3 to v1.37.2")
            && text.stdout.contains("warning: backend `static` cannot be told"),
        "{}",
        text.stdout
    );

    // The static backend cannot be told: asking its balancer alone is refused, and says why;
    // a worker is no member of the endpoint.
    let r = s.run(&["endpoint", "drain", "-c", cfg, "metal-master-1", "--balancer-only"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("backend `static` cannot be told") && r.stderr.contains("`endpoint`"), "{}", r.stderr);
    let r = s.run(&["endpoint", "drain", "-c", cfg, w1]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("`metal-worker-1` is not a control plane of cluster `metal`"), "{}", r.stderr);
}

//! The bootstrap's harder paths on REAL components, on the lab (`scripts/lab`, as in
//! real_cluster.rs): expired join secrets renewed without reaching a command line, a control
//! plane that died with its etcd member added and never started, the order of the joins, a
//! second `up` that repeats nothing, a wrong host key, jump hosts and the SSH agent, nodes of
//! another cluster, a node with another CA, lost job records and a reset init node. Every
//! kubeadm, kubelet, etcd and API server here is Kubernetes' own; what a node did is read
//! from the node (its job records, apt's history, etcd's member list), never from a double.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Lab, NodeShell, Run, Scratch, eventually, kubectl};

/// The start and end (seconds since the epoch) of the last run of `job` on the node at `ip`,
/// from its record: `run.sh` is written when it starts, `rc` when it ends. `None` when it
/// never ended there.
fn job_span(root: &NodeShell, ip: &str, job: &str) -> Option<(f64, f64)> {
    let d = format!("/etc/kubernetes/hacluster/jobs/{job}");
    let out = root.ok(ip, &format!("if [ -f {d}/rc ]; then date -r {d}/run.sh +%s.%N; date -r {d}/rc +%s.%N; fi"));
    let t: Vec<f64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (t.len() == 2).then(|| (t[0], t[1]))
}

/// What was done to a node, as it records it: apt's installs, and when each kubeadm job of
/// hacluster's started and ended. Equal before and after a run: that run did nothing there.
fn footprint(root: &NodeShell, ip: &str) -> String {
    root.ok(
        ip,
        r#"grep -c '^Commandline: apt-get install' /var/log/apt/history.log 2>/dev/null || true
for f in /etc/kubernetes/hacluster/jobs/*/run.sh /etc/kubernetes/hacluster/jobs/*/rc; do
  if [ -e "$f" ]; then echo "$f $(date -r "$f" +%s.%N)"; fi
done
"#,
    )
}

/// Whether kubeadm's package is on the node (node preparation installs it).
fn kubeadm_installed(root: &NodeShell, ip: &str) -> bool {
    root.run(ip, "dpkg-query -W -f='${Status}' kubeadm 2>/dev/null | grep -q 'install ok installed'").status.success()
}

/// etcd's own member list, asked through `ip`'s etcd pod.
fn etcd_members(root: &NodeShell, ip: &str, node: &str) -> Option<Vec<hacluster::bootstrap::verify::EtcdMember>> {
    let o = root.run(
        ip,
        &format!(
            "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system exec etcd-{node} -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key member list -w json"
        ),
    );
    hacluster::bootstrap::verify::parse_members(&String::from_utf8_lossy(&o.stdout))
}

/// `hacluster` started in the background, its output in files.
struct Background {
    child: std::process::Child,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    fn start(s: &Scratch, args: &[&str], name: &str) -> Background {
        let (out, err) = (s.path(&format!("{name}.out")), s.path(&format!("{name}.err")));
        let child = s
            .cmd(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Background { child, out, err }
    }

    fn output(&self) -> String {
        format!("{}{}", std::fs::read_to_string(&self.out).unwrap(), std::fs::read_to_string(&self.err).unwrap())
    }

    /// Panics (with its output) if it has ended.
    fn still_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("hacluster ended ({status}) before {what}:\n{}", self.output());
        }
    }

    fn wait(mut self) -> Run {
        let status = self.child.wait().unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&self.out).unwrap(),
            stderr: std::fs::read_to_string(&self.err).unwrap(),
        }
    }
}

/// Three control planes and two workers. First a copy of the config with a wrong host key,
/// refused before any node is touched. Then one control plane only, at `-vv`: the join
/// command kubeadm prints reaches the output masked. Three hours pass for hacluster's record,
/// and in the cluster what expiry does happens (the token cleaner deletes the bootstrap
/// token, the garbage collector the uploaded certificates): the full config's `up` renews
/// both — the joins would fail otherwise — and a sampler of the init node's processes sees
/// `kubeadm token create` run with neither secret on its command line. master-3's etcd data
/// directory is read-only, so its etcd member is added and never starts; its `kubeadm join` is
/// killed (SIGKILL) there: `up` fails saying so, `status` shows the learner that never
/// started, and the next `up` removes it (started by then, or not), resets the node and joins
/// it again. The joins' own
/// records show one init, control planes one at a time after the CNI, workers together; a
/// second `up` changes nothing on any node.
#[test]
#[ignore = "a real cluster takes both cores: scripts/test runs it alone, after the other tests"]
fn real_cluster_expired_secrets_renewed_a_member_that_never_started_join_order_and_nothing_repeated() {
    let lab = Lab::up(3, 2);
    let n = lab.n;
    let cluster = format!("lab{n}");
    let s = Scratch::new();
    let root = lab.shell(s.dir.path());
    let ip = |short: &str| {
        format!(
            "10.232.{n}.{}",
            if short.starts_with("master") { 10 } else { 20 } + short[short.len() - 1..].parse::<u32>().unwrap()
        )
    };
    let (m1, m2, m3, w1, w2) = (ip("master-1"), ip("master-2"), ip("master-3"), ip("worker-1"), ip("worker-2"));
    let all = [&m1, &m2, &m3, &w1, &w2];
    let cfg = lab.config.to_str().unwrap().to_string();

    // A wrong pinned key for one machine: nothing runs anywhere, since every key is checked
    // before any node is touched.
    let w1_key = lab.node("worker-1").host_key;
    let other_key = hacluster::identity::generate_host_key().unwrap().host_public_key;
    let all_nodes = ["master-1", "master-2", "master-3", "worker-1", "worker-2"];
    let wrong = s.write("pinned.yaml", &lab.config_of("pinned", &all_nodes).replace(&w1_key, other_key.trim()));
    let r = s.run(&["up", "-c", wrong.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("host key of k8s@{w1}:22 does not match the pinned key"))
            && r.stderr.contains("not connecting"),
        "{}",
        r.stderr
    );
    for ip in all {
        assert!(!kubeadm_installed(&root, ip), "{ip} was prepared");
    }

    // One control plane, at -vv: real kubeadm init prints the join command, token and
    // certificate key included; what reaches us is masked.
    let small = s.write("small.yaml", &lab.config_of(&cluster, &["master-1"]));
    let r = s.run(&["up", "-c", small.to_str().unwrap(), "-vv"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let st = s.state_of(&cluster).unwrap();
    let secrets = st.bootstrap.as_ref().unwrap().secrets.clone();
    let shown = format!("{}{}", r.stdout, r.stderr);
    assert!(shown.contains("--token [REDACTED]"), "kubeadm's join command, masked, at -vv");
    for secret in [secrets.token.as_str(), secrets.certificate_key.as_str(), secrets.token.split('.').nth(1).unwrap()] {
        assert!(!shown.contains(secret), "a secret in the output");
    }
    for id in st.identities.values() {
        assert!(!shown.contains(id.host_private_key.lines().nth(1).unwrap()), "a host private key in the output");
    }
    let kc = s.state().join(&cluster).join("kubeconfig");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777, 0o600);

    // Three hours later, in hacluster's record and in the cluster.
    let path = s.state().join(&cluster).join("state.json");
    let mut json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for k in ["tokenCreated", "certsUploaded"] {
        let v = &mut json["bootstrap"]["secrets"][k];
        *v = (v.as_u64().unwrap() - 3 * 3600).into();
    }
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let token_id = secrets.token.split('.').next().unwrap();
    let (ok, out) = kubectl(
        &kc,
        &["-n", "kube-system", "delete", "secret", &format!("bootstrap-token-{token_id}"), "kubeadm-certs"],
    );
    assert!(ok, "{out}");

    // master-3's etcd cannot write its data: its member is added, and never starts.
    root.ok(
        &m3,
        "mkdir -p /var/lib/etcd && mount --bind /var/lib/etcd /var/lib/etcd && mount -o remount,bind,ro /var/lib/etcd && ! touch /var/lib/etcd/probe 2>/dev/null",
    );
    // Every kubeadm command line on the init node, sampled every 20 ms.
    let sampler = root
        .ok(
            &m1,
            r#"nohup setsid bash -c 'while :; do for p in $(pidof kubeadm); do tr "\0" " " < /proc/$p/cmdline; echo; done; sleep 0.02; done >> /root/kubeadm-argv.log 2>/dev/null' </dev/null >/dev/null 2>&1 &
echo $!"#,
        )
        .trim()
        .to_string();

    let mut up = Background::start(&s, &["up", "-c", &cfg], "crash");
    let m3_name = format!("{cluster}-master-3");
    let peer = format!("https://{m3}:2380");
    eventually("master-3's etcd member added, never started", Duration::from_secs(420), || {
        up.still_running("master-3's member was added");
        let members = etcd_members(&root, &m1, &format!("{cluster}-master-1")).ok_or("no member list".to_string())?;
        if members.iter().any(|m| !m.started && m.peer_urls.contains(&peer)) {
            Ok(())
        } else {
            Err(format!("{members:?}"))
        }
    });
    root.ok(&m3, "kill -9 $(pidof kubeadm)");
    let r = up.wait();
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("kubeadm-join on {m3_name}: exited with 137 on the node"))
            && r.stderr.contains("`hacluster up` retries it"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("renewed the join token"), "{}", r.stderr);
    assert!(r.stderr.contains("re-uploaded the control-plane certificates"), "{}", r.stderr);
    // master-2 joined with the renewed secrets (the old ones were gone from the cluster).
    assert!(job_span(&root, &m2, "kubeadm-join").is_some());
    let seen = root.ok(&m1, &format!("kill {sampler}; sort -u /root/kubeadm-argv.log"));
    assert!(seen.lines().any(|l| l.starts_with("kubeadm token create --config")), "the sampler saw no renewal: {seen}");
    let renewed = s.state_of(&cluster).unwrap().bootstrap.unwrap().secrets;
    assert_ne!(renewed.token, secrets.token);
    for secret in [renewed.token.as_str(), renewed.token.split('.').nth(1).unwrap(), renewed.certificate_key.as_str()] {
        assert!(!seen.contains(secret), "a secret on kubeadm's command line: {seen}");
    }

    // etcd lists the learner kubeadm added, which never started: it does not vote (2 voting
    // members, quorum 2), and status says what it blocks.
    let st = s.run(&["status", "-c", &cfg, "-o", "json"]);
    assert_eq!(st.code, 3, "{}{}", st.stdout, st.stderr);
    let h = st.json()["health"].clone();
    assert_eq!((h["etcdMembers"].as_u64(), h["quorum"].as_u64()), (Some(2), Some(2)), "{h}");
    let list = h["etcdMemberList"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{h}");
    assert_eq!(list.iter().filter(|m| m["started"] == false && m["learner"] == true).count(), 1, "{h}");
    let text = s.run(&["status", "-c", &cfg]);
    assert!(
        text.stdout.contains(&format!("etcd has a learner that never started ({peer})"))
            && text.stdout.contains("no other control plane can join"),
        "{}",
        text.stdout
    );

    // The directory writable again, the kubelet starts that etcd: a learner, never promoted.
    // The next up removes it, resets master-3 and joins it again; then the workers. (Left in
    // place, it made the retried join's etcd crash-loop, and the join failed: seen.)
    root.ok(&m3, "umount /var/lib/etcd");
    eventually("master-3's learner started late", Duration::from_secs(300), || {
        let members = etcd_members(&root, &m1, &format!("{cluster}-master-1")).ok_or("no member list".to_string())?;
        let late = members.iter().any(|m| m.started && m.learner && m.peer_urls.contains(&peer));
        if late { Ok(()) } else { Err(format!("{members:?}")) }
    });
    let r = s.run(&["up", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("(a learner, never promoted) that an earlier, failed join of {m3_name} left")),
        "{}",
        r.stderr
    );
    let members = etcd_members(&root, &m1, &format!("{cluster}-master-1")).unwrap();
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, [format!("{cluster}-master-1"), format!("{cluster}-master-2"), m3_name.clone()], "{members:?}");
    assert!(members.iter().all(|m| m.started && !m.learner), "{members:?}");

    // The order, from the nodes' own records: one init, on master-1; the CNI after it; the
    // control planes one at a time (master-3's last run started after master-2's ended);
    // the workers after them, together.
    let init = job_span(&root, &m1, "kubeadm-init").expect("init ran on master-1");
    for ip in [&m2, &m3, &w1, &w2] {
        assert_eq!(job_span(&root, ip, "kubeadm-init"), None, "an init on {ip}");
    }
    let ds = crate::support::json(&kc, &["-n", "kube-system", "get", "daemonset", "kube-router"]);
    let cni = ds["metadata"]["creationTimestamp"].as_str().unwrap().to_string();
    let cni = root.ok(&m1, &format!("date -d {cni} +%s")).trim().parse::<f64>().unwrap();
    let (j2, j3) = (job_span(&root, &m2, "kubeadm-join").unwrap(), job_span(&root, &m3, "kubeadm-join").unwrap());
    let (jw1, jw2) = (job_span(&root, &w1, "kubeadm-join").unwrap(), job_span(&root, &w2, "kubeadm-join").unwrap());
    assert!(init.1.floor() <= cni && cni <= j2.0.ceil(), "CNI at {cni}: init {init:?}, master-2 {j2:?}");
    assert!(j2.1 < j3.0, "control-plane joins overlapped: {j2:?} {j3:?}");
    assert!(j3.1 < jw1.0 && j3.1 < jw2.0, "a worker joined before the control planes: {j3:?} {jw1:?} {jw2:?}");
    assert!(jw1.0 < jw2.1 && jw2.0 < jw1.1, "the workers joined one after the other: {jw1:?} {jw2:?}");

    // A second up: nothing done again on any node.
    let before: Vec<String> = all.iter().map(|ip| footprint(&root, ip)).collect();
    let r = s.run(&["up", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the kube-router CNI is already installed"), "{}", r.stderr);
    let after: Vec<String> = all.iter().map(|ip| footprint(&root, ip)).collect();
    assert_eq!(before, after, "the second up did something again");
    drop(lab);
    assert_eq!(Lab::leftovers(n), Vec::<String>::new(), "scripts/lab down left things behind");
}

/// Our SSH agent, stopped by its PID however the test ends.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One control plane and two workers. A fresh machine holding another cluster's files is
/// refused, every time, untouched. The nodes refuse this machine's direct logins: `up` goes
/// through a balancer as jump host, whose pinned key is checked too, signing with the SSH
/// agent (the key file is locked). A worker whose CA is not the cluster's is refused. A
/// second cluster's config naming worker-2's machine is refused (its job records are the
/// first cluster's, or an earlier hacluster's) until an operator resets the machine; then the
/// second cluster takes it, and the first one is refused there. Nodes that lost their job
/// records are not redone; the init node reset is not initialized again.
#[test]
#[ignore = "a real cluster takes both cores: scripts/test runs it alone, after the other tests"]
fn real_cluster_foreign_nodes_jump_host_agent_another_ca_and_lost_records() {
    let lab = Lab::up(1, 2);
    let n = lab.n;
    let cluster = format!("lab{n}");
    let s = Scratch::new();
    let root = lab.shell(s.dir.path());
    let (m1, w1, w2) = (format!("10.232.{n}.11"), format!("10.232.{n}.21"), format!("10.232.{n}.22"));
    let cfg = lab.config.to_str().unwrap().to_string();
    let up = |cfg: &str| s.run(&["up", "-c", cfg]);

    // Another cluster's files on a machine nothing of ours ever ran on: refused, every time,
    // before its packages or containerd are touched; the kubeadm config with the join secrets
    // does not stay behind.
    let cases = [
        ("/etc/kubernetes/admin.conf", "/etc/kubernetes/admin.conf", 2),
        ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/kubelet.conf", 1),
        ("/var/lib/etcd/member-data", "/var/lib/etcd/*", 1),
    ];
    for (file, named, runs) in cases {
        root.ok(&m1, &format!("mkdir -p \"$(dirname {file})\" && echo '# someone else' > {file}"));
        for _ in 0..runs {
            let r = up(&cfg);
            assert_eq!(r.code, 3, "{}", r.stderr);
            assert!(
                r.stderr.contains("already has Kubernetes or etcd files that hacluster did not put there")
                    && r.stderr.contains(named),
                "{named}: {}",
                r.stderr
            );
            assert!(!root.run(&m1, "test -e /etc/kubernetes/hacluster/init.yaml").status.success());
        }
        assert_eq!(root.ok(&m1, &format!("cat {file}")), "# someone else\n");
        root.ok(&m1, &format!("rm -f {file}"));
    }
    assert!(!kubeadm_installed(&root, &m1), "master-1 was prepared");

    // Only a bastion reaches the nodes: a balancer of the lab.
    let bastion = lab.node("lb-1");
    for ip in [&m1, &w1, &w2] {
        root.ok(ip, &format!("echo 'DenyUsers k8s@10.232.{n}.254' >> /etc/ssh/sshd_config && systemctl reload ssh"));
    }
    assert!(!root.run(&m1, "true").status.success(), "master-1 must refuse this machine directly");
    let via = root.through(&bastion.ip);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let jumped = |key: &str| {
        text.replace(
            "  static:\n",
            &format!("  static:\n    jump: {{address: {}, user: k8s, hostKey: {key}}}\n", bastion.ip),
        )
    };
    // The jump host's key is pinned as well: a different one stops everything.
    let other = hacluster::identity::generate_host_key().unwrap().host_public_key;
    let wrong = s.write("wrong-jump.yaml", &jumped(other.trim()));
    let r = up(wrong.to_str().unwrap());
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("k8s@{}:22 (jump host)", bastion.ip))
            && r.stderr.contains("does not match the pinned key"),
        "{}",
        r.stderr
    );
    // The key file is locked; hacluster signs through the SSH agent.
    let locked = s.path("locked_key");
    std::fs::copy(lab.operator_key(), &locked).unwrap();
    std::fs::copy(lab.operator_key().with_extension("pub"), s.path("locked_key.pub")).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let o = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "correct horse battery"])
        .arg("-f")
        .arg(&locked)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let through = s.write(
        "through.yaml",
        &jumped(&bastion.host_key).replace(lab.operator_key().to_str().unwrap(), locked.to_str().unwrap()),
    );
    let sock = s.path("agent.sock");
    let _agent = Agent(Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(Stdio::null()).spawn().unwrap());
    eventually("ssh-agent listens", Duration::from_secs(10), || {
        if sock.exists() { Ok(()) } else { Err("no socket".to_string()) }
    });
    let with_agent =
        |cfg: &PathBuf| s.cmd(&["up", "-c", cfg.to_str().unwrap()]).env("SSH_AUTH_SOCK", &sock).output().unwrap();
    let r: Run = with_agent(&through).into();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("none of the SSH agent's keys was accepted"), "{}", r.stderr);
    let add = Command::new("ssh-add").arg(lab.operator_key()).env("SSH_AUTH_SOCK", &sock).output().unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    let r: Run = with_agent(&through).into();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let log = via.ok(&m1, "journalctl -u ssh --no-pager -o cat");
    assert!(log.contains(&format!("Accepted publickey for k8s from {} port", bastion.ip)), "{log}");
    for ip in [&m1, &w1, &w2] {
        via.ok(ip, "sed -i '/^DenyUsers/d' /etc/ssh/sshd_config && systemctl reload ssh");
    }
    assert_eq!(up(&cfg).code, 0, "direct again");

    // worker-1 with another CA (reset and joined elsewhere by hand, its records of ours still
    // there): refused before anything touches it.
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kubernetes", "-days", "1"])
        .arg("-keyout")
        .arg(s.path("other-ca.key"))
        .arg("-out")
        .arg(s.path("other-ca.crt"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let other_ca = std::fs::read_to_string(s.path("other-ca.crt")).unwrap();
    root.ok(
        &w1,
        &format!(
            "cp /etc/kubernetes/pki/ca.crt /root/ca.crt.ours && cat > /etc/kubernetes/pki/ca.crt <<'EOF'\n{other_ca}EOF"
        ),
    );
    let kubelet_conf = || root.ok(&w1, "sha256sum /etc/kubernetes/kubelet.conf");
    let (before, conf) = (footprint(&root, &w1), kubelet_conf());
    let r = up(&cfg);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("{cluster}-worker-1")) && r.stderr.contains("not this cluster's CA"),
        "{}",
        r.stderr
    );
    assert_eq!((footprint(&root, &w1), kubelet_conf()), (before, conf), "worker-1 was touched");
    root.ok(&w1, "cp /root/ca.crt.ours /etc/kubernetes/pki/ca.crt");

    // A second cluster's config names worker-2's machine, as its control plane (with a
    // registry mirror of its own, which preparing the node for it would write).
    let other_cfg = lab
        .config_of("other", &["master-1"])
        .replace(&m1, &w2)
        .replace(&lab.node("master-1").host_key, &lab.node("worker-2").host_key)
        .replace(&format!("endpoint: 10.232.{n}.200:6443"), &format!("endpoint: {w2}:6443"))
        .replace(
            "  registryMirrors:\n",
            "  registryMirrors:\n    - registry: quay.io\n      endpoint: \"http://registry.lab:5000\"\n      plainHttp: true\n",
        );
    assert!(other_cfg.contains("quay.io") && other_cfg.contains(&format!("endpoint: {w2}:6443")), "{other_cfg}");
    let other_cfg = s.write("other.yaml", &other_cfg);
    let other_cfg = other_cfg.to_str().unwrap();
    let owner_file = "/etc/kubernetes/hacluster/jobs/kubeadm-join/owner";
    let first_owner = root.ok(&w2, &format!("cat {owner_file}")).trim().to_string();
    assert!(first_owner.starts_with(&format!("{cluster}/")), "{first_owner}");
    let quay = "test -e /etc/containerd/certs.d/quay.io/hosts.toml";
    // Records without an owner (an earlier hacluster's) are not the second cluster's either.
    root.ok(&w2, &format!("mv {owner_file} /root/owner.saved"));
    let r = up(other_cfg);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("earlier hacluster version"), "{}", r.stderr);
    root.ok(&w2, &format!("mv /root/owner.saved {owner_file}"));
    let r = up(other_cfg);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("did not put there for this cluster") && r.stderr.contains(&format!("`{first_owner}`")),
        "{}",
        r.stderr
    );
    assert!(!root.run(&w2, quay).status.success(), "worker-2 was prepared for the second cluster");
    assert!(!s.state().join("other/kubeconfig").exists());
    // The first cluster still finds everything done there.
    let before = footprint(&root, &w2);
    assert_eq!(up(&cfg).code, 0);
    assert_eq!(footprint(&root, &w2), before, "worker-2 was touched again");
    // Reset by its operator, the machine is free, and the second cluster takes it.
    root.ok(&w2, "kubeadm reset -f >/dev/null");
    let r = up(other_cfg);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let other_owner = root.ok(&w2, "cat /etc/kubernetes/hacluster/jobs/kubeadm-init/owner").trim().to_string();
    assert_eq!(other_owner, s.state_of("other").unwrap().bootstrap.unwrap().id);
    // Now the first cluster, whose state says it set that machine up, finds it another's.
    let first_kubeconfig = std::fs::read_to_string(s.state().join(&cluster).join("kubeconfig")).unwrap();
    let r = up(&cfg);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("`{other_owner}`")), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(s.state().join(&cluster).join("kubeconfig")).unwrap(), first_kubeconfig);
    assert!(root.run(&w2, quay).status.success(), "worker-2 was prepared for the first cluster again");

    // The first cluster without worker-2. Its nodes lose their job records (not their files):
    // nothing is redone.
    let first = s.write("first.yaml", &lab.config_of(&cluster, &["master-1", "worker-1"]));
    let first = first.to_str().unwrap();
    for ip in [&m1, &w1] {
        root.ok(ip, "rm -rf /etc/kubernetes/hacluster/jobs");
    }
    let r = up(first);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for ip in [&m1, &w1] {
        assert!(!root.run(ip, "test -e /etc/kubernetes/hacluster/jobs").status.success(), "a job ran again on {ip}");
    }
    // The node the cluster was initialized on, reset: a second `kubeadm init` there would
    // start a new cluster behind the same endpoint. Refused, saying why and what to do.
    root.ok(&m1, "kubeadm reset -f >/dev/null");
    let r = up(first);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("would start a second cluster behind the same endpoint"), "{}", r.stderr);
    assert!(!root.run(&m1, "test -e /etc/kubernetes/admin.conf").status.success(), "master-1 was initialized again");
    drop(lab);
    assert_eq!(Lab::leftovers(n), Vec::<String>::new(), "scripts/lab down left things behind");
}

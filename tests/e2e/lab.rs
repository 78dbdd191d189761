//! A lab of machines made of network namespaces, for bootstrap tests.
//!
//! Each node is a network namespace on a private bridge (its own switch namespace, no route
//! out), running a REAL `sshd` with its own host key, in a mount namespace where
//! `/etc/kubernetes`, `/var/lib/etcd`, apt's lists and the like are the node's own directories
//! and `/usr/local/bin` holds the TEST DOUBLES of kubeadm, kubectl, systemctl and the package
//! tools (tests/doubles). The test process reaches the nodes through one veth into the bridge.
//! The API endpoint is a plain HAProxy in its own namespace, or (`Lab::with_vip`) two
//! balancers running the HAProxy and keepalived configs the libvirt plugin renders, holding a VIP. A small HTTP server on the test
//! side is the package/CNI mirror (the air-gapped path). Everything is torn down on drop;
//! processes are stopped by PID (ours, or those inside namespaces we created).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::repo;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub(crate) fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh runs")
}

pub(crate) fn must(cmd: &str) {
    let o = sh(cmd);
    assert!(o.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&o.stderr));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ControlPlane,
    Worker,
}

pub struct LabNode {
    pub short: String,
    pub role: Role,
    pub ip: String,
    pub ns: String,
    pub dir: PathBuf,
    pub host_key: String,
    sshd: Option<Child>,
}

/// Directories of a node that shadow the real ones inside its mount namespace.
const BINDS: &[(&str, &str)] = &[
    ("etc-kubernetes", "/etc/kubernetes"),
    ("var-lib-etcd", "/var/lib/etcd"),
    ("var-lib-kubelet", "/var/lib/kubelet"),
    ("etc-containerd", "/etc/containerd"),
    ("apt-sources", "/etc/apt/sources.list.d"),
    ("apt-keyrings", "/etc/apt/keyrings"),
    ("modules-load", "/etc/modules-load.d"),
    ("sysctl", "/etc/sysctl.d"),
    ("doubles-state", "/var/lib/hacluster-doubles"),
    ("doubles-log", "/var/log/hacluster-doubles"),
    ("bin", "/usr/local/bin"),
];

/// Tools the doubles stand in for: the Kubernetes ones in Python, the rest in sh.
const PY_TOOLS: &[&str] = &["kubeadm", "kubectl"];
const SH_TOOLS: &[&str] =
    &["systemctl", "apt-get", "apt-mark", "dpkg-query", "modprobe", "sysctl", "swapoff", "timedatectl", "containerd"];

pub struct Lab {
    pub k: u32,
    pub dir: tempfile::TempDir,
    pub nodes: Vec<LabNode>,
    pub lb_ip: String,
    pub mirror: String,
    pub operator_key: PathBuf,
    switch: String,
    lb_ns: String,
    root_veth: String,
    haproxy: Option<Child>,
    /// With a VIP front: the balancers' namespaces, HAProxy and keepalived, and their run dir.
    lb_namespaces: Vec<String>,
    vip_children: Vec<Child>,
    vip_run: Option<tempfile::TempDir>,
    stop_mirror: Arc<AtomicBool>,
    mirror_port: u16,
}

pub struct Call {
    pub node: String,
    pub tool: String,
    pub args: Vec<String>,
    pub start: f64,
    pub end: f64,
    pub rc: i64,
}

impl Lab {
    /// `cps` control planes and `workers` workers behind a plain HAProxy.
    pub fn new(cps: usize, workers: usize) -> Lab {
        Lab::build(cps, workers, false)
    }

    /// `cps` control planes and `workers` workers behind the libvirt plugin's load balancers:
    /// two namespaces running the HAProxy and keepalived configs the plugin renders for these
    /// addresses, the VIP (.200) as the endpoint.
    pub fn with_vip(cps: usize, workers: usize) -> Lab {
        Lab::build(cps, workers, true)
    }

    fn build(cps: usize, workers: usize, vip: bool) -> Lab {
        let k = 100 + NEXT.fetch_add(1, Ordering::SeqCst) + (std::process::id() % 20) * 5;
        assert!(k < 250);
        let dir = tempfile::Builder::new().prefix("hacluster-lab-").tempdir().unwrap();
        let switch = format!("hl{k}-sw");
        let root_veth = format!("hl{k}r");
        // Leftovers of a killed earlier run with the same number.
        cleanup_prefix(&format!("hl{k}-"), &root_veth);
        must(&format!(
            "ip netns add {switch} && ip -n {switch} link set lo up && ip -n {switch} link add br0 type bridge && ip -n {switch} link set br0 up"
        ));
        must(&format!(
            "ip link add {root_veth} type veth peer name up0 netns {switch} && ip -n {switch} link set up0 master br0 up && ip addr add 10.231.{k}.254/24 dev {root_veth} && ip link set {root_veth} up"
        ));
        for (_, target) in BINDS {
            std::fs::create_dir_all(target).unwrap();
        }
        std::fs::create_dir_all("/run/sshd").unwrap();
        let operator_key = dir.path().join("operator");
        let key = hacluster::identity::generate_host_key().unwrap();
        std::fs::write(&operator_key, &key.host_private_key).unwrap();
        std::fs::write(dir.path().join("operator.pub"), &key.host_public_key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&operator_key, std::fs::Permissions::from_mode(0o600)).unwrap();

        let (mirror_port, stop_mirror) = serve_mirror(&format!("10.231.{k}.254"));
        let mut lab = Lab {
            k,
            nodes: Vec::new(),
            lb_ip: format!("10.231.{k}.5"),
            mirror: format!("http://10.231.{k}.254:{mirror_port}/k8s"),
            operator_key,
            switch,
            lb_ns: format!("hl{k}-lb"),
            root_veth,
            haproxy: None,
            lb_namespaces: Vec::new(),
            vip_children: Vec::new(),
            vip_run: None,
            stop_mirror,
            mirror_port,
            dir,
        };
        let specs: Vec<(String, Role)> = (1..=cps)
            .map(|i| (format!("m{i}"), Role::ControlPlane))
            .chain((1..=workers).map(|i| (format!("w{i}"), Role::Worker)))
            .collect();
        for (i, (short, role)) in specs.into_iter().enumerate() {
            let ip = format!("10.231.{k}.{}", 11 + i);
            let node = lab.add_node(&short, role, &ip, &key.host_public_key);
            lab.nodes.push(node);
        }
        if vip {
            lab.start_vip();
        } else {
            lab.start_haproxy();
        }
        for n in &lab.nodes {
            wait_port(&n.ip, 22);
        }
        lab
    }

    fn attach(&self, ns: &str, ip: &str, idx: &str) {
        let k = self.k;
        let sw = &self.switch;
        must(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && ip link add v{k}{idx} type veth peer name eth0 netns {ns} && ip link set v{k}{idx} netns {sw} && ip -n {sw} link set v{k}{idx} master br0 up && ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up"
        ));
    }

    fn add_node(&self, short: &str, role: Role, ip: &str, operator_pub: &str) -> LabNode {
        let ns = format!("hl{}-{short}", self.k);
        self.attach(&ns, ip, short);
        let dir = self.dir.path().join("nodes").join(short);
        for (sub, _) in BINDS {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("fstab"), "/dev/vda1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n").unwrap();
        for (script, tools) in [("double.py", PY_TOOLS), ("simple.sh", SH_TOOLS)] {
            let target = repo().join("tests/doubles").join(script);
            for t in tools {
                std::os::unix::fs::symlink(&target, dir.join("bin").join(t)).unwrap();
            }
        }
        std::fs::write(dir.join("doubles-state/node.json"), format!("{{\"ip\": \"{ip}\", \"short\": \"{short}\"}}"))
            .unwrap();
        let hk = hacluster::identity::generate_host_key().unwrap();
        std::fs::write(dir.join("host_key"), &hk.host_private_key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("host_key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.join("authorized_keys"), format!("{operator_pub}\n")).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "ListenAddress {ip}:22\nHostKey {d}/host_key\nPidFile none\nAuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxStartups 100\nMaxSessions 100\n"
            ),
        )
        .unwrap();
        let mut mounts = String::new();
        for (sub, target) in BINDS {
            mounts.push_str(&format!("mount --bind {d}/{sub} {target} && "));
        }
        mounts.push_str(&format!("mount --bind {d}/fstab /etc/fstab && "));
        // A fresh machine's root has the distribution's .bashrc. This development machine's
        // runs `pyenv init` (~90 ms of forks), and bash sources it for every command sshd
        // runs: it would make the nodes, not hacluster, the cost the benchmark measures.
        std::fs::write(dir.join("bashrc"), "# root's .bashrc on a lab node: a fresh machine's, nearly empty\n")
            .unwrap();
        mounts.push_str(&format!("{{ [ ! -e /root/.bashrc ] || mount --bind {d}/bashrc /root/.bashrc; }} && "));
        let sshd = Command::new("ip")
            .args(["netns", "exec", &ns, "unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("{mounts} exec /usr/sbin/sshd -D -e -f {d}/sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        LabNode { short: short.into(), role, ip: ip.into(), ns, dir, host_key: hk.host_public_key, sshd: Some(sshd) }
    }

    fn start_vip(&mut self) {
        let k = self.k;
        let ip = |last: u32| format!("10.231.{k}.{last}");
        let of = |role: Role| -> Vec<String> {
            self.nodes.iter().filter(|n| n.role == role).map(|n| n.ip.clone()).collect()
        };
        let scratch = crate::plugins::Scratch::new();
        let r = crate::vip::render_for(
            &scratch,
            &format!("10.231.{k}"),
            &of(Role::ControlPlane),
            &of(Role::Worker),
            [&ip(5), &ip(6)],
            &ip(200),
        );
        // keepalived refuses scripts under world-writable directories (/tmp): use /run.
        let run = tempfile::Builder::new().prefix("hacluster-lab-vip-").tempdir_in("/run").unwrap();
        let check = run.path().join("check_haproxy.sh");
        std::fs::write(&check, &r.check).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = |name: &str| std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        for (i, last) in [(1usize, 5u32), (2, 6)] {
            let ns = format!("hl{k}-lb{i}");
            self.attach(&ns, &ip(last), &format!("lb{i}"));
            self.lb_namespaces.push(ns.clone());
            let hp = run.path().join(format!("haproxy-{i}.cfg"));
            std::fs::write(&hp, &r.haproxy).unwrap();
            let conf = run.path().join(format!("keepalived-{i}.conf"));
            std::fs::write(
                &conf,
                r.keepalived[i - 1].replace("/etc/keepalived/check_haproxy.sh", check.to_str().unwrap()),
            )
            .unwrap();
            let pid = |f: &str| run.path().join(format!("{f}-{i}.pid")).to_str().unwrap().to_string();
            for (name, args) in [
                (
                    format!("haproxy-{i}"),
                    vec!["haproxy".to_string(), "-db".into(), "-f".into(), hp.to_str().unwrap().into()],
                ),
                (
                    format!("keepalived-{i}"),
                    vec![
                        "keepalived".to_string(),
                        "-n".into(),
                        "-l".into(),
                        "-D".into(),
                        "--vrrp".into(),
                        "-f".into(),
                        conf.to_str().unwrap().into(),
                        "-p".into(),
                        pid("ka"),
                        "-r".into(),
                        pid("vrrp"),
                        "-c".into(),
                        pid("chk"),
                    ],
                ),
            ] {
                let out = log(&name);
                let child = Command::new("ip")
                    .args(["netns", "exec", &ns])
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .spawn()
                    .unwrap();
                self.vip_children.push(child);
            }
        }
        self.vip_run = Some(run);
        self.lb_ip = ip(200);
        // The VIP settles on the higher priority (lb1) a few seconds after keepalived starts.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let held = sh(&format!("ip -n hl{k}-lb1 -4 addr show dev eth0"));
            if String::from_utf8_lossy(&held.stdout).contains(&format!("{}/24", ip(200))) {
                break;
            }
            assert!(Instant::now() < deadline, "the VIP never settled on lb1; logs in {}", self.dir.path().display());
            std::thread::sleep(Duration::from_millis(100));
        }
        wait_port(&ip(200), 6443);
    }

    /// Which balancer holds the VIP (1 or 2), if any.
    pub fn vip_holder(&self) -> Option<usize> {
        self.lb_namespaces
            .iter()
            .position(|ns| {
                let out = sh(&format!("ip -n {ns} -4 addr show dev eth0"));
                String::from_utf8_lossy(&out.stdout).contains(&format!("{}/24", self.lb_ip))
            })
            .map(|i| i + 1)
    }

    fn start_haproxy(&mut self) {
        let ip = self.lb_ip.clone();
        self.attach(&self.lb_ns.clone(), &ip, "lb");
        let mut servers = String::new();
        for n in self.nodes.iter().filter(|n| n.role == Role::ControlPlane) {
            servers.push_str(&format!("    server {} {}:6443\n", n.short, n.ip));
        }
        let cfg = format!(
            "global\n    maxconn 2000\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    retries 2\n    option redispatch\nfrontend api\n    bind {ip}:6443\n    default_backend control_planes\nbackend control_planes\n    balance roundrobin\n    option httpchk GET /readyz\n    http-check expect status 200\n    default-server inter 500ms fall 2 rise 2 check check-ssl verify none\n{servers}"
        );
        let path = self.dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let ok = Command::new("haproxy").args(["-c", "-q", "-f"]).arg(&path).status().unwrap();
        assert!(ok.success(), "haproxy config invalid");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.lb_ns, "haproxy", "-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("haproxy.log")).unwrap())
            .spawn()
            .unwrap();
        self.haproxy = Some(child);
        wait_port(&ip, 6443);
    }

    /// A cluster config for the static backend over this lab's nodes.
    pub fn config(&self, cluster: &str, version: &str) -> String {
        let all: Vec<&str> = self.nodes.iter().map(|n| n.short.as_str()).collect();
        self.config_of(cluster, version, &all)
    }

    /// A config naming only the nodes in `shorts` (the first of each role onwards: `m1`, `w1`),
    /// for a cluster that grows later.
    pub fn config_of(&self, cluster: &str, version: &str, shorts: &[&str]) -> String {
        let nodes: Vec<&LabNode> = self.nodes.iter().filter(|n| shorts.contains(&n.short.as_str())).collect();
        let cps = nodes.iter().filter(|n| n.role == Role::ControlPlane).count();
        let ws = nodes.iter().filter(|n| n.role == Role::Worker).count();
        let mut y = format!(
            "cluster:\n  name: {cluster}\n  nodeTemplate:\n    ssh: {{privateKeyPath: {}}}\n  nodes:\n    master:\n      instances:\n",
            self.operator_key.display()
        );
        for i in 1..=cps {
            y += &format!("        - id: {i}\n");
        }
        if ws > 0 {
            y += "    worker:\n      instances:\n";
        }
        for i in 1..=ws {
            y += &format!("        - id: {i}\n");
        }
        y += &format!("kubernetes:\n  version: {version}\n  networkPlugin: calico\n  packageMirror: {}\n", self.mirror);
        y += &format!("backends:\n  static:\n    endpoint: {}:6443\n    user: root\n    machines:\n", self.lb_ip);
        for n in &nodes {
            let role = if n.role == Role::ControlPlane { "master" } else { "worker" };
            let id = &n.short[1..];
            y += &format!("      - node: {role}-{id}\n        address: {}\n        hostKey: {}\n", n.ip, n.host_key);
        }
        y
    }

    /// Makes `short`'s sshd refuse logins from the test machine (the lab's side of the bridge):
    /// it is then reachable only through another node, as behind a bastion.
    pub fn deny_direct_ssh(&self, short: &str) {
        let n = self.node(short);
        let cfg = n.dir.join("sshd_config");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&format!("DenyUsers *@10.231.{}.254\n", self.k));
        std::fs::write(&cfg, text).unwrap();
        // sshd re-executes itself on SIGHUP and reads its configuration again.
        let pid = n.sshd.as_ref().expect("sshd runs").id();
        must(&format!("kill -HUP {pid}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&format!("{}:22", n.ip).parse().unwrap(), Duration::from_millis(300)).is_err()
        {
            assert!(Instant::now() < deadline, "sshd of {short} did not come back");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn node(&self, short: &str) -> &LabNode {
        self.nodes.iter().find(|n| n.short == short).unwrap()
    }

    /// Every call the doubles logged, across nodes, in start order.
    pub fn calls(&self) -> Vec<Call> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let Ok(f) = std::fs::File::open(n.dir.join("doubles-log/calls.jsonl")) else { continue };
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                out.push(Call {
                    node: n.short.clone(),
                    tool: v["tool"].as_str().unwrap_or("").into(),
                    args: v["args"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                        .unwrap_or_default(),
                    start: v["start"].as_f64().unwrap_or(0.0),
                    end: v["end"].as_f64().unwrap_or(0.0),
                    rc: v["rc"].as_i64().unwrap_or(0),
                });
            }
        }
        out.sort_by(|a, b| a.start.partial_cmp(&b.start).unwrap());
        out
    }

    /// Runs a command inside a node (its network namespace; not its mount namespace).
    pub fn in_node(&self, short: &str, cmd: &str) -> std::process::Output {
        let n = self.node(short);
        Command::new("ip").args(["netns", "exec", &n.ns, "sh", "-c", cmd]).output().unwrap()
    }

    /// Runs `cmd` on a node as an operator would: OpenSSH as root with the operator's key,
    /// checking the node's host key.
    pub fn over_ssh(&self, short: &str, cmd: &str) -> std::process::Output {
        let n = self.node(short);
        let kh = self.dir.path().join(format!("{short}_known_hosts"));
        std::fs::write(&kh, format!("{} {}\n", n.ip, n.host_key)).unwrap();
        Command::new("ssh")
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .arg("-i")
            .arg(&self.operator_key)
            .arg(format!("root@{}", n.ip))
            .arg(cmd)
            .output()
            .unwrap()
    }
}

fn wait_port(ip: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&format!("{ip}:{port}").parse().unwrap(), Duration::from_millis(300)).is_err() {
        assert!(Instant::now() < deadline, "{ip}:{port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes namespaces (and their processes) and the root veth of an earlier run.
pub(crate) fn cleanup_prefix(prefix: &str, root_veth: &str) {
    let list = sh("ip netns list");
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        if ns.starts_with(prefix) {
            kill_ns_processes(ns);
            sh(&format!("ip netns del {ns}"));
        }
    }
    sh(&format!("ip link del {root_veth} 2>/dev/null"));
}

pub(crate) fn kill_ns_processes(ns: &str) {
    let pids = sh(&format!("ip netns pids {ns}"));
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        sh(&format!("kill -9 {pid} 2>/dev/null"));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("HACLUSTER_LAB_KEEP").is_some() {
            // Debugging: leave everything running and the directory in place.
            eprintln!("lab kept: {} (namespaces hl{}-*)", self.dir.path().display(), self.k);
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            let _ = dir.keep();
            return;
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.sshd.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            kill_ns_processes(&n.ns);
        }
        if let Some(mut c) = self.haproxy.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for c in &mut self.vip_children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Give killed processes a moment to leave before the namespaces go.
        std::thread::sleep(Duration::from_millis(100));
        for n in &self.nodes {
            kill_ns_processes(&n.ns);
            sh(&format!("ip netns del {}", n.ns));
        }
        for ns in self.lb_namespaces.iter().chain([&self.lb_ns]) {
            kill_ns_processes(ns);
            sh(&format!("ip netns del {ns} 2>/dev/null"));
        }
        sh(&format!("ip netns del {}", self.switch));
        sh(&format!("ip link del {} 2>/dev/null", self.root_veth));
        self.stop_mirror.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(format!("10.231.{}.254:{}", self.k, self.mirror_port));
    }
}

/// The package and CNI mirror: the signing key, and a CNI manifest shaped like Calico's.
fn serve_mirror(ip: &str) -> (u16, Arc<AtomicBool>) {
    let l = TcpListener::bind(format!("{ip}:0")).unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            if s.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (code, body) = if path.ends_with("/Release.key") {
                    (200, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbWlycm9yIGtleSBmb3IgdGVzdHM=\n-----END PGP PUBLIC KEY BLOCK-----\n".to_string())
                } else if path.ends_with("/cni/calico.yaml") {
                    (200, CALICO.to_string())
                } else {
                    (404, "not found\n".to_string())
                };
                let _ =
                    write!(c, "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            });
        }
    });
    (port, stop)
}

const CALICO: &str = r#"---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: calico-node
  namespace: kube-system
spec:
  template:
    spec:
      containers:
        - name: calico-node
          env:
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: calico-kube-controllers
  namespace: kube-system
"#;

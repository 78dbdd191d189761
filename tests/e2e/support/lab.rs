//! The lab of real nodes (`scripts/lab`, tests/lab/README.md) as the tests use it: a lab made
//! and removed, a shell on its nodes, kubectl against its clusters, and waiting for a condition.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::repo;

/// A lab made by `scripts/lab up`, removed (by `scripts/lab down N`) when dropped.
pub(crate) struct Lab {
    pub n: u32,
    pub config: PathBuf,
}

impl Lab {
    pub fn up(control_planes: u32, workers: u32) -> Lab {
        Lab::up_at(control_planes, workers, None)
    }

    /// A lab whose config asks for `version` (`v1.N` or `v1.N.P`, one the lab has built).
    pub fn up_at(control_planes: u32, workers: u32, version: Option<&str>) -> Lab {
        let started = Instant::now();
        let (cps, ws) = (control_planes.to_string(), workers.to_string());
        let mut args = vec!["up", "--control-planes", &cps, "--workers", &ws];
        if let Some(v) = version {
            args.extend(["--version", v]);
        }
        let out = Command::new(repo().join("scripts/lab")).args(&args).output().expect("scripts/lab runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "scripts/lab up failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let config = PathBuf::from(stdout.lines().last().expect("the config's path, last").trim());
        let n = config
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .expect("/var/lib/hacluster-lab/<n>/cluster.yaml");
        eprintln!("real cluster: lab {n} up in {:.0} s", started.elapsed().as_secs_f64());
        Lab { n, config }
    }

    /// What of lab `n` is still on this machine: namespaces, cgroups, its directory, the veth.
    pub fn leftovers(n: u32) -> Vec<String> {
        let mut left = Vec::new();
        let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        for l in String::from_utf8_lossy(&netns.stdout).lines() {
            if l.starts_with(&format!("hlab{n}-")) {
                left.push(format!("netns {l}"));
            }
        }
        let cg = Command::new("find")
            .args(["/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name", &format!("hacluster-lab-{n}-*")])
            .output()
            .unwrap();
        left.extend(String::from_utf8_lossy(&cg.stdout).lines().map(|l| format!("cgroup {l}")));
        if Path::new(&format!("/var/lib/hacluster-lab/{n}")).exists() {
            left.push(format!("/var/lib/hacluster-lab/{n}"));
        }
        if Path::new(&format!("/sys/class/net/hlab{n}")).exists() {
            left.push(format!("veth hlab{n}"));
        }
        left
    }
}

/// One machine of a lab, as `scripts/lab nodes N` prints it.
#[derive(Debug, Clone)]
pub(crate) struct LabNode {
    /// `lab2-master-1`, `lab2-lb-1`.
    pub name: String,
    pub ip: String,
    pub host_key: String,
}

impl Lab {
    /// Every machine of the lab, the balancers included.
    pub fn nodes(&self) -> Vec<LabNode> {
        let out = Command::new(repo().join("scripts/lab")).args(["nodes", &self.n.to_string()]).output().unwrap();
        assert!(out.status.success(), "scripts/lab nodes: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                LabNode { name: f[0].into(), ip: f[2].into(), host_key: f[3..].join(" ") }
            })
            .collect()
    }

    /// The machine `short` (`master-1`, `worker-2`, `lb-1`).
    pub fn node(&self, short: &str) -> LabNode {
        let name = format!("lab{}-{short}", self.n);
        self.nodes().into_iter().find(|n| n.name == name).unwrap_or_else(|| panic!("lab {} has no {short}", self.n))
    }

    /// The operator's key the lab made (the config's `privateKeyPath`).
    pub fn operator_key(&self) -> PathBuf {
        self.config.parent().unwrap().join("operator_ed25519")
    }

    /// The lab's config with only the machines `keep` (`master-1`, `worker-2`), for a cluster
    /// named `name` (the machines' node names follow it).
    pub fn config_of(&self, name: &str, keep: &[&str]) -> String {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let prefix = format!("lab{}-", self.n);
        let (mut out, mut role, mut skip) = (String::new(), "", 0);
        for line in text.lines() {
            let t = line.trim();
            if skip > 0 {
                skip -= 1;
                continue;
            }
            match t {
                "master:" => role = "master",
                "worker:" => role = "worker",
                _ => {}
            }
            if let Some(id) = t.strip_prefix("- id: ")
                && !keep.contains(&format!("{role}-{id}").as_str())
            {
                continue;
            }
            if let Some(node) = t.strip_prefix("- node: ") {
                if !keep.contains(&node.trim_start_matches(&prefix)) {
                    skip = 2; // its address and hostKey lines
                    continue;
                }
                out += &line.replace(&prefix, &format!("{name}-"));
                out += "\n";
                continue;
            }
            if t == format!("name: lab{}", self.n) {
                out += &line.replace(&format!("lab{}", self.n), name);
                out += "\n";
                continue;
            }
            out += line;
            out += "\n";
        }
        // A worker section left without instances goes.
        let header = "    worker:\n      instances:\n";
        match out.find(header) {
            Some(i) if !out[i + header.len()..].starts_with("        - id: ") => out.replacen(header, "", 1),
            _ => out,
        }
    }

    /// Root on the lab's machines through OpenSSH as the operator, checking the host keys the
    /// lab pinned; its files live in `dir`.
    pub fn shell(&self, dir: &Path) -> NodeShell {
        let known = dir.join("lab_known_hosts");
        let lines: String = self.nodes().iter().map(|n| format!("{} {}\n", n.ip, n.host_key)).collect();
        std::fs::write(&known, lines).unwrap();
        NodeShell { known_hosts: known, key: self.operator_key(), jump: None }
    }
}

/// Root shells on lab machines (see [`Lab::shell`]).
pub(crate) struct NodeShell {
    known_hosts: PathBuf,
    key: PathBuf,
    /// A lab machine to go through, as a jump host.
    jump: Option<String>,
}

impl NodeShell {
    /// The same, through the lab machine at `ip` (for nodes that refuse this machine).
    pub fn through(&self, ip: &str) -> NodeShell {
        NodeShell { known_hosts: self.known_hosts.clone(), key: self.key.clone(), jump: Some(ip.to_string()) }
    }

    fn options(&self) -> Vec<String> {
        let mut o: Vec<String> =
            ["BatchMode=yes", "StrictHostKeyChecking=yes", "ConnectTimeout=10"].iter().map(|x| x.to_string()).collect();
        o.push(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        o.push(format!("IdentityFile={}", self.key.display()));
        o.push("IdentitiesOnly=yes".into());
        o
    }

    /// Runs `script` as root on `ip` (bash, the script on stdin).
    pub fn run(&self, ip: &str, script: &str) -> std::process::Output {
        use std::io::Write;
        let mut cmd = Command::new("ssh");
        for o in self.options() {
            cmd.arg("-o").arg(o);
        }
        if let Some(jump) = &self.jump {
            let inner: Vec<String> = self.options().iter().map(|o| format!("-o {o}")).collect();
            cmd.arg("-o").arg(format!("ProxyCommand=ssh {} -W %h:%p k8s@{jump}", inner.join(" ")));
        }
        let mut child = cmd
            .arg(format!("k8s@{ip}"))
            .arg("sudo bash -s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `run`, which must succeed: its stdout.
    pub fn ok(&self, ip: &str, script: &str) -> String {
        let o = self.run(ip, script);
        assert!(o.status.success(), "on {ip}: {script}\n{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/lab")).args(["down", &self.n.to_string()]).status();
    }
}

impl Lab {
    /// What a platform engineer would look at when pods do not come up: where the pods are
    /// and why (`describe`), the cluster's recent events, and each worker's kubelet and
    /// containerd journals. Printed by a failing test, so that a failure in CI explains itself.
    pub fn diagnose(&self, kc: &Path, dir: &Path, selector: &str) -> String {
        let mut out = String::new();
        for args in [
            vec!["get", "nodes", "-o", "wide"],
            vec!["get", "pods", "-A", "-o", "wide"],
            vec!["describe", "pods", "-l", selector],
            vec!["get", "events", "-A", "--sort-by=.lastTimestamp"],
        ] {
            out += &format!("\n=== kubectl {}\n{}", args.join(" "), kubectl(kc, &args).1);
        }
        let root = self.shell(dir);
        for node in self.nodes().iter().filter(|n| n.name.contains("-worker-")) {
            let o = root.run(
                &node.ip,
                "ctr -n k8s.io tasks ls 2>&1 | tail -20; ctr -n k8s.io images ls -q 2>&1 | tail -20; \
                 journalctl -u kubelet --no-pager -n 60 2>&1; journalctl -u containerd --no-pager -n 40 2>&1; \
                 ls -l /etc/cni/net.d 2>&1",
            );
            out += &format!(
                "\n=== {} ({})\n{}{}",
                node.name,
                node.ip,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        out
    }
}

/// Real kubectl (the default pinned version) with the cluster's kubeconfig.
pub(crate) fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let dir = crate::real_kubeadm::pinned()
        .iter()
        .find(|(v, _)| *v == hacluster::model::version::DEFAULT_VERSION.to_string())
        .map(|(_, d)| d.clone())
        .expect("the default version is built");
    let out = Command::new(dir.join("kubectl")).arg("--kubeconfig").arg(kubeconfig).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

pub(crate) fn json(kubeconfig: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let (ok, out) = kubectl(kubeconfig, &a);
    assert!(ok, "kubectl {args:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?} is not JSON ({e}): {out}"))
}

/// Polls `cond` until it returns `Ok`, or fails with its last `Err` after `limit`.
pub(crate) fn eventually<T>(what: &str, limit: Duration, mut cond: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match cond() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: not within {limit:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

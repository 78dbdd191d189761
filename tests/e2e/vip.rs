//! The load balancers' HAProxy and keepalived configurations, exactly as the libvirt plugin
//! renders them into the LB VMs' cloud-init, run for REAL (Debian's haproxy and keepalived) in
//! network namespaces on a private bridge: 2 LBs holding the VIP, 3 backends where the
//! control planes stand, answering HTTPS on 6443 (tests/vip/backend.py), and a client
//! (tests/vip/client.py)
//! on the test's side of the bridge, making a fresh TLS request to the VIP every 50 ms.
//!
//! Measured: the client-visible outage when (a) keepalived stops on the VIP holder, (b) its
//! HAProxy is killed, (c) its link goes down, and the errors when (d) a control plane dies.
//! The test asserts recovery (the VIP moves and requests succeed again; no errors in (d)), and
//! prints the outages; it sets no wall-clock limit (shared, noisy machines).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Scratch, libvirt_plugin, needs,
    netns::{cleanup_prefix, must, sh},
    repo,
};

/// Load-balancer configs rendered by the plugin, as `hacluster plan --out` shows them (the
/// files the plugin reports are the ones its cloud-init seeds carry).
pub(crate) struct Rendered {
    pub haproxy: String,
    pub check: String,
    pub keepalived: [String; 2],
}

/// The LB configs for `k`'s subnet: two balancers (.201 priority 110, .202 priority 100), VIP
/// .200, control planes .10-.12, a worker .20.
fn render(s: &Scratch, k: u32) -> Rendered {
    let net = format!("10.231.{k}");
    let ip = |last: u32| format!("{net}.{last}");
    render_for(s, &net, &[ip(10), ip(11), ip(12)], &[ip(20)], [&ip(201), &ip(202)], &ip(200))
}

/// The plugin's configs for two balancers in front of `masters` on the /24 `net`.
pub(crate) fn render_for(
    s: &Scratch,
    net: &str,
    masters: &[String],
    workers: &[String],
    lbs: [&str; 2],
    vip: &str,
) -> Rendered {
    let list = |ips: &[String]| -> String {
        ips.iter().enumerate().map(|(i, ip)| format!("        - {{id: {}, ip: {ip}}}\n", i + 1)).collect()
    };
    let mut nodes = format!(
        "    loadBalancer:\n      vip: {vip}\n      virtualRouterId: 51\n      instances:\n        - {{id: 1, ip: {}, priority: 110}}\n        - {{id: 2, ip: {}, priority: 100}}\n    master:\n      instances:\n{}",
        lbs[0],
        lbs[1],
        list(masters)
    );
    if !workers.is_empty() {
        nodes += &format!("    worker:\n      instances:\n{}", list(workers));
    }
    let cfg = s.write(
        "vip.yaml",
        &format!(
            "hosts:\n  - name: lab\n    connection: {{type: local, uri: \"test:///default\"}}\ncluster:\n  name: vip\n  network: {{mode: isolated, cidr: {net}.0/24}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n{nodes}kubernetes: {{version: v1.35.0}}\nbackends:\n  libvirt: {{domainType: test}}\n"
        ),
    );
    let out = s.path("plan-out");
    let r = s.run(&[
        "plan",
        "-c",
        cfg.to_str().unwrap(),
        "--plugin",
        libvirt_plugin().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let init = std::fs::read_to_string(out.join("vip-master-1/kubeadm-init.yaml")).unwrap();
    assert!(init.contains(&format!("\"controlPlaneEndpoint\": \"{vip}:6443\"")), "the VIP is the endpoint: {init}");
    let file = |lb: u32, path: &str| -> String {
        let name = path.rsplit('/').next().unwrap();
        let f = std::fs::read_to_string(out.join(format!("vip-lb-{lb}/{name}"))).unwrap();
        // The same content is inside the user-data the seed delivers.
        let ud = std::fs::read_to_string(out.join(format!("vip-lb-{lb}/user-data"))).unwrap();
        let doc: serde_json::Value = serde_json::from_str(ud.strip_prefix("#cloud-config\n").unwrap()).unwrap();
        let inside = doc["write_files"].as_array().unwrap().iter().find(|w| w["path"] == path);
        assert_eq!(inside.unwrap_or_else(|| panic!("lb-{lb} has no {path}"))["content"], f.as_str());
        f
    };
    let haproxy = file(1, "/etc/haproxy/haproxy.cfg");
    assert_eq!(haproxy, file(2, "/etc/haproxy/haproxy.cfg"), "both balancers run the same HAProxy config");
    Rendered {
        haproxy,
        check: file(1, "/etc/keepalived/check_haproxy.sh"),
        keepalived: [file(1, "/etc/keepalived/keepalived.conf"), file(2, "/etc/keepalived/keepalived.conf")],
    }
}

#[test]
fn rendered_lb_configs_pass_haproxy_and_keepalived_checks() {
    needs!(Plugins, Command("haproxy"), Command("keepalived"));
    let s = Scratch::new();
    let r = render(&s, 77);
    let dir = s.path("");
    std::fs::write(dir.join("haproxy.cfg"), &r.haproxy).unwrap();
    let out = Command::new("haproxy").args(["-c", "-f"]).arg(dir.join("haproxy.cfg")).output().unwrap();
    assert!(
        out.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check script at a path of ours (keepalived -t looks for it; not under /tmp, which
    // keepalived's script security refuses as world-writable).
    let run = tempfile::Builder::new().prefix("hacluster-kacheck-").tempdir_in("/run").unwrap();
    let check = run.path().join("check_haproxy.sh");
    std::fs::write(&check, &r.check).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (i, conf) in r.keepalived.iter().enumerate() {
        let p = dir.join(format!("keepalived-{i}.conf"));
        std::fs::write(&p, conf.replace("/etc/keepalived/check_haproxy.sh", check.to_str().unwrap())).unwrap();
        let out = Command::new("keepalived").args(["-t", "-f"]).arg(&p).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.trim().is_empty(), "keepalived -t: {said}");
    }
    // What the seeds' design needs, in the files themselves.
    for line in [
        "bind *:6443",
        "option redispatch",
        "retries 3",
        "option httpchk GET /readyz",
        "default-server inter 1s fall 2 rise 2 check check-ssl verify none",
        "server master-1 10.231.77.10:6443",
        "server master-3 10.231.77.12:6443",
    ] {
        assert!(r.haproxy.contains(line), "haproxy.cfg lacks `{line}`:\n{}", r.haproxy);
    }
    assert!(!r.haproxy.contains("10.231.77.20:6443"), "workers are not API backends");
    assert!(r.keepalived[0].contains("priority 110") && r.keepalived[1].contains("priority 100"));
    assert!(r.keepalived[0].contains("virtual_router_id 51"));
    assert!(r.check.contains("/dev/tcp/127.0.0.1/6443"), "the check sees only this machine's HAProxy");
}

/// One attempt of the client.
#[derive(Debug, serde::Deserialize)]
struct Attempt {
    t: f64,
    ok: bool,
    node: String,
}

/// Longest client-visible outage (first failure → next success) and the number of failures.
fn outage(attempts: &[Attempt]) -> (Duration, usize) {
    let mut worst = 0.0f64;
    let mut since: Option<f64> = None;
    for a in attempts {
        match (a.ok, since) {
            (false, None) => since = Some(a.t),
            (true, Some(s)) => {
                worst = worst.max(a.t - s);
                since = None;
            }
            _ => {}
        }
    }
    assert!(since.is_none(), "the API never came back: {:?}", attempts.last());
    (Duration::from_secs_f64(worst), attempts.iter().filter(|a| !a.ok).count())
}

struct VipLab {
    k: u32,
    dir: tempfile::TempDir,
    switch: String,
    root_veth: String,
    children: Vec<(String, Child)>,
    rendered: Rendered,
}

impl VipLab {
    fn ns(&self, short: &str) -> String {
        format!("hv{}-{short}", self.k)
    }

    fn ip(&self, last: u32) -> String {
        format!("10.231.{}.{last}", self.k)
    }

    fn new(s: &Scratch) -> VipLab {
        // 10.231.40-69: apart from the bootstrap lab's 100-249.
        let k = 40 + std::process::id() % 30;
        let rendered = render(s, k);
        // keepalived refuses scripts under world-writable directories (/tmp): use /run.
        let dir = tempfile::Builder::new().prefix("hacluster-vip-").tempdir_in("/run").unwrap();
        let switch = format!("hv{k}-sw");
        let root_veth = format!("hv{k}r");
        cleanup_prefix(&format!("hv{k}-"), &root_veth);
        must(&format!(
            "ip netns add {switch} && ip -n {switch} link set lo up && ip -n {switch} link add br0 type bridge && ip -n {switch} link set br0 up"
        ));
        must(&format!(
            "ip link add {root_veth} type veth peer name up0 netns {switch} && ip -n {switch} link set up0 master br0 up && ip addr add 10.231.{k}.254/24 dev {root_veth} && ip link set {root_veth} up"
        ));
        let mut lab = VipLab { k, dir, switch, root_veth, children: Vec::new(), rendered };
        for (short, last) in [("lb1", 201), ("lb2", 202), ("m1", 10), ("m2", 11), ("m3", 12)] {
            lab.attach(short, last);
        }
        let d = lab.dir.path().to_path_buf();
        must(&format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=kube-apiserver -keyout {0}/api.key -out {0}/api.crt 2>/dev/null",
            d.display()
        ));
        for (i, last) in [(1, 10), (2, 11), (3, 12)] {
            lab.start_control_plane(i, last);
        }
        for i in [1, 2] {
            lab.start_haproxy(i);
        }
        // The check script at a path of ours, and keepalived configs pointing at it.
        let check = d.join("check_haproxy.sh");
        std::fs::write(&check, &lab.rendered.check).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
        for i in [1, 2] {
            let conf =
                lab.rendered.keepalived[i - 1].replace("/etc/keepalived/check_haproxy.sh", check.to_str().unwrap());
            std::fs::write(d.join(format!("keepalived-{i}.conf")), conf).unwrap();
            lab.start_keepalived(i);
        }
        lab.wait_vip_on(1, Duration::from_secs(30));
        lab
    }

    fn attach(&self, short: &str, last: u32) {
        let (k, sw, ns, ip) = (self.k, &self.switch, self.ns(short), self.ip(last));
        must(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && ip link add v{k}{short} type veth peer name eth0 netns {ns} && ip link set v{k}{short} netns {sw} && ip -n {sw} link set v{k}{short} master br0 up && ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up"
        ));
    }

    fn spawn(&mut self, name: &str, ns: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((name.to_string(), child));
    }

    fn stop(&mut self, name: &str, signal: &str) {
        let i = self.children.iter().position(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} not running"));
        let (_, mut child) = self.children.remove(i);
        must(&format!("kill -{signal} {}", child.id()));
        let _ = child.wait();
    }

    fn start_control_plane(&mut self, i: u32, last: u32) {
        let (ip, ns) = (self.ip(last), self.ns(&format!("m{i}")));
        let d = self.dir.path().display().to_string();
        let script = repo().join("tests/vip/backend.py");
        let name = format!("master-{i}");
        self.spawn(
            &format!("cp{i}"),
            &ns,
            &[
                "python3",
                script.to_str().unwrap(),
                "--ip",
                &ip,
                "--name",
                &name,
                "--cert",
                &format!("{d}/api.crt"),
                "--key",
                &format!("{d}/api.key"),
            ],
        );
    }

    fn start_haproxy(&mut self, i: usize) {
        let path = self.dir.path().join("haproxy.cfg");
        std::fs::write(&path, &self.rendered.haproxy).unwrap();
        let ns = self.ns(&format!("lb{i}"));
        // -db: foreground, so the PID we hold is HAProxy's own.
        self.spawn(&format!("haproxy{i}"), &ns, &["haproxy", "-db", "-f", path.to_str().unwrap()]);
    }

    fn start_keepalived(&mut self, i: usize) {
        let d = self.dir.path().to_path_buf();
        let ns = self.ns(&format!("lb{i}"));
        let p = |f: &str| d.join(format!("{f}-{i}.pid")).to_str().unwrap().to_string();
        let conf = d.join(format!("keepalived-{i}.conf"));
        // Foreground VRRP only, its own PID files (they collide between instances otherwise).
        self.spawn(
            &format!("keepalived{i}"),
            &ns,
            &[
                "keepalived",
                "-n",
                "-l",
                "-D",
                "--vrrp",
                "-f",
                conf.to_str().unwrap(),
                "-p",
                &p("ka"),
                "-r",
                &p("vrrp"),
                "-c",
                &p("chk"),
            ],
        );
    }

    fn holds_vip(&self, i: u32) -> bool {
        let out = sh(&format!("ip -n {} -4 addr show dev eth0", self.ns(&format!("lb{i}"))));
        String::from_utf8_lossy(&out.stdout).contains(&format!("{}/24", self.ip(200)))
    }

    fn wait_vip_on(&self, i: u32, limit: Duration) {
        let start = Instant::now();
        while !self.holds_vip(i) || self.holds_vip(3 - i) {
            assert!(
                start.elapsed() < limit,
                "the VIP did not settle on lb{i} (lb1: {}, lb2: {}); logs in {}",
                self.holds_vip(1),
                self.holds_vip(2),
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the client while `fault` happens, and returns its attempts.
    fn measure(&mut self, settle: Duration, fault: impl FnOnce(&mut VipLab), after: Duration) -> Vec<Attempt> {
        let stop = self.dir.path().join("client.stop");
        let _ = std::fs::remove_file(&stop);
        let client = Command::new("python3")
            .arg(repo().join("tests/vip/client.py"))
            .args([&self.ip(200), "0.05", "0.5", stop.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        std::thread::sleep(settle);
        fault(self);
        std::thread::sleep(after);
        std::fs::write(&stop, "").unwrap();
        let out = client.wait_with_output().unwrap();
        let attempts: Vec<Attempt> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(attempts.len() > 20, "the client made {} attempts", attempts.len());
        assert!(attempts.iter().take(5).all(|a| a.ok), "the API answered before the fault: {:?}", &attempts[..5]);
        attempts
    }
}

impl Drop for VipLab {
    fn drop(&mut self) {
        if std::env::var_os("HACLUSTER_LAB_KEEP").is_some() {
            eprintln!("VIP lab kept: {} (namespaces hv{}-*)", self.dir.path().display(), self.k);
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            let _ = dir.keep();
            return;
        }
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        cleanup_prefix(&format!("hv{}-", self.k), &self.root_veth);
    }
}

fn report(what: &str, attempts: &[Attempt]) -> (Duration, usize) {
    let (worst, errors) = outage(attempts);
    let served: std::collections::BTreeSet<&str> = attempts.iter().filter(|a| a.ok).map(|a| a.node.as_str()).collect();
    eprintln!(
        "VIP failover: {what}: client-visible outage {:.2} s, {errors} failed requests of {} (served by {served:?})",
        worst.as_secs_f64(),
        attempts.len()
    );
    (worst, errors)
}

#[test]
fn vip_fails_over_with_the_rendered_haproxy_and_keepalived() {
    needs!(Plugins, Root, Command("haproxy"), Command("keepalived"));
    let s = Scratch::new();
    let mut lab = VipLab::new(&s);
    let mut figures = Vec::new();

    // (a) keepalived stops on the VIP holder (SIGTERM: it resigns with a priority-0 advert).
    let a = lab.measure(Duration::from_secs(1), |l| l.stop("keepalived1", "TERM"), Duration::from_secs(4));
    assert!(lab.holds_vip(2) && !lab.holds_vip(1), "the VIP moved to lb2");
    figures.push(("keepalived stopped", report("(a) keepalived stopped on the VIP holder", &a)));
    lab.start_keepalived(1);
    lab.wait_vip_on(1, Duration::from_secs(30));

    // (b) HAProxy killed on the VIP holder: its check fails, the instance goes to FAULT.
    let b = lab.measure(Duration::from_secs(1), |l| l.stop("haproxy1", "KILL"), Duration::from_secs(5));
    assert!(lab.holds_vip(2) && !lab.holds_vip(1), "the VIP left the LB without HAProxy");
    figures.push(("haproxy killed", report("(b) HAProxy killed on the VIP holder", &b)));
    lab.start_haproxy(1);
    lab.wait_vip_on(1, Duration::from_secs(30));

    // (c) The VIP holder's link goes down: lb2 stops hearing adverts and takes over.
    let ns1 = lab.ns("lb1");
    let c = lab.measure(
        Duration::from_secs(1),
        |_| must(&format!("ip -n {ns1} link set eth0 down")),
        Duration::from_secs(6),
    );
    assert!(lab.holds_vip(2), "lb2 took the VIP");
    figures.push(("link down", report("(c) link of the VIP holder down", &c)));
    must(&format!("ip -n {ns1} link set eth0 up"));
    lab.wait_vip_on(1, Duration::from_secs(30));

    // (d) One control plane dies: HAProxy's retries and redispatch hide it from clients.
    let d = lab.measure(Duration::from_secs(1), |l| l.stop("cp1", "KILL"), Duration::from_secs(4));
    let (_, errors) = report("(d) one control plane killed", &d);
    assert_eq!(
        errors,
        0,
        "redispatch hides a dead control plane: {:?}",
        d.iter().filter(|a| !a.ok).collect::<Vec<_>>()
    );
    let after: std::collections::BTreeSet<&str> =
        d.iter().rev().take(20).filter(|a| a.ok).map(|a| a.node.as_str()).collect();
    assert!(!after.contains("master-1") && after.len() == 2, "the two live control planes serve: {after:?}");
    figures.push(("control plane killed", (Duration::ZERO, errors)));

    let summary: Vec<String> =
        figures.iter().map(|(w, (o, e))| format!("{w}: {:.2} s outage, {e} errors", o.as_secs_f64())).collect();
    eprintln!("VIP failover summary: {}", summary.join("; "));
}

//! REAL VMs (run by `./scripts/test`, or alone by `./scripts/test-vms`): the libvirt daemon (`qemu:///system`), QEMU with
//! software emulation (domain type `qemu`; KVM here is nested in a way stock guests do not
//! boot on), an ISOLATED libvirt network (no forwarding: the VMs reach nothing but each other
//! and this host), and a Debian image built from Debian's packages (scripts/build-test-image).
//!
//! `hacluster provision --backend libvirt` creates one control plane and one load balancer;
//! the test then logs in to each with OpenSSH, checking the host key against the
//! known_hosts file hacluster wrote from the keys it generated (and shows that a different
//! pinned key is refused), logs in again with hacluster's own SSH executor (`status`), looks
//! at the LB's HAProxy, and `hacluster down` leaves no domain, volume, pool or network behind.
//! `#[ignore]` so that a plain `cargo test` needs no daemon; `./scripts/test` sets the daemon
//! and the image up and runs it as its own step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::Scratch;

const URI: &str = "qemu:///system";
const CLUSTER: &str = "hacvm";
const NET: &str = "10.231.35";

fn image_dir() -> PathBuf {
    std::env::var_os("HACLUSTER_TEST_IMAGE_DIR").map(PathBuf::from).unwrap_or("/var/cache/hacluster-test-image".into())
}

fn virsh(args: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(format!("virsh -q -c {URI} {args}")).output().unwrap();
    assert!(out.status.success(), "virsh {args}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Everything on the daemon named after the test cluster.
fn leftovers() -> Vec<String> {
    let mut out = Vec::new();
    for (what, list) in [
        ("domain", virsh("list --all --name")),
        ("network", virsh("net-list --all --name")),
        ("pool", virsh("pool-list --all --name")),
    ] {
        out.extend(list.lines().map(str::trim).filter(|l| l.starts_with(CLUSTER)).map(|l| format!("{what} {l}")));
    }
    // Volumes named after the cluster in any active pool (e.g. a pool it did not create).
    for pool in virsh("pool-list --name").lines().map(str::trim).filter(|p| !p.is_empty()) {
        let vols = virsh(&format!("vol-list {pool}"));
        out.extend(
            vols.lines().filter(|l| l.trim_start().starts_with(CLUSTER)).map(|l| format!("volume {pool}/{}", l.trim())),
        );
    }
    out
}

fn config(s: &Scratch) -> PathBuf {
    let img = image_dir();
    let (qcow, kernel, initrd) = (img.join("debian.qcow2"), img.join("vmlinuz"), img.join("initrd.img"));
    for f in [&qcow, &kernel, &initrd] {
        assert!(f.is_file(), "{} missing: run ./scripts/build-test-image", f.display());
    }
    s.write(
        "vms.yaml",
        &format!(
            "hosts:\n  - name: local\n    connection: {{type: local}}\ncluster:\n  name: {CLUSTER}\n  network: {{mode: isolated, cidr: {NET}.0/24}}\n  nodeTemplate: {{user: k8s, ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    loadBalancer:\n      instances: [{{id: 1, ip: {NET}.100, cpu: 1, ram: 1, mainDiskSize: 8}}]\n    master:\n      instances: [{{id: 1, cpu: 1, ram: 1, mainDiskSize: 8}}]\nkubernetes: {{version: v1.35.0}}\nbackends:\n  libvirt:\n    domainType: qemu\n    haproxyCheck: tcp\n    image: {{path: {}, kernel: {}, initrd: {}}}\n",
            qcow.display(),
            kernel.display(),
            initrd.display()
        ),
    )
}

fn ssh(s: &Scratch, known_hosts: &Path, ip: &str, cmd: &str) -> std::process::Output {
    // Bounded: a command that keeps the session open fails the test instead of hanging it.
    Command::new("timeout")
        .args(["120", "ssh"])
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(s.path("op"))
        .arg(format!("k8s@{ip}"))
        .arg(cmd)
        .output()
        .unwrap()
}

/// Removes the cluster even when an assertion failed half-way.
struct Down<'a> {
    s: &'a Scratch,
    cfg: PathBuf,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.s.run(&["down", "-c", self.cfg.to_str().unwrap(), "--backend", "libvirt"]);
    }
}

#[test]
#[ignore = "real VMs: needs ./scripts/setup-vms and ./scripts/build-test-image; ./scripts/test runs it"]
fn real_vms_provision_pin_host_keys_and_destroy() {
    assert!(
        Command::new("virsh").args(["-c", URI, "version"]).output().is_ok_and(|o| o.status.success()),
        "no libvirt daemon at {URI}: run ./scripts/setup-vms"
    );
    let s = Scratch::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.path("op"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = config(&s);
    let cfg_s = cfg.to_str().unwrap();
    // A crashed earlier run: `down` finds its resources by name, without state.
    let r = s.run(&["down", "-c", cfg_s, "--backend", "libvirt"]);
    assert!(leftovers().is_empty(), "down without state left {:?}: {}", leftovers(), r.stderr);
    let _down = Down { s: &s, cfg: cfg.clone() };

    let started = Instant::now();
    let r = s.run(&["provision", "-c", cfg_s, "--backend", "libvirt", "-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let provisioned = started.elapsed();
    let out = r.json();
    assert_eq!(out["endpoint"]["host"], format!("{NET}.100"), "one LB, no VIP: the LB's address");
    // The control plane has no static address: DHCP, from the top quarter of the network, read
    // back from the lease by the host.
    let master_ip = out["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == format!("{CLUSTER}-master-1"))
        .and_then(|m| m["privateAddress"].as_str())
        .unwrap()
        .to_string();
    let octet: u8 = master_ip.strip_prefix(&format!("{NET}.")).and_then(|o| o.parse().ok()).unwrap_or(0);
    assert!(octet >= 192, "a lease from the DHCP range, got {master_ip}");
    // The network is isolated: no <forward> at all.
    let net = virsh(&format!("net-dumpxml {CLUSTER}.local.net"));
    assert!(!net.contains("<forward"), "{net}");
    eprintln!("real VMs: provision (image upload, volumes, seeds, 2 domains) took {:.1} s", provisioned.as_secs_f64());

    let known_hosts = s.state().join(CLUSTER).join("known_hosts");
    let deadline = Instant::now() + Duration::from_secs(1200);
    for (name, ip) in [("lb-1", format!("{NET}.100")), ("master-1", master_ip.clone())] {
        loop {
            let o = ssh(&s, &known_hosts, &ip, "hostname");
            if o.status.success() {
                assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("{CLUSTER}-{name}"));
                eprintln!(
                    "real VMs: {CLUSTER}-{name} answered SSH with its pinned host key {:.1} s after provision began",
                    started.elapsed().as_secs_f64()
                );
                // cloud-init may still restart sshd after the first login works (seen: the next
                // connection refused); everything below wants a settled machine.
                loop {
                    let o = ssh(&s, &known_hosts, &ip, "cloud-init status --wait >/dev/null; echo settled");
                    if String::from_utf8_lossy(&o.stdout).contains("settled") {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{name}: cloud-init never settled: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                    std::thread::sleep(Duration::from_secs(2));
                }
                break;
            }
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!err.contains("verification failed") && !err.contains("IDENTIFICATION HAS CHANGED"), "{err}");
            assert!(Instant::now() < deadline, "{name} never answered SSH: {err}");
            std::thread::sleep(Duration::from_secs(5));
        }
    }
    // A different pinned key for the same address is refused (the pin has teeth).
    let wrong = s.path("wrong_known_hosts");
    let other = hacluster::identity::generate_host_key().unwrap();
    std::fs::write(&wrong, format!("{master_ip} {}\n", other.host_public_key)).unwrap();
    let o = ssh(&s, &wrong, &master_ip, "true");
    assert!(!o.status.success(), "a wrong pinned key must fail");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("IDENTIFICATION HAS CHANGED"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // hacluster's own executor (russh) logs in to the control plane with the pinned key and
    // runs its health script with sudo. Nothing answers yet: Kubernetes is not bootstrapped.
    let r = s.run(&["status", "-c", cfg_s, "-o", "json"]);
    assert_eq!(r.code, 3, "no API yet, so not healthy: {}{}", r.stdout, r.stderr);
    let health = &r.json()["health"];
    let cp = &health["controlPlanes"][0];
    assert_eq!(cp["name"], format!("{CLUSTER}-master-1"), "{health}");
    assert!(cp.get("problem").is_none(), "the executor reached the VM: {health}");
    assert_eq!(cp["apiserver"], false, "{health}");
    assert_eq!(health["endpointOk"], false, "{health}");

    // The LB runs HAProxy with the plugin's config, delivered by cloud-init. (`sudo`: a
    // minbase image has no D-Bus, and only root's systemctl talks to systemd without it.)
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let o = ssh(
            &s,
            &known_hosts,
            &format!("{NET}.100"),
            "sudo -n systemctl is-active haproxy; grep -c 'option redispatch' /etc/haproxy/haproxy.cfg; getent hosts hacvm-master-1",
        );
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        // HAProxy runs with the DHCP control plane as a named server, which the network's DNS
        // resolves to its lease.
        if text.starts_with("active\n1\n") && text.contains(&format!("{master_ip} ")) {
            break;
        }
        assert!(Instant::now() < deadline, "HAProxy on the LB: {text}{}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(Duration::from_secs(5));
    }
    // Through the LB to the control plane: a small listener on the control plane's 6443 (no
    // Kubernetes here), reached at the endpoint. HAProxy has it only by name, resolved by its
    // own resolver from the network's DNS (`haproxyCheck: tcp`: the listener speaks no TLS).
    use base64::Engine as _;
    let listener = "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 6443))\ns.listen(16)\nwhile True:\n    c, _ = s.accept()\n    c.sendall(b'hello from hacvm-master-1\\n')\n    c.close()\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(listener);
    let o = ssh(
        &s,
        &known_hosts,
        &master_ip,
        &format!(
            // Only python in the background (braces): a backgrounded `a && b` list would be a
            // subshell holding the session's output open, and ssh would wait for it forever.
            "echo {b64} | base64 -d > /tmp/listener.py && {{ nohup python3 /tmp/listener.py </dev/null >/dev/null 2>&1 & }}"
        ),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        use std::io::Read;
        let mut got = String::new();
        if let Ok(mut c) =
            std::net::TcpStream::connect_timeout(&format!("{NET}.100:6443").parse().unwrap(), Duration::from_secs(5))
        {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = c.read_to_string(&mut got);
        }
        if got.contains("hello from hacvm-master-1") {
            break;
        }
        assert!(Instant::now() < deadline, "the endpoint never reached the control plane (got {got:?})");
        std::thread::sleep(Duration::from_secs(1));
    }

    // The bootstrap on a real kernel, as far as an offline machine goes: hacluster logs in as
    // `k8s` and runs the node preparation with sudo — swap off, kernel modules, sysctls — and
    // stops at the package download (no curl in the image, no way out of the network).
    let r = s.run(&["bootstrap", "-c", cfg_s]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("prepare node") && r.stderr.contains("curl"), "{}", r.stderr);
    assert!(!r.stderr.contains("password") && !r.stderr.contains("sudo:"), "sudo worked: {}", r.stderr);
    let o =
        ssh(&s, &known_hosts, &master_ip, "lsmod | grep -c '^br_netfilter'; /usr/sbin/sysctl -n net.ipv4.ip_forward");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1\n1", "{}", String::from_utf8_lossy(&o.stderr));

    // A second provision changes nothing.
    let r = s.run(&["plan", "-c", cfg_s, "--backend", "libvirt", "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let changes = r.json()["changes"].as_array().unwrap().clone();
    assert!(changes.iter().all(|c| c["action"] == "keep"), "{changes:?}");

    let r = s.run(&["down", "-c", cfg_s, "--backend", "libvirt"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(leftovers().is_empty(), "down left {:?}", leftovers());
    assert!(
        virsh("net-list --all --name").lines().any(|l| l.trim() == "default"),
        "libvirt's own network is untouched"
    );
}

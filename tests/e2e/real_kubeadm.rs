//! REAL kubeadm judges every kubeadm document hacluster renders. The binaries are upstream's
//! own, built from the Kubernetes Go modules by `scripts/build-k8s` (one per pinned version:
//! the default minor, the one before, and v1.30, the last kubeadm that reads v1beta3).
//!
//! For a table of configs (every role, both kubeadm API versions, the options that change the
//! documents, and the examples), `hacluster plan --out` writes the files `up` would send, and
//! on each of them, with the kubeadm of the config's minor (or the next, which also accepts
//! it): `kubeadm config validate`, then `kubeadm init --dry-run` on the init node's file and
//! `kubeadm join --dry-run` on every other, and `kubeadm token create --config --dry-run` on
//! the init file (the token renewal path). kubeadm runs as root in a throwaway sandbox: its own
//! network namespace (loopback only: nothing it tries to reach leaves it), UTS namespace (the
//! node's hostname) and mount namespace with copy-on-write overlays over /etc and /var/lib, so
//! nothing it writes stays on this machine. The preflight checks that need a container runtime
//! or a kubelet, which this machine does not run, are ignored by name (`IGNORED`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{Scratch, example, libvirt_plugin, needs, plugin, repo};

/// Preflight checks that look at what a node has besides kubeadm; none is about the
/// documents. `CRI` and `ContainerRuntimeVersion`: no containerd runs here. `KubeletVersion`
/// and `SystemVerification`: no kubelet binary beside kubeadm (and this machine's cgroups v1
/// fail the system verification whatever the config).
const IGNORED: &[&str] = &["CRI", "ContainerRuntimeVersion", "KubeletVersion", "SystemVerification"];
/// The v1.30 kubeadm also wants crictl on PATH, and its `HTTPProxyCIDR` check builds the URL
/// `https://[10.244.0.1]:1234/`, which the Go 1.26 it is built with here refuses to parse
/// ("invalid IP-literal"): a check of the build, not of the document.
const IGNORED_V1_30: &[&str] = &["FileExisting-crictl", "HTTPProxyCIDR"];

/// `scripts/build-k8s --list`, run once: its stdout when every pinned version is built, else
/// its stderr (it exits 1 when one is not).
fn listed() -> &'static Result<String, String> {
    static LISTED: OnceLock<Result<String, String>> = OnceLock::new();
    LISTED.get_or_init(|| {
        let out =
            Command::new(repo().join("scripts/build-k8s")).arg("--list").output().expect("scripts/build-k8s runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if out.status.success() { Ok(text(&out.stdout)) } else { Err(text(&out.stderr)) }
    })
}

/// Whether every pinned version is built.
pub(crate) fn kubernetes_built() -> bool {
    listed().is_ok()
}

/// (version, directory of its binaries), as `scripts/build-k8s --list` prints them.
pub(crate) fn pinned() -> &'static [(String, PathBuf)] {
    static PINNED: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    PINNED.get_or_init(|| {
        let out = listed().as_ref().unwrap_or_else(|stderr| {
            panic!("the Kubernetes binaries are not built; run ./scripts/build-k8s (./scripts/setup does):\n{stderr}")
        });
        // Kubernetes versions only; the lab's other builds (`etcd-v3.7.0 …`) follow them.
        out.lines()
            .filter(|l| l.starts_with('v'))
            .map(|l| {
                let (v, dir) = l.split_once(' ').expect("`version dir` lines");
                (v.to_string(), PathBuf::from(dir))
            })
            .collect()
    })
}

/// The directory of one of the lab's other builds (`etcd-v3.7.0`), as `scripts/build-k8s --list`
/// prints it.
pub(crate) fn built(label: &str) -> PathBuf {
    let out = listed().as_ref().unwrap_or_else(|e| panic!("the Kubernetes binaries are not built:\n{e}"));
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{label} ")))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("scripts/build-k8s --list has no {label}:\n{out}"))
}

/// The version hacluster deploys by default is the one pinned as `default`, so real kubeadm of
/// that version is what judges (and, in the lab, runs) the default.
#[test]
fn the_default_version_is_the_pinned_default() {
    let text = std::fs::read_to_string(repo().join("tests/k8s/versions")).unwrap();
    let default: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().collect::<Vec<_>>().get(..2).filter(|f| f[1] == "default").map(|f| f[0]))
        .collect();
    assert_eq!(default, [hacluster::model::version::DEFAULT_VERSION.to_string()], "tests/k8s/versions");
}

fn minor(version: &str) -> u32 {
    version.trim_start_matches('v').split('.').nth(1).and_then(|m| m.parse().ok()).expect("v1.MINOR.PATCH")
}

/// The pinned kubeadm that judges a config for `version`: the same minor, else the next one
/// (kubeadm N accepts a control plane of N and N-1, nothing older).
struct Judge {
    version: String,
    kubeadm: PathBuf,
}

impl Judge {
    fn for_version(version: &str) -> Judge {
        let m = minor(version);
        let pick = |want: u32| pinned().iter().find(|(v, _)| minor(v) == want);
        let (v, dir) = pick(m).or_else(|| pick(m + 1)).unwrap_or_else(|| {
            panic!("no pinned kubeadm judges {version}: pinned are {:?} (tests/k8s/versions)", pinned())
        });
        Judge { version: v.clone(), kubeadm: dir.join("kubeadm") }
    }

    fn minor(&self) -> u32 {
        minor(&self.version)
    }

    fn ignored(&self) -> String {
        let mut checks = IGNORED.to_vec();
        if self.minor() <= 30 {
            checks.extend(IGNORED_V1_30);
        }
        checks.join(",")
    }

    /// kubeadm in the sandbox as `node`; (exit code, stdout and stderr together).
    fn run(&self, node: &str, args: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
        let scratch = tempfile::tempdir().unwrap();
        let layer = |n: &str| {
            let d = scratch.path().join(n);
            std::fs::create_dir_all(&d).unwrap();
            d.display().to_string()
        };
        let script = format!(
            "set -e\nmount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc\nmount -t overlay overlay -o lowerdir=/var/lib,upperdir={},workdir={} /var/lib\nhostname \"$1\"\nshift\nsysctl -qw net.ipv4.ip_forward=1\nexec \"$@\"\n",
            layer("etc"),
            layer("etc-work"),
            layer("lib"),
            layer("lib-work")
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--net", "--uts", "--propagation", "private", "--", "sh", "-c", &script, "sh", node])
            .arg(&self.kubeadm)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("unshare runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn must(&self, what: &str, node: &str, args: &[&str], env: &[(&str, &Path)], expect: &str) -> String {
        let (code, out) = self.run(node, args, env);
        assert!(
            code == 0 && out.contains(expect),
            "real kubeadm {} refused {what} of {node} (exit {code}); kubeadm said:\n{}",
            self.version,
            tail(&out, 40)
        );
        out
    }
}

/// The first file named `name` under `dir`.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if e.file_name() == name {
            return Some(p);
        }
    }
    None
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn docs(text: &str) -> Vec<serde_json::Value> {
    text.split("\n---\n").map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("not JSON ({e}): {d}"))).collect()
}

/// `plan --out` of `config`, then every kubeadm document judged. Returns the output dir.
fn judge_plan(s: &Scratch, config: &Path, extra: &[&str]) -> PathBuf {
    let out = s.path(&format!("out-{}", config.file_stem().unwrap().to_string_lossy()));
    let mut args = vec!["plan", "-c", config.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    if !extra.iter().any(|a| *a == "--plugin" || *a == "--backend") {
        args.push("--offline");
    }
    let r = s.run(&args);
    assert_eq!(r.code, 0, "plan --out: {}{}", r.stdout, r.stderr);
    judge_dir(&out);
    out
}

/// Judges every kubeadm document under a plan output directory.
fn judge_dir(out: &Path) {
    let mut init = None;
    let mut joins = Vec::new();
    for e in std::fs::read_dir(out).unwrap().flatten().filter(|e| e.path().is_dir()) {
        let node = e.file_name().to_string_lossy().to_string();
        if e.path().join("kubeadm-init.yaml").is_file() {
            assert!(init.replace(node.clone()).is_none(), "two init nodes");
        }
        if e.path().join("kubeadm-join.yaml").is_file() {
            joins.push(node);
        }
    }
    let init = init.expect("an init node");
    let init_file = out.join(&init).join("kubeadm-init.yaml");
    let text = std::fs::read_to_string(&init_file).unwrap();
    let version = docs(&text)[1]["kubernetesVersion"].as_str().unwrap().to_string();
    let j = Judge::for_version(&version);
    let ignore = format!("--ignore-preflight-errors={}", j.ignored());
    let f = init_file.to_str().unwrap();
    j.must("the init config", &init, &["config", "validate", "--config", f], &[], "ok");
    let dry = tempfile::tempdir().unwrap();
    j.must(
        "`kubeadm init --dry-run` with the init config",
        &init,
        &["init", "--dry-run", "--upload-certs", "--config", f, &ignore],
        &[("KUBEADM_INIT_DRYRUN_DIR", dry.path())],
        "Your Kubernetes control-plane has initialized successfully!",
    );
    // The token renewal: the same file names the new token; kubeadm's dry-run client needs a
    // kubeconfig, and the init dry-run just wrote one (whose server is unreachable here), in
    // the dry-run directory (kubeadm 1.30: in a directory it makes inside that one).
    let admin = find(dry.path(), "admin.conf").expect("the init dry-run wrote admin.conf");
    let out_tc = j.must(
        "`kubeadm token create --config … --print-join-command` with the init config",
        &init,
        &[
            "token",
            "create",
            "--dry-run",
            "--print-join-command",
            "--config",
            f,
            "--kubeconfig",
            admin.to_str().unwrap(),
        ],
        &[],
        "kubeadm join ",
    );
    assert!(out_tc.contains("--token xxxxxx.placeholdertoken"), "token create used the file's token:\n{out_tc}");
    // And the re-upload of the control-plane certificates, with the same file (kubeadm 1.30
    // makes a fresh directory inside the dry-run one, where it then finds no admin.conf).
    if j.minor() > 30 {
        j.must(
            "`kubeadm init phase upload-certs --upload-certs --config …` with the init config",
            &init,
            &["init", "phase", "upload-certs", "--upload-certs", "--dry-run", "--config", f],
            &[("KUBEADM_INIT_DRYRUN_DIR", dry.path())],
            "[upload-certs] Using certificate key:",
        );
    }
    // In parallel: each dry-run join waits out kubeadm's 5 s discovery retry once (the
    // placeholder token is not the one its fake cluster-info is signed for, so it swaps in
    // its own and asks again).
    std::thread::scope(|scope| {
        for node in &joins {
            let (j, ignore) = (&j, &ignore);
            scope.spawn(move || {
                let file = out.join(node).join("kubeadm-join.yaml");
                let f = file.to_str().unwrap();
                j.must("the join config", node, &["config", "validate", "--config", f], &[], "ok");
                // kubeadm 1.30's dry-run join still discovers the cluster over the network
                // (seen here: it waits for the endpoint until its timeout); newer ones fake it.
                if j.minor() > 30 {
                    let dry = tempfile::tempdir().unwrap();
                    let cp = std::fs::read_to_string(&file).unwrap().contains("\"controlPlane\"");
                    j.must(
                        "`kubeadm join --dry-run` with the join config",
                        node,
                        &["join", "--dry-run", "--config", f, ignore],
                        &[("KUBEADM_JOIN_DRYRUN_DIR", dry.path())],
                        if cp {
                            "a new control plane instance was created"
                        } else {
                            "This node has joined the cluster"
                        },
                    );
                }
            });
        }
    });
}

fn config(s: &Scratch, name: &str, body: &str) -> PathBuf {
    s.write(name, body)
}

const THREE_MASTERS_VIP: &str = "    loadBalancer:\n      vip: 10.231.40.200\n      instances: [{id: 1, ip: 10.231.40.201}, {id: 2, ip: 10.231.40.202}]\n    master:\n      instances: [{id: 1, ip: 10.231.40.10}, {id: 2, ip: 10.231.40.11}, {id: 3, ip: 10.231.40.12}]\n";

fn with_nodes(name: &str, nodes: &str, kubernetes: &str) -> String {
    format!(
        "hosts: [{{name: h, connection: {{type: local, uri: \"test:///default\"}}}}]\ncluster:\n  name: {name}\n  network: {{mode: isolated, cidr: 10.231.40.0/24}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n{nodes}kubernetes:\n{kubernetes}backends:\n  libvirt: {{domainType: test}}\n"
    )
}

#[test]
fn real_kubeadm_default_version_vip_labels_taints_subnets_flannel_mirror() {
    needs!(Plugins, Kubernetes, Root);
    let s = Scratch::new();
    let nodes = format!(
        "{THREE_MASTERS_VIP}    worker:\n      instances:\n        - {{id: 1, ip: 10.231.40.20, labels: {{tier: web, node.example.com/pool: blue}}, taints: [\"dedicated=web:NoSchedule\", \"gpu:PreferNoSchedule\"]}}\n        - {{id: 2, ip: 10.231.40.21, taints: [\"drain-me=yes:NoExecute\"]}}\n"
    );
    let c = config(
        &s,
        "default.yaml",
        &with_nodes(
            "dflt",
            &nodes,
            "  networkPlugin: flannel\n  dnsMode: coredns\n  podSubnet: 10.32.0.0/16\n  serviceSubnet: 10.112.0.0/12\n  packageMirror: https://mirror.lab.invalid/kubernetes\n  imageRepository: registry.lab.invalid:5000/k8s\n  registryMirrors: [{registry: docker.io, endpoint: \"http://registry.lab.invalid:5000\", plainHttp: true}]\n  containerd: {restrictOomScoreAdj: true}\n  ignorePreflightErrors: [SystemVerification, Swap]\n  kubelet: {failCgroupV1: false, maxPods: 50}\n  kubeProxy: {conntrack: {maxPerCore: 0}, mode: iptables}\n",
        ),
    );
    let out = judge_plan(&s, &c, &[]);
    let init = docs(&std::fs::read_to_string(out.join("dflt-master-1/kubeadm-init.yaml")).unwrap());
    assert_eq!(init[1]["kubernetesVersion"], hacluster::model::version::DEFAULT_VERSION.to_string());
    assert_eq!(init[1]["networking"]["podSubnet"], "10.32.0.0/16");
    assert_eq!(init[1]["imageRepository"], "registry.lab.invalid:5000/k8s");
    assert_eq!(init[0]["nodeRegistration"]["ignorePreflightErrors"], serde_json::json!(["SystemVerification", "Swap"]));
    assert_eq!((init[2]["failCgroupV1"].clone(), init[2]["maxPods"].clone()), (false.into(), 50.into()));
    assert_eq!(init[3]["kind"], "KubeProxyConfiguration");
    assert_eq!(init[3]["conntrack"]["maxPerCore"], 0);
    let w = std::fs::read_to_string(out.join("dflt-worker-1/kubeadm-join.yaml")).unwrap();
    assert!(w.contains("node.example.com/pool=blue") && w.contains("dedicated"), "{w}");
}

#[test]
fn real_kubeadm_previous_minor_single_lb_dhcp_kube_router() {
    needs!(Plugins, Kubernetes, Root);
    let s = Scratch::new();
    let previous = pinned().iter().find(|(v, _)| minor(v) + 1 == minor(&pinned()[0].0)).expect("a previous minor");
    let nodes = "    loadBalancer:\n      instances: [{id: 1, ip: 10.231.40.201}]\n    master:\n      instances: [{id: 1}, {id: 2}, {id: 3}]\n    worker:\n      instances: [{id: 1}]\n";
    let c = config(
        &s,
        "previous.yaml",
        &with_nodes(
            "prev",
            nodes,
            &format!(
                "  version: {}\n  networkPlugin: kube-router\n  kubeProxy: {{conntrack: {{maxPerCore: 0}}}}\n",
                previous.0
            ),
        ),
    );
    let out = judge_plan(&s, &c, &[]);
    // DHCP nodes: placeholder addresses, named in the README.
    let readme = std::fs::read_to_string(out.join("README")).unwrap();
    assert!(
        readme
            .contains("the address of prev-master-1 (the backend assigns it at provisioning): shown as `198.51.100.1`"),
        "{readme}"
    );
}

#[test]
fn real_kubeadm_v1beta3_below_v1_31() {
    needs!(Plugins, Kubernetes, Root);
    let s = Scratch::new();
    let v1_30 = pinned().iter().find(|(v, _)| minor(v) == 30).expect("v1.30 is pinned to judge v1beta3");
    let nodes = format!(
        "{THREE_MASTERS_VIP}    worker:\n      instances: [{{id: 1, ip: 10.231.40.20, labels: {{tier: web}}, taints: [\"dedicated=web:NoSchedule\"]}}]\n"
    );
    let c = config(&s, "beta3.yaml", &with_nodes("beta3", &nodes, &format!("  version: {}\n", v1_30.0)));
    let out = judge_plan(&s, &c, &[]);
    let init = docs(&std::fs::read_to_string(out.join("beta3-master-1/kubeadm-init.yaml")).unwrap());
    assert_eq!(init[0]["apiVersion"], "kubeadm.k8s.io/v1beta3");
}

#[test]
fn real_kubeadm_single_control_plane() {
    needs!(Plugins, Kubernetes, Root);
    let s = Scratch::new();
    let c = config(
        &s,
        "single.yaml",
        &with_nodes(
            "one",
            "    master:\n      instances: [{id: 1, ip: 10.231.40.10}]\n    worker:\n      instances: [{id: 1, ip: 10.231.40.20}]\n",
            "  networkPlugin: calico\n",
        ),
    );
    judge_plan(&s, &c, &[]);
}

/// The seeds' examples name v1.23.7, which no kubeadm that runs here accepts (kubeadm N takes
/// N and N-1): their topology is rendered at each pinned version instead.
#[test]
fn real_kubeadm_seed_examples_at_every_pinned_version() {
    needs!(Plugins, Kubernetes, Root);
    std::thread::scope(|scope| {
        for file in ["multi-master.yaml", "ha.yaml"] {
            let text = std::fs::read_to_string(example(file)).unwrap();
            assert!(text.contains("version: v1.23.7"), "{file} changed its version");
            for (v, _) in pinned() {
                let text = text.replace("version: v1.23.7", &format!("version: {v}"));
                scope.spawn(move || {
                    let s = Scratch::new();
                    let c = s.write(&format!("{}-{v}.yaml", file.trim_end_matches(".yaml")), &text);
                    judge_plan(&s, &c, &[]);
                });
            }
        }
    });
}

#[test]
fn real_kubeadm_aws_example_dns_name_endpoint() {
    needs!(Plugins, Kubernetes, Root);
    let s = Scratch::new();
    let c = s.write("aws.yaml", &std::fs::read_to_string(example("aws.yaml")).unwrap());
    let out = judge_plan(&s, &c, &[]);
    let init = docs(&std::fs::read_to_string(out.join("aws-ha-master-1/kubeadm-init.yaml")).unwrap_or_else(|_| {
        let d: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name()).collect();
        panic!("no aws-ha-master-1 in {d:?}")
    }));
    let endpoint = init[1]["controlPlaneEndpoint"].as_str().unwrap();
    assert!(
        endpoint.ends_with(".placeholder.invalid:6443"),
        "the NLB's name is a placeholder before provisioning: {endpoint}"
    );
}

#[test]
fn real_kubeadm_static_example_through_its_plugin() {
    needs!(Plugins, Kubernetes, Root);
    let s = Scratch::new();
    let c = s.write("static.yaml", &std::fs::read_to_string(example("static.yaml")).unwrap());
    let p = plugin("hacluster_plugin_static.wasm");
    judge_plan(&s, &c, &["--plugin", p.to_str().unwrap()]);
}

#[test]
fn real_kubeadm_judges_the_libvirt_plugins_plan_output() {
    needs!(Plugins, Kubernetes, Root);
    let s = Scratch::new();
    let nodes = format!("{THREE_MASTERS_VIP}    worker:\n      instances: [{{id: 1}}]\n");
    let c = config(&s, "lv.yaml", &with_nodes("lv", &nodes, ""));
    let p = libvirt_plugin();
    let out = judge_plan(&s, &c, &["--plugin", p.to_str().unwrap()]);
    for f in ["haproxy.cfg", "keepalived.conf", "check_haproxy.sh", "meta-data", "network-config", "user-data"] {
        assert!(out.join("lv-lb-1").join(f).is_file(), "lv-lb-1/{f}");
    }
}

/// The judge can fail: a document with a misspelled field is refused with kubeadm's own words.
#[test]
fn real_kubeadm_refuses_a_misspelled_field() {
    needs!(Plugins, Kubernetes, Root);
    let s = Scratch::new();
    let c = config(&s, "typo.yaml", &with_nodes("typo", THREE_MASTERS_VIP, ""));
    let out = s.path("out");
    let r = s.run(&["plan", "--offline", "-c", c.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = out.join("typo-master-1/kubeadm-init.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"controlPlaneEndpoint\"", "\"controlPlaneEndpiont\"")).unwrap();
    let version = docs(&text)[1]["kubernetesVersion"].as_str().unwrap().to_string();
    let j = Judge::for_version(&version);
    let (code, said) = j.run("typo-master-1", &["config", "validate", "--config", file.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "kubeadm accepted a misspelled field:\n{said}");
    assert!(said.contains("unknown field \"controlPlaneEndpiont\""), "kubeadm's message: {said}");
}

/// The golden files of the renderer (tests/golden, compared field by field in
/// kubeadm_config.rs) are documents real kubeadm accepts too.
#[test]
fn real_kubeadm_accepts_the_golden_files() {
    needs!(Kubernetes, Root);
    let dir = repo().join("tests/golden");
    let mut judged = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = e.path();
        let text = std::fs::read_to_string(&path).unwrap();
        let d = docs(&text);
        let version = match d.iter().find(|x| x["kind"] == "ClusterConfiguration") {
            Some(c) => c["kubernetesVersion"].as_str().unwrap().to_string(),
            // A join document names no version: the init golden beside it does.
            None => {
                let init = path.to_string_lossy().replace(
                    if path.to_string_lossy().contains("join-worker") { "join-worker" } else { "join-control-plane" },
                    "init",
                );
                docs(&std::fs::read_to_string(init).unwrap())[1]["kubernetesVersion"].as_str().unwrap().to_string()
            }
        };
        let j = Judge::for_version(&version);
        let f = path.to_str().unwrap();
        j.must("a golden file", "golden-master-1", &["config", "validate", "--config", f], &[], "ok");
        judged += 1;
    }
    assert_eq!(judged, 6, "three goldens per API version");
}

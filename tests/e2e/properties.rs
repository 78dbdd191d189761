//! Property tests: quorum arithmetic, and "a valid config always yields a plan".

use hacluster::config::{self, Options};
use hacluster::model::Quorum;
use hacluster::plan::{Plan, StepKind};
use proptest::prelude::*;

proptest! {
    #[test]
    fn quorum_is_a_strict_majority(n in 1u32..10_000) {
        let q = Quorum::new(n).unwrap();
        // A majority: more than half, and the smallest such number.
        prop_assert!(2 * q.size() > n);
        prop_assert!(2 * (q.size() - 1) <= n);
        prop_assert_eq!(q.tolerated_failures(), n - q.size());
        prop_assert!(q.survives(q.tolerated_failures()));
        prop_assert!(!q.survives(q.tolerated_failures() + 1));
        if n % 2 == 1 {
            prop_assert_eq!(q.tolerated_failures(), (n - 1) / 2);
        } else {
            // An even count tolerates exactly what the odd count below it does.
            prop_assert_eq!(q.tolerated_failures(), Quorum::new(n - 1).unwrap().tolerated_failures());
            prop_assert!(q.is_wasteful());
        }
    }
}

/// A random but valid cluster: odd control planes, any workers, load balancers and a VIP as
/// the rules require, spread over 1–5 hosts (bridge mode when several), distinct addresses.
#[derive(Debug, Clone)]
struct Shape {
    masters: usize,
    workers: usize,
    lbs: usize,
    hosts: usize,
    with_ips: bool,
    cpu: Option<u8>,
    plugin: &'static str,
    version_minor: u32,
    disks: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::sample::select(vec![1usize, 3, 5, 7]),
        0usize..40,
        0usize..4,
        1usize..6,
        any::<bool>(),
        prop::option::of(1u8..64),
        prop::sample::select(vec!["calico", "cilium", "flannel"]),
        22u32..=37,
        any::<bool>(),
    )
        .prop_map(|(masters, workers, lbs, hosts, with_ips, cpu, plugin, version_minor, disks)| Shape {
            masters,
            workers,
            // More than one control plane needs an endpoint.
            lbs: if masters > 1 { lbs.max(1) } else { lbs },
            hosts,
            with_ips,
            cpu,
            plugin,
            version_minor,
            disks,
        })
}

fn render(s: &Shape) -> String {
    let mut y = String::from("hosts:\n");
    for h in 0..s.hosts {
        y += &format!("  - name: host{h}\n    dataResourcePools: [{{name: data}}]\n");
    }
    let mode = if s.hosts > 1 { "bridge\n    bridge: br0" } else { "nat" };
    y += &format!("cluster:\n  name: prop\n  network:\n    mode: {mode}\n    cidr: 10.20.0.0/16\n  nodes:\n");
    let mut next_ip = 10u32;
    let mut ip = |with: bool| -> String {
        next_ip += 1;
        if with { format!(", ip: 10.20.{}.{}", next_ip / 250, next_ip % 250 + 1) } else { String::new() }
    };
    if s.lbs > 0 {
        y += "    loadBalancer:\n";
        if s.lbs > 1 {
            y += "      vip: 10.20.255.200\n";
        }
        y += "      instances:\n";
        for i in 0..s.lbs {
            // Load balancers always have addresses when there is one endpoint to hold.
            y += &format!("        - {{id: {i}, host: host{}{}}}\n", i % s.hosts, ip(true));
        }
    }
    y += "    master:\n      instances:\n";
    for i in 0..s.masters {
        let cpu = s.cpu.map(|c| format!(", cpu: {}", c.max(2))).unwrap_or_default();
        y += &format!("        - {{id: {i}, host: host{}{}{cpu}}}\n", i % s.hosts, ip(s.with_ips));
    }
    y += "    worker:\n      instances:\n";
    for i in 0..s.workers {
        let disk = if s.disks { ", dataDisks: [{name: d, pool: data, size: 10}]" } else { "" };
        y += &format!("        - {{id: {i}, host: host{}{}{disk}}}\n", i % s.hosts, ip(s.with_ips));
    }
    y += &format!("kubernetes:\n  version: v1.{}.1\n  networkPlugin: {}\n", s.version_minor, s.plugin);
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn valid_config_always_plans(s in shape()) {
        let text = render(&s);
        let checked = config::check_str("prop.yaml", &text, &Options { backend: None, today: "2026-11-22".into() });
        let errors: Vec<_> = checked.errors().map(|d| format!("{}: {}", d.path, d.message)).collect();
        prop_assert!(errors.is_empty(), "{errors:?}\n{text}");
        let spec = checked.spec.expect("valid");
        let plan = Plan::for_cluster(&spec);

        // The plan's structure follows from the shape.
        prop_assert_eq!(plan.control_plane.members as usize, s.masters);
        let inits = plan.steps.iter().filter(|st| st.kind == StepKind::KubeadmInit).count();
        prop_assert_eq!(inits, 1);
        let joins: Vec<_> = plan.steps.iter().filter(|st| st.kind == StepKind::JoinControlPlane).collect();
        prop_assert_eq!(joins.len(), s.masters - 1);
        prop_assert!(joins.iter().all(|j| j.targets.len() == 1 && !j.parallel));
        let worker_steps: Vec<_> = plan.steps.iter().filter(|st| st.kind == StepKind::JoinWorkers).collect();
        prop_assert_eq!(worker_steps.len(), usize::from(s.workers > 0));
        if let Some(w) = worker_steps.first() {
            prop_assert_eq!(w.targets.len(), s.workers);
        }
        let pos = |k: StepKind| plan.steps.iter().position(|st| st.kind == k);
        prop_assert!(pos(StepKind::KubeadmInit) < pos(StepKind::InstallCni));
        if s.masters > 1 {
            prop_assert!(pos(StepKind::InstallCni) < pos(StepKind::JoinControlPlane));
        }
        prop_assert_eq!(plan.nodes.len(), s.masters + s.workers + s.lbs);
        // Placement: round-robin over hosts tolerates as many host losses as quorum allows.
        let per_host_max = s.masters.div_ceil(s.hosts.min(s.masters));
        let survives_one = s.masters - per_host_max > s.masters / 2;
        prop_assert_eq!(plan.placement.domain_failures_tolerated > 0, survives_one);
    }
}

/// The config fields that reach a node's root shell or its files, with the YAML that sets one
/// of them to `value` (JSON-quoted, which YAML reads as a double-quoted scalar).
#[derive(Debug, Clone, Copy)]
enum Field {
    PackageMirror,
    ImageRepository,
    RegistryEndpoint,
}

impl Field {
    fn path(self) -> &'static str {
        match self {
            Field::PackageMirror => "kubernetes.packageMirror",
            Field::ImageRepository => "kubernetes.imageRepository",
            Field::RegistryEndpoint => "kubernetes.registryMirrors[0].endpoint",
        }
    }

    fn config(self, value: &str) -> String {
        let q = serde_json::to_string(value).unwrap();
        let field = match self {
            Field::PackageMirror => format!("  packageMirror: {q}\n"),
            Field::ImageRepository => format!("  imageRepository: {q}\n"),
            Field::RegistryEndpoint => format!(
                "  registryMirrors:\n    - registry: docker.io\n      endpoint: {q}\n      plainHttp: {}\n",
                value.starts_with("http://")
            ),
        };
        format!(
            "hosts: [{{name: h}}]\ncluster:\n  name: shell\n  network: {{mode: nat, cidr: 10.20.0.0/24}}\n  nodes:\n    master: {{instances: [{{id: 1}}]}}\nkubernetes:\n  version: v1.35.1\n{field}"
        )
    }
}

/// Strings meant to break out of `field`: anything at all, and URL- or repository-like text
/// with shell and apt metacharacters (quotes, `$(`, spaces, line breaks…) in its host or path;
/// and, so that many get through validation to the node, the field's own shape.
fn hostile(field: Field) -> impl Strategy<Value = String> {
    let host = prop_oneof![
        "mirror\\.example\\.com",
        "[a-z0-9.$'-]{1,12}",
        "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,2}",
        "127\\.0\\.0\\.1",
        "\\[::1\\]",
    ];
    let evil = (
        "(https?://|HTTP://)?",
        host.clone(),
        "(:[0-9]{1,5})?/?",
        "[a-z0-9._~:/'\"$()`;|&<>*?{}\\\\ \n\t#%@!=+,-]{0,24}",
    )
        .prop_map(|(s, h, p, t)| format!("{s}{h}{p}{t}"));
    let scheme = match field {
        Field::ImageRepository => "",
        _ => "https?://",
    };
    let plausible = (scheme, host, "(:[1-9][0-9]{0,3})?", "(/[a-z0-9._-]{1,8}){0,3}")
        .prop_map(|(s, h, p, t)| format!("{s}{h}{p}{t}"));
    prop_oneof![1 => any::<String>(), 2 => evil, 2 => plausible]
}

/// What `scripts::prepare` did when run with stubs (see [`run_prepare`]).
struct Prepared {
    code: i32,
    stdout: String,
    stderr: String,
    /// Every stubbed command's argv, name first, in order.
    calls: Vec<Vec<String>>,
    /// The node's /etc/apt/sources.list.d and /etc/containerd after the run.
    etc: tempfile::TempDir,
}

/// Bash functions in place of every command of `prepare` that would install, start or fetch
/// something, each recording its argv (NUL-separated, count first) to `$PROBE`; `echo` records
/// and echoes.
const STUBS: &str = r#"probe() { printf '%s\0' "$#" "$@" >> "$PROBE"; }
for c in swapoff modprobe sysctl timedatectl curl apt-get apt-mark systemctl; do eval "$c() { probe $c \"\$@\"; }"; done
dpkg-query() { probe dpkg-query "$@"; return 1; }
echo() { probe echo "$@"; builtin echo "$@"; }
kubeadm() { probe kubeadm "$@"; printf 'registry.example.com/pause:3.10\n'; }
containerd() {
  probe containerd "$@"
  case "$1" in
    --version) printf 'containerd containerd.io v2.1.0 0123abc\n' ;;
    config) printf 'SystemdCgroup = true\nSystemdCgroup = false\n%s\n' "$pause" ;;
  esac
}
"#;

/// Runs the node preparation script as root would on a Debian node, in a mount namespace whose
/// /etc is an overlay on a tmpfs: the script writes where it always does, and nothing on this
/// machine changes. The stubs come first.
fn run_prepare(script: &str) -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let (scratch, etc) = (dir.path().join("scratch"), tempfile::tempdir().unwrap());
    std::fs::create_dir(&scratch).unwrap();
    let file = dir.path().join("prepare.sh");
    std::fs::write(&file, format!("{STUBS}{script}")).unwrap();
    // /etc/os-release is a link out of /etc on Debian: removed, not written through.
    const WRAPPER: &str = r#"set -e
scratch=$1 etc=$2 script=$3
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/up" "$scratch/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$scratch/up,workdir=$scratch/work" /etc
rm -f /etc/os-release
printf 'ID=debian\nVERSION_CODENAME=bookworm\n' > /etc/os-release
set +e
bash "$script"
rc=$?
cp -a /etc/apt/sources.list.d /etc/containerd "$etc/" 2>/dev/null
exit $rc
"#;
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "bash", "-c", WRAPPER, "wrapper"])
        .args([&scratch, etc.path(), &file])
        .env("PROBE", dir.path().join("probe"))
        .current_dir(dir.path())
        .output()
        .expect("unshare runs (the test needs root, as the namespace tests do)");
    let probe = std::fs::read(dir.path().join("probe")).unwrap_or_default();
    let mut words = probe.split(|b| *b == 0).map(|w| String::from_utf8_lossy(w).into_owned());
    let mut calls = Vec::new();
    while let Some(n) = words.next().and_then(|n| n.parse::<usize>().ok()) {
        calls.push(words.by_ref().take(n).collect());
    }
    Prepared {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls,
        etc,
    }
}

/// An apt source file: exactly one line, `deb [signed-by=KEY] <repo>/ /`, four fields.
fn one_deb_line(etc: &std::path::Path, file: &str, key: &str, repo: &str) -> Result<(), TestCaseError> {
    let path = etc.join("sources.list.d").join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| TestCaseError::fail(format!("{}: {e}", path.display())))?;
    let expected = format!("deb [signed-by=/etc/apt/keyrings/{key}] {repo}/ /\n");
    prop_assert_eq!(&text, &expected);
    prop_assert_eq!(text.lines().count(), 1);
    prop_assert_eq!(text.split_whitespace().count(), 4, "{}", text);
    Ok(())
}

/// Any string in a field that reaches a node's shell: validation refuses it (naming the
/// field), or the rendered preparation script passes `bash -n`, and when run, every command
/// sees the value as one literal word and apt's sources list gets one line per repository.
/// A runner of our own, to show that values did get through to the node, in every field.
#[test]
fn config_values_reach_the_node_shell_as_one_literal_word() {
    use proptest::test_runner::{Config, TestRunner};
    let fields = prop::sample::select(vec![Field::PackageMirror, Field::ImageRepository, Field::RegistryEndpoint]);
    let cases = fields.prop_flat_map(|f| (Just(f), hostile(f)));
    let ran = std::cell::RefCell::new(Vec::new());
    let mut runner = TestRunner::new(Config { cases: 240, ..Config::default() });
    runner
        .run(&cases, |(field, value)| {
            if one_value(field, &value)? {
                ran.borrow_mut().push(field);
            }
            Ok(())
        })
        .unwrap();
    let ran = ran.into_inner();
    for f in [Field::PackageMirror, Field::ImageRepository, Field::RegistryEndpoint] {
        let n = ran.iter().filter(|r| r.path() == f.path()).count();
        eprintln!("{}: {n} values passed validation and ran on the node", f.path());
        assert!(n >= 10, "only {n} values of {} passed validation and ran on the node", f.path());
    }
}

/// One case of the property: `Ok(true)` when the value passed validation and the script ran.
fn one_value(field: Field, value: &str) -> Result<bool, TestCaseError> {
    use hacluster::bootstrap::{containerd, scripts};
    let text = field.config(value);
    let checked = config::check_str("shell.yaml", &text, &Options { backend: None, today: "2026-11-22".into() });
    let Some(spec) = checked.spec.clone().filter(|_| checked.is_valid()) else {
        let named = checked.errors().any(|d| d.path.to_string() == field.path() || d.code == "yaml");
        prop_assert!(named, "refused, but not at {}: {:?}", field.path(), checked.errors().collect::<Vec<_>>());
        return Ok(false);
    };
    let script = scripts::prepare(&spec, &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prepare.sh"), &script).unwrap();
    let syntax = std::process::Command::new("bash").arg("-n").arg(dir.path().join("prepare.sh")).output().unwrap();
    prop_assert!(syntax.status.success(), "bash -n: {}\n{script}", String::from_utf8_lossy(&syntax.stderr));

    let run = run_prepare(&script);
    prop_assert!(
        run.code == 0 && run.stdout.ends_with("prepared\n"),
        "exit {}: {}{}",
        run.code,
        run.stdout,
        run.stderr
    );
    let called = |argv: &[&str]| run.calls.iter().any(|c| c.iter().map(String::as_str).eq(argv.iter().copied()));
    let k = &spec.kubernetes;
    match field {
        Field::PackageMirror => {
            let repo = scripts::package_repo(&spec);
            let key = format!("{repo}/Release.key");
            let argv = ["curl", "-fsSL", &key, "-o", "/etc/apt/keyrings/hacluster-kubernetes.asc"];
            prop_assert!(called(&argv), "{:?}", run.calls);
            one_deb_line(run.etc.path(), "hacluster-kubernetes.list", "hacluster-kubernetes.asc", &repo)?;
            let base = format!("{}/containerd/deb", k.package_mirror.as_deref().unwrap().trim_end_matches('/'));
            let key = format!("{base}/Release.key");
            let argv = ["curl", "-fsSL", &key, "-o", "/etc/apt/keyrings/hacluster-containerd.asc"];
            prop_assert!(called(&argv), "{:?}", run.calls);
            one_deb_line(run.etc.path(), "hacluster-containerd.list", "hacluster-containerd.asc", &base)?;
        }
        Field::ImageRepository => {
            let r = k.image_repository.as_deref().unwrap();
            let argv =
                ["kubeadm", "config", "images", "list", "--kubernetes-version", "v1.35.1", "--image-repository", r];
            prop_assert!(called(&argv), "{:?}", run.calls);
        }
        Field::RegistryEndpoint => {
            let path = run.etc.path().join("containerd/certs.d/docker.io/hosts.toml");
            let written = std::fs::read_to_string(&path).unwrap_or_default();
            prop_assert_eq!(written, containerd::hosts_toml(&k.registry_mirrors[0], None));
        }
    }
    Ok(true)
}

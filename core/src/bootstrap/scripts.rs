//! The shell that runs on the nodes. Every script checks before it acts, so running it twice
//! changes nothing the second time.

use crate::model::{ClusterSpec, NetworkPlugin};
use crate::ssh::shell_quote;

use super::containerd;
use super::kubeadm::{self, INIT_CONFIG, JOIN_CONFIG, NODE_DIR};

/// Base URL of the Kubernetes package repository for the cluster's minor version: pkgs.k8s.io,
/// or `<packageMirror>/v1.N/deb` for air-gapped installs.
pub fn package_repo(spec: &ClusterSpec) -> String {
    let minor = format!("v1.{}", spec.kubernetes.version.minor);
    match &spec.kubernetes.package_mirror {
        Some(m) => format!("{}/{minor}/deb", m.trim_end_matches('/')),
        None => format!("https://pkgs.k8s.io/core:/stable:/{minor}/deb"),
    }
}

/// The CNI manifest: upstream's release, or `<packageMirror>/cni/<plugin>.yaml`.
pub fn cni_manifest(spec: &ClusterSpec) -> String {
    let p = spec.kubernetes.network_plugin;
    if let Some(m) = &spec.kubernetes.package_mirror {
        return format!("{}/cni/{p}.yaml", m.trim_end_matches('/'));
    }
    match p {
        NetworkPlugin::Calico => {
            "https://raw.githubusercontent.com/projectcalico/calico/v3.29.1/manifests/calico.yaml".into()
        }
        NetworkPlugin::Flannel => {
            "https://github.com/flannel-io/flannel/releases/download/v0.26.1/kube-flannel.yml".into()
        }
        NetworkPlugin::Cilium => {
            "https://raw.githubusercontent.com/cilium/cilium/v1.16.4/install/kubernetes/quick-install.yaml".into()
        }
        NetworkPlugin::KubeRouter => format!(
            "https://raw.githubusercontent.com/cloudnativelabs/kube-router/{KUBE_ROUTER}/daemonset/kubeadm-kuberouter.yaml"
        ),
    }
}

/// The kube-router release whose manifest (and image tag) hacluster deploys.
pub const KUBE_ROUTER: &str = "v2.1.0";

/// The DaemonSet (namespace, name) whose existence means the CNI is installed.
pub fn cni_daemonset(p: NetworkPlugin) -> (&'static str, &'static str) {
    match p {
        NetworkPlugin::Calico => ("kube-system", "calico-node"),
        NetworkPlugin::Flannel => ("kube-flannel", "kube-flannel-ds"),
        NetworkPlugin::Cilium => ("kube-system", "cilium"),
        NetworkPlugin::KubeRouter => ("kube-system", "kube-router"),
    }
}

/// Shell that writes `content` to `path` (mode `mode`) through a temporary file, setting
/// `changed` when the file was different: base64 in single quotes, so no byte of the content
/// is ever read by the shell.
fn write_file(path: &str, mode: &str, content: &str) -> String {
    write_filtered(path, mode, content, "cat")
}

/// `write_file` with the content passed through `filter` (a command of ours) on the node.
fn write_filtered(path: &str, mode: &str, content: &str, filter: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    let p = shell_quote(path);
    format!(
        "install -d -m 0755 \"$(dirname {p})\"\nprintf '%s' '{b64}' | base64 -d | {filter} > {p}.hacluster-new\nif cmp -s {p}.hacluster-new {p}; then rm -f {p}.hacluster-new; else chmod {mode} {p}.hacluster-new && mv -f {p}.hacluster-new {p} && changed=1; fi\n"
    )
}

/// containerd's files for both config versions; the node's containerd major picks.
fn containerd_files(spec: &ClusterSpec, cas: &[(String, String)]) -> String {
    let mut s = String::new();
    for (major, test) in [(2, "-ge 2"), (1, "-lt 2")] {
        s += &format!("if [ \"$major\" {test} ]; then\n");
        // The sandbox image as this node's kubeadm names it (`$pause`, set before).
        let sandbox = format!("sed \"s|{}|$pause|\"", containerd::SANDBOX_PLACEHOLDER);
        s += &write_filtered(containerd::CONFIG, "0644", &containerd::config(spec, major), &sandbox);
        match containerd::drop_in(spec, major) {
            Some(d) => s += &write_file(containerd::DROP_IN, "0644", &d),
            None => s += &format!("if [ -e {0} ]; then rm -f {0}; changed=1; fi\n", containerd::DROP_IN),
        }
        s += "fi\n";
    }
    let mut keep = Vec::new();
    for m in &spec.kubernetes.registry_mirrors {
        let dir = containerd::hosts_dir(m);
        let ca = cas.iter().find(|(r, _)| *r == m.registry).map(|(_, pem)| pem);
        let ca_path = ca.map(|_| format!("{dir}/ca.crt"));
        if let (Some(pem), Some(path)) = (ca, &ca_path) {
            s += &write_file(path, "0644", pem);
        }
        s += &write_file(&format!("{dir}/hosts.toml"), "0644", &containerd::hosts_toml(m, ca_path.as_deref()));
        keep.push(m.registry.clone());
    }
    // Mirrors no longer in the config: their hosts.toml (ours: it says so) goes.
    s += &format!(
        "for f in {certs}/*/hosts.toml; do\n  [ -f \"$f\" ] || continue\n  head -1 \"$f\" | grep -q '^# Rendered by hacluster' || continue\n  case \" {keep} \" in *\" $(basename \"$(dirname \"$f\")\") \"*) ;; *) rm -rf \"$(dirname \"$f\")\"; changed=1 ;; esac\ndone\n",
        certs = containerd::CERTS_DIR,
        keep = keep.join(" ")
    );
    s
}

/// Node preparation: OS check, swap off (and kept off), kernel modules (unless built in),
/// sysctls, time sync check, kubeadm/kubelet/kubectl pinned and held, containerd from its
/// source with hacluster's config (checked to have taken). `cas` are the registry mirrors' CA
/// certificates (registry, PEM), read from the operator's machine.
pub fn prepare(spec: &ClusterSpec, cas: &[(String, String)]) -> String {
    let v = spec.kubernetes.version;
    let pkg_version = format!("{}.{}.{}", v.major, v.minor, v.patch);
    let repo = package_repo(spec);
    let (containerd_repo, containerd_pkg) = containerd::package(spec);
    let image_repository = match &spec.kubernetes.image_repository {
        Some(r) => format!(" --image-repository {}", shell_quote(r)),
        None => String::new(),
    };
    let systemd = kubeadm::systemd_cgroups(spec);
    let files = containerd_files(spec, cas);
    format!(
        r#"set -eu
. /etc/os-release
case "${{ID:-}}" in
  ubuntu|debian) ;;
  *) echo "unsupported operating system '${{ID:-unknown}}': hacluster prepares Ubuntu and Debian nodes" >&2; exit 3 ;;
esac
export DEBIAN_FRONTEND=noninteractive

# Swap off, now and after reboots (kubelet refuses to run with swap by default).
swapoff -a
if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then
  # Rewritten in place (the commented line keeps the original); no rename over /etc/fstab.
  tmp=$(mktemp)
  sed -E '/^[^#].*[[:space:]]swap[[:space:]]/ s/^/# disabled by hacluster: /' /etc/fstab > "$tmp"
  cat "$tmp" > /etc/fstab
  rm -f "$tmp"
fi

# Kernel modules and sysctls for pod networking. A module built into the kernel is there
# already (and modprobe would fail where /lib/modules has nothing for this kernel).
install -d /etc/modules-load.d /etc/sysctl.d
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/hacluster-k8s.conf
if ! grep -qw overlay /proc/filesystems && ! modprobe overlay; then
  echo "the overlay filesystem is neither built into this kernel nor loadable (modprobe overlay failed); containerd needs it" >&2; exit 3
fi
if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && ! modprobe br_netfilter; then
  echo "bridge netfilter is neither built into this kernel nor loadable (modprobe br_netfilter failed); pod networking needs it" >&2; exit 3
fi
printf 'net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n' > /etc/sysctl.d/99-hacluster-k8s.conf
sysctl --system >/dev/null

# Clocks must agree for certificates and etcd; warn, do not fail.
if command -v timedatectl >/dev/null 2>&1; then
  [ "$(timedatectl show -p NTPSynchronized --value 2>/dev/null || echo unknown)" = yes ] || echo "warning: the clock is not NTP-synchronized" >&2
fi

# Packages: {containerd_pkg}, and kubeadm/kubelet/kubectl {pkg_version} from {repo}, held.
want={pkg_version}
have=$(dpkg-query -W -f='${{Version}}' kubeadm 2>/dev/null || true)
runtime=$(dpkg-query -W -f='${{Status}}' {containerd_pkg} 2>/dev/null || true)
# A node in the cluster already keeps its version: changing it is `hacluster upgrade`'s, which
# drains it and restarts its control plane in order.
if [ -e /etc/kubernetes/kubelet.conf ] && [ -n "$have" ]; then
  case "$have" in
    "$want"-*) ;;
    *) echo "this node runs kubeadm $have and the config asks for $want: preparing a node does not upgrade it; run \`hacluster upgrade -c FILE\`" >&2; exit 3 ;;
  esac
fi
case "$have $runtime" in
  "$want"-*" install ok installed") ;;
  *)
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL {repo_key} -o /etc/apt/keyrings/hacluster-kubernetes.asc
    echo {repo_line} > /etc/apt/sources.list.d/hacluster-kubernetes.list
{containerd_repo}    apt-get update -q
    apt-mark unhold kubeadm kubelet kubectl >/dev/null 2>&1 || true
    apt-get install -y -q {containerd_pkg} "kubeadm=$want-*" "kubelet=$want-*" "kubectl=$want-*"
    apt-mark hold kubeadm kubelet kubectl
    ;;
esac

# containerd: hacluster's config for the installed major version, the CRI's sandbox image as
# this kubeadm names it, the cgroup driver the kubelet uses; restarted only on a change.
set -- $(containerd --version)
release=${{3#v}}
major=${{release%%.*}}
pause=$(kubeadm config images list --kubernetes-version v{pkg_version}{image_repository} 2>/dev/null | grep '/pause:' || true)
[ -n "$pause" ] || {{ echo "kubeadm names no pause image for v{pkg_version}" >&2; exit 3; }}
changed=""
{files}if [ -n "$changed" ]; then systemctl restart containerd; fi
systemctl enable --now containerd >/dev/null
{took}systemctl enable kubelet >/dev/null
install -d -m 0700 {NODE_DIR}
echo prepared
"#,
        repo_key = shell_quote(&format!("{repo}/Release.key")),
        repo_line = shell_quote(&format!("deb [signed-by=/etc/apt/keyrings/hacluster-kubernetes.asc] {repo}/ /")),
        took = containerd_took(systemd),
    )
}

/// Shell that fails unless containerd's effective config (`containerd config dump`) has the
/// cgroup driver and the sandbox image (`$pause`) hacluster wrote. Matched in the shell: under
/// `pipefail`, `printf | grep -q` fails whenever grep quits before printf has written the
/// whole dump (seen in CI, on one node of five).
fn containerd_took(systemd: bool) -> String {
    let config = containerd::CONFIG;
    format!(
        r#"dump=$(containerd config dump)
case "$dump" in *"SystemdCgroup = {systemd}"*) ;; *) echo "containerd $release did not take SystemdCgroup = {systemd} from {config}" >&2; exit 3 ;; esac
case "$dump" in *"$pause"*) ;; *) echo "containerd $release did not take the sandbox image $pause from {config} (its dump: $(printf '%s\n' "$dump" | grep -A1 pinned_images | tr '\n' ' '))" >&2; exit 3 ;; esac
"#
    )
}

/// Whether the endpoint answers on TCP from this node: a connection, or a refusal from the
/// other end (nothing behind the load balancer yet), both prove the path; a timeout does not.
/// The host comes from the backend: it reaches the shell once, quoted, and is used only as
/// `"$host"` (also inside the inner `bash -c`, as an argument, never pasted into its code).
pub fn endpoint_check(host: &str, port: u16) -> String {
    format!(
        r#"set -u
host={host}
if ! getent hosts "$host" >/dev/null 2>&1 && ! printf '%s' "$host" | grep -Eq '^[0-9.]+$'; then
  echo "cannot resolve $host" >&2; exit 2
fi
out=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' endpoint-check "$host" {port} 2>&1); rc=$?
case $rc in
  0) echo open ;;
  124) echo "no answer from $host:{port} within 5 s" >&2; exit 1 ;;
  *) case "$out" in *refused*) echo refused ;; *) echo "$out" >&2; exit 1 ;; esac ;;
esac
"#,
        host = shell_quote(host)
    )
}

/// Prints `sha256:<hex>` of the node's cluster CA public key, as kubeadm's docs compute the
/// hash that joins pin. With its prefix: a bare 64-digit hex string reads as a certificate key
/// to the redactor.
pub const CA_HASH: &str = "openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex | sed 's/^.*= */sha256:/'";

/// Sets `$found` to the Kubernetes and etcd files on the node that kubeadm init or join makes
/// (kubeconfigs, static pod manifests, etcd data): what makes a node part of a cluster.
const FIND_KUBERNETES_FILES: &str = r#"found=""
for f in /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf; do
  if [ -e "$f" ]; then found="$found $f"; fi
done
if [ -n "$(ls -A /etc/kubernetes/manifests 2>/dev/null)" ]; then found="$found /etc/kubernetes/manifests/*"; fi
if [ -n "$(ls -A /var/lib/etcd 2>/dev/null)" ]; then found="$found /var/lib/etcd/*"; fi
"#;

/// Refuses (exit 3), before anything is changed on it, a node that is part of a cluster this
/// one did not make; node preparation reinstalls packages and restarts containerd, not for
/// someone else's node. Refused: a node where another cluster's kubeadm job runs; a node with
/// Kubernetes or etcd files and another cluster's job records (`owner` is this cluster's
/// bootstrap; records without an owner count as ours when `adopt_unowned`); and one with such
/// files and no job records of ours, unless the state records that this cluster set it up
/// (`recorded`: the node may have lost its records). On a node without such files (reset),
/// other clusters' job records describe nothing that is still there and are removed. Once the
/// cluster's CA is known (`ca_hash`, `sha256:<hex>` of its public key), a node whose CA is
/// another is refused whatever its records say (it was reset and joined elsewhere since).
pub fn foreign_node_check(owner: &str, adopt_unowned: bool, recorded: bool, ca_hash: Option<&str>) -> String {
    format!(
        r#"{FIND_KUBERNETES_FILES}ours=""
theirs=""
busy=""
for d in {NODE_DIR}/jobs/*/; do
  [ -d "$d" ] || continue
{foreign}  if [ -z "$foreign" ]; then ours=1; continue; fi
  theirs="$theirs \`$whose\`"
  if ! flock -n "$d/lock" true 2>/dev/null; then busy="$busy \`$whose\`"; fi
done
if [ -n "$busy" ]; then
  echo "[hacluster] another cluster's kubeadm job is running on this node (bootstrap$busy); refusing to touch it" >&2
  exit 3
fi
if [ -n "$found" ] && {{ [ -n "$theirs" ] || {{ [ -z "$ours" ] && [ -z "{recorded}" ]; }}; }}; then
  echo "[hacluster] this node already has Kubernetes or etcd files that hacluster did not put there for this cluster ($found )${{theirs:+, from the bootstrap of$theirs}}; refusing to touch it (kubeadm reset removes them, if they should go)" >&2
  exit 3
fi
if [ -n "{ca}" ] && [ -f /etc/kubernetes/pki/ca.crt ]; then
  ca=$({CA_HASH})
  if [ "$ca" != "{ca}" ]; then
    echo "[hacluster] this node belongs to another cluster: its /etc/kubernetes/pki/ca.crt is not this cluster's CA; refusing to touch it (kubeadm reset removes it, if it should go)" >&2
    exit 3
  fi
fi
if [ -z "$found" ] && [ -n "$theirs" ]; then
  for d in {NODE_DIR}/jobs/*/; do
    [ -d "$d" ] || continue
{foreign}    if [ -n "$foreign" ]; then rm -rf "$d"; fi
  done
fi
"#,
        foreign = super::jobs::foreign_test(owner, adopt_unowned),
        recorded = if recorded { "1" } else { "" },
        ca = ca_hash.unwrap_or("")
    )
}

/// What a job does when an earlier attempt left a half-made node behind, and what it refuses: a
/// node with Kubernetes or etcd files that no attempt of ours made (kubeconfigs, static pod
/// manifests, etcd data) is refused on every run, never reset, and the config file just written
/// for it (it holds the join token and certificate key) is removed again.
fn kubeadm_job(what: &str, config: &str, command: &str) -> String {
    format!(
        r#"set -eu
if [ -n "${{HACLUSTER_JOB_RETRY:-}}" ]; then
  echo "[hacluster] an earlier {what} on this node did not finish: kubeadm reset first"
  kubeadm reset -f
else
{FIND_KUBERNETES_FILES}  if [ -n "$found" ]; then
    rm -f {config}
    echo "[hacluster] this node already has Kubernetes or etcd files that hacluster did not put there ($found ); refusing to touch it (kubeadm reset removes them, if they should go)" >&2
    exit 3
  fi
fi
# From here on, what is on this node is ours: a failure is retried after a reset.
touch "$HACLUSTER_JOB_DIR/attempted"
{command}
"#
    )
}

/// The `kubeadm init` job (see `jobs`): retried after a reset, never over a node that
/// hacluster did not set up.
pub fn init_job() -> String {
    kubeadm_job("kubeadm init", INIT_CONFIG, &format!("kubeadm init --config {INIT_CONFIG} --upload-certs"))
}

/// `kubeadm init` of a restore (see `backup::restore`): `prepare` (in a subshell of its own)
/// puts the backup's PKI and etcd data in place first, also after the reset before a retry;
/// kubeadm's check that /var/lib/etcd is empty is the one it must skip.
pub fn init_job_restoring(prepare: &str) -> String {
    kubeadm_job(
        "kubeadm init",
        INIT_CONFIG,
        &format!(
            "(\n{prepare}\n)\nkubeadm init --config {INIT_CONFIG} --upload-certs --ignore-preflight-errors=DirAvailable--var-lib-etcd"
        ),
    )
}

/// The `kubeadm join` job, for control planes and workers alike (the config file says which).
pub fn join_job() -> String {
    kubeadm_job("kubeadm join", JOIN_CONFIG, &format!("kubeadm join --config {JOIN_CONFIG}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The endpoint's host comes from the backend: whatever it says, the shell reads it as
    /// data. Run without a network (a namespace of its own), so the lookup goes nowhere.
    #[test]
    fn endpoint_check_reads_the_host_as_data() {
        for host in
            ["$(printf 'RAN%s' X)", "a'; printf 'RAN%s' X; '", "`printf 'RAN%s' X`", "a\"; printf 'RAN%s' X; \""]
        {
            let out = std::process::Command::new("unshare")
                .args(["--net", "--", "bash", "-c"])
                .arg(endpoint_check(host, 6443))
                .output()
                .unwrap();
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(!stdout.contains("RANX") && !stderr.contains("RANX"), "{host}: ran: {stdout}{stderr}");
            assert_eq!(out.status.code(), Some(2), "{host}: {stdout}{stderr}");
            assert_eq!(stderr.trim_end(), format!("cannot resolve {host}"));
        }
    }

    /// The check of containerd's effective config, run by bash with a dump far larger than a
    /// pipe's buffer and the sandbox image on its first line: a `printf | grep -q` there failed
    /// every time under `pipefail`.
    #[test]
    fn containerd_check_reads_a_large_dump_whole() {
        let run = |dump_head: &str| {
            let script = format!(
                "set -eu -o pipefail\nrelease=2.4.2\npause=registry.lab:5000/pause:3.10.2\ncontainerd() {{ printf '%s\\n' '{dump_head}'; seq 1 40000; echo 'SystemdCgroup = true'; }}\n{}echo took\n",
                containerd_took(true)
            );
            std::process::Command::new("bash").arg("-c").arg(script).output().unwrap()
        };
        let ok = run("sandbox = 'registry.lab:5000/pause:3.10.2'");
        assert_eq!(String::from_utf8_lossy(&ok.stdout), "took\n", "{}", String::from_utf8_lossy(&ok.stderr));
        let missing = run("sandbox = 'registry.k8s.io/pause:3.10'");
        assert_eq!(missing.status.code(), Some(3));
        assert!(
            String::from_utf8_lossy(&missing.stderr)
                .contains("did not take the sandbox image registry.lab:5000/pause:3.10.2")
        );
    }
}

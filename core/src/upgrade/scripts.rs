//! The shell an upgrade runs on the nodes. Each script checks before it acts: a second run,
//! or a run after a crash, changes nothing that is done.

use crate::bootstrap::kubeadm::NODE_DIR;
use crate::bootstrap::scripts::package_repo;
use crate::model::{ClusterSpec, KubeVersion};
use crate::ssh::shell_quote;

/// The file a finished `kubeadm upgrade apply`/`node` to `to` leaves on the node (the job's
/// proof; `kubeadm reset` removes it with the rest of /etc/kubernetes).
pub fn proof(to: KubeVersion) -> String {
    format!("{NODE_DIR}/upgraded-{to}")
}

/// The job's name on the node.
pub fn job_name(to: KubeVersion) -> String {
    format!("kubeadm-upgrade-{to}")
}

fn package_version(to: KubeVersion) -> String {
    format!("{}.{}.{}", to.major, to.minor, to.patch)
}

/// `--ignore-preflight-errors=...` as the config lists them (validated names), or nothing.
fn ignore_flag(spec: &ClusterSpec) -> String {
    let list = &spec.kubernetes.ignore_preflight_errors;
    if list.is_empty() { String::new() } else { format!(" --ignore-preflight-errors={}", shell_quote(&list.join(","))) }
}

/// Shell that points apt at the target minor's repository (pkgs.k8s.io has one per minor) and
/// installs `packages` at the target version, unheld for the install and held again. Prints
/// `changed` when it installed something.
pub fn packages(spec: &ClusterSpec, packages: &[&str]) -> String {
    let to = spec.kubernetes.version;
    let repo = package_repo(spec);
    let want = package_version(to);
    let names = packages.join(" ");
    let pins: Vec<String> = packages.iter().map(|p| format!("\"{p}=$want-*\"")).collect();
    format!(
        r#"set -eu
export DEBIAN_FRONTEND=noninteractive
want={want}
missing=""
for p in {names}; do
  case "$(dpkg-query -W -f='${{Version}}' "$p" 2>/dev/null || true)" in
    "$want"-*) ;;
    *) missing=1 ;;
  esac
done
if [ -n "$missing" ]; then
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL {key} -o /etc/apt/keyrings/hacluster-kubernetes.asc
  echo {line} > /etc/apt/sources.list.d/hacluster-kubernetes.list
  apt-get update -q >/dev/null
  apt-mark unhold {names} >/dev/null
  apt-get install -y -q {pins} >/dev/null
  apt-mark hold {names} >/dev/null
  echo changed
fi
for p in {names}; do echo "$p $(dpkg-query -W -f='${{Version}}' "$p")"; done
"#,
        key = shell_quote(&format!("{repo}/Release.key")),
        line = shell_quote(&format!("deb [signed-by=/etc/apt/keyrings/hacluster-kubernetes.asc] {repo}/ /")),
        pins = pins.join(" "),
    )
}

/// Shell that lists which of kubeadm, kubelet and kubectl the target's repository offers at the
/// target version, read from its index without touching apt's configuration.
pub fn offered(spec: &ClusterSpec) -> String {
    offered_at(&package_repo(spec), spec.kubernetes.version)
}

fn offered_at(repo: &str, to: KubeVersion) -> String {
    format!(
        r#"set -eu
index=$(curl -fsSL {packages} 2>/dev/null || curl -fsSL {gz} | gzip -dc)
printf '%s\n' "$index" | awk -v want={want}- '/^Package:/ {{ p = $2 }} /^Version:/ {{ if (index($2, want) == 1) print p }}' | sort -u
"#,
        packages = shell_quote(&format!("{repo}/Packages")),
        gz = shell_quote(&format!("{repo}/Packages.gz")),
        want = package_version(to),
    )
}

/// `kubeadm upgrade plan` for the target, on the first control plane: it must succeed and name
/// the apply it would run.
pub fn upgrade_plan(spec: &ClusterSpec) -> String {
    format!("kubeadm upgrade plan {}{} 2>&1", spec.kubernetes.version, ignore_flag(spec))
}

/// The detached job (see `bootstrap::jobs`) that runs `kubeadm upgrade apply` (`first`) or
/// `kubeadm upgrade node`, and leaves its proof. kubeadm's upgrade is safe to run again after
/// a failure: that is its documented recovery, so a retry needs no clean-up.
pub fn upgrade_job(spec: &ClusterSpec, first: bool) -> String {
    let to = spec.kubernetes.version;
    let command = if first {
        format!("kubeadm upgrade apply {to} --yes{}", ignore_flag(spec))
    } else {
        format!("kubeadm upgrade node{}", ignore_flag(spec))
    };
    format!(
        "set -eu\ntouch \"$HACLUSTER_JOB_DIR/attempted\"\n{command}\ntouch {proof}\n",
        proof = shell_quote(&proof(to))
    )
}

/// `kubeadm upgrade node` on a worker (quick: it rewrites the kubelet's configuration).
pub fn upgrade_worker(spec: &ClusterSpec) -> String {
    format!("set -eu\nkubeadm upgrade node{} >/dev/null\necho upgraded", ignore_flag(spec))
}

/// Restarts the kubelet (after its package changed, or when it still runs another version).
pub const RESTART_KUBELET: &str = "set -eu\nsystemctl daemon-reload\nsystemctl restart kubelet\nkubelet --version";

/// Restarts a control plane's kubelet, then waits until its static pods have settled: a new
/// kubelet that hashes a manifest differently restarts that pod (seen from 1.36 to 1.37: the
/// API server and etcd restarted a few seconds after the kubelet did, and requests through
/// the endpoint failed). Done once both were started after the kubelet, or the kubelet has
/// run for 20 s without restarting them. Prints what it saw.
pub const RESTART_CONTROL_PLANE_KUBELET: &str = r#"set -eu
systemctl daemon-reload
systemctl restart kubelet
# Empty when there is no such process (yet): never a failure of the script.
age() { ps -o etimes= -p "$1" 2>/dev/null | tr -d ' ' || true; }
youngest() { ps -o etimes= -C "$1" 2>/dev/null | sort -n | head -1 | tr -d ' ' || true; }
for i in $(seq 120); do
  k=$(age "$(systemctl show -p MainPID --value kubelet)")
  a=$(youngest kube-apiserver)
  e=$(youngest etcd)
  if [ -n "$k" ] && [ -n "$a" ] && [ -n "$e" ] && [ "$a" -le "$k" ] && [ "$e" -le "$k" ]; then echo "static pods restarted"; exit 0; fi
  if [ -n "$k" ] && [ "$k" -ge 20 ]; then echo "static pods kept (api server ${a:-gone} s, etcd ${e:-gone} s, kubelet $k s)"; exit 0; fi
  sleep 1
done
echo "the kubelet did not stay up" >&2
exit 3
"#;

/// The control plane's version as kubeadm stored it (`kubernetesVersion` of its
/// ClusterConfiguration).
pub fn cluster_version_query() -> String {
    "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}'".into()
}

/// `kubernetesVersion: v1.N.P` from a ClusterConfiguration.
pub fn parse_cluster_version(cfg: &str) -> Option<KubeVersion> {
    cfg.lines()
        .find_map(|l| l.trim().strip_prefix("kubernetesVersion:"))
        .and_then(|v| v.trim().trim_matches('"').parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_version_is_read_from_kubeadms_own_record() {
        let cfg = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.3\nnetworking:\n  podSubnet: 10.244.0.0/16\n";
        assert_eq!(parse_cluster_version(cfg), Some("v1.36.3".parse().unwrap()));
        assert_eq!(parse_cluster_version("kind: ClusterConfiguration\n"), None);
        assert_eq!(parse_cluster_version("kubernetesVersion: latest\n"), None);
    }

    /// The index's answer, parsed by the script itself: only packages at the exact version.
    #[test]
    fn offered_lists_only_packages_at_the_target_version() {
        let dir = tempfile::tempdir().unwrap();
        let index = "Package: kubeadm\nVersion: 1.37.2-1.1\n\nPackage: kubelet\nVersion: 1.37.20-1.1\n\nPackage: kubectl\nVersion: 1.37.2-1.1\n\nPackage: kubelet\nVersion: 1.36.3-1.1\n";
        std::fs::write(dir.path().join("Packages"), index).unwrap();
        let script = offered_at(&format!("file://{}", dir.path().display()), "v1.37.2".parse().unwrap());
        let out = std::process::Command::new("bash").arg("-c").arg(script).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "kubeadm\nkubectl\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

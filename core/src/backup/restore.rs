//! Restoring a backup onto the machines of a new cluster: the first control plane gets the
//! saved PKI and an etcd data directory restored from the snapshot before `kubeadm init`
//! (which then keeps the CAs and starts etcd on the restored data); after it, what only made
//! sense for the old machines goes (their Node objects, the old join tokens, the old endpoint in
//! `cluster-info`). The other control planes and the workers join as in any `up`.

use std::collections::BTreeMap;

use super::archive::{Manifest, SNAPSHOT};
use crate::bootstrap::kubeadm::INIT_CONFIG;
use crate::model::{ClusterSpec, KubeVersion};
use crate::ssh::shell_quote;

/// Where the backup waits on the first control plane until `kubeadm init` has run on it: out
/// of kubeadm's directories (the init job refuses a node with Kubernetes files it did not put
/// there, and `kubeadm reset` before a retry would remove them), root only.
pub const STAGE: &str = "/var/lib/hacluster-restore";

/// An opened, checked backup to restore.
pub struct Restore {
    pub manifest: Manifest,
    files: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreRefused {
    #[error(
        "the backup is of Kubernetes {backup} and the config asks for {config}: restore at the backup's minor version (set `kubernetes.version` to {backup}), then `hacluster upgrade`"
    )]
    Version { backup: String, config: KubeVersion },
    #[error("the backup has no {0}")]
    Missing(String),
}

impl Restore {
    /// The backup, if the config can take it: the same minor version (etcd's data and kubeadm's
    /// addons are those of that version), and every file a restore needs.
    pub fn new(
        spec: &ClusterSpec,
        manifest: Manifest,
        files: BTreeMap<String, Vec<u8>>,
    ) -> Result<Restore, RestoreRefused> {
        let backup: Option<KubeVersion> = manifest.kubernetes_version.parse().ok();
        let config = spec.kubernetes.version;
        if backup.is_none_or(|b| (b.major, b.minor) != (config.major, config.minor)) {
            return Err(RestoreRefused::Version { backup: manifest.kubernetes_version.clone(), config });
        }
        for needed in std::iter::once(SNAPSHOT.to_string()).chain(super::PKI.iter().map(|p| format!("pki/{p}"))) {
            if !files.contains_key(&needed) {
                return Err(RestoreRefused::Missing(needed));
            }
        }
        Ok(Restore { manifest, files })
    }

    pub fn snapshot(&self) -> &[u8] {
        &self.files[SNAPSHOT]
    }

    /// What goes to the stage on the node: (path, content), every file 0600.
    pub fn staged(&self) -> impl Iterator<Item = (String, &[u8])> {
        std::iter::once((format!("{STAGE}/snapshot.db"), self.snapshot()))
            .chain(super::PKI.iter().map(|p| (format!("{STAGE}/pki/{p}"), self.files[&format!("pki/{p}")].as_slice())))
    }
}

/// Run by the init job before `kubeadm init` (again after the reset before a retry): the
/// staged PKI where kubeadm looks for it (keys 0600), and the staged snapshot restored into
/// /var/lib/etcd as the only member, `name` at `ip`, with the etcdutl of the etcd image kubeadm
/// pins (mounted, not run as a container); a data directory that is there is kept. Revisions
/// are bumped and marked compacted, as etcd advises for Kubernetes, so that no client's watch
/// resumes from a revision that now means something else.
pub fn prepare_script(name: &str, ip: &str) -> String {
    let peer = shell_quote(&format!("https://{ip}:2380"));
    let cluster = shell_quote(&format!("{name}=https://{ip}:2380"));
    let name = shell_quote(name);
    let pki: Vec<String> = super::PKI
        .iter()
        .map(|p| {
            let mode = if p.ends_with(".key") { "0600" } else { "0644" };
            format!("install -D -m {mode} {STAGE}/pki/{p} /etc/kubernetes/pki/{p}")
        })
        .collect();
    format!(
        r#"set -eu
{pki}
if [ -d /var/lib/etcd/member ]; then echo "[hacluster] restore: etcd data kept"; exit 0; fi
kubeadm config images pull --config {INIT_CONFIG} >/dev/null
image=$(kubeadm config images list --config {INIT_CONFIG} 2>/dev/null | grep '/etcd:' | head -n1)
[ -n "$image" ] || {{ echo "kubeadm lists no etcd image" >&2; exit 1; }}
mnt=$(mktemp -d)
ctr -n k8s.io images mount "$image" "$mnt" </dev/null >/dev/null 2>&1
trap 'ctr -n k8s.io images unmount --rm "$mnt" </dev/null >/dev/null 2>&1 || true; rmdir "$mnt"' EXIT
"$mnt/usr/local/bin/etcdutl" snapshot restore {STAGE}/snapshot.db --name {name} --initial-cluster {cluster} \
  --initial-advertise-peer-urls {peer} --data-dir /var/lib/etcd --bump-revision 1000000000 --mark-compacted \
  </dev/null >{STAGE}/etcdutl.log 2>&1 || {{ tail -n 5 {STAGE}/etcdutl.log >&2; exit 1; }}
echo "[hacluster] restore: etcd data restored from the snapshot"
"#,
        pki = pki.join("\n")
    )
}

/// After `kubeadm init` on the restored data, with kubectl on the first control plane:
/// `cluster-info` made again for this endpoint (kubeadm keeps one that exists, and the old one
/// names the old endpoint, which joins would follow), the old join tokens deleted (only
/// `keep_token`'s and the one that owns this init's uploaded certificates stay), every Node but
/// `init_node` deleted (old machines; a node of the new cluster with an old one's name joins
/// after its stale object is gone), and the stage removed.
pub fn cleanup_script(kubectl: &str, init_node: &str, keep_token: &str) -> String {
    let keep = shell_quote(&format!("secret/bootstrap-token-{keep_token}"));
    let init = shell_quote(&format!("node/{init_node}"));
    format!(
        r#"set -eu
k() {{ {kubectl} "$@"; }}
k -n kube-public delete configmap cluster-info --ignore-not-found >/dev/null
kubeadm init phase bootstrap-token --config {INIT_CONFIG} >/dev/null
test -n "$(k -n kube-public get configmap cluster-info -o name)"
# The token that owns kubeadm-certs (made by this init's --upload-certs) stays too: deleting it
# would have the certificates the control planes join with collected.
owners=$(k -n kube-system get secret kubeadm-certs -o jsonpath='{{range .metadata.ownerReferences[*]}}secret/{{.name}}{{"\n"}}{{end}}' 2>/dev/null || true)
tokens=$(k -n kube-system get secrets --field-selector type=bootstrap.kubernetes.io/token -o name | grep -vxF -f <(printf '%s\n' {keep} $owners) || true)
[ -z "$tokens" ] || k -n kube-system delete $tokens --wait=false >/dev/null
nodes=$(k get nodes -o name | grep -vxF {init} || true)
[ -z "$nodes" ] || k delete $nodes --wait=false >/dev/null
rm -rf {STAGE}
echo "tokens: $(printf '%s\n' $tokens | grep -c . || true); nodes: $(printf '%s\n' $nodes | grep -c . || true)"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cleanup run by bash against a kubectl and a kubeadm that only record what they are
    /// asked: the old tokens and Nodes are deleted, this cluster's token and first node stay,
    /// and cluster-info is made again.
    #[test]
    fn the_cleanup_deletes_the_old_tokens_and_nodes_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let fake = format!(
            r#"kubectl_fake() {{ echo "kubectl $*" >> {log}; case "$*" in
  *"get secrets"*) printf 'secret/bootstrap-token-abcdef\nsecret/bootstrap-token-old111\nsecret/bootstrap-token-certs1\nsecret/bootstrap-token-old222\n' ;;
  *"get secret kubeadm-certs"*) printf 'secret/bootstrap-token-certs1\n' ;;
  *"get nodes"*) printf 'node/new-master-1\nnode/old-master-1\nnode/old-worker-1\n' ;;
  *"get configmap cluster-info"*) echo configmap/cluster-info ;;
esac; }}
kubeadm() {{ echo "kubeadm $*" >> {log}; }}
"#,
            log = log.display()
        );
        let script = format!("{fake}{}", cleanup_script("kubectl_fake", "new-master-1", "abcdef"))
            .replace("rm -rf /var/lib/hacluster-restore", "true");
        let out = std::process::Command::new("bash").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tokens: 2; nodes: 2");
        let log = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines.contains(&"kubectl -n kube-public delete configmap cluster-info --ignore-not-found"), "{log}");
        assert!(lines.contains(&"kubeadm init phase bootstrap-token --config /etc/kubernetes/hacluster/init.yaml"));
        assert!(
            lines.contains(
                &"kubectl -n kube-system delete secret/bootstrap-token-old111 secret/bootstrap-token-old222 --wait=false"
            ),
            "{log}"
        );
        assert!(lines.contains(&"kubectl delete node/old-master-1 node/old-worker-1 --wait=false"), "{log}");
        assert!(!log.contains("delete node/new-master-1") && !log.contains("bootstrap-token-abcdef --"));
        assert!(!log.contains("bootstrap-token-certs1"), "the owner of kubeadm-certs was deleted: {log}");
    }

    #[test]
    fn etcd_is_restored_once_as_the_only_member_of_the_new_machine() {
        let s = prepare_script("c-master-1", "10.0.0.11");
        assert!(
            s.contains("if [ -d /var/lib/etcd/member ]; then echo \"[hacluster] restore: etcd data kept\"; exit 0; fi")
        );
        assert!(s.contains("install -D -m 0600 /var/lib/hacluster-restore/pki/ca.key /etc/kubernetes/pki/ca.key"));
        assert!(s.contains("install -D -m 0644 /var/lib/hacluster-restore/pki/ca.crt /etc/kubernetes/pki/ca.crt"));
        assert!(s.contains("--name 'c-master-1' --initial-cluster 'c-master-1=https://10.0.0.11:2380'"), "{s}");
        assert!(s.contains("--bump-revision 1000000000 --mark-compacted"));
    }
}

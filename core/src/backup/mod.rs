//! `hacluster backup`: an etcd snapshot from a control plane whose API server and etcd member
//! answer, checked by `etcdutl snapshot status` on the node and by its checksum after the copy,
//! with the PKI kubeadm needs to rebuild the cluster (its CAs and the service-account key pair)
//! and kubeadm's ClusterConfiguration, into one archive (`archive.rs`).
//!
//! etcdctl and etcdutl are the ones in the member's own etcd image (kubeadm's image carries
//! them, as the lab's does): they run in its container through containerd's `ctr`, which every
//! containerd install has. The snapshot is written into the member's data directory (the one
//! host path the container may write), copied, and removed.

pub mod archive;
pub mod restore;

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::Digest as _;

use crate::bootstrap::{BootstrapError, kubectl};
use crate::infra::{Infrastructure, Machine};
use crate::model::ClusterSpec;
use crate::ssh::{Executor, Script};
use archive::{Manifest, SnapshotStatus};

/// Where the snapshot is written on the node: in the member's data directory, which its
/// container mounts from the host.
const SNAPSHOT_PATH: &str = "/var/lib/etcd/hacluster-backup.db";

/// The PKI a cluster is rebuilt with (kubeadm's "certificates to back up"): the CAs, whose
/// keys sign everything else, and the service-account key pair, which signs every token.
pub const PKI: &[&str] =
    &["ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key"];

/// Takes the snapshot in the running etcd container; prints the time, etcdutl's status and the
/// file's size and SHA-256 (base64).
fn snapshot_script() -> String {
    format!(
        r#"set -eu
# Every ctr reads no stdin: it would swallow the rest of this script, which bash reads from it.
ctr() {{ command ctr -n k8s.io "$@" </dev/null 2>/dev/null; }}
mine=$(ctr containers ls -q 'labels."io.kubernetes.container.name"==etcd')
id=$(ctr tasks ls | awk '$3 == "RUNNING" {{ print $1 }}' | grep -Fx -f <(printf '%s\n' $mine) | head -n1 || true)
[ -n "$id" ] || {{ echo "no running etcd container (ctr -n k8s.io tasks ls)" >&2; exit 1; }}
snap={snap}
rm -f "$snap" "$snap.part"
date -u +%Y-%m-%dT%H:%M:%SZ
command ctr -n k8s.io tasks exec --exec-id "hacluster-backup-$$" "$id" etcdctl --endpoints=https://127.0.0.1:2379 \
  --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
  --key=/etc/kubernetes/pki/etcd/healthcheck-client.key snapshot save "$snap" </dev/null >/dev/null 2>/tmp/hacluster-backup.err \
  || {{ tail -n 5 /tmp/hacluster-backup.err >&2; exit 1; }}
command ctr -n k8s.io tasks exec --exec-id "hacluster-status-$$" "$id" etcdutl snapshot status "$snap" -w json </dev/null
stat -c %s "$snap"
# Base64, not hex: the executor masks anything shaped like a certificate key (64 hex digits).
openssl dgst -sha256 -binary "$snap" | base64 -w0; echo
"#,
        snap = SNAPSHOT_PATH
    )
}

fn failed(node: &str, reason: impl Into<String>) -> BootstrapError {
    BootstrapError::Step { step: "backup", node: node.to_string(), reason: reason.into() }
}

/// The first control plane whose API server and etcd member answer.
async fn healthy_member<'a>(
    spec: &ClusterSpec,
    infra: &'a Infrastructure,
    exec: &Executor,
) -> Result<&'a Machine, BootstrapError> {
    for cp in &spec.control_planes {
        if let Some(m) = infra.machine(cp.name.as_str())
            && crate::drain::answers(exec, m).await.unwrap_or(false)
        {
            return Ok(m);
        }
    }
    Err(failed(
        spec.init_node().name.as_str(),
        "no control plane's API server and etcd member answer; `hacluster status` shows why",
    ))
}

/// The snapshot, the PKI and kubeadm's ClusterConfiguration of a running cluster, with their
/// manifest (`kubernetes_version` as the state records it).
pub async fn take(
    spec: &ClusterSpec,
    infra: &Infrastructure,
    exec: &Executor,
    kubernetes_version: &str,
) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), BootstrapError> {
    let m = healthy_member(spec, infra, exec).await?;
    let out =
        exec.run(m, &Script::root("etcd snapshot", snapshot_script()).quiet().timeout(Duration::from_secs(600))).await;
    let taken = async {
        let out = out?;
        let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        let [taken_at, status, size, sha] = lines[..] else {
            return Err(failed(&m.name, format!("unexpected output: {}", crate::text::bounded(&out.stdout, 300))));
        };
        let status: SnapshotStatus = serde_json::from_str(status)
            .map_err(|e| failed(&m.name, format!("etcdutl snapshot status: {e}: {status}")))?;
        if status.revision <= 0 || status.total_key == 0 {
            return Err(failed(&m.name, format!("etcdutl finds an empty snapshot: {status:?}")));
        }
        let snapshot = exec.download(m, SNAPSHOT_PATH).await?;
        // The copy is the file etcdutl checked.
        use base64::Engine as _;
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&snapshot));
        if snapshot.len().to_string() != size || digest != sha {
            return Err(failed(
                &m.name,
                format!(
                    "the snapshot changed in the copy ({} bytes, SHA-256 {digest}; on the node {size} bytes, {sha}); try again",
                    snapshot.len(),
                ),
            ));
        }
        Ok((taken_at.to_string(), status, snapshot))
    }
    .await;
    // Removed whatever happened: it holds every Secret of the cluster.
    let _ = exec
        .run(m, &Script::root("remove the snapshot", format!("rm -f {SNAPSHOT_PATH} {SNAPSHOT_PATH}.part")).quiet())
        .await;
    let (taken_at, etcd, snapshot) = taken?;

    let mut files = BTreeMap::new();
    files.insert(archive::SNAPSHOT.to_string(), snapshot);
    for p in PKI {
        files.insert(format!("pki/{p}"), exec.download(m, &format!("/etc/kubernetes/pki/{p}")).await?);
    }
    let config = exec
        .run(
            m,
            &Script::root(
                "kubeadm's ClusterConfiguration",
                kubectl("-n kube-system get configmap kubeadm-config -o 'jsonpath={.data.ClusterConfiguration}'"),
            )
            .quiet(),
        )
        .await?;
    files.insert("kubeadm/ClusterConfiguration.yaml".to_string(), config.stdout.into_bytes());
    let manifest = Manifest {
        format: archive::FORMAT,
        cluster: spec.name.to_string(),
        taken_at,
        taken_from: m.name.clone(),
        kubernetes_version: kubernetes_version.to_string(),
        endpoint: format!("{}:{}", infra.endpoint.host, infra.endpoint.port),
        etcd,
        files: archive::entries(&files),
    };
    Ok((manifest, files))
}

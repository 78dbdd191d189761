//! kubeadm configuration files, rendered from the model, and the bootstrap secrets.
//!
//! The files are JSON documents separated by `---`: kubeadm reads YAML, JSON is YAML, and no
//! value can break out of its field. The API version follows the Kubernetes version:
//! `kubeadm.k8s.io/v1beta4` from v1.31 (where it became the default), `v1beta3` before; the
//! one visible difference for us is that v1beta4 writes extra arguments as a list of
//! `{name, value}` pairs.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ssh_key::rand_core::{OsRng, RngCore};

use crate::infra::Infrastructure;
use crate::model::{ClusterSpec, Node, NodeRole, TaintEffect};

pub const CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
/// Where the bootstrap keeps its files on a node (root only).
pub const NODE_DIR: &str = "/etc/kubernetes/hacluster";
/// The rendered kubeadm configurations, in `NODE_DIR` (root only: they hold the secrets).
pub const INIT_CONFIG: &str = "/etc/kubernetes/hacluster/init.yaml";
pub const JOIN_CONFIG: &str = "/etc/kubernetes/hacluster/join.yaml";
/// Tokens live 2 h; kubeadm deletes uploaded certificates after 2 h too. Refresh before.
pub const SECRET_TTL_SECS: u64 = 2 * 3600;
pub const REFRESH_AFTER_SECS: u64 = SECRET_TTL_SECS - 15 * 60;

/// The join token and the key that encrypts the uploaded control-plane certificates.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secrets {
    pub token: String,
    pub certificate_key: String,
    /// Unix seconds of the token's creation and of the certificates' last upload.
    pub token_created: u64,
    pub certs_uploaded: u64,
    /// `sha256:<hex>` of the cluster CA's public key, known after `kubeadm init`.
    pub ca_cert_hash: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("token", &"[REDACTED]")
            .field("certificate_key", &"[REDACTED]")
            .field("ca_cert_hash", &self.ca_cert_hash)
            .finish()
    }
}

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    // 256 is not a multiple of 36, so reject the top values to avoid bias.
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        if i == bytes.len() {
            OsRng.fill_bytes(&mut bytes);
            i = 0;
        }
        let b = bytes[i] as usize;
        i += 1;
        if b < limit {
            out.push(alphabet[b % alphabet.len()] as char);
        }
    }
    out
}

/// A bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}` as kubeadm requires.
pub fn new_token() -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    format!("{}.{}", random_from(A, 6), random_from(A, 16))
}

/// A certificate key: 32 random bytes, hex.
pub fn new_certificate_key() -> String {
    random_from(b"0123456789abcdef", 64)
}

/// A bootstrap identity: the cluster's name and 12 random characters (not a secret).
pub fn new_bootstrap_id(cluster: &str) -> String {
    format!("{cluster}/{}", random_from(b"abcdefghijklmnopqrstuvwxyz0123456789", 12))
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What an etcd member's peer URL on `address` contains (`//10.0.0.1:2380`,
/// `//[fd00::1]:2380`), to find a node's member in `etcdctl member list`.
pub fn etcd_peer_marker(address: &str) -> String {
    if address.contains(':') { format!("//[{address}]:2380") } else { format!("//{address}:2380") }
}

/// `host:port` of the API endpoint.
pub fn endpoint(infra: &Infrastructure) -> String {
    let h = &infra.endpoint.host;
    if h.contains(':') { format!("[{h}]:{}", infra.endpoint.port) } else { format!("{h}:{}", infra.endpoint.port) }
}

pub(crate) fn address_of<'a>(infra: &'a Infrastructure, node: &Node) -> &'a str {
    infra.machine(node.name.as_str()).map(|m| m.private_address.as_str()).unwrap_or("")
}

fn v1beta4(spec: &ClusterSpec) -> bool {
    spec.kubernetes.version.kubeadm_api().ends_with("v1beta4")
}

/// Extra arguments: a map in v1beta3, a list of `{name, value}` in v1beta4.
fn args(spec: &ClusterSpec, pairs: &[(&str, String)]) -> Value {
    if v1beta4(spec) {
        Value::Array(pairs.iter().map(|(k, v)| json!({"name": k, "value": v})).collect())
    } else {
        Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), Value::String(v.clone()))).collect())
    }
}

fn taints(node: &Node) -> Value {
    let mut t: Vec<Value> = Vec::new();
    if node.role == NodeRole::ControlPlane {
        t.push(json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}));
    }
    for x in &node.taints {
        let effect = match x.effect {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        };
        let mut v = json!({"key": x.key, "effect": effect});
        if let Some(val) = &x.value {
            v["value"] = json!(val);
        }
        t.push(v);
    }
    Value::Array(t)
}

fn node_registration(spec: &ClusterSpec, infra: &Infrastructure, node: &Node) -> Value {
    let mut kubelet_args = vec![("node-ip", address_of(infra, node).to_string())];
    if !node.labels.is_empty() {
        let labels: Vec<String> = node.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        kubelet_args.push(("node-labels", labels.join(",")));
    }
    let mut reg = json!({
        "name": node.name.as_str(),
        "criSocket": CRI_SOCKET,
        "taints": taints(node),
        "kubeletExtraArgs": args(spec, &kubelet_args),
    });
    if !spec.kubernetes.ignore_preflight_errors.is_empty() {
        reg["ignorePreflightErrors"] = json!(spec.kubernetes.ignore_preflight_errors);
    }
    reg
}

fn docs(d: &[Value]) -> String {
    d.iter().map(|v| serde_json::to_string_pretty(v).expect("JSON")).collect::<Vec<_>>().join("\n---\n") + "\n"
}

/// Subject alternative names of the API server certificate: the endpoint (VIP or load
/// balancer name) and every control plane's address and name.
pub fn cert_sans(spec: &ClusterSpec, infra: &Infrastructure) -> Vec<String> {
    let mut sans = vec![infra.endpoint.host.clone()];
    if let Some(h) = spec.endpoint.host() {
        sans.push(h);
    }
    for n in &spec.control_planes {
        sans.push(address_of(infra, n).to_string());
        sans.push(n.name.to_string());
    }
    sans.push("127.0.0.1".into());
    sans.retain(|s| !s.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    sans.retain(|s| seen.insert(s.clone()));
    sans
}

/// InitConfiguration + ClusterConfiguration + KubeletConfiguration for the first control plane.
pub fn init_config(spec: &ClusterSpec, infra: &Infrastructure, secrets: &Secrets) -> String {
    let api = spec.kubernetes.version.kubeadm_api();
    let node = spec.init_node();
    let init = json!({
        "apiVersion": api,
        "kind": "InitConfiguration",
        "bootstrapTokens": [{
            "token": secrets.token,
            "ttl": "2h0m0s",
            "usages": ["signing", "authentication"],
            "groups": ["system:bootstrappers:kubeadm:default-node-token"],
        }],
        "certificateKey": secrets.certificate_key,
        "localAPIEndpoint": {"advertiseAddress": address_of(infra, node), "bindPort": spec.endpoint.port()},
        "nodeRegistration": node_registration(spec, infra, node),
    });
    let mut cluster = json!({
        "apiVersion": api,
        "kind": "ClusterConfiguration",
        "clusterName": spec.name.as_str(),
        "kubernetesVersion": spec.kubernetes.version.to_string(),
        "controlPlaneEndpoint": endpoint(infra),
        "networking": {
            "podSubnet": spec.kubernetes.pod_subnet.to_string(),
            "serviceSubnet": spec.kubernetes.service_subnet.to_string(),
            "dnsDomain": "cluster.local",
        },
        "apiServer": {"certSANs": cert_sans(spec, infra)},
    });
    if let Some(r) = &spec.kubernetes.image_repository {
        cluster["imageRepository"] = json!(r);
    }
    let mut documents = vec![init, cluster, kubelet_config(spec)];
    documents.extend(kube_proxy_config(spec));
    docs(&documents)
}

/// The KubeProxyConfiguration kubeadm gives kube-proxy, when the config sets any of its fields
/// (otherwise kubeadm's own defaults, and no document).
pub fn kube_proxy_config(spec: &ClusterSpec) -> Option<Value> {
    if spec.kubernetes.kube_proxy.is_empty() {
        return None;
    }
    let mut proxy = json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
    });
    for (k, v) in &spec.kubernetes.kube_proxy {
        proxy[k] = v.clone();
    }
    Some(proxy)
}

/// The KubeletConfiguration kubeadm distributes to every node: the systemd cgroup driver
/// (containerd is configured to match), then the config's own fields, which win.
pub fn kubelet_config(spec: &ClusterSpec) -> Value {
    let mut kubelet = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
    });
    for (k, v) in &spec.kubernetes.kubelet {
        kubelet[k] = v.clone();
    }
    kubelet
}

/// Whether the kubelet, and so containerd, uses the systemd cgroup driver.
pub fn systemd_cgroups(spec: &ClusterSpec) -> bool {
    kubelet_config(spec)["cgroupDriver"] != "cgroupfs"
}

/// JoinConfiguration for a control plane (with the certificate key) or a worker.
pub fn join_config(spec: &ClusterSpec, infra: &Infrastructure, node: &Node, secrets: &Secrets) -> String {
    let api = spec.kubernetes.version.kubeadm_api();
    let mut join = json!({
        "apiVersion": api,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": endpoint(infra),
                "token": secrets.token,
                "caCertHashes": [secrets.ca_cert_hash.clone().unwrap_or_default()],
            },
        },
        "nodeRegistration": node_registration(spec, infra, node),
    });
    if node.role == NodeRole::ControlPlane {
        join["controlPlane"] = json!({
            "localAPIEndpoint": {"advertiseAddress": address_of(infra, node), "bindPort": spec.endpoint.port()},
            "certificateKey": secrets.certificate_key,
        });
    }
    docs(&[join])
}

/// The CA hash from kubeadm's printed join command (`--discovery-token-ca-cert-hash sha256:…`).
pub fn parse_ca_hash(output: &str) -> Option<String> {
    let i = output.find("sha256:")?;
    let hex: String = output[i + 7..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    (hex.len() == 64).then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_etcd_member_is_found_by_its_peer_url_and_no_other() {
        // `etcdctl member list` lines: ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER.
        let peers =
            ["https://10.0.0.11:2380", "https://10.0.0.1:2380", "https://[fd00::1]:2380", "https://[fd00::11]:2380"];
        let found = |addr: &str| -> Vec<&str> {
            let m = etcd_peer_marker(addr);
            peers.iter().copied().filter(|p| p.contains(&m)).collect()
        };
        assert_eq!(found("10.0.0.1"), ["https://10.0.0.1:2380"]);
        assert_eq!(found("10.0.0.11"), ["https://10.0.0.11:2380"]);
        assert_eq!(found("fd00::1"), ["https://[fd00::1]:2380"]);
        assert!(found("10.0.0.2").is_empty());
    }

    #[test]
    fn config_files_live_in_the_node_dir() {
        assert_eq!(INIT_CONFIG, format!("{NODE_DIR}/init.yaml"));
        assert_eq!(JOIN_CONFIG, format!("{NODE_DIR}/join.yaml"));
    }

    #[test]
    fn tokens_and_keys_have_kubeadm_shapes() {
        let t = new_token();
        let (a, b) = t.split_once('.').unwrap();
        assert_eq!((a.len(), b.len()), (6, 16));
        assert!(t.chars().all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit()));
        let k = new_certificate_key();
        assert_eq!(k.len(), 64);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn ca_hash_from_join_command() {
        let out = "kubeadm join lb:6443 --token abcdef.0123456789abcdef \\\n    --discovery-token-ca-cert-hash sha256:1cfc9754212d1769e92d661dcd86298a1897e328e094efd6a447aa7ca24f9743 \\\n";
        assert_eq!(
            parse_ca_hash(out).unwrap(),
            "sha256:1cfc9754212d1769e92d661dcd86298a1897e328e094efd6a447aa7ca24f9743"
        );
        assert_eq!(parse_ca_hash("no hash here"), None);
    }
}

//! The validated model of a stacked-etcd HA cluster: typed, complete (defaults applied), and
//! derived only from a config that passed validation. Everything downstream — plans, backend
//! plugins, the bootstrap — reads this, never the YAML.

pub mod aws;
pub mod libvirt_uri;
pub mod placement;
pub mod ports;
pub mod quorum;
pub mod version;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use aws::{AwsSpec, NlbScheme};
pub use placement::Placement;
pub use ports::{PortMatrix, PortRule};
pub use quorum::Quorum;
pub use version::KubeVersion;

/// What a node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs kube-apiserver, the scheduler, the controller manager and an etcd member.
    ControlPlane,
    Worker,
    /// Runs HAProxy (and keepalived with a VIP) in front of the API servers.
    LoadBalancer,
}

impl NodeRole {
    /// The Kubitect name used in configs and VM names.
    pub fn config_name(self) -> &'static str {
        match self {
            NodeRole::ControlPlane => "master",
            NodeRole::Worker => "worker",
            NodeRole::LoadBalancer => "lb",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRole::ControlPlane => "control plane",
            NodeRole::Worker => "worker",
            NodeRole::LoadBalancer => "load balancer",
        })
    }
}

/// A node's name, `<cluster>-<role>-<id>`: its VM name, hostname and Kubernetes node name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NodeName(String);

impl NodeName {
    pub fn new(cluster: &ClusterName, role: NodeRole, id: &str) -> Self {
        NodeName(format!("{}-{}-{}", cluster.0, role.config_name(), id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cluster name: a DNS label, used as the prefix of every resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClusterName(String);

impl ClusterName {
    /// A DNS label of at most 40 characters (leaving room for `-worker-<id>` suffixes within
    /// the 63-character hostname limit).
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.as_bytes()[0].is_ascii_lowercase();
        ok.then(|| ClusterName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A unicast MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return None;
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return None;
            }
            *o = u8::from_str_radix(p, 16).ok()?;
        }
        Some(MacAddr(out))
    }

    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Sizes of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub cpu: u32,
    pub ram_gib: u32,
    pub main_disk_gib: u32,
}

impl Resources {
    pub const DEFAULT: Resources = Resources { cpu: 2, ram_gib: 4, main_disk_gib: 32 };
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataDisk {
    pub name: String,
    /// A data pool of the node's host, or `main`.
    pub pool: String,
    pub size_gib: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

impl Taint {
    /// `key=value:Effect` or `key:Effect`, as `kubectl taint` writes them.
    pub fn parse(s: &str) -> Option<Self> {
        let (kv, effect) = s.rsplit_once(':')?;
        let effect = match effect {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            _ => return None,
        };
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        if key.is_empty() {
            return None;
        }
        Some(Taint { key: key.to_string(), value, effect })
    }
}

/// One machine of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: NodeName,
    pub role: NodeRole,
    /// The id from the config (`instances[].id`).
    pub id: String,
    /// Hypervisor host (libvirt), after applying the default-host rule.
    pub host: Option<String>,
    /// Static address; `None` means the backend assigns one (DHCP, cloud).
    pub address: Option<Ipv4Addr>,
    pub mac: Option<MacAddr>,
    pub resources: Resources,
    pub data_disks: Vec<DataDisk>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// VRRP priority (load balancers with a VIP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Where this node fails together with others: its host, or its availability zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_domain: Option<String>,
}

/// The one stable address of the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Endpoint {
    /// A virtual IP that keepalived moves between the load balancers (VRRP).
    Vip { address: Ipv4Addr, port: u16, virtual_router_id: u8 },
    /// The address of the only load balancer.
    LoadBalancer { node: NodeName, address: Option<Ipv4Addr>, port: u16 },
    /// A cloud load balancer; its DNS name is known once the backend has created it.
    CloudLoadBalancer { dns_name: Option<String>, port: u16 },
    /// A single control plane with nothing in front of it (no HA).
    ControlPlane { node: NodeName, address: Option<Ipv4Addr>, port: u16 },
}

pub const API_PORT: u16 = 6443;

impl Endpoint {
    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Vip { port, .. }
            | Endpoint::LoadBalancer { port, .. }
            | Endpoint::CloudLoadBalancer { port, .. }
            | Endpoint::ControlPlane { port, .. } => *port,
        }
    }

    /// The host part of the endpoint, when it is already known.
    pub fn host(&self) -> Option<String> {
        match self {
            Endpoint::Vip { address, .. } => Some(address.to_string()),
            Endpoint::LoadBalancer { address, .. } | Endpoint::ControlPlane { address, .. } => {
                address.map(|a| a.to_string())
            }
            Endpoint::CloudLoadBalancer { dns_name, .. } => dns_name.clone(),
        }
    }

    /// Whether the endpoint survives the loss of any single machine.
    pub fn is_highly_available(&self) -> bool {
        matches!(self, Endpoint::Vip { .. } | Endpoint::CloudLoadBalancer { .. })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Vip { address, port, virtual_router_id } => {
                write!(f, "virtual IP {address}:{port} (keepalived VRRP, router id {virtual_router_id})")
            }
            Endpoint::LoadBalancer { node, address, port } => match address {
                Some(a) => write!(f, "load balancer {node} at {a}:{port}"),
                None => write!(f, "load balancer {node} (address assigned at provisioning):{port}"),
            },
            Endpoint::CloudLoadBalancer { dns_name, port } => match dns_name {
                Some(d) => write!(f, "load balancer {d}:{port}"),
                None => {
                    write!(f, "load balancer provided by the backend (address known after provisioning), TCP {port}")
                }
            },
            Endpoint::ControlPlane { node, address, port } => match address {
                Some(a) => write!(f, "control plane {node} at {a}:{port} (single node, no load balancer)"),
                None => write!(f, "control plane {node}:{port} (single node, no load balancer)"),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Nat,
    Route,
    Bridge,
    Isolated,
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkMode::Nat => "nat",
            NetworkMode::Route => "route",
            NetworkMode::Bridge => "bridge",
            NetworkMode::Isolated => "isolated",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    pub mode: NetworkMode,
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub bridge: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostConnection {
    Local,
    Remote,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSpec {
    pub name: String,
    pub default: bool,
    pub connection: HostConnection,
    pub user: Option<String>,
    pub address: Option<String>,
    pub ssh_port: u16,
    pub ssh_keyfile: Option<String>,
    pub main_pool_path: String,
    /// Data pools: name → path.
    pub data_pools: BTreeMap<String, String>,
    /// An explicit libvirt URI from the config.
    pub uri: Option<String>,
}

impl HostSpec {
    /// The libvirt URI of this host.
    pub fn libvirt_uri(&self) -> String {
        if let Some(u) = &self.uri {
            return u.clone();
        }
        match self.connection {
            HostConnection::Local => "qemu:///system".to_string(),
            HostConnection::Remote => libvirt_uri::remote(
                self.user.as_deref().unwrap_or("root"),
                self.address.as_deref().unwrap_or("localhost"),
                self.ssh_port,
                self.ssh_keyfile.as_deref(),
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkPlugin {
    Calico,
    Cilium,
    Flannel,
    /// kube-router for pod routing (BGP between the nodes) and network policies; kube-proxy
    /// keeps the services.
    KubeRouter,
}

impl fmt::Display for NetworkPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkPlugin::Calico => "calico",
            NetworkPlugin::Cilium => "cilium",
            NetworkPlugin::Flannel => "flannel",
            NetworkPlugin::KubeRouter => "kube-router",
        })
    }
}

/// Where a node's containerd package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerdSource {
    /// `containerd.io` (2.x) from Docker's apt repository.
    Docker,
    /// `containerd.io` from `<packageMirror>/containerd/deb`.
    Mirror,
    /// The distribution's own `containerd`.
    Distro,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerdSpec {
    pub source: ContainerdSource,
    pub restrict_oom_score_adj: bool,
}

/// A registry whose images containerd pulls from a mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryMirror {
    /// `host[:port]`, as image names spell it.
    pub registry: String,
    /// `scheme://host[:port][/path]`, parsed and normalized.
    pub endpoint: String,
    pub plain_http: bool,
    /// The CA file on the operator's machine, read when the nodes are prepared.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesSpec {
    pub version: KubeVersion,
    pub network_plugin: NetworkPlugin,
    pub dns_mode: String,
    pub pod_subnet: Ipv4Net,
    pub service_subnet: Ipv4Net,
    pub package_mirror: Option<String>,
    /// kubeadm's `imageRepository`; `None` is kubeadm's default (registry.k8s.io).
    pub image_repository: Option<String>,
    pub registry_mirrors: Vec<RegistryMirror>,
    pub containerd: ContainerdSpec,
    /// kubeadm preflight checks ignored on every node.
    pub ignore_preflight_errors: Vec<String>,
    /// KubeletConfiguration fields set on every node.
    pub kubelet: BTreeMap<String, serde_json::Value>,
    /// KubeProxyConfiguration fields (none: kubeadm's defaults).
    pub kube_proxy: BTreeMap<String, serde_json::Value>,
    /// Workers drained and upgraded at once by `hacluster upgrade` (at least 1).
    pub max_unavailable_workers: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardTarget {
    Workers,
    Masters,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardPort {
    pub name: String,
    pub port: u16,
    pub target_port: u16,
    pub target: ForwardTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeTemplate {
    pub user: String,
    pub private_key_path: Option<String>,
    pub update_on_boot: bool,
    pub distro: String,
    pub network_interface: String,
    pub image_source: Option<String>,
    pub cpu_mode: String,
    pub dns: Vec<std::net::IpAddr>,
}

/// What the chosen backend can do, as far as validation needs to know. Built-in backends have
/// fixed profiles; plugin backends declare theirs (`info()` in the plugin contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendProfile {
    pub name: String,
    /// Provides its own load balancer for the API (so no LB VMs or VIP are needed).
    pub cloud_lb: bool,
    /// Places machines on the config's `hosts`.
    pub uses_hosts: bool,
}

impl BackendProfile {
    pub fn libvirt() -> Self {
        BackendProfile { name: "libvirt".into(), cloud_lb: false, uses_hosts: true }
    }

    pub fn aws() -> Self {
        BackendProfile { name: "aws".into(), cloud_lb: true, uses_hosts: false }
    }

    /// Any other backend: machines and endpoint come from its own config section.
    pub fn external(name: &str) -> Self {
        BackendProfile { name: name.into(), cloud_lb: false, uses_hosts: false }
    }

    pub fn builtin(name: &str) -> Self {
        match name {
            "libvirt" => Self::libvirt(),
            "aws" => Self::aws(),
            other => Self::external(other),
        }
    }
}

/// The validated cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub name: ClusterName,
    pub backend: BackendProfile,
    pub hosts: Vec<HostSpec>,
    pub network: Option<NetworkSpec>,
    pub node_template: NodeTemplate,
    /// In join order: the first runs `kubeadm init`.
    pub control_planes: Vec<Node>,
    pub workers: Vec<Node>,
    pub load_balancers: Vec<Node>,
    pub forward_ports: Vec<ForwardPort>,
    pub endpoint: Endpoint,
    pub quorum: Quorum,
    pub kubernetes: KubernetesSpec,
    pub aws: Option<AwsSpec>,
    /// Config sections of other backends, passed to them unchanged.
    pub backend_sections: BTreeMap<String, serde_json::Value>,
}

/// The order in which nodes join: control planes strictly one at a time (parallel etcd member
/// additions can break quorum), then all workers at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinOrder {
    pub init: NodeName,
    pub control_planes_serial: Vec<NodeName>,
    pub workers_parallel: Vec<NodeName>,
}

impl ClusterSpec {
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.control_planes.iter().chain(&self.workers).chain(&self.load_balancers)
    }

    /// The control plane that runs `kubeadm init`: the first one listed.
    pub fn init_node(&self) -> &Node {
        &self.control_planes[0]
    }

    pub fn join_order(&self) -> JoinOrder {
        JoinOrder {
            init: self.init_node().name.clone(),
            control_planes_serial: self.control_planes[1..].iter().map(|n| n.name.clone()).collect(),
            workers_parallel: self.workers.iter().map(|n| n.name.clone()).collect(),
        }
    }

    pub fn port_matrix(&self) -> PortMatrix {
        PortMatrix::for_cluster(self)
    }

    pub fn placement(&self) -> Placement {
        Placement::of(&self.control_planes, self.quorum)
    }
}

//! The cluster config as written: Kubitect-shaped, plain values (strings, numbers).
//!
//! These types are the single source of the published JSON Schema (`hacluster schema`) and of
//! the structural check that runs before anything else. What the values *mean* (addresses,
//! CIDRs, versions, quorum) is decided by `validate`, which turns this into the typed model.
//! Doc comments on fields become the schema's descriptions, shown by editors.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A hacluster cluster config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawConfig {
    /// Hypervisor hosts (libvirt backend). Nodes are placed on the `default` host unless their
    /// `host` says otherwise. Cloud backends ignore this list.
    #[serde(default)]
    pub hosts: Vec<Host>,
    pub cluster: Cluster,
    #[serde(default)]
    pub kubernetes: Kubernetes,
    /// Per-backend settings; `aws` is typed here, other (third-party) backends receive their
    /// own section as-is and validate it themselves.
    #[serde(default)]
    pub backends: Backends,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Host {
    /// Unique host name, referenced by node `host` affinity.
    pub name: String,
    /// Nodes without a `host` go to the default host (or the first host if none is default).
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub connection: Connection,
    /// Directory of the host's main storage pool. Default: /var/lib/libvirt/images/
    pub main_resource_pool_path: Option<String>,
    /// Extra storage pools on this host, usable by data disks.
    #[serde(default)]
    pub data_resource_pools: Vec<DataResourcePool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection {
    /// `local` (this machine, qemu:///system) or `remote` (qemu+ssh). Default: local.
    #[serde(rename = "type", default)]
    pub kind: ConnectionType,
    /// SSH user on a remote host.
    pub user: Option<String>,
    /// Address of a remote host.
    pub ip: Option<String>,
    pub ssh: Option<ConnectionSsh>,
    /// libvirt URI, instead of the one derived from `type` (qemu:///system) or user/ip
    /// (qemu+ssh://USER@IP:PORT/system): e.g. `qemu:///session`, or `test:///default` for
    /// libvirt's in-memory test driver.
    pub uri: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionType {
    #[default]
    Local,
    /// Same as `local` (Kubitect accepts both).
    Localhost,
    Remote,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionSsh {
    /// Private key for the remote host (password-less).
    pub keyfile: Option<String>,
    /// SSH port of the remote host. Default: 22.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
    /// Kubitect's switch for the remote host's SSH key check. hacluster always checks it
    /// (against known_hosts): only `true` is accepted.
    pub verify: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataResourcePool {
    pub name: String,
    /// Default: /var/lib/libvirt/images/
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// Cluster name: a DNS label (lowercase letters, digits, `-`), prefix of every resource.
    pub name: String,
    pub network: Option<Network>,
    #[serde(default)]
    pub node_template: NodeTemplate,
    pub nodes: Nodes,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    /// nat, route, bridge (existing host bridge; needed for several hosts) or isolated
    /// (no forwarding at all). Default: nat.
    #[serde(default)]
    pub mode: NetworkMode,
    /// Node network, e.g. 192.168.113.0/24.
    pub cidr: String,
    /// Default: the first address of the CIDR.
    pub gateway: Option<String>,
    /// Name of the pre-existing host bridge (bridge mode), e.g. br0.
    pub bridge: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    Nat,
    Route,
    Bridge,
    Isolated,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTemplate {
    /// Login user created on every node. Default: k8s.
    pub user: Option<String>,
    /// Upgrade OS packages on first boot. Default: true.
    pub update_on_boot: Option<bool>,
    #[serde(default)]
    pub ssh: NodeTemplateSsh,
    #[serde(default)]
    pub os: Os,
    /// libvirt CPU mode. Default: custom.
    pub cpu_mode: Option<CpuMode>,
    /// Virtual CPUs of every VM unless its role's `default` or the instance says otherwise.
    /// Default: 2.
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: Option<i64>,
    /// Memory in GiB of every VM, with the same precedence. Default: 4.
    #[schemars(range(min = 1, max = 65536))]
    pub ram: Option<i64>,
    /// Main (OS) disk in GiB of every VM, with the same precedence. Default: 32.
    #[schemars(range(min = 1, max = 65536))]
    pub main_disk_size: Option<i64>,
    /// DNS servers for the nodes.
    #[serde(default)]
    pub dns: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTemplateSsh {
    /// Private key used to log in to the nodes; its `.pub` is installed on them.
    /// Default: ~/.ssh/id_ed25519 (then ~/.ssh/id_rsa).
    pub private_key_path: Option<String>,
    /// Kubitect compatibility; hacluster always pins the host keys it generated and writes
    /// them to the cluster's own known_hosts file.
    pub add_to_known_hosts: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Os {
    /// Default: ubuntu.
    pub distro: Option<OsDistro>,
    /// Name of the primary NIC inside the guest. Default: ens3.
    pub network_interface: Option<String>,
    /// URL or local path of the base image. Default: the distro's cloud image.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OsDistro {
    Ubuntu,
    Ubuntu20,
    Ubuntu22,
    Ubuntu24,
    Debian,
    Debian11,
    Debian12,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CpuMode {
    #[serde(rename = "custom")]
    Custom,
    #[serde(rename = "host-passthrough")]
    HostPassthrough,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Nodes {
    pub load_balancer: Option<LoadBalancer>,
    #[serde(default)]
    pub master: NodeGroup,
    #[serde(default)]
    pub worker: NodeGroup,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    /// Virtual IP held by the active load balancer (VRRP); required with 2+ instances.
    pub vip: Option<String>,
    /// VRRP virtual router id (1–255), unique on the network. Default: 51.
    pub virtual_router_id: Option<i64>,
    #[serde(default)]
    pub default: Resources,
    #[serde(default)]
    pub instances: Vec<LbInstance>,
    /// Extra ports the load balancers forward (e.g. ingress 80/443 to workers).
    #[serde(default)]
    pub forward_ports: Vec<ForwardPort>,
}

/// Sizes of a virtual machine. Defaults: 2 vCPU, 4 GiB RAM, 32 GiB main disk.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Virtual CPUs.
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: Option<i64>,
    /// Memory in GiB.
    #[schemars(range(min = 1, max = 65536))]
    pub ram: Option<i64>,
    /// Main (OS) disk in GiB.
    #[schemars(range(min = 1, max = 65536))]
    pub main_disk_size: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbInstance {
    /// Instance id, unique among load balancers; the VM is named `<cluster>-lb-<id>`.
    pub id: String,
    /// Host affinity: name of a host in `hosts`.
    pub host: Option<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: Option<i64>,
    #[schemars(range(min = 1, max = 65536))]
    pub ram: Option<i64>,
    #[schemars(range(min = 1, max = 65536))]
    pub main_disk_size: Option<i64>,
    /// VRRP priority (0–255): the highest live instance holds the VIP. Default: 200 for the
    /// first instance, 10 less for each next one.
    pub priority: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardPort {
    pub name: String,
    /// Port the load balancer listens on.
    pub port: i64,
    /// Port on the targets. Default: `port`.
    pub target_port: Option<i64>,
    /// workers (default), masters or all.
    pub target: Option<ForwardTarget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForwardTarget {
    Workers,
    Masters,
    All,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroup {
    #[serde(default)]
    pub default: NodeDefault,
    #[serde(default)]
    pub instances: Vec<NodeInstance>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeDefault {
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: Option<i64>,
    #[schemars(range(min = 1, max = 65536))]
    pub ram: Option<i64>,
    #[schemars(range(min = 1, max = 65536))]
    pub main_disk_size: Option<i64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints as `key=value:Effect` or `key:Effect`.
    #[serde(default)]
    pub taints: Vec<String>,
    /// Data disks given to every node of the group (in addition to per-instance ones).
    #[serde(default)]
    pub data_disks: Vec<DataDisk>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeInstance {
    /// Instance id, unique in its group; the VM is named `<cluster>-master-<id>` or
    /// `<cluster>-worker-<id>`.
    pub id: String,
    /// Host affinity: name of a host in `hosts`.
    pub host: Option<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: Option<i64>,
    #[schemars(range(min = 1, max = 65536))]
    pub ram: Option<i64>,
    #[schemars(range(min = 1, max = 65536))]
    pub main_disk_size: Option<i64>,
    #[serde(default)]
    pub data_disks: Vec<DataDisk>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataDisk {
    pub name: String,
    /// A data pool of the node's host, or `main`. Default: main.
    pub pool: Option<String>,
    /// Size in GiB.
    #[schemars(range(min = 1, max = 1048576))]
    pub size: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kubernetes {
    /// Kubernetes version, e.g. v1.37.2 (the default).
    pub version: Option<String>,
    /// Default: calico.
    pub network_plugin: Option<NetworkPlugin>,
    /// Default: coredns.
    pub dns_mode: Option<DnsMode>,
    /// Pod network. Default: 10.244.0.0/16.
    pub pod_subnet: Option<String>,
    /// Service network. Default: 10.96.0.0/12.
    pub service_subnet: Option<String>,
    /// Package mirror base URL for air-gapped installs: Kubernetes packages from
    /// `<mirror>/v1.MINOR/deb` (pkgs.k8s.io's layout), containerd from `<mirror>/containerd/deb`,
    /// network plugin manifests from `<mirror>/cni/<plugin>.yaml`.
    pub package_mirror: Option<String>,
    /// Where kubeadm and the kubelet pull the control-plane images from (kubeadm's
    /// `imageRepository`), e.g. `registry.example.com:5000/k8s`. Default: registry.k8s.io.
    pub image_repository: Option<String>,
    /// Registry mirrors for containerd on every node (a hosts.toml per registry): images of
    /// `registry` are pulled from `endpoint`. The network plugin's images too.
    #[serde(default)]
    pub registry_mirrors: Vec<RegistryMirror>,
    /// The container runtime.
    #[serde(default)]
    pub containerd: Containerd,
    /// kubeadm preflight checks to ignore, by kubeadm's own names (e.g. `SystemVerification` on
    /// a machine with cgroups v1), for `kubeadm init` and every `kubeadm join`. Default: none.
    #[serde(default)]
    pub ignore_preflight_errors: Vec<String>,
    /// KubeletConfiguration (kubelet.config.k8s.io/v1beta1) fields for every node, e.g.
    /// `failCgroupV1: false`. They go into the KubeletConfiguration kubeadm distributes.
    #[serde(default)]
    pub kubelet: BTreeMap<String, serde_json::Value>,
    /// KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) fields, e.g.
    /// `conntrack: {maxPerCore: 0}` to leave the machine's conntrack table size alone. They go
    /// into the configuration kubeadm gives kube-proxy. Default: none (kubeadm's defaults).
    #[serde(default)]
    pub kube_proxy: BTreeMap<String, serde_json::Value>,
    /// How `hacluster upgrade` rolls a new `version` out.
    #[serde(default)]
    pub upgrade: Upgrade,
    /// Kubitect compatibility only: hacluster runs kubeadm itself. Ignored with a warning.
    pub kubespray: Option<serde_json::Value>,
    /// Kubitect compatibility only. Ignored with a warning.
    pub manager: Option<serde_json::Value>,
    /// Kubitect compatibility only. Ignored with a warning.
    pub other: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upgrade {
    /// Workers drained and upgraded at once (control planes always go one at a time, for
    /// etcd's quorum). Default: 1.
    pub max_unavailable_workers: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryMirror {
    /// The registry as image names spell it: `docker.io`, `registry.k8s.io`,
    /// `registry.example.com:5000`.
    pub registry: String,
    /// The mirror's URL, e.g. `https://mirror.example.com` (`http://` needs `plainHttp: true`).
    pub endpoint: String,
    /// Pull over plain HTTP: required for an `http://` endpoint, so none is used by accident.
    pub plain_http: Option<bool>,
    /// PEM file on this machine with the CA of the mirror's certificate; copied to every node.
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Containerd {
    /// Where containerd comes from: `docker` (the `containerd.io` 2.x package from
    /// download.docker.com), `mirror` (`containerd.io` from `<packageMirror>/containerd/deb`) or
    /// `distro` (the OS's own `containerd`: 1.6 on Debian 12, which lacks the CRI calls newer
    /// kubelets use). Default: `mirror` with a packageMirror, else `docker`.
    pub source: Option<ContainerdSource>,
    /// Leave processes' OOM score alone (CRI `restrict_oom_score_adj`, in a drop-in under
    /// /etc/containerd/conf.d): for machines whose containers cannot lower it (no
    /// CAP_SYS_RESOURCE: nested containers, some sandboxes). Default: false.
    pub restrict_oom_score_adj: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContainerdSource {
    Docker,
    Mirror,
    Distro,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkPlugin {
    Calico,
    Cilium,
    Flannel,
    KubeRouter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DnsMode {
    Coredns,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backends {
    pub aws: Option<Aws>,
    /// Sections of other backends, handed to them unchanged.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Aws {
    /// AWS region, e.g. eu-central-1.
    pub region: String,
    /// Zones to spread nodes over; control planes go round-robin so that losing one zone
    /// keeps etcd quorum when there are 3 or more.
    #[serde(default)]
    pub availability_zones: Vec<String>,
    #[serde(default)]
    pub instance_types: AwsInstanceTypes,
    /// AMI id for all nodes (Ubuntu or Debian with cloud-init).
    pub ami: Option<String>,
    /// Root volume size in GiB. Default: 30.
    #[schemars(range(min = 8, max = 16384))]
    pub root_volume_size: Option<i64>,
    #[serde(default)]
    pub vpc: AwsVpc,
    /// Put nodes in private subnets (no public IPs; you need a route in). Default: false.
    pub private_subnets: Option<bool>,
    /// internet-facing or internal. Default: internet-facing.
    pub nlb_scheme: Option<NlbScheme>,
    /// CIDRs allowed to reach SSH (22) and the API (6443).
    #[serde(default)]
    pub admin_cidrs: Vec<String>,
    /// CIDRs allowed to reach NodePorts (30000–32767). Default: the VPC CIDR.
    #[serde(default)]
    pub node_port_cidrs: Vec<String>,
    /// Override of the AWS endpoint (e.g. a local test server). Default: the region's endpoints.
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsInstanceTypes {
    /// Default: t3.medium.
    pub control_plane: Option<String>,
    /// Default: t3.large.
    pub worker: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsVpc {
    /// CIDR of a new VPC. Default: 10.0.0.0/16.
    pub cidr: Option<String>,
    /// Use this existing VPC instead of creating one.
    pub id: Option<String>,
    /// Existing subnets to use (with `id`), one per availability zone.
    #[serde(default)]
    pub subnet_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NlbScheme {
    InternetFacing,
    Internal,
}

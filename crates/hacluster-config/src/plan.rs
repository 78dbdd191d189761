//! What `up` will do with a validated cluster, in order: provisioning through the backend,
//! then the kubeadm bootstrap that is the same for every backend. `hacluster plan` prints
//! this; the bootstrap executes the same step list.

use serde::Serialize;

use crate::model::placement::Placement;
use crate::model::{ClusterSpec, Endpoint, JoinOrder, NodeName, NodeRole, PortMatrix, Resources};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Provision,
    WaitForSsh,
    PrepareNodes,
    CheckEndpoint,
    KubeadmInit,
    InstallCni,
    JoinControlPlane,
    JoinWorkers,
    WaitReady,
    WriteKubeconfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub kind: StepKind,
    pub description: String,
    pub targets: Vec<NodeName>,
    /// Whether the targets are worked on at the same time.
    pub parallel: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuorumSummary {
    pub members: u32,
    pub quorum: u32,
    pub tolerated_failures: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedNode {
    pub name: NodeName,
    pub role: NodeRole,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::Ipv4Addr>,
    pub resources: Resources,
    /// The machine as the backend will create it, e.g. `t3.medium, 40 GiB root volume`.
    pub machine: String,
    pub data_disks: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub cluster: String,
    pub backend: String,
    pub kubernetes_version: String,
    pub endpoint: Endpoint,
    pub control_plane: QuorumSummary,
    pub placement: Placement,
    pub nodes: Vec<PlannedNode>,
    pub join_order: JoinOrder,
    pub steps: Vec<Step>,
    pub ports: PortMatrix,
}

/// How the backend sizes a node: cloud instance types, or the config's VM sizes.
fn machine(c: &ClusterSpec, n: &crate::model::Node) -> String {
    match (&c.aws, c.backend.name.as_str()) {
        (Some(aws), "aws") => {
            let t = if n.role == NodeRole::ControlPlane { &aws.control_plane_type } else { &aws.worker_type };
            format!("{t}, {} GiB root volume", aws.root_volume_gib)
        }
        _ => {
            format!("{} vCPU, {} GiB RAM, {} GiB disk", n.resources.cpu, n.resources.ram_gib, n.resources.main_disk_gib)
        }
    }
}

impl Plan {
    pub fn for_cluster(c: &ClusterSpec) -> Plan {
        let names = |role: NodeRole| -> Vec<NodeName> {
            c.nodes().filter(|n| n.role == role).map(|n| n.name.clone()).collect()
        };
        let kube_nodes: Vec<NodeName> = c.control_planes.iter().chain(&c.workers).map(|n| n.name.clone()).collect();
        let all: Vec<NodeName> = c.nodes().map(|n| n.name.clone()).collect();
        let order = c.join_order();
        let v = c.kubernetes.version;
        let mut steps = vec![
            Step {
                kind: StepKind::Provision,
                description: format!(
                    "create the infrastructure with the {} backend: {} machine(s){}",
                    c.backend.name,
                    all.len(),
                    match &c.endpoint {
                        Endpoint::CloudLoadBalancer { .. } => " and the backend's load balancer on TCP 6443",
                        Endpoint::Vip { .. } => ", load balancers running HAProxy and keepalived",
                        Endpoint::LoadBalancer { .. } => ", a load balancer running HAProxy",
                        Endpoint::ControlPlane { .. } => "",
                    }
                ),
                targets: all.clone(),
                parallel: true,
            },
            Step {
                kind: StepKind::WaitForSsh,
                description: "wait for SSH on every machine, verifying the pinned host keys".into(),
                targets: all,
                parallel: true,
            },
            Step {
                kind: StepKind::PrepareNodes,
                description: format!(
                    "prepare nodes: swap off, overlay and br_netfilter, sysctls, containerd (systemd cgroups), kubeadm/kubelet/kubectl {v} held"
                ),
                targets: kube_nodes,
                parallel: true,
            },
            Step {
                kind: StepKind::CheckEndpoint,
                description: format!("check the API endpoint answers on TCP {}", c.endpoint.port()),
                targets: vec![order.init.clone()],
                parallel: false,
            },
            Step {
                kind: StepKind::KubeadmInit,
                description: format!(
                    "kubeadm init on {} with controlPlaneEndpoint at the endpoint, uploadCerts ({} config)",
                    order.init,
                    v.kubeadm_api()
                ),
                targets: vec![order.init.clone()],
                parallel: false,
            },
            Step {
                kind: StepKind::InstallCni,
                description: format!(
                    "install the {} CNI for pods in {}",
                    c.kubernetes.network_plugin, c.kubernetes.pod_subnet
                ),
                targets: vec![order.init.clone()],
                parallel: false,
            },
        ];
        for cp in &order.control_planes_serial {
            steps.push(Step {
                kind: StepKind::JoinControlPlane,
                description: format!("join {cp} as a control plane and wait for its etcd member to be healthy"),
                targets: vec![cp.clone()],
                parallel: false,
            });
        }
        if !order.workers_parallel.is_empty() {
            steps.push(Step {
                kind: StepKind::JoinWorkers,
                description: format!("join {} worker(s) at once", order.workers_parallel.len()),
                targets: order.workers_parallel.clone(),
                parallel: true,
            });
        }
        steps.push(Step {
            kind: StepKind::WaitReady,
            description: "wait until every node is Ready".into(),
            targets: names(NodeRole::ControlPlane).into_iter().chain(names(NodeRole::Worker)).collect(),
            parallel: true,
        });
        steps.push(Step {
            kind: StepKind::WriteKubeconfig,
            description: "write the admin kubeconfig (mode 0600) with the endpoint as server".into(),
            targets: Vec::new(),
            parallel: false,
        });

        Plan {
            cluster: c.name.to_string(),
            backend: c.backend.name.clone(),
            kubernetes_version: v.to_string(),
            endpoint: c.endpoint.clone(),
            control_plane: QuorumSummary {
                members: c.quorum.members(),
                quorum: c.quorum.size(),
                tolerated_failures: c.quorum.tolerated_failures(),
            },
            placement: c.placement(),
            nodes: c
                .nodes()
                .map(|n| PlannedNode {
                    name: n.name.clone(),
                    role: n.role,
                    host: n.host.clone(),
                    failure_domain: n.failure_domain.clone(),
                    address: n.address,
                    resources: n.resources,
                    machine: machine(c, n),
                    data_disks: n.data_disks.len(),
                })
                .collect(),
            join_order: order,
            steps,
            ports: c.port_matrix(),
        }
    }
}

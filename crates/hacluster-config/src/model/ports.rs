//! Which ports each role must accept, and from whom: the port list of the kubeadm guides
//! (seed 004) plus the CNI's own traffic. Backends turn this into firewall or security-group
//! rules; the plan shows it.

use serde::Serialize;

use super::{API_PORT, ClusterSpec, Endpoint, NetworkPlugin, NodeRole};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Tcp,
    Udp,
    /// IP protocol 4 (Calico IP-in-IP).
    IpInIp,
    /// IP protocol 112 (keepalived).
    Vrrp,
}

/// Who may open the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    ControlPlanes,
    Workers,
    AllNodes,
    LoadBalancers,
    /// The cloud load balancer (or its subnets).
    CloudLoadBalancer,
    /// The operators' networks (`adminCidrs` on AWS; the node network on libvirt).
    Admins,
    /// Clients of NodePort services (`nodePortCidrs`).
    NodePortClients,
    /// Clients of the API endpoint.
    ApiClients,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRule {
    /// The role whose machines accept the traffic.
    pub on: NodeRole,
    pub protocol: Protocol,
    /// Inclusive range; `(0, 0)` for protocols without ports.
    pub ports: (u16, u16),
    pub from: Peer,
    pub purpose: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortMatrix {
    pub rules: Vec<PortRule>,
}

impl PortMatrix {
    pub fn for_cluster(c: &ClusterSpec) -> Self {
        use NodeRole::*;
        use Peer::*;
        use Protocol::*;
        let mut rules = Vec::new();
        let mut add = |on, protocol, ports: (u16, u16), from, purpose| {
            rules.push(PortRule { on, protocol, ports, from, purpose });
        };
        let api = (API_PORT, API_PORT);
        add(ControlPlane, Tcp, api, AllNodes, "kube-apiserver");
        match &c.endpoint {
            Endpoint::CloudLoadBalancer { .. } => {
                add(ControlPlane, Tcp, api, CloudLoadBalancer, "kube-apiserver via the load balancer");
                add(ControlPlane, Tcp, api, Admins, "kube-apiserver for operators");
            }
            Endpoint::Vip { .. } | Endpoint::LoadBalancer { .. } => {
                add(ControlPlane, Tcp, api, LoadBalancers, "kube-apiserver via HAProxy");
            }
            Endpoint::ControlPlane { .. } => add(ControlPlane, Tcp, api, ApiClients, "kube-apiserver"),
        }
        add(ControlPlane, Tcp, (2379, 2380), ControlPlanes, "etcd client and peer (control planes only)");
        add(ControlPlane, Tcp, (10250, 10250), ControlPlanes, "kubelet API");
        add(ControlPlane, Tcp, (10257, 10257), ControlPlanes, "kube-controller-manager");
        add(ControlPlane, Tcp, (10259, 10259), ControlPlanes, "kube-scheduler");
        add(Worker, Tcp, (10250, 10250), ControlPlanes, "kubelet API");
        add(Worker, Tcp, (30000, 32767), NodePortClients, "NodePort services");
        add(Worker, Udp, (30000, 32767), NodePortClients, "NodePort services");
        for role in [ControlPlane, Worker] {
            match c.kubernetes.network_plugin {
                NetworkPlugin::Calico => {
                    add(role, Tcp, (179, 179), AllNodes, "Calico BGP");
                    add(role, IpInIp, (0, 0), AllNodes, "Calico IP-in-IP");
                }
                // Both are configured to use the IANA VXLAN port (not the Linux kernel's 8472),
                // so one rule serves either.
                NetworkPlugin::Flannel => add(role, Udp, (4789, 4789), AllNodes, "Flannel VXLAN"),
                NetworkPlugin::Cilium => {
                    add(role, Udp, (4789, 4789), AllNodes, "Cilium VXLAN");
                    add(role, Tcp, (4240, 4240), AllNodes, "Cilium health checks");
                }
                // Routes to each node's pod range over BGP; IP-in-IP to nodes in other subnets.
                NetworkPlugin::KubeRouter => {
                    add(role, Tcp, (179, 179), AllNodes, "kube-router BGP");
                    add(role, IpInIp, (0, 0), AllNodes, "kube-router IP-in-IP (nodes in other subnets)");
                }
            }
            add(role, Tcp, (22, 22), Admins, "SSH (bootstrap)");
        }
        if !c.load_balancers.is_empty() {
            add(LoadBalancer, Tcp, api, ApiClients, "HAProxy frontend for the API");
            add(LoadBalancer, Tcp, (22, 22), Admins, "SSH");
            if matches!(c.endpoint, Endpoint::Vip { .. }) {
                add(LoadBalancer, Vrrp, (0, 0), LoadBalancers, "keepalived VRRP adverts");
            }
            for fp in &c.forward_ports {
                add(LoadBalancer, Tcp, (fp.port, fp.port), ApiClients, "forwarded port");
            }
        }
        PortMatrix { rules }
    }

    /// Rules that open `port` (TCP) on `role`.
    pub fn tcp_sources(&self, role: NodeRole, port: u16) -> Vec<Peer> {
        self.rules
            .iter()
            .filter(|r| r.on == role && r.protocol == Protocol::Tcp && r.ports.0 <= port && port <= r.ports.1)
            .map(|r| r.from)
            .collect()
    }
}

//! `cluster.nodes` and `cluster.nodeTemplate`: the machines, their counts, addresses,
//! placement and the API endpoint they imply. One file per job: `template` (what every node
//! shares), `instance` (one machine, and a role's group), `labels`, `load_balancers` (their
//! instances, VRRP and forwarded ports), `endpoint` (the counts and the endpoint they imply),
//! `placement` (hosts and zones).

mod endpoint;
mod instance;
mod labels;
mod load_balancers;
mod placement;
mod template;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::Ctx;
use crate::config::diagnostic::FieldPath;
use crate::config::raw::RawConfig;
use crate::model::{
    AwsSpec, BackendProfile, ClusterName, ForwardPort, HostSpec, NetworkSpec, Node, NodeRole, NodeTemplate, Resources,
};
use instance::{Registry, check_group, sizes_over};
pub use placement::placement_warnings;

pub const DEFAULT_VRID: u8 = 51;
pub const DEFAULT_USER: &str = "k8s";

pub struct Nodes {
    pub template: NodeTemplate,
    pub control_planes: Vec<Node>,
    pub workers: Vec<Node>,
    pub load_balancers: Vec<Node>,
    pub forward_ports: Vec<ForwardPort>,
    pub vip: Option<(Ipv4Addr, u8)>,
}

/// The nodes checked in the order their findings are reported: the template, the VIP, control
/// planes, workers, load balancers, VRRP, the counts and endpoint, forwarded ports, placement.
#[allow(clippy::too_many_arguments)]
pub fn check(
    cx: &mut Ctx,
    raw: &RawConfig,
    backend: &BackendProfile,
    hosts: &[HostSpec],
    network: Option<&NetworkSpec>,
    cluster: Option<&ClusterName>,
    aws: Option<&AwsSpec>,
) -> Option<Nodes> {
    let base = FieldPath::root().key("cluster").key("nodes");
    let template = template::check(cx, &raw.cluster.node_template);
    let mut reg = Registry { ips: BTreeMap::new(), macs: BTreeMap::new(), hosts, backend, network, cluster };
    let nodes = &raw.cluster.nodes;
    let lb = nodes.load_balancer.clone().unwrap_or_default();
    let lb_path = base.key("loadBalancer");

    // The VIP is claimed first so that a node reusing it is the one reported.
    let vip = match (&lb.vip, backend.cloud_lb) {
        (Some(_), true) => None,
        (Some(v), false) => reg.claim_ip(cx, lb_path.key("vip"), v),
        (None, _) => None,
    };

    let t = &raw.cluster.node_template;
    let sizes = sizes_over(t.cpu, t.ram, t.main_disk_size, Resources::DEFAULT);
    let mut control_planes =
        check_group(cx, &mut reg, NodeRole::ControlPlane, &nodes.master, base.key("master"), sizes);
    let mut workers = check_group(cx, &mut reg, NodeRole::Worker, &nodes.worker, base.key("worker"), sizes);

    let load_balancers = load_balancers::instances(cx, &mut reg, backend, &lb, &lb_path, sizes);
    let vrid = load_balancers::router_id(cx, backend, &lb, &lb_path);
    let lbs = if backend.cloud_lb { 0 } else { lb.instances.len() };
    endpoint::check(cx, backend, nodes, &lb, lbs, &base, &lb_path);
    let forward_ports = load_balancers::forward_ports(cx, &lb, &lb_path, lbs);
    placement::check_network_spans_hosts(cx, backend, network, &[&control_planes, &workers, &load_balancers]);
    placement::spread_over_zones(backend, aws, &mut control_planes, &mut workers);

    if cx.has_errors() {
        return None;
    }
    Some(Nodes { template, control_planes, workers, load_balancers, forward_ports, vip: vip.zip(vrid) })
}

//! Where nodes run: a network that spans the hosts they are placed on, control planes and
//! workers spread over the cloud's zones, and warnings when one host or zone holds too much.

use super::super::Ctx;
use crate::config::diagnostic::FieldPath;
use crate::model::{AwsSpec, BackendProfile, ClusterSpec, NetworkSpec, Node};

/// Nodes placed on several hosts need a network that every host has (a bridge on one LAN).
pub(super) fn check_network_spans_hosts(
    cx: &mut Ctx,
    backend: &BackendProfile,
    network: Option<&NetworkSpec>,
    nodes: &[&[Node]],
) {
    if backend.uses_hosts {
        let used: std::collections::BTreeSet<&str> =
            nodes.iter().flat_map(|g| g.iter()).filter_map(|n| n.host.as_deref()).collect();
        if let Some(net) = network
            && used.len() > 1
            && net.mode != crate::model::NetworkMode::Bridge
        {
            cx.error(
                    "multi-host-network",
                    FieldPath::root().key("cluster").key("network").key("mode"),
                    format!(
                        "nodes are placed on {} hosts ({}), but a {} network exists only inside one host",
                        used.len(),
                        used.iter().copied().collect::<Vec<_>>().join(", "),
                        net.mode
                    ),
                    "use `mode: bridge` with a bridge that every host has on the same LAN, so nodes on different hosts can reach each other",
                );
        }
    }
}

/// Failure domains in the cloud: control planes and workers round-robin over the zones.
pub(super) fn spread_over_zones(
    backend: &BackendProfile,
    aws: Option<&AwsSpec>,
    control_planes: &mut [Node],
    workers: &mut [Node],
) {
    if let Some(aws) = aws.filter(|_| backend.name == "aws") {
        let zones = &aws.availability_zones;
        if !zones.is_empty() {
            for group in [control_planes, workers] {
                for (i, n) in group.iter_mut().enumerate() {
                    n.failure_domain = Some(zones[i % zones.len()].clone());
                }
            }
        }
    }
}

/// Warnings about failure domains, computed on the finished model.
pub fn placement_warnings(cx: &mut Ctx, spec: &ClusterSpec) {
    let placement = spec.placement();
    let masters = spec.control_planes.len() as u32;
    let domains = placement.control_planes_per_domain.len();
    let kind = if spec.backend.uses_hosts { "host" } else { "zone" };
    let path = FieldPath::root().key("cluster").key("nodes").key("master").key("instances");
    if masters > 1 && placement.domain_failures_tolerated == 0 && (spec.backend.uses_hosts || spec.aws.is_some()) {
        let (worst, count) = placement
            .control_planes_per_domain
            .iter()
            .max_by_key(|(_, c)| **c)
            .map(|(d, c)| (d.clone(), *c))
            .unwrap_or_default();
        cx.warn(
            "placement-quorum",
            path,
            format!(
                "the {masters} control planes are on {domains} {kind}(s): losing {kind} `{worst}` takes {count} of them and etcd loses quorum ({} needed)",
                spec.quorum.size()
            ),
            format!("spread the control planes so that no {kind} holds {} or more of them", masters - spec.quorum.size() + 1),
        );
    }
    if spec.backend.uses_hosts && spec.load_balancers.len() > 1 {
        let lb_hosts: std::collections::BTreeSet<_> =
            spec.load_balancers.iter().filter_map(|n| n.host.as_deref()).collect();
        if lb_hosts.len() == 1 {
            cx.warn(
                "placement-lb",
                FieldPath::root().key("cluster").key("nodes").key("loadBalancer").key("instances"),
                format!(
                    "all load balancers run on host `{}`: losing it takes the API endpoint down",
                    lb_hosts.iter().next().expect("one host")
                ),
                "put the load balancers on different hosts with `host:`",
            );
        }
    }
}

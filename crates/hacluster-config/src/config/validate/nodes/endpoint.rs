//! How many control planes and load balancers, and the one stable API endpoint they imply:
//! an odd number of etcd members, a load balancer (and a VIP for several) in front of more than
//! one control plane, workers to run workloads.

use super::super::Ctx;
use crate::config::diagnostic::FieldPath;
use crate::config::raw;
use crate::model::{BackendProfile, Quorum};

/// The counts' errors and warnings. `lbs`: the load balancers hacluster runs (none with a
/// cloud backend's own).
pub(super) fn check(
    cx: &mut Ctx,
    backend: &BackendProfile,
    nodes: &raw::Nodes,
    lb: &raw::LoadBalancer,
    lbs: usize,
    base: &FieldPath,
    lb_path: &FieldPath,
) {
    let masters = nodes.master.instances.len();
    let mpath = base.key("master").key("instances");
    if masters == 0 {
        cx.error(
            "no-control-plane",
            mpath.clone(),
            "the cluster has no control-plane node",
            "add at least one instance under `cluster.nodes.master.instances`; three tolerate one failure",
        );
    } else if masters.is_multiple_of(2) {
        let q = Quorum::new(masters as u32).expect("masters > 0");
        let lower = Quorum::new(masters as u32 - 1).expect("masters >= 2");
        cx.error(
            "even-control-planes",
            mpath.clone(),
            format!(
                "{masters} control-plane nodes is an even number: each runs an etcd member, and etcd accepts writes only with a quorum of n/2+1 = {} of {masters} members up, so {masters} nodes tolerate {} — no more than {} nodes do, with one more machine that can fail",
                q.size(),
                failures(q.tolerated_failures()),
                masters - 1
            ),
            format!(
                "use an odd number: {} (tolerates {}) or {} (tolerates {})",
                masters - 1,
                lower.tolerated_failures(),
                masters + 1,
                Quorum::new(masters as u32 + 1).expect("positive").tolerated_failures()
            ),
        );
    } else if masters > 7 {
        cx.warn(
            "many-control-planes",
            mpath.clone(),
            format!("{masters} etcd members: every write waits for a majority of them, so writes get slower"),
            "etcd recommends at most 7 members; 5 tolerate two failures",
        );
    }
    if masters > 1 && !backend.cloud_lb && lbs == 0 {
        cx.error(
            "no-endpoint",
            mpath.clone(),
            format!(
                "{masters} control planes need one stable API endpoint in front of them, and none is configured"
            ),
            "kubeadm init needs --control-plane-endpoint: add `cluster.nodes.loadBalancer.instances` (one for a load balancer, two or more plus a `vip` for a highly available endpoint)",
        );
    }
    if lbs > 1 && lb.vip.is_none() {
        cx.error(
            "vip-missing",
            lb_path.key("vip"),
            format!("{lbs} load balancers but no virtual IP"),
            "with several load balancers clients need one address that moves between them: add `vip:` with a free address in the node network",
        );
    }
    if lb.vip.is_some() && lbs == 0 && !backend.cloud_lb {
        cx.error(
            "vip-without-lb",
            lb_path.key("vip"),
            "a virtual IP needs load balancers to hold it",
            "add `cluster.nodes.loadBalancer.instances` (two for failover)",
        );
    }
    if masters == 1 && !backend.cloud_lb {
        cx.warn(
            "single-control-plane",
            mpath.clone(),
            "one control plane is not highly available: losing it stops the Kubernetes API and etcd",
            "use 3 control planes (and a load balancer) to tolerate one failure",
        );
    } else if lbs == 1 && masters > 1 {
        cx.warn(
            "single-load-balancer",
            lb_path.key("instances"),
            "a single load balancer is a single point of failure for the API endpoint",
            "add a second instance and a `vip` so keepalived can fail over",
        );
    }
    if nodes.worker.instances.is_empty() {
        cx.warn(
            "no-workers",
            base.key("worker").key("instances"),
            "no worker nodes: workloads will not be scheduled (control planes are tainted NoSchedule)",
            "add worker instances, or remove the control-plane taint after `up`",
        );
    }
}

fn failures(n: u32) -> String {
    if n == 1 { "1 failure".into() } else { format!("{n} failures") }
}

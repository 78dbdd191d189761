//! The load balancers of `cluster.nodes.loadBalancer` (absent with a cloud backend's own):
//! their instances and VRRP priorities, the VRRP router id, and the ports they forward.

use std::collections::BTreeMap;

use super::super::Ctx;
use super::super::hosts::is_simple_name;
use super::DEFAULT_VRID;
use super::instance::{Instance, Registry, check_instance, sizes_over};
use crate::config::diagnostic::FieldPath;
use crate::config::raw;
use crate::model::{API_PORT, BackendProfile, ForwardPort, ForwardTarget, Node, NodeRole, Resources};

/// The load-balancer instances, each with its VRRP priority (distinct defaults, highest first).
pub(super) fn instances(
    cx: &mut Ctx,
    reg: &mut Registry,
    backend: &BackendProfile,
    lb: &raw::LoadBalancer,
    lb_path: &FieldPath,
    sizes: Resources,
) -> Vec<Node> {
    let mut load_balancers = Vec::new();
    let lb_defaults = sizes_over(lb.default.cpu, lb.default.ram, lb.default.main_disk_size, sizes);
    let mut seen = BTreeMap::new();
    let mut priorities: BTreeMap<u8, FieldPath> = BTreeMap::new();
    if !backend.cloud_lb {
        for (i, inst) in lb.instances.iter().enumerate() {
            let path = lb_path.key("instances").index(i);
            let view = Instance {
                path: path.clone(),
                id: &inst.id,
                host: inst.host.as_deref(),
                ip: inst.ip.as_deref(),
                mac: inst.mac.as_deref(),
                sizes: [inst.cpu, inst.ram, inst.main_disk_size],
                data_disks: Vec::new(),
                labels: Vec::new(),
                taints: Vec::new(),
            };
            let priority = match inst.priority {
                Some(p) => check_u8(
                    cx,
                    path.key("priority"),
                    p,
                    0,
                    "VRRP priority",
                    "keepalived priorities are 0–255; the live load balancer with the highest one holds the VIP",
                ),
                // Distinct defaults, highest first, so the VIP's home is never decided by a tie.
                None => Some(200u8.saturating_sub((i.min(19) as u8) * 10)),
            };
            if let (Some(p), Some(_)) = (priority, inst.priority) {
                if let Some(first) = priorities.get(&p) {
                    cx.warn(
                        "priority-tie",
                        path.key("priority"),
                        format!("priority {p} is also used by {first}"),
                        "with equal priorities keepalived picks the higher IP address; give each load balancer its own priority",
                    );
                }
                priorities.insert(p, path.key("priority"));
            }
            if let Some(mut n) = check_instance(cx, reg, NodeRole::LoadBalancer, view, lb_defaults, &mut seen) {
                n.priority = priority;
                load_balancers.push(n);
            }
        }
    } else if !lb.instances.is_empty() || lb.vip.is_some() {
        cx.warn_key(
            "lb-ignored",
            lb_path.clone(),
            format!(
                "the {} backend puts its own load balancer in front of the API; `loadBalancer` is ignored",
                backend.name
            ),
            "remove `cluster.nodes.loadBalancer`",
        );
    }

    load_balancers
}

/// The VRRP router id the balancers share (`virtualRouterId`, or the default).
pub(super) fn router_id(
    cx: &mut Ctx,
    backend: &BackendProfile,
    lb: &raw::LoadBalancer,
    lb_path: &FieldPath,
) -> Option<u8> {
    match lb.virtual_router_id {
        Some(v) => {
            if lb.vip.is_none() && !backend.cloud_lb {
                cx.warn_key(
                    "vrid-unused",
                    lb_path.key("virtualRouterId"),
                    "`virtualRouterId` only matters with a `vip`",
                    "remove it, or add a `vip`",
                );
            }
            check_u8(
                cx,
                lb_path.key("virtualRouterId"),
                v,
                1,
                "VRRP virtual router id",
                "VRRP router ids are 1–255 and must be unique among VRRP groups on the same network segment",
            )
        }
        None => Some(DEFAULT_VRID),
    }
}

/// `forwardPorts`: names and ports unique, never 6443 or 22, targets in range.
pub(super) fn forward_ports(cx: &mut Ctx, lb: &raw::LoadBalancer, lb_path: &FieldPath, lbs: usize) -> Vec<ForwardPort> {
    let mut forward_ports = Vec::new();
    let mut fp_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut fp_ports: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, fp) in lb.forward_ports.iter().enumerate() {
        let p = lb_path.key("forwardPorts").index(i);
        if lbs == 0 {
            cx.error(
                "forward-without-lb",
                p.clone(),
                "forwarded ports need load balancer instances",
                "add `cluster.nodes.loadBalancer.instances`, or remove `forwardPorts`",
            );
            break;
        }
        if !is_simple_name(&fp.name) {
            cx.error(
                "forward-name",
                p.key("name"),
                format!("`{}` is not a valid name", fp.name),
                "use letters, digits, `-` and `_`",
            );
        }
        if let Some(j) = fp_names.insert(&fp.name, i) {
            cx.error(
                "duplicate-forward",
                p.key("name"),
                format!("name `{}` is already used by forwardPorts[{j}]", fp.name),
                "give each forwarded port its own name",
            );
        }
        let port_ok = |v: i64| (1..=65535).contains(&v);
        if !port_ok(fp.port) {
            cx.error("out-of-range", p.key("port"), format!("port {} is out of range", fp.port), "ports are 1–65535");
        } else if fp.port == API_PORT as i64 || fp.port == 22 {
            cx.error(
                "forward-reserved",
                p.key("port"),
                format!("port {} is used by the load balancer itself", fp.port),
                "6443 is the API frontend and 22 is SSH; forward another port",
            );
        } else if let Some(j) = fp_ports.insert(fp.port, i) {
            cx.error(
                "duplicate-forward",
                p.key("port"),
                format!("port {} is already forwarded by forwardPorts[{j}]", fp.port),
                "forward each port once",
            );
        }
        let target_port = fp.target_port.unwrap_or(fp.port);
        if !port_ok(target_port) {
            cx.error(
                "out-of-range",
                p.key("targetPort"),
                format!("port {target_port} is out of range"),
                "ports are 1–65535",
            );
        }
        if port_ok(fp.port) && port_ok(target_port) {
            forward_ports.push(ForwardPort {
                name: fp.name.clone(),
                port: fp.port as u16,
                target_port: target_port as u16,
                target: match fp.target.unwrap_or(raw::ForwardTarget::Workers) {
                    raw::ForwardTarget::Workers => ForwardTarget::Workers,
                    raw::ForwardTarget::Masters => ForwardTarget::Masters,
                    raw::ForwardTarget::All => ForwardTarget::All,
                },
            });
        }
    }

    forward_ports
}

fn check_u8(cx: &mut Ctx, path: FieldPath, v: i64, min: i64, what: &str, why: &str) -> Option<u8> {
    if (min..=255).contains(&v) {
        Some(v as u8)
    } else {
        cx.error(
            "out-of-range",
            path,
            format!("{what} {v} is out of range: it must be between {min} and 255"),
            why.to_string(),
        );
        None
    }
}

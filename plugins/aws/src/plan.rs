//! `plan`: what `apply` would create, from the same discovery, without changing anything.

use crate::aws::Clients;
use crate::config::Config;
use crate::inventory::discover;
use crate::{Change, ChangeAction, Cluster, Error, NodeRole};

fn change(exists: bool, kind: &str, name: String, detail: String) -> Change {
    Change { action: if exists { ChangeAction::Keep } else { ChangeAction::Create }, kind: kind.into(), name, detail }
}

pub async fn plan(c: &Clients, cfg: &Config, cluster: &Cluster) -> Result<Vec<Change>, Error> {
    let inv = discover(c, cfg).await?;
    let name = &cfg.cluster;
    let mut out = Vec::new();
    match &cfg.vpc_id {
        Some(id) => out.push(Change {
            action: ChangeAction::Keep,
            kind: "vpc".into(),
            name: id.clone(),
            detail: "existing VPC from the config (never deleted)".into(),
        }),
        None => {
            out.push(change(inv.vpc.is_some(), "vpc", format!("{name}-vpc"), cfg.vpc_cidr.clone()));
            for (i, z) in cfg.availability_zones.iter().enumerate() {
                out.push(change(inv.subnets.contains_key(z), "subnet", format!("{name}-{z}"), cfg.subnet_cidr(i)?));
            }
            if !cfg.private_subnets {
                out.push(change(
                    inv.igw.is_some(),
                    "internet-gateway",
                    format!("{name}-igw"),
                    "attached to the VPC".into(),
                ));
                out.push(change(
                    inv.route_table.is_some(),
                    "route-table",
                    format!("{name}-public"),
                    "0.0.0.0/0 via the internet gateway".into(),
                ));
            }
        }
    }
    out.push(change(
        inv.sg_control_plane.is_some(),
        "security-group",
        format!("{name}-control-plane"),
        "rules from the port matrix".into(),
    ));
    out.push(change(
        inv.sg_worker.is_some(),
        "security-group",
        format!("{name}-worker"),
        "rules from the port matrix".into(),
    ));
    out.push(change(
        inv.sg_lb.is_some(),
        "security-group",
        format!("{name}-{}", crate::security_groups::LB_ROLE),
        "the API port from the admin networks and the nodes".into(),
    ));
    out.push(change(inv.key_pair.is_some(), "key-pair", format!("{name}-key"), "the operator's public key".into()));
    for n in cluster.nodes.iter().filter(|n| n.role != NodeRole::LoadBalancer) {
        let (itype, role) = if n.role == NodeRole::ControlPlane {
            (&cfg.control_plane_type, "control plane")
        } else {
            (&cfg.worker_type, "worker")
        };
        let zone = n.failure_domain.clone().unwrap_or_default();
        out.push(change(
            inv.instances.contains_key(&n.name),
            "instance",
            n.name.clone(),
            format!("{itype} {role} in {zone}"),
        ));
    }
    for extra in inv.instances.keys().filter(|k| !cluster.nodes.iter().any(|n| &n.name == *k)) {
        out.push(Change {
            action: ChangeAction::Delete,
            kind: "instance".into(),
            name: extra.clone(),
            detail: "no longer in the config: out of the target group and terminated (hacluster takes the node out of the cluster first)".into(),
        });
    }
    out.push(change(
        inv.tg.is_some(),
        "target-group",
        cfg.elb_name("api-tg"),
        "TCP 6443, HTTPS /readyz health check".into(),
    ));
    out.push(change(inv.lb.is_some(), "load-balancer", cfg.elb_name("api"), format!("network, {}", cfg.nlb_scheme)));
    out.push(change(
        inv.listener.is_some(),
        "listener",
        format!("{}:6443", cfg.elb_name("api")),
        "TCP 6443 → target group".into(),
    ));
    Ok(out)
}

//! The security groups of control planes, workers and the NLB, with rules from the port matrix.

use std::cell::RefCell;

use aws_sdk_ec2 as ec2;
use futures_util::future::join_all;

use crate::aws::{Clients, ec2_tags, err, tag_spec};
use crate::config::Config;
use crate::inventory::Inventory;
use crate::rules;
use crate::state::{State, save};
use crate::{Cluster, Error, NodeRole, log};

/// The `hacluster:role` of the NLB's security group.
pub const LB_ROLE: &str = "api-load-balancer";

/// The groups of control planes, workers and the NLB.
pub struct Groups {
    pub control_plane: String,
    pub worker: String,
    pub lb: String,
}

pub(crate) async fn ensure_security_groups(
    c: &Clients,
    cfg: &Config,
    cluster: &Cluster,
    inv: &Inventory,
    vpc_id: &str,
    state: &RefCell<State>,
) -> Result<Groups, Error> {
    let name = &cfg.cluster;
    let mut ids = Vec::new();
    for (role, existing) in
        [("control-plane", &inv.sg_control_plane), ("worker", &inv.sg_worker), (LB_ROLE, &inv.sg_lb)]
    {
        let id = match existing {
            Some(sg) => sg.id.clone(),
            None => {
                let out = c
                    .ec2
                    .create_security_group()
                    .group_name(format!("{name}-{role}"))
                    .description(if role == LB_ROLE {
                        format!("hacluster {name}: the API's network load balancer")
                    } else {
                        format!("hacluster {name}: {role} nodes")
                    })
                    .vpc_id(vpc_id)
                    .tag_specifications(tag_spec(
                        ec2::types::ResourceType::SecurityGroup,
                        ec2_tags(name, role, &format!("{name}-{role}"), None),
                    ))
                    .send()
                    .await
                    .map_err(|e| err("CreateSecurityGroup", e))?;
                let id = out.group_id().unwrap_or_default().to_string();
                {
                    let mut s = state.borrow_mut();
                    match role {
                        "control-plane" => s.sg_control_plane = Some(id.clone()),
                        "worker" => s.sg_worker = Some(id.clone()),
                        _ => s.sg_lb = Some(id.clone()),
                    }
                }
                save(state)?;
                log::info("created security group", &[("id", &id), ("role", &role)]);
                id
            }
        };
        ids.push(id);
    }
    let (cp, worker, lb) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    {
        let mut s = state.borrow_mut();
        s.sg_control_plane = Some(cp.clone());
        s.sg_worker = Some(worker.clone());
        s.sg_lb = Some(lb.clone());
    }
    let empty = Vec::new();
    let jobs = [
        (NodeRole::ControlPlane, cp.clone(), inv.sg_control_plane.as_ref().map(|s| &s.permissions).unwrap_or(&empty)),
        (NodeRole::Worker, worker.clone(), inv.sg_worker.as_ref().map(|s| &s.permissions).unwrap_or(&empty)),
    ]
    .into_iter()
    .map(|(role, id, have)| {
        let want = rules::desired(cluster, cfg, role, &cp, &worker, &lb);
        authorize_missing(c, id, rules::missing(&want, have))
    });
    for r in join_all(jobs).await {
        r?;
    }
    Ok(Groups { control_plane: cp, worker, lb })
}

pub(crate) async fn authorize_missing(c: &Clients, group: String, missing: Vec<rules::Rule>) -> Result<usize, Error> {
    if missing.is_empty() {
        return Ok(0);
    }
    c.ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .set_ip_permissions(Some(missing.iter().map(rules::Rule::to_permission).collect()))
        .send()
        .await
        .map_err(|e| err("AuthorizeSecurityGroupIngress", e))?;
    log::debug("authorized ingress rules", &[("group", &group), ("rules", &missing.len())]);
    Ok(missing.len())
}

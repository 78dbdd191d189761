//! What exists for a cluster, found by its tags (EC2) and names plus tags (ELBv2). This, not
//! the saved state, is the truth: a crash between a create and its checkpoint loses nothing.

use std::collections::BTreeMap;

use aws_sdk_ec2 as ec2;

use crate::Error;
use crate::aws::{Clients, TAG_CLUSTER, TAG_NODE, TAG_ROLE, cluster_filter, code, err, tag_value};
use crate::config::Config;

#[derive(Debug, Clone)]
pub struct Sg {
    pub id: String,
    pub permissions: Vec<ec2::types::IpPermission>,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    pub id: String,
    /// (association id, subnet id)
    pub associations: Vec<(String, String)>,
    pub has_default_route: bool,
}

#[derive(Debug, Clone)]
pub struct Lb {
    pub arn: String,
    /// The NLB's security groups: none on one made without (they can only be set at creation).
    pub security_groups: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Inventory {
    /// Our VPC (tagged), or none. An existing VPC from the config is `cfg.vpc_id`.
    pub vpc: Option<String>,
    /// zone → subnet id (ours, tagged)
    pub subnets: BTreeMap<String, String>,
    /// subnets that do not yet give instances public addresses
    pub subnets_private: Vec<String>,
    /// (igw id, attached vpc)
    pub igw: Option<(String, Option<String>)>,
    pub route_table: Option<RouteTable>,
    pub sg_control_plane: Option<Sg>,
    pub sg_worker: Option<Sg>,
    /// The NLB's own group.
    pub sg_lb: Option<Sg>,
    pub key_pair: Option<String>,
    /// node name → instance (not terminated)
    pub instances: BTreeMap<String, Instance>,
    pub lb: Option<Lb>,
    pub tg: Option<String>,
    pub listener: Option<String>,
}

impl Inventory {
    /// Number of resources found, for logs and tests.
    pub fn count(&self) -> usize {
        self.vpc.iter().count()
            + self.subnets.len()
            + self.igw.iter().count()
            + self.route_table.iter().count()
            + self.sg_control_plane.iter().count()
            + self.sg_worker.iter().count()
            + self.sg_lb.iter().count()
            + self.key_pair.iter().count()
            + self.instances.len()
            + self.lb.iter().count()
            + self.tg.iter().count()
            + self.listener.iter().count()
    }

    /// zone → subnet: configured ones, or ours.
    pub fn subnet_for(&self, cfg: &Config, zone: &str) -> Option<String> {
        if cfg.vpc_id.is_some() {
            let i = cfg.availability_zones.iter().position(|z| z == zone)?;
            return cfg.subnet_ids.get(i).cloned();
        }
        self.subnets.get(zone).cloned()
    }
}

fn role_of(tags: &[ec2::types::Tag]) -> String {
    tag_value(tags, TAG_ROLE).unwrap_or_default()
}

pub async fn discover(c: &Clients, cfg: &Config) -> Result<Inventory, Error> {
    let mut inv = Inventory::default();
    let mine = || cluster_filter(&cfg.cluster);

    let vpcs = c.ec2.describe_vpcs().filters(mine()).send().await.map_err(|e| err("DescribeVpcs", e))?;
    inv.vpc = vpcs.vpcs().first().and_then(|v| v.vpc_id()).map(str::to_string);

    let subnets = c.ec2.describe_subnets().filters(mine()).send().await.map_err(|e| err("DescribeSubnets", e))?;
    for s in subnets.subnets() {
        if let (Some(az), Some(id)) = (s.availability_zone(), s.subnet_id()) {
            inv.subnets.insert(az.to_string(), id.to_string());
            if s.map_public_ip_on_launch() != Some(true) {
                inv.subnets_private.push(id.to_string());
            }
        }
    }

    let igws = c
        .ec2
        .describe_internet_gateways()
        .filters(mine())
        .send()
        .await
        .map_err(|e| err("DescribeInternetGateways", e))?;
    inv.igw = igws.internet_gateways().first().and_then(|g| {
        let attached = g.attachments().first().and_then(|a| a.vpc_id()).map(str::to_string);
        g.internet_gateway_id().map(|id| (id.to_string(), attached))
    });

    let rts = c.ec2.describe_route_tables().filters(mine()).send().await.map_err(|e| err("DescribeRouteTables", e))?;
    inv.route_table = rts.route_tables().first().and_then(|rt| {
        Some(RouteTable {
            id: rt.route_table_id()?.to_string(),
            associations: rt
                .associations()
                .iter()
                .filter_map(|a| Some((a.route_table_association_id()?.to_string(), a.subnet_id()?.to_string())))
                .collect(),
            has_default_route: rt.routes().iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")),
        })
    });

    let sgs =
        c.ec2.describe_security_groups().filters(mine()).send().await.map_err(|e| err("DescribeSecurityGroups", e))?;
    for g in sgs.security_groups() {
        let sg = Sg { id: g.group_id().unwrap_or_default().to_string(), permissions: g.ip_permissions().to_vec() };
        match role_of(g.tags()).as_str() {
            "control-plane" => inv.sg_control_plane = Some(sg),
            "worker" => inv.sg_worker = Some(sg),
            crate::security_groups::LB_ROLE => inv.sg_lb = Some(sg),
            _ => {}
        }
    }

    let keys = c.ec2.describe_key_pairs().filters(mine()).send().await.map_err(|e| err("DescribeKeyPairs", e))?;
    inv.key_pair = keys.key_pairs().first().and_then(|k| k.key_name()).map(str::to_string);

    let mut token = None;
    loop {
        let page = c
            .ec2
            .describe_instances()
            .filters(mine())
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| err("DescribeInstances", e))?;
        for r in page.reservations() {
            for i in r.instances() {
                let state = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
                if state == "terminated" || state == "shutting-down" {
                    continue;
                }
                let Some(node) = tag_value(i.tags(), TAG_NODE) else { continue };
                inv.instances.insert(
                    node,
                    Instance {
                        id: i.instance_id().unwrap_or_default().to_string(),
                        state,
                        private_ip: i.private_ip_address().map(str::to_string),
                        public_ip: i.public_ip_address().map(str::to_string),
                    },
                );
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }

    // ELBv2 resources are found by their deterministic names, then checked to be ours.
    let lb_name = cfg.elb_name("api");
    match c.elb.describe_load_balancers().names(&lb_name).send().await {
        Ok(out) => {
            if let Some(lb) = out.load_balancers().first() {
                let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
                ensure_ours(c, cfg, &arn, &lb_name).await?;
                inv.lb = Some(Lb { arn: arn.clone(), security_groups: lb.security_groups().to_vec() });
                let listeners = c
                    .elb
                    .describe_listeners()
                    .load_balancer_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| err("DescribeListeners", e))?;
                inv.listener = listeners
                    .listeners()
                    .iter()
                    .find(|l| l.port() == Some(6443))
                    .and_then(|l| l.listener_arn())
                    .map(str::to_string);
            }
        }
        Err(e) if code(&e).as_deref() == Some("LoadBalancerNotFound") => {}
        Err(e) => return Err(err("DescribeLoadBalancers", e)),
    }
    let tg_name = cfg.elb_name("api-tg");
    match c.elb.describe_target_groups().names(&tg_name).send().await {
        Ok(out) => {
            if let Some(tg) = out.target_groups().first() {
                let arn = tg.target_group_arn().unwrap_or_default().to_string();
                ensure_ours(c, cfg, &arn, &tg_name).await?;
                inv.tg = Some(arn);
            }
        }
        Err(e) if code(&e).as_deref() == Some("TargetGroupNotFound") => {}
        Err(e) => return Err(err("DescribeTargetGroups", e)),
    }
    Ok(inv)
}

/// An ELB resource with our name but without our tag belongs to someone else.
async fn ensure_ours(c: &Clients, cfg: &Config, arn: &str, name: &str) -> Result<(), Error> {
    let tags = c.elb.describe_tags().resource_arns(arn).send().await.map_err(|e| err("DescribeTags", e))?;
    let ours = tags
        .tag_descriptions()
        .iter()
        .flat_map(|d| d.tags())
        .any(|t| t.key() == Some(TAG_CLUSTER) && t.value() == Some(cfg.cluster.as_str()));
    if ours {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "`{name}` exists in {} but is not tagged {TAG_CLUSTER}={}; rename the cluster or remove it",
            cfg.region, cfg.cluster
        )))
    }
}

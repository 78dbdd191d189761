//! The VPC, its subnets, internet gateway and routes (or an existing VPC, checked).

use std::cell::RefCell;

use aws_sdk_ec2 as ec2;
use futures_util::future::join_all;

use crate::aws::{Clients, ec2_tags, err, tag_spec};
use crate::config::Config;
use crate::inventory::Inventory;
use crate::state::{State, save};
use crate::{Error, log};

/// An existing VPC and its subnets must exist, and each subnet must be in its zone, before
/// anything is created in them.
pub(crate) async fn verify_existing(c: &Clients, cfg: &Config, vpc: &str) -> Result<(), Error> {
    c.ec2.describe_vpcs().vpc_ids(vpc).send().await.map_err(|e| err("DescribeVpcs", e))?;
    let out = c
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(cfg.subnet_ids.clone()))
        .send()
        .await
        .map_err(|e| err("DescribeSubnets", e))?;
    for (zone, id) in cfg.availability_zones.iter().zip(&cfg.subnet_ids) {
        let s = out.subnets().iter().find(|s| s.subnet_id() == Some(id.as_str()));
        match s {
            None => return Err(Error::NotFound(format!("subnet {id} does not exist in {}", cfg.region))),
            Some(s) if s.vpc_id() != Some(vpc) => {
                return Err(Error::InvalidInput(format!("subnet {id} is not in {vpc}")));
            }
            Some(s) if s.availability_zone() != Some(zone.as_str()) => {
                return Err(Error::InvalidInput(format!(
                    "subnet {id} is in {}, but it is listed for {zone}",
                    s.availability_zone().unwrap_or("?")
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

pub(crate) async fn ensure_network(
    c: &Clients,
    cfg: &Config,
    inv: &mut Inventory,
    state: &RefCell<State>,
) -> Result<String, Error> {
    let name = &cfg.cluster;
    let vpc_id = match (&cfg.vpc_id, &inv.vpc) {
        (Some(id), _) => {
            verify_existing(c, cfg, id).await?;
            id.clone()
        }
        (None, Some(id)) => id.clone(),
        (None, None) => {
            let out = c
                .ec2
                .create_vpc()
                .cidr_block(&cfg.vpc_cidr)
                .tag_specifications(tag_spec(
                    ec2::types::ResourceType::Vpc,
                    ec2_tags(name, "vpc", &format!("{name}-vpc"), None),
                ))
                .send()
                .await
                .map_err(|e| err("CreateVpc", e))?;
            let id = out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
            state.borrow_mut().vpc = Some(id.clone());
            save(state)?;
            log::info("created VPC", &[("id", &id), ("cidr", &cfg.vpc_cidr)]);
            inv.vpc = Some(id.clone());
            id
        }
    };
    state.borrow_mut().vpc = Some(vpc_id.clone());
    if cfg.vpc_id.is_some() {
        return Ok(vpc_id);
    }
    // Set on every run: a crash between creating the VPC and this would otherwise leave it
    // without DNS, which the NLB's name and the nodes need.
    for support in [true, false] {
        let v = ec2::types::AttributeBooleanValue::builder().value(true).build();
        let req = c.ec2.modify_vpc_attribute().vpc_id(&vpc_id);
        let req = if support { req.enable_dns_support(v) } else { req.enable_dns_hostnames(v) };
        req.send().await.map_err(|e| err("ModifyVpcAttribute", e))?;
    }

    // One subnet per zone, created concurrently.
    let missing: Vec<(usize, String)> = cfg
        .availability_zones
        .iter()
        .enumerate()
        .filter(|(_, z)| !inv.subnets.contains_key(*z))
        .map(|(i, z)| (i, z.clone()))
        .collect();
    let creates = missing.iter().map(|(i, zone)| {
        let vpc_id = vpc_id.clone();
        async move {
            let cidr = cfg.subnet_cidr(*i)?;
            let out = c
                .ec2
                .create_subnet()
                .vpc_id(&vpc_id)
                .cidr_block(&cidr)
                .availability_zone(zone)
                .tag_specifications(tag_spec(
                    ec2::types::ResourceType::Subnet,
                    ec2_tags(name, "subnet", &format!("{name}-{zone}"), None),
                ))
                .send()
                .await
                .map_err(|e| err("CreateSubnet", e))?;
            let id = out.subnet().and_then(|s| s.subnet_id()).unwrap_or_default().to_string();
            state.borrow_mut().subnets.insert(zone.clone(), id.clone());
            save(state)?;
            if !cfg.private_subnets {
                c.ec2
                    .modify_subnet_attribute()
                    .subnet_id(&id)
                    .map_public_ip_on_launch(ec2::types::AttributeBooleanValue::builder().value(true).build())
                    .send()
                    .await
                    .map_err(|e| err("ModifySubnetAttribute", e))?;
            }
            log::info("created subnet", &[("id", &id), ("zone", &zone), ("cidr", &cidr)]);
            Ok::<(String, String), Error>((zone.clone(), id))
        }
    });
    for r in join_all(creates).await {
        let (zone, id) = r?;
        inv.subnets.insert(zone, id);
    }
    state.borrow_mut().subnets = inv.subnets.clone();
    // Subnets found without public addressing (a crash right after their creation).
    if !cfg.private_subnets {
        for id in &inv.subnets_private {
            c.ec2
                .modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(ec2::types::AttributeBooleanValue::builder().value(true).build())
                .send()
                .await
                .map_err(|e| err("ModifySubnetAttribute", e))?;
        }
    }

    if cfg.private_subnets {
        return Ok(vpc_id);
    }
    // Internet gateway and the default route, so nodes in public subnets reach out and in.
    let igw = match &inv.igw {
        Some((id, attached)) => {
            if attached.as_deref() != Some(vpc_id.as_str()) {
                c.ec2
                    .attach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(&vpc_id)
                    .send()
                    .await
                    .map_err(|e| err("AttachInternetGateway", e))?;
            }
            id.clone()
        }
        None => {
            let out = c
                .ec2
                .create_internet_gateway()
                .tag_specifications(tag_spec(
                    ec2::types::ResourceType::InternetGateway,
                    ec2_tags(name, "internet-gateway", &format!("{name}-igw"), None),
                ))
                .send()
                .await
                .map_err(|e| err("CreateInternetGateway", e))?;
            let id = out.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap_or_default().to_string();
            state.borrow_mut().internet_gateway = Some(id.clone());
            save(state)?;
            c.ec2
                .attach_internet_gateway()
                .internet_gateway_id(&id)
                .vpc_id(&vpc_id)
                .send()
                .await
                .map_err(|e| err("AttachInternetGateway", e))?;
            log::info("created internet gateway", &[("id", &id)]);
            id
        }
    };
    state.borrow_mut().internet_gateway = Some(igw.clone());
    let (rt, associated, has_route) = match &inv.route_table {
        Some(rt) => {
            (rt.id.clone(), rt.associations.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(), rt.has_default_route)
        }
        None => {
            let out = c
                .ec2
                .create_route_table()
                .vpc_id(&vpc_id)
                .tag_specifications(tag_spec(
                    ec2::types::ResourceType::RouteTable,
                    ec2_tags(name, "route-table", &format!("{name}-public"), None),
                ))
                .send()
                .await
                .map_err(|e| err("CreateRouteTable", e))?;
            let id = out.route_table().and_then(|r| r.route_table_id()).unwrap_or_default().to_string();
            state.borrow_mut().route_table = Some(id.clone());
            save(state)?;
            log::info("created route table", &[("id", &id)]);
            (id, Vec::new(), false)
        }
    };
    state.borrow_mut().route_table = Some(rt.clone());
    if !has_route {
        c.ec2
            .create_route()
            .route_table_id(&rt)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(&igw)
            .send()
            .await
            .map_err(|e| err("CreateRoute", e))?;
    }
    let assoc = inv.subnets.values().filter(|s| !associated.contains(s)).map(|s| {
        let rt = rt.clone();
        async move {
            c.ec2
                .associate_route_table()
                .route_table_id(&rt)
                .subnet_id(s)
                .send()
                .await
                .map_err(|e| err("AssociateRouteTable", e))
        }
    });
    for r in join_all(assoc).await {
        r?;
    }
    Ok(vpc_id)
}

//! `destroy`: remove everything tagged with the cluster, in dependency order, from tags alone
//! (the saved state is not needed).

use std::cell::RefCell;
use std::time::Duration;

use crate::aws::{Clients, code, err, pause};
use crate::config::Config;
use crate::inventory::discover;
use crate::state::{State, save};
use crate::{Cluster, Error, log, progress};

async fn until_gone<F, Fut>(what: &str, mut gone: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    while !gone().await? {
        if start.elapsed() > Duration::from_secs(900) {
            return Err(Error::Transient(format!("timed out waiting for {what}")));
        }
        pause(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(10));
    }
    Ok(())
}

/// Retries a delete that AWS refuses while dependents are still being released
/// (DependencyViolation right after instances terminate).
async fn with_dependencies<F, Fut>(what: &str, mut f: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), (Option<String>, Error)>>,
{
    let mut delay = Duration::from_secs(2);
    for _ in 0..30 {
        match f().await {
            Ok(()) => return Ok(()),
            Err((Some(code), _)) if code == "DependencyViolation" => {
                pause(delay).await;
                delay = (delay * 3 / 2).min(Duration::from_secs(15));
            }
            Err((Some(code), _)) if code.ends_with("NotFound") => return Ok(()),
            Err((_, e)) => return Err(e),
        }
    }
    Err(Error::Transient(format!("{what} still has dependencies")))
}

pub async fn destroy(c: &Clients, cfg: &Config, _cluster: &Cluster, prior: State) -> Result<(), Error> {
    let state = RefCell::new(prior);
    let inv = discover(c, cfg).await?;
    let total = inv.count() as u64;
    let removed = RefCell::new(0u64);
    let tick = |n: u64| {
        *removed.borrow_mut() += n;
        progress::report("remove resources", (*removed.borrow()).min(total), total);
    };
    log::info("removing resources", &[("found", &total)]);

    // The load balancer first: listener, targets, balancer, then its target group.
    if let Some(l) = &inv.listener {
        c.elb.delete_listener().listener_arn(l).send().await.map_err(|e| err("DeleteListener", e))?;
        state.borrow_mut().listener = None;
        save(&state)?;
        tick(1);
    }
    if let Some(tg) = &inv.tg {
        crate::load_balancer::deregister(c, tg, None).await?;
    }
    if let Some(lb) = &inv.lb {
        c.elb
            .delete_load_balancer()
            .load_balancer_arn(&lb.arn)
            .send()
            .await
            .map_err(|e| err("DeleteLoadBalancer", e))?;
        until_gone("the load balancer to be deleted", || async {
            match c.elb.describe_load_balancers().load_balancer_arns(&lb.arn).send().await {
                Ok(out) => Ok(out.load_balancers().is_empty()),
                Err(e) if code(&e).as_deref() == Some("LoadBalancerNotFound") => Ok(true),
                Err(e) => Err(err("DescribeLoadBalancers", e)),
            }
        })
        .await?;
        state.borrow_mut().load_balancer = None;
        save(&state)?;
        tick(1);
    }
    if let Some(tg) = &inv.tg {
        with_dependencies("the target group", || async {
            c.elb
                .delete_target_group()
                .target_group_arn(tg)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (code(&e), err("DeleteTargetGroup", e)))
        })
        .await?;
        state.borrow_mut().target_group = None;
        save(&state)?;
        tick(1);
    }

    // Instances, and wait until they are gone (their network interfaces hold the groups).
    let ids: Vec<String> = inv.instances.values().map(|i| i.id.clone()).collect();
    if !ids.is_empty() {
        c.ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.clone()))
            .send()
            .await
            .map_err(|e| err("TerminateInstances", e))?;
        log::info("terminating instances", &[("count", &ids.len())]);
        until_gone("instances to terminate", || async {
            let left = crate::instances::not_terminated(c, &ids).await?;
            progress::report("terminate instances", (ids.len() - left) as u64, ids.len() as u64);
            Ok(left == 0)
        })
        .await?;
        state.borrow_mut().instances.clear();
        save(&state)?;
        tick(ids.len() as u64);
    }

    if let Some(k) = &inv.key_pair {
        c.ec2.delete_key_pair().key_name(k).send().await.map_err(|e| err("DeleteKeyPair", e))?;
        state.borrow_mut().key_pair = None;
        save(&state)?;
        tick(1);
    }

    // Security groups reference each other: revoke their rules first, then delete them.
    let groups: Vec<_> = [&inv.sg_control_plane, &inv.sg_worker, &inv.sg_lb].into_iter().flatten().collect();
    for g in &groups {
        if !g.permissions.is_empty() {
            c.ec2
                .revoke_security_group_ingress()
                .group_id(&g.id)
                .set_ip_permissions(Some(g.permissions.clone()))
                .send()
                .await
                .map_err(|e| err("RevokeSecurityGroupIngress", e))?;
        }
    }
    for g in &groups {
        with_dependencies("the security group", || async {
            c.ec2
                .delete_security_group()
                .group_id(&g.id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (code(&e), err("DeleteSecurityGroup", e)))
        })
        .await?;
        tick(1);
    }
    {
        let mut s = state.borrow_mut();
        s.sg_control_plane = None;
        s.sg_worker = None;
        s.sg_lb = None;
    }
    save(&state)?;

    if let Some(rt) = &inv.route_table {
        for (assoc, _) in &rt.associations {
            c.ec2
                .disassociate_route_table()
                .association_id(assoc)
                .send()
                .await
                .map_err(|e| err("DisassociateRouteTable", e))?;
        }
        c.ec2.delete_route_table().route_table_id(&rt.id).send().await.map_err(|e| err("DeleteRouteTable", e))?;
        state.borrow_mut().route_table = None;
        save(&state)?;
        tick(1);
    }
    if let Some((igw, attached)) = &inv.igw {
        if let Some(vpc) = attached {
            c.ec2
                .detach_internet_gateway()
                .internet_gateway_id(igw)
                .vpc_id(vpc)
                .send()
                .await
                .map_err(|e| err("DetachInternetGateway", e))?;
        }
        c.ec2
            .delete_internet_gateway()
            .internet_gateway_id(igw)
            .send()
            .await
            .map_err(|e| err("DeleteInternetGateway", e))?;
        state.borrow_mut().internet_gateway = None;
        save(&state)?;
        tick(1);
    }
    for (zone, subnet) in &inv.subnets {
        with_dependencies("the subnet", || async {
            c.ec2
                .delete_subnet()
                .subnet_id(subnet)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (code(&e), err("DeleteSubnet", e)))
        })
        .await?;
        state.borrow_mut().subnets.remove(zone);
        save(&state)?;
        tick(1);
    }
    // Only a VPC we created (tagged): an existing one from the config is left alone.
    if let Some(vpc) = &inv.vpc {
        with_dependencies("the VPC", || async {
            c.ec2.delete_vpc().vpc_id(vpc).send().await.map(|_| ()).map_err(|e| (code(&e), err("DeleteVpc", e)))
        })
        .await?;
        state.borrow_mut().vpc = None;
        save(&state)?;
        tick(1);
    }
    log::info("removed all resources", &[("count", &*removed.borrow())]);
    Ok(())
}

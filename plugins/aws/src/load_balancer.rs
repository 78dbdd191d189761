//! The Network Load Balancer: target group (and its attributes), listener, registered control planes.

use std::cell::RefCell;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2 as elb;

use crate::aws::{Clients, elb_tags, err};
use crate::config::Config;
use crate::inventory::Inventory;
use crate::retry::wait_until;
use crate::rules;
use crate::security_groups::{Groups, authorize_missing};
use crate::state::{State, save};
use crate::{Cluster, Error, NodeRole, log, progress};

/// The target group's attributes: targets see the NLB's address, not the client's (see
/// `rules::lb_rules` for why), and a deregistered control plane drains for
/// `endpoint::DEREGISTRATION_DELAY_SECS`, not AWS's default 300 s (its API server's
/// connections end when it restarts anyway; clients reconnect through the NLB).
pub(crate) async fn ensure_target_group_attributes(c: &Clients, tg: &str) -> Result<(), Error> {
    let delay = crate::endpoint::DEREGISTRATION_DELAY_SECS.to_string();
    let wanted = [("preserve_client_ip.enabled", "false"), ("deregistration_delay.timeout_seconds", delay.as_str())];
    let attrs = c
        .elb
        .describe_target_group_attributes()
        .target_group_arn(tg)
        .send()
        .await
        .map_err(|e| err("DescribeTargetGroupAttributes", e))?;
    let missing: Vec<_> = wanted
        .iter()
        .filter(|(k, v)| !attrs.attributes().iter().any(|a| a.key() == Some(*k) && a.value() == Some(*v)))
        .map(|(k, v)| elb::types::TargetGroupAttribute::builder().key(*k).value(*v).build())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    c.elb
        .modify_target_group_attributes()
        .target_group_arn(tg)
        .set_attributes(Some(missing))
        .send()
        .await
        .map_err(|e| err("ModifyTargetGroupAttributes", e))?;
    log::debug("set the target group's attributes", &[("target group", &tg)]);
    Ok(())
}

/// The control planes admit 6443 from the NLB's group only; an NLB without one (made by hand,
/// or before hacluster gave it one) would never reach them, and cannot get one now. Checked
/// before anything is created.
pub(crate) fn refuse_nlb_without_group(cfg: &Config, inv: &Inventory) -> Result<(), Error> {
    if let Some(lb) = inv.lb.as_ref().filter(|lb| lb.security_groups.is_empty()) {
        Err(Error::Conflict(format!(
            "the load balancer `{}` has no security group, so the control planes (6443 from the \
             load balancer's group only) would refuse its traffic, and AWS adds groups to a \
             network load balancer only when it is created; delete it (`hacluster down` \
             removes it with the rest, or `aws elbv2 delete-load-balancer --load-balancer-arn \
             {}`) and run `hacluster up` again",
            cfg.elb_name("api"),
            lb.arn
        )))
    } else {
        Ok(())
    }
}

pub(crate) async fn ensure_load_balancer(
    c: &Clients,
    cfg: &Config,
    cluster: &Cluster,
    inv: &mut Inventory,
    vpc_id: &str,
    sgs: &Groups,
    state: &RefCell<State>,
) -> Result<String, Error> {
    // The NLB's group admits the nodes by their public addresses, known now.
    let public: Vec<(String, String)> =
        inv.instances.iter().filter_map(|(n, i)| Some((n.clone(), i.public_ip.clone()?))).collect();
    let want = rules::lb_rules(cfg, cluster.api_port, &sgs.control_plane, &sgs.worker, &public);
    let have = inv.sg_lb.as_ref().map(|g| g.permissions.clone()).unwrap_or_default();
    authorize_missing(c, sgs.lb.clone(), rules::missing(&want, &have)).await?;
    let tg = match &inv.tg {
        Some(arn) => arn.clone(),
        None => {
            let out = c
                .elb
                .create_target_group()
                .name(cfg.elb_name("api-tg"))
                .protocol(elb::types::ProtocolEnum::Tcp)
                .port(cluster.api_port as i32)
                .vpc_id(vpc_id)
                .target_type(elb::types::TargetTypeEnum::Instance)
                // kube-apiserver's readiness over HTTPS; the NLB allows it for TCP groups.
                .health_check_protocol(elb::types::ProtocolEnum::Https)
                .health_check_path("/readyz")
                .health_check_port("traffic-port")
                .health_check_interval_seconds(10)
                .healthy_threshold_count(2)
                .unhealthy_threshold_count(2)
                .set_tags(Some(elb_tags(&cfg.cluster, "api-target-group")))
                .send()
                .await
                .map_err(|e| err("CreateTargetGroup", e))?;
            let arn = out.target_groups().first().and_then(|t| t.target_group_arn()).unwrap_or_default().to_string();
            state.borrow_mut().target_group = Some(arn.clone());
            save(state)?;
            log::info("created target group", &[("arn", &arn)]);
            arn
        }
    };
    ensure_target_group_attributes(c, &tg).await?;
    state.borrow_mut().target_group = Some(tg.clone());
    let lb = match &inv.lb {
        Some(lb) => lb.arn.clone(),
        None => {
            let subnets: Vec<String> = cfg.availability_zones.iter().filter_map(|z| inv.subnet_for(cfg, z)).collect();
            let scheme = if cfg.nlb_scheme == "internal" {
                elb::types::LoadBalancerSchemeEnum::Internal
            } else {
                elb::types::LoadBalancerSchemeEnum::InternetFacing
            };
            let out = c
                .elb
                .create_load_balancer()
                .name(cfg.elb_name("api"))
                .r#type(elb::types::LoadBalancerTypeEnum::Network)
                .scheme(scheme)
                // Only at creation: an NLB made without a group can never get one.
                .security_groups(&sgs.lb)
                .set_subnets(Some(subnets))
                .set_tags(Some(elb_tags(&cfg.cluster, "api-load-balancer")))
                .send()
                .await
                .map_err(|e| err("CreateLoadBalancer", e))?;
            let lb = out.load_balancers().first();
            let arn = lb.and_then(|l| l.load_balancer_arn()).unwrap_or_default().to_string();
            state.borrow_mut().load_balancer = Some(arn.clone());
            save(state)?;
            log::info("created network load balancer", &[("arn", &arn)]);
            inv.lb = Some(crate::inventory::Lb { arn: arn.clone(), security_groups: vec![sgs.lb.clone()] });
            arn
        }
    };
    state.borrow_mut().load_balancer = Some(lb.clone());
    if inv.listener.is_none() {
        let out = c
            .elb
            .create_listener()
            .load_balancer_arn(&lb)
            .protocol(elb::types::ProtocolEnum::Tcp)
            .port(cluster.api_port as i32)
            .default_actions(
                elb::types::Action::builder().r#type(elb::types::ActionTypeEnum::Forward).target_group_arn(&tg).build(),
            )
            .send()
            .await
            .map_err(|e| err("CreateListener", e))?;
        let arn = out.listeners().first().and_then(|l| l.listener_arn()).unwrap_or_default().to_string();
        state.borrow_mut().listener = Some(arn.clone());
        save(state)?;
        inv.listener = Some(arn);
    }
    state.borrow_mut().listener = inv.listener.clone();

    // Every control plane registered (registering is idempotent, but only missing ones go out).
    let health = c
        .elb
        .describe_target_health()
        .target_group_arn(&tg)
        .send()
        .await
        .map_err(|e| err("DescribeTargetHealth", e))?;
    let registered: Vec<String> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target())
        .filter_map(|t| t.id())
        .map(str::to_string)
        .collect();
    let wanted: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.role == NodeRole::ControlPlane)
        .filter_map(|n| inv.instances.get(&n.name))
        .map(|i| i.id.clone())
        .filter(|id| !registered.contains(id))
        .collect();
    if !wanted.is_empty() {
        let targets = wanted
            .iter()
            .map(|id| elb::types::TargetDescription::builder().id(id).port(cluster.api_port as i32).build())
            .collect::<Vec<_>>();
        c.elb
            .register_targets()
            .target_group_arn(&tg)
            .set_targets(Some(targets))
            .send()
            .await
            .map_err(|e| err("RegisterTargets", e))?;
        log::info("registered control planes with the load balancer", &[("count", &wanted.len())]);
    }

    let dns = RefCell::new(String::new());
    wait_until("the load balancer to become active", Duration::from_secs(600), || async {
        let out = c
            .elb
            .describe_load_balancers()
            .load_balancer_arns(&lb)
            .send()
            .await
            .map_err(|e| err("DescribeLoadBalancers", e))?;
        let l = out.load_balancers().first();
        *dns.borrow_mut() = l.and_then(|l| l.dns_name()).unwrap_or_default().to_string();
        let st = l.and_then(|l| l.state()).and_then(|s| s.code()).map(|c| c.as_str().to_string()).unwrap_or_default();
        if st == "failed" {
            return Err(Error::Internal("the load balancer failed to provision".into()));
        }
        progress::report("wait for load balancer", u64::from(st == "active"), 1);
        Ok(st == "active")
    })
    .await?;
    Ok(dns.into_inner())
}

/// Takes out of target group `tg` its registered targets among the instances `ids` (all of them
/// with `None`); an instance that is not registered is left alone (AWS refuses it). Returns
/// how many went.
pub(crate) async fn deregister(c: &Clients, tg: &str, ids: Option<&[String]>) -> Result<usize, Error> {
    let health =
        c.elb.describe_target_health().target_group_arn(tg).send().await.map_err(|e| err("DescribeTargetHealth", e))?;
    let targets: Vec<_> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target().cloned())
        .filter(|t| ids.is_none_or(|ids| t.id().is_some_and(|id| ids.iter().any(|x| x == id))))
        .collect();
    let n = targets.len();
    if n > 0 {
        c.elb
            .deregister_targets()
            .target_group_arn(tg)
            .set_targets(Some(targets))
            .send()
            .await
            .map_err(|e| err("DeregisterTargets", e))?;
    }
    Ok(n)
}

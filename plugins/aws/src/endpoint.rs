//! The `endpoint` export (contract 0.1.2): a control plane out of the NLB's target group before
//! its API server restarts, and back once it answers. An NLB retries nothing and checks health
//! only every 10 s, so without this a restarting member would get new connections until two
//! checks failed; deregistered, it gets none once its deregistration delay has passed.

use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2 as elb;

use crate::aws::{Clients, TAG_CLUSTER, err};
use crate::config::Config;
use crate::instances::instance_of_node;
use crate::retry::wait_until;
use crate::state::State;
use crate::{Cluster, Error, log};

/// The deregistration delay `apply` gives the target group (AWS's default is 300 s): how long
/// the NLB keeps a drained member's established connections.
pub const DEREGISTRATION_DELAY_SECS: u32 = 30;

/// How long a restored member may take to pass the NLB's health check (10 s interval, healthy
/// after 2).
const HEALTHY_LIMIT: Duration = Duration::from_secs(300);

/// The cluster's target group: from the state, else by its name, if it carries the cluster's tag.
async fn target_group(c: &Clients, cfg: &Config, state: &State) -> Result<String, Error> {
    if let Some(arn) = &state.target_group {
        return Ok(arn.clone());
    }
    let name = cfg.elb_name("api-tg");
    let out = c.elb.describe_target_groups().names(&name).send().await.map_err(|e| err("DescribeTargetGroups", e))?;
    let arn = out
        .target_groups()
        .first()
        .and_then(|t| t.target_group_arn())
        .ok_or_else(|| Error::NotFound(format!("no target group `{name}`: run `hacluster up` first")))?
        .to_string();
    let tags = c.elb.describe_tags().resource_arns(&arn).send().await.map_err(|e| err("DescribeTags", e))?;
    let ours = tags
        .tag_descriptions()
        .iter()
        .flat_map(|d| d.tags())
        .any(|t| t.key() == Some(TAG_CLUSTER) && t.value() == Some(cfg.cluster.as_str()));
    if !ours {
        return Err(Error::Conflict(format!("target group `{name}` does not carry {TAG_CLUSTER}={}", cfg.cluster)));
    }
    Ok(arn)
}

async fn instance(c: &Clients, cluster: &Cluster, state: &State, node: &str) -> Result<String, Error> {
    if let Some(id) = state.instances.get(node) {
        return Ok(id.clone());
    }
    instance_of_node(c, &cluster.name, node)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no instance for `{node}`: run `hacluster up` first")))
}

/// The target's state in the group: `healthy`, `initial`, `draining`, `unused` (not
/// registered), ...
async fn health(c: &Clients, tg: &str, id: &str, port: u16) -> Result<String, Error> {
    let out = c
        .elb
        .describe_target_health()
        .target_group_arn(tg)
        .targets(elb::types::TargetDescription::builder().id(id).port(port as i32).build())
        .send()
        .await
        .map_err(|e| err("DescribeTargetHealth", e))?;
    Ok(out
        .target_health_descriptions()
        .first()
        .and_then(|d| d.target_health())
        .and_then(|h| h.state())
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "unused".into()))
}

fn target(id: &str, port: u16) -> elb::types::TargetDescription {
    elb::types::TargetDescription::builder().id(id).port(port as i32).build()
}

/// Deregisters `node`'s instance and waits until the NLB no longer drains it.
pub async fn drain(c: &Clients, cfg: &Config, cluster: &Cluster, state: &State, node: &str) -> Result<String, Error> {
    let (tg, id) = (target_group(c, cfg, state).await?, instance(c, cluster, state, node).await?);
    let port = cluster.api_port;
    let started = Instant::now();
    let was = health(c, &tg, &id, port).await?;
    if was != "unused" && was != "draining" {
        c.elb
            .deregister_targets()
            .target_group_arn(&tg)
            .targets(target(&id, port))
            .send()
            .await
            .map_err(|e| err("DeregisterTargets", e))?;
        log::info("deregistered from the load balancer", &[("node", &node), ("instance", &id)]);
    }
    let limit = Duration::from_secs(u64::from(DEREGISTRATION_DELAY_SECS) + 300);
    wait_until("the target to finish draining", limit, || async { Ok(health(c, &tg, &id, port).await? == "unused") })
        .await?;
    Ok(if was == "unused" {
        format!("{id} was not registered with target group {tg}")
    } else {
        format!("deregistered {id} from target group {tg}; drained in {} s", started.elapsed().as_secs())
    })
}

/// Registers `node`'s instance again and waits until the NLB finds it healthy.
pub async fn restore(c: &Clients, cfg: &Config, cluster: &Cluster, state: &State, node: &str) -> Result<String, Error> {
    let (tg, id) = (target_group(c, cfg, state).await?, instance(c, cluster, state, node).await?);
    let port = cluster.api_port;
    let started = Instant::now();
    let was = health(c, &tg, &id, port).await?;
    if was == "unused" || was == "draining" {
        c.elb
            .register_targets()
            .target_group_arn(&tg)
            .targets(target(&id, port))
            .send()
            .await
            .map_err(|e| err("RegisterTargets", e))?;
        log::info("registered with the load balancer again", &[("node", &node), ("instance", &id)]);
    }
    wait_until("the target to pass the health check", HEALTHY_LIMIT, || async {
        Ok(health(c, &tg, &id, port).await? == "healthy")
    })
    .await?;
    Ok(if was == "healthy" {
        format!("{id} was registered and healthy in target group {tg}")
    } else {
        format!("registered {id} with target group {tg}; healthy after {} s", started.elapsed().as_secs())
    })
}

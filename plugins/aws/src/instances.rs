//! EC2 instances: launched once each (client tokens), spread over the zones, waited for.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2 as ec2;
use aws_smithy_types::retry::RetryConfig;
use futures_util::future::join_all;

use crate::aws::{Clients, TAG_CLUSTER, TAG_NODE, ec2_tags, err, pause, tag_spec};
use crate::config::Config;
use crate::inventory::Inventory;
use crate::retry::{LAUNCH_ATTEMPTS, wait_until, worth_retrying};
use crate::security_groups::Groups;
use crate::state::{State, save};
use crate::{Cluster, Error, NodeRole, log, progress};

/// A RunInstances client token: the same node in the same cluster life always sends the same
/// token, so a retried call returns the instance instead of creating a second one.
pub(crate) fn client_token(nonce: &str, node: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in nonce.bytes().chain([0]).chain(node.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("hacluster-{nonce}-{h:016x}")
}

pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn kube_nodes(cluster: &Cluster) -> impl Iterator<Item = &crate::NodeSpec> {
    cluster.nodes.iter().filter(|n| n.role != NodeRole::LoadBalancer)
}

pub(crate) fn zone_of(cfg: &Config, node: &crate::NodeSpec) -> String {
    node.failure_domain.clone().unwrap_or_else(|| cfg.availability_zones[0].clone())
}

pub(crate) async fn root_device(c: &Clients, ami: &str) -> String {
    match c.ec2.describe_images().image_ids(ami).send().await {
        Ok(out) => out.images().first().and_then(|i| i.root_device_name()).unwrap_or("/dev/sda1").to_string(),
        // Unknown to the API (or not visible): Ubuntu and Debian AMIs use /dev/sda1 / xvda.
        Err(_) => "/dev/sda1".to_string(),
    }
}

/// The live instance tagged as `node` of `cluster`, if any.
pub(crate) async fn instance_of_node(c: &Clients, cluster: &str, node: &str) -> Result<Option<String>, Error> {
    let filter = |k: &str, v: &[&str]| {
        ec2::types::Filter::builder().name(k).set_values(Some(v.iter().map(|s| s.to_string()).collect())).build()
    };
    let out = c
        .ec2
        .describe_instances()
        .filters(filter(&format!("tag:{TAG_CLUSTER}"), &[cluster]))
        .filters(filter(&format!("tag:{TAG_NODE}"), &[node]))
        .filters(filter("instance-state-name", &["pending", "running", "stopping", "stopped"]))
        .send()
        .await
        .map_err(|e| err("DescribeInstances", e))?;
    Ok(out.reservations().iter().flat_map(|r| r.instances()).find_map(|i| i.instance_id()).map(str::to_string))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn ensure_instances(
    c: &Clients,
    cfg: &Config,
    cluster: &Cluster,
    inv: &mut Inventory,
    sgs: &Groups,
    key: &str,
    state: &RefCell<State>,
) -> Result<(), Error> {
    let ami = cfg.ami.clone().ok_or_else(|| Error::InvalidInput("backends.aws.ami is not set".into()))?;
    let device = root_device(c, &ami).await;
    let nonce = state.borrow().nonce.clone();
    let missing: Vec<&crate::NodeSpec> = kube_nodes(cluster).filter(|n| !inv.instances.contains_key(&n.name)).collect();
    let total = kube_nodes(cluster).count() as u64;
    let done = RefCell::new(total - missing.len() as u64);
    progress::report("create instances", *done.borrow(), total);
    let creates = missing.into_iter().map(|node| {
        let (role, itype, sg) = match node.role {
            NodeRole::ControlPlane => ("control-plane", &cfg.control_plane_type, &sgs.control_plane),
            _ => ("worker", &cfg.worker_type, &sgs.worker),
        };
        let zone = zone_of(cfg, node);
        let subnet = inv.subnet_for(cfg, &zone);
        let tags = ec2_tags(&cfg.cluster, role, &node.name, Some(&node.name));
        let (ami, device, nonce, done) = (&ami, &device, &nonce, &done);
        async move {
            let subnet = subnet.ok_or_else(|| Error::Internal(format!("no subnet for zone {zone}")))?;
            let launch = || {
                c.ec2
                    .run_instances()
                    .image_id(ami)
                    .instance_type(ec2::types::InstanceType::from(itype.as_str()))
                    .min_count(1)
                    .max_count(1)
                    .subnet_id(&subnet)
                    .security_group_ids(sg)
                    .key_name(key)
                    .user_data(base64(node.user_data.as_bytes()))
                    .client_token(client_token(nonce, &node.name))
                    .block_device_mappings(
                        ec2::types::BlockDeviceMapping::builder()
                            .device_name(device)
                            .ebs(
                                ec2::types::EbsBlockDevice::builder()
                                    .volume_size(cfg.root_volume_gib as i32)
                                    .volume_type(ec2::types::VolumeType::Gp3)
                                    .delete_on_termination(true)
                                    .encrypted(true)
                                    .build(),
                            )
                            .build(),
                    )
                    // IMDSv2 only: the instance metadata (user-data included) needs a session token.
                    .metadata_options(
                        ec2::types::InstanceMetadataOptionsRequest::builder()
                            .http_tokens(ec2::types::HttpTokensState::Required)
                            .build(),
                    )
                    .tag_specifications(tag_spec(ec2::types::ResourceType::Instance, tags.clone()))
                    .tag_specifications(tag_spec(ec2::types::ResourceType::Volume, tags.clone()))
                    .customize()
                    // Retried below instead, looking first (see there).
                    .config_override(ec2::Config::builder().retry_config(RetryConfig::disabled()))
                    .send()
            };
            // A RunInstances that failed may still have launched the instance: its answer may
            // have been lost, and a throttled or failed request is not always one that did
            // nothing. The SDK would simply send it again, trusting the ClientToken; where that
            // is not honoured (API emulators, moto) it launches a second instance. So before
            // every retry, look for the node's instance by its tag.
            let mut attempt = 0u32;
            let id = loop {
                match launch().await {
                    Ok(out) => {
                        break out.instances().first().and_then(|i| i.instance_id()).unwrap_or_default().to_string();
                    }
                    Err(e) if worth_retrying(&e) && attempt < LAUNCH_ATTEMPTS => {
                        if let Some(id) = instance_of_node(c, &cfg.cluster, &node.name).await? {
                            log::info("the launch went through; its answer was lost", &[("node", &node.name)]);
                            break id;
                        }
                        attempt += 1;
                        pause(Duration::from_millis((200u64 << attempt).min(10_000))).await;
                    }
                    Err(e) => return Err(err("RunInstances", e)),
                }
            };
            state.borrow_mut().instances.insert(node.name.clone(), id.clone());
            save(state)?;
            *done.borrow_mut() += 1;
            progress::report("create instances", *done.borrow(), total);
            log::info("launched instance", &[("node", &node.name), ("id", &id), ("zone", &zone)]);
            Ok::<(), Error>(())
        }
    });
    let mut first_error = None;
    for r in join_all(creates).await {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    for (node, id) in state.borrow().instances.iter() {
        inv.instances.entry(node.clone()).or_insert_with(|| crate::inventory::Instance {
            id: id.clone(),
            state: "pending".into(),
            private_ip: None,
            public_ip: None,
        });
    }
    Ok(())
}

/// Waits until every instance runs, then records their addresses.
pub(crate) async fn wait_running(c: &Clients, cluster: &Cluster, inv: &mut Inventory) -> Result<(), Error> {
    let ids: Vec<String> =
        kube_nodes(cluster).filter_map(|n| inv.instances.get(&n.name)).map(|i| i.id.clone()).collect();
    let total = ids.len() as u64;
    let found = RefCell::new(BTreeMap::<String, (String, Option<String>, Option<String>)>::new());
    wait_until("instances to run", Duration::from_secs(900), || async {
        let out = c
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids.clone()))
            .send()
            .await
            .map_err(|e| err("DescribeInstances", e))?;
        let mut f = found.borrow_mut();
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let st = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
            if st == "terminated" || st == "shutting-down" {
                return Err(Error::Conflict(format!("instance {} is {st}", i.instance_id().unwrap_or_default())));
            }
            f.insert(
                i.instance_id().unwrap_or_default().to_string(),
                (st, i.private_ip_address().map(str::to_string), i.public_ip_address().map(str::to_string)),
            );
        }
        let running = f.values().filter(|(s, _, _)| s == "running").count() as u64;
        progress::report("wait for instances", running, total);
        Ok(running == total)
    })
    .await?;
    let f = found.into_inner();
    for inst in inv.instances.values_mut() {
        if let Some((st, private, public)) = f.get(&inst.id) {
            inst.state = st.clone();
            inst.private_ip = private.clone();
            inst.public_ip = public.clone();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn client_tokens_are_stable_and_distinct() {
        assert_eq!(client_token("n", "a"), client_token("n", "a"));
        assert_ne!(client_token("n", "a"), client_token("n", "b"));
        assert_ne!(client_token("n", "a"), client_token("m", "a"));
        assert!(client_token("0123456789abcdef", "some-cluster-name-worker-12").len() <= 64);
    }
}

/// The instances of nodes the config no longer has: out of the API target group (when they are
/// in it), terminated, and waited for. hacluster calls `apply` with fewer nodes only after it
/// has taken them out of the cluster (drained, etcd member removed, `kubeadm reset`), or before
/// the cluster ran. Returns how many went.
pub(crate) async fn remove_dropped(
    c: &Clients,
    cluster: &Cluster,
    inv: &mut Inventory,
    state: &RefCell<State>,
) -> Result<usize, Error> {
    let dropped: Vec<(String, String)> = inv
        .instances
        .iter()
        .filter(|(n, _)| !cluster.nodes.iter().any(|x| &x.name == *n))
        .map(|(n, i)| (n.clone(), i.id.clone()))
        .collect();
    if dropped.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = dropped.iter().map(|(_, id)| id.clone()).collect();
    if let Some(tg) = &inv.tg {
        crate::load_balancer::deregister(c, tg, Some(&ids)).await?;
    }
    c.ec2
        .terminate_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .map_err(|e| err("TerminateInstances", e))?;
    for (node, id) in &dropped {
        log::info("terminating the instance of a node no longer in the config", &[("node", node), ("instance", id)]);
        inv.instances.remove(node);
        state.borrow_mut().instances.remove(node);
    }
    save(state)?;
    wait_until("instances of removed nodes to terminate", Duration::from_secs(600), || async {
        Ok(not_terminated(c, &ids).await? == 0)
    })
    .await?;
    Ok(dropped.len())
}

/// How many of the instances `ids` are not terminated yet.
pub(crate) async fn not_terminated(c: &Clients, ids: &[String]) -> Result<usize, Error> {
    let out = c
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| err("DescribeInstances", e))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.state().and_then(|s| s.name()) != Some(&ec2::types::InstanceStateName::Terminated))
        .count())
}

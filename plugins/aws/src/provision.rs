//! `apply`: converge the AWS resources of a cluster, creating only what discovery did not find,
//! checkpointing after every create, independent creates running concurrently.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use aws_sdk_ec2 as ec2;
use aws_sdk_elasticloadbalancingv2 as elb;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::aws::{Clients, TAG_CLUSTER, TAG_NODE, ec2_tags, elb_tags, err, pause, tag_spec};
use crate::config::Config;
use crate::inventory::{Inventory, discover};
use crate::rules;
use crate::{
    ApiEndpoint, Cluster, EndpointKind, Error, Machine, NodeRole, Provisioned, SshTarget, checkpoint, log, progress,
};

/// The backend's state: ids of what it created, and the nonce of this cluster's life (part of
/// every RunInstances client token). Tags remain the truth; this is the record the host keeps.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub nonce: String,
    pub vpc: Option<String>,
    #[serde(default)]
    pub subnets: BTreeMap<String, String>,
    pub internet_gateway: Option<String>,
    pub route_table: Option<String>,
    pub sg_control_plane: Option<String>,
    pub sg_worker: Option<String>,
    #[serde(default)]
    pub sg_lb: Option<String>,
    pub key_pair: Option<String>,
    #[serde(default)]
    pub instances: BTreeMap<String, String>,
    pub target_group: Option<String>,
    pub load_balancer: Option<String>,
    pub listener: Option<String>,
}

/// The `hacluster:role` of the NLB's security group.
pub const LB_ROLE: &str = "api-load-balancer";

/// The groups of control planes, workers and the NLB.
pub struct Groups {
    pub control_plane: String,
    pub worker: String,
    pub lb: String,
}

/// Saves the state through the host before the next step.
pub fn save(state: &RefCell<State>) -> Result<(), Error> {
    checkpoint(&*state.borrow())
}

fn new_nonce() -> String {
    // RandomState is seeded from wasi:random.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    format!("{:016x}", h.finish())
}

/// A RunInstances client token: the same node in the same cluster life always sends the same
/// token, so a retried call returns the instance instead of creating a second one.
fn client_token(nonce: &str, node: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in nonce.bytes().chain([0]).chain(node.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("hacluster-{nonce}-{h:016x}")
}

fn base64(data: &[u8]) -> String {
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

/// Polls with backoff (1 s, growing to 10 s) until `done` or the deadline.
pub(crate) async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        if check().await? {
            return Ok(());
        }
        if start.elapsed() > deadline {
            return Err(Error::Transient(format!("timed out after {}s waiting for {what}", deadline.as_secs())));
        }
        pause(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(10));
    }
}

fn kube_nodes(cluster: &Cluster) -> impl Iterator<Item = &crate::NodeSpec> {
    cluster.nodes.iter().filter(|n| n.role != NodeRole::LoadBalancer)
}

fn zone_of(cfg: &Config, node: &crate::NodeSpec) -> String {
    node.failure_domain.clone().unwrap_or_else(|| cfg.availability_zones[0].clone())
}

/// An existing VPC and its subnets must exist, and each subnet must be in its zone, before
/// anything is created in them.
async fn verify_existing(c: &Clients, cfg: &Config, vpc: &str) -> Result<(), Error> {
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

async fn ensure_network(
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

async fn ensure_security_groups(
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

async fn authorize_missing(c: &Clients, group: String, missing: Vec<rules::Rule>) -> Result<usize, Error> {
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

async fn ensure_key_pair(
    c: &Clients,
    cfg: &Config,
    cluster: &Cluster,
    inv: &Inventory,
    state: &RefCell<State>,
) -> Result<String, Error> {
    if let Some(k) = &inv.key_pair {
        state.borrow_mut().key_pair = Some(k.clone());
        return Ok(k.clone());
    }
    let name = format!("{}-key", cfg.cluster);
    c.ec2
        .import_key_pair()
        .key_name(&name)
        .public_key_material(aws_smithy_types::Blob::new(cluster.ssh_public_key.as_bytes()))
        .tag_specifications(tag_spec(
            ec2::types::ResourceType::KeyPair,
            ec2_tags(&cfg.cluster, "key-pair", &name, None),
        ))
        .send()
        .await
        .map_err(|e| err("ImportKeyPair", e))?;
    state.borrow_mut().key_pair = Some(name.clone());
    save(state)?;
    log::info("imported key pair", &[("name", &name)]);
    Ok(name)
}

async fn root_device(c: &Clients, ami: &str) -> String {
    match c.ec2.describe_images().image_ids(ami).send().await {
        Ok(out) => out.images().first().and_then(|i| i.root_device_name()).unwrap_or("/dev/sda1").to_string(),
        // Unknown to the API (or not visible): Ubuntu and Debian AMIs use /dev/sda1 / xvda.
        Err(_) => "/dev/sda1".to_string(),
    }
}

/// Attempts at one instance's launch, as many as the SDK makes for other calls.
const LAUNCH_ATTEMPTS: u32 = 8;

/// Throttling, a server error, or no answer at all: worth another try (after looking).
fn worth_retrying<E: ProvideErrorMetadata>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    use aws_smithy_runtime_api::client::result::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            s.raw().status().is_server_error()
                || matches!(
                    s.err().code(),
                    Some(
                        "RequestLimitExceeded" | "Throttling" | "ServiceUnavailable" | "InternalError" | "Unavailable"
                    )
                )
        }
        other => answer_lost(other),
    }
}

/// A request that was (perhaps) sent and got no answer: the connection failed or timed out.
/// Not a refusal by the host, which is final.
fn answer_lost<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    use aws_smithy_runtime_api::client::result::SdkError;
    match e {
        SdkError::DispatchFailure(d) => d.as_connector_error().is_none_or(|c| {
            !aws_smithy_types::error::display::DisplayErrorContext(c).to_string().contains("HttpRequestDenied")
        }),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        _ => false,
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
async fn ensure_instances(
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
async fn wait_running(c: &Clients, cluster: &Cluster, inv: &mut Inventory) -> Result<(), Error> {
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

/// The target group's attributes: targets see the NLB's address, not the client's (see
/// `rules::lb_rules` for why), and a deregistered control plane drains for
/// `endpoint::DEREGISTRATION_DELAY_SECS`, not AWS's default 300 s (its API server's
/// connections end when it restarts anyway; clients reconnect through the NLB).
async fn ensure_target_group_attributes(c: &Clients, tg: &str) -> Result<(), Error> {
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
fn refuse_nlb_without_group(cfg: &Config, inv: &Inventory) -> Result<(), Error> {
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

async fn ensure_load_balancer(
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

pub async fn apply(c: &Clients, cfg: &Config, cluster: &Cluster, mut st: State) -> Result<Provisioned<State>, Error> {
    if !matches!(cluster.endpoint, EndpointKind::CloudLoadBalancer) {
        return Err(Error::InvalidInput(
            "the aws backend provides the endpoint itself (a Network Load Balancer)".into(),
        ));
    }
    if st.nonce.is_empty() {
        st.nonce = new_nonce();
    }
    let state = RefCell::new(st);
    save(&state)?;
    let mut inv = discover(c, cfg).await?;
    log::debug("discovered existing resources", &[("count", &inv.count())]);
    refuse_nlb_without_group(cfg, &inv)?;

    let vpc = ensure_network(c, cfg, &mut inv, &state).await?;
    let sgs = ensure_security_groups(c, cfg, cluster, &inv, &vpc, &state).await?;
    let key = ensure_key_pair(c, cfg, cluster, &inv, &state).await?;
    ensure_instances(c, cfg, cluster, &mut inv, &sgs, &key, &state).await?;
    wait_running(c, cluster, &mut inv).await?;
    let dns = ensure_load_balancer(c, cfg, cluster, &mut inv, &vpc, &sgs, &state).await?;

    let extra: Vec<&String> = inv.instances.keys().filter(|n| !cluster.nodes.iter().any(|x| &x.name == *n)).collect();
    if !extra.is_empty() {
        log::warn(
            "instances of nodes no longer in the config are left running; drain them and run down or remove them",
            &[("nodes", &extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))],
        );
    }
    let mut machines = Vec::new();
    for node in kube_nodes(cluster) {
        let inst =
            inv.instances.get(&node.name).ok_or_else(|| Error::Internal(format!("no instance for {}", node.name)))?;
        let private =
            inst.private_ip.clone().ok_or_else(|| Error::Internal(format!("{} has no private address", inst.id)))?;
        // Public subnets: SSH over the public address; private: over the private one (the
        // operator needs a route into the VPC, e.g. a VPN).
        let ssh_address = if cfg.private_subnets {
            private.clone()
        } else {
            inst.public_ip.clone().unwrap_or_else(|| private.clone())
        };
        machines.push(Machine {
            name: node.name.clone(),
            role: node.role,
            private_address: private,
            ssh: SshTarget {
                address: ssh_address,
                port: 22,
                user: cluster.ssh_user.clone(),
                jump: None,
                host_public_key: node.host_public_key.clone(),
            },
            provider_id: inst.id.clone(),
        });
    }
    Ok(Provisioned { machines, endpoint: ApiEndpoint { host: dns, port: cluster.api_port }, state: state.into_inner() })
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

//! `cluster.nodes` and `cluster.nodeTemplate`: the machines, their counts, addresses,
//! placement and the API endpoint they imply.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::Ctx;
use super::hosts::is_simple_name;
use super::network::{check_in_network, parse_ip};
use crate::config::diagnostic::{FieldPath, did_you_mean};
use crate::config::raw::{self, RawConfig};
use crate::model::{
    API_PORT, AwsSpec, BackendProfile, ClusterName, ClusterSpec, DataDisk, ForwardPort, ForwardTarget, HostSpec,
    MacAddr, NetworkSpec, Node, NodeName, NodeRole, NodeTemplate, Quorum, Resources, Taint,
};

pub const DEFAULT_VRID: u8 = 51;
pub const DEFAULT_USER: &str = "k8s";

pub struct Nodes {
    pub template: NodeTemplate,
    pub control_planes: Vec<Node>,
    pub workers: Vec<Node>,
    pub load_balancers: Vec<Node>,
    pub forward_ports: Vec<ForwardPort>,
    pub vip: Option<(Ipv4Addr, u8)>,
}

/// The parts of a master, worker or load-balancer instance that are checked the same way.
struct Instance<'a> {
    path: FieldPath,
    id: &'a str,
    host: Option<&'a str>,
    ip: Option<&'a str>,
    mac: Option<&'a str>,
    sizes: [Option<i64>; 3],
    data_disks: Vec<(FieldPath, &'a raw::DataDisk)>,
    labels: Vec<(FieldPath, &'a BTreeMap<String, String>)>,
    taints: Vec<(FieldPath, &'a [String])>,
}

/// Everything shared while checking instances: addresses and MACs taken so far, hosts.
struct Registry<'a> {
    ips: BTreeMap<Ipv4Addr, FieldPath>,
    macs: BTreeMap<[u8; 6], FieldPath>,
    hosts: &'a [HostSpec],
    backend: &'a BackendProfile,
    network: Option<&'a NetworkSpec>,
    cluster: Option<&'a ClusterName>,
}

impl Registry<'_> {
    fn claim_ip(&mut self, cx: &mut Ctx, path: FieldPath, text: &str) -> Option<Ipv4Addr> {
        let addr = parse_ip(cx, path.clone(), text)?;
        match self.network {
            Some(net) if !check_in_network(cx, path.clone(), addr, net) => return None,
            Some(_) => {}
            None if self.backend.cloud_lb => {
                cx.warn(
                    "address-ignored",
                    path,
                    format!("the {} backend assigns node addresses itself; {addr} is ignored", self.backend.name),
                    "remove the `ip` field",
                );
                return None;
            }
            None => {}
        }
        if let Some(first) = self.ips.get(&addr) {
            cx.error(
                "duplicate-ip",
                path,
                format!("{addr} is already used by {first}"),
                "every node, load balancer and the VIP needs its own address",
            );
            return None;
        }
        self.ips.insert(addr, path);
        Some(addr)
    }
}

/// Lowercase letters and digits: with a `-`, two clusters' node names could meet (`a` with id
/// `master-1` and `a-master` with id `1` both name `a-master-master-1`), and the hypervisor
/// host tells the cluster's domains from others' by that name.
fn node_id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether a kubelet may put label `key` on its own Node (`--node-labels`): anything outside
/// the kubernetes.io and k8s.io namespaces, and inside them only its own well-known labels and
/// the kubelet.kubernetes.io and node.kubernetes.io namespaces (k8s.io/kubelet's
/// `IsKubeletLabel`, which the kubelet checks at start).
fn kubelet_may_set(key: &str) -> bool {
    const OWN: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    let Some((ns, _)) = key.split_once('/') else { return true };
    let in_ns = |n: &str, suffix: &str| n == suffix || n.ends_with(&format!(".{suffix}"));
    if !in_ns(ns, "kubernetes.io") && !in_ns(ns, "k8s.io") {
        return true;
    }
    OWN.contains(&key) || in_ns(ns, "kubelet.kubernetes.io") || in_ns(ns, "node.kubernetes.io")
}

fn label_part_ok(s: &str, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn check_instance(
    cx: &mut Ctx,
    reg: &mut Registry,
    role: NodeRole,
    inst: Instance,
    defaults: Resources,
    seen_ids: &mut BTreeMap<String, FieldPath>,
) -> Option<Node> {
    let before = cx.diags.iter().filter(|d| d.is_error()).count();
    let p = &inst.path;
    if !node_id_ok(inst.id) {
        cx.error(
            "node-id",
            p.key("id"),
            format!("`{}` cannot be a node id", inst.id),
            format!(
                "use lowercase letters and digits (at most 20): the id ends the node name `<cluster>-{}-<id>`, and a `-` in it would let another cluster's node have the same name (cluster `a` with id `{}-1` and cluster `a-{}` with id `1`)",
                role.config_name(),
                role.config_name(),
                role.config_name()
            ),
        );
    }
    if let Some(first) = seen_ids.insert(inst.id.to_string(), p.key("id")) {
        cx.error(
            "duplicate-id",
            p.key("id"),
            format!("id `{}` is already used by {first}", inst.id),
            "ids must be unique within their group: they name the VM and the Kubernetes node",
        );
    }

    let host = if reg.backend.uses_hosts {
        match inst.host {
            Some(h) if reg.hosts.iter().any(|x| x.name == h) => Some(h.to_string()),
            Some(h) => {
                let names: Vec<&str> = reg.hosts.iter().map(|x| x.name.as_str()).collect();
                let help = match did_you_mean(h, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => "define the host under `hosts`".to_string(),
                    None => format!("defined hosts: {}", names.join(", ")),
                };
                cx.error("unknown-host", p.key("host"), format!("host `{h}` is not defined in `hosts`"), help);
                None
            }
            None => reg.hosts.iter().find(|h| h.default).map(|h| h.name.clone()),
        }
    } else {
        if inst.host.is_some() {
            cx.warn_key(
                "host-ignored",
                p.key("host"),
                format!("host affinity is ignored by the {} backend", reg.backend.name),
                "remove `host`",
            );
        }
        None
    };

    let address = inst.ip.and_then(|ip| reg.claim_ip(cx, p.key("ip"), ip));
    let mac = match inst.mac {
        None => None,
        Some(m) => match MacAddr::parse(m) {
            None => {
                cx.error(
                    "bad-mac",
                    p.key("mac"),
                    format!("`{m}` is not a MAC address"),
                    "write six hex pairs separated by colons, e.g. `52:54:00:6b:3c:58`",
                );
                None
            }
            Some(mac) if mac.is_multicast() => {
                cx.error(
                    "multicast-mac",
                    p.key("mac"),
                    format!("{mac} is a multicast address and cannot be a NIC's address"),
                    "the lowest bit of the first byte must be 0; libvirt's prefix 52:54:00 is a safe choice",
                );
                None
            }
            Some(mac) => {
                if let Some(first) = reg.macs.get(&mac.0) {
                    cx.error(
                        "duplicate-mac",
                        p.key("mac"),
                        format!("{mac} is already used by {first}"),
                        "every NIC needs its own MAC address",
                    );
                } else {
                    reg.macs.insert(mac.0, p.key("mac"));
                }
                Some(mac)
            }
        },
    };

    let [cpu, ram, disk] = inst.sizes;
    let resources = Resources {
        cpu: cpu.map(|v| v as u32).unwrap_or(defaults.cpu),
        ram_gib: ram.map(|v| v as u32).unwrap_or(defaults.ram_gib),
        main_disk_gib: disk.map(|v| v as u32).unwrap_or(defaults.main_disk_gib),
    };
    if role == NodeRole::ControlPlane && (resources.cpu < 2 || resources.ram_gib < 2) {
        cx.warn(
            "small-control-plane",
            p.clone(),
            format!(
                "{} vCPU and {} GiB RAM is below kubeadm's minimum for a control plane (2 vCPU, 2 GiB)",
                resources.cpu, resources.ram_gib
            ),
            "kubeadm's preflight checks will fail; give control planes at least 2 vCPU and 2 GiB",
        );
    }

    let mut disks: Vec<DataDisk> = Vec::new();
    for (dp, d) in &inst.data_disks {
        let pool = d.pool.clone().unwrap_or_else(|| "main".into());
        if !is_simple_name(&d.name) {
            cx.error(
                "disk-name",
                dp.key("name"),
                format!("`{}` is not a valid disk name", d.name),
                "use letters, digits, `-` and `_`",
            );
        }
        if disks.iter().any(|x| x.name == d.name) {
            cx.error(
                "duplicate-disk",
                dp.key("name"),
                format!("data disk `{}` is defined twice for this node", d.name),
                "data disks from the group's `default` and the instance share one namespace; rename one",
            );
        }
        if reg.backend.uses_hosts
            && pool != "main"
            && let Some(h) = host.as_deref().and_then(|h| reg.hosts.iter().find(|x| x.name == h))
            && !h.data_pools.contains_key(&pool)
        {
            let pools: Vec<&str> = h.data_pools.keys().map(String::as_str).collect();
            let help = match did_you_mean(&pool, pools.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("define it under hosts[name={}].dataResourcePools, or use `main`", h.name),
            };
            cx.error(
                "unknown-pool",
                dp.key("pool"),
                format!("pool `{pool}` is not defined on host `{}`, where this node runs", h.name),
                help,
            );
        }
        disks.push(DataDisk { name: d.name.clone(), pool, size_gib: d.size as u32 });
    }
    if !disks.is_empty() && !reg.backend.uses_hosts {
        cx.warn(
            "disks-ignored",
            p.key("dataDisks"),
            format!("data disks are not supported by the {} backend and are ignored", reg.backend.name),
            "remove `dataDisks`, or attach volumes after the cluster is up",
        );
    }

    let mut labels = BTreeMap::new();
    for (lp, map) in &inst.labels {
        for (k, v) in map.iter() {
            let (prefix, name) = k.rsplit_once('/').unwrap_or(("", k));
            let key_ok = label_part_ok(name, false)
                && (prefix.is_empty() || (prefix.len() <= 253 && label_part_ok(prefix, false)));
            if !key_ok || !label_part_ok(v, true) {
                cx.error(
                    "bad-label",
                    lp.key(k.clone()),
                    format!("`{k}: {v}` is not a valid Kubernetes label"),
                    "keys are [prefix/]name and values at most 63 characters of letters, digits, `-`, `_` and `.`, starting and ending alphanumeric",
                );
            }
            if key_ok && !kubelet_may_set(k) {
                cx.error(
                    "kubelet-label",
                    lp.key(k.clone()),
                    format!("the kubelet refuses to set `{k}` on its own Node (labels under kubernetes.io and k8s.io are reserved)"),
                    "use a label of your own prefix, or one under `node.kubernetes.io/`; set node-role.kubernetes.io/… with `kubectl label` after up",
                );
            }
            labels.insert(k.clone(), v.clone());
        }
    }
    let mut taints = Vec::new();
    for (tp, list) in &inst.taints {
        for (i, t) in list.iter().enumerate() {
            match Taint::parse(t) {
                Some(t) => taints.push(t),
                None => cx.error(
                    "bad-taint",
                    tp.index(i),
                    format!("`{t}` is not a taint"),
                    "write `key=value:Effect` or `key:Effect`, where Effect is NoSchedule, PreferNoSchedule or NoExecute",
                ),
            }
        }
    }

    let after = cx.diags.iter().filter(|d| d.is_error()).count();
    if after > before {
        return None;
    }
    let name = NodeName::new(reg.cluster?, role, inst.id);
    Some(Node {
        name,
        role,
        id: inst.id.to_string(),
        failure_domain: host.clone(),
        host,
        address,
        mac,
        resources,
        data_disks: disks,
        labels,
        taints,
        priority: None,
    })
}

/// Sizes given as `cpu`, `ram`, `mainDiskSize` over `under`: a role's `default` over the
/// template's sizes, the template's over the built-in ones (an instance's own come first of all).
fn sizes_over(cpu: Option<i64>, ram: Option<i64>, disk: Option<i64>, under: Resources) -> Resources {
    Resources {
        cpu: cpu.map(|v| v as u32).unwrap_or(under.cpu),
        ram_gib: ram.map(|v| v as u32).unwrap_or(under.ram_gib),
        main_disk_gib: disk.map(|v| v as u32).unwrap_or(under.main_disk_gib),
    }
}

fn check_group(
    cx: &mut Ctx,
    reg: &mut Registry,
    role: NodeRole,
    group: &raw::NodeGroup,
    base: FieldPath,
    template: Resources,
) -> Vec<Node> {
    let d = &group.default;
    let defaults = sizes_over(d.cpu, d.ram, d.main_disk_size, template);
    let dpath = base.key("default");
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for (i, inst) in group.instances.iter().enumerate() {
        let path = base.key("instances").index(i);
        let mut data_disks: Vec<(FieldPath, &raw::DataDisk)> =
            group.default.data_disks.iter().enumerate().map(|(j, d)| (dpath.key("dataDisks").index(j), d)).collect();
        data_disks.extend(inst.data_disks.iter().enumerate().map(|(j, d)| (path.key("dataDisks").index(j), d)));
        let view = Instance {
            path: path.clone(),
            id: &inst.id,
            host: inst.host.as_deref(),
            ip: inst.ip.as_deref(),
            mac: inst.mac.as_deref(),
            sizes: [inst.cpu, inst.ram, inst.main_disk_size],
            data_disks,
            labels: vec![(dpath.key("labels"), &group.default.labels), (path.key("labels"), &inst.labels)],
            taints: vec![(dpath.key("taints"), &group.default.taints), (path.key("taints"), &inst.taints)],
        };
        if let Some(n) = check_instance(cx, reg, role, view, defaults, &mut seen) {
            out.push(n);
        }
    }
    out
}

fn check_template(cx: &mut Ctx, t: &raw::NodeTemplate) -> NodeTemplate {
    let base = FieldPath::root().key("cluster").key("nodeTemplate");
    let user = t.user.clone().unwrap_or_else(|| DEFAULT_USER.into());
    let user_ok = !user.is_empty()
        && user.len() <= 32
        && user.as_bytes()[0].is_ascii_lowercase()
        && user.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !user_ok || user == "root" {
        cx.error(
            "bad-user",
            base.key("user"),
            format!("`{user}` cannot be the node login user"),
            "use a lowercase Linux user name other than root, e.g. `k8s` (it gets passwordless sudo)",
        );
    }
    if t.ssh.add_to_known_hosts.is_some() {
        cx.warn_key(
            "ignored-field",
            base.key("ssh").key("addToKnownHosts"),
            "`addToKnownHosts` is accepted for Kubitect compatibility and ignored",
            "hacluster generates every node's SSH host key, pins it, and keeps it in the cluster's own known_hosts file; you can remove this field",
        );
    }
    let mut dns = Vec::new();
    for (i, d) in t.dns.iter().enumerate() {
        match d.parse::<IpAddr>() {
            Ok(a) => dns.push(a),
            Err(_) => cx.error(
                "bad-ip",
                base.key("dns").index(i),
                format!("`{d}` is not an IP address"),
                "list DNS servers by address, e.g. `1.1.1.1`",
            ),
        }
    }
    let nic = t.os.network_interface.clone().unwrap_or_else(|| "ens3".into());
    NodeTemplate {
        user,
        private_key_path: t.ssh.private_key_path.clone(),
        update_on_boot: t.update_on_boot.unwrap_or(true),
        distro: serde_json::to_value(t.os.distro.unwrap_or(raw::OsDistro::Ubuntu))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "ubuntu".into()),
        network_interface: nic,
        image_source: t.os.source.clone(),
        cpu_mode: match t.cpu_mode.unwrap_or(raw::CpuMode::Custom) {
            raw::CpuMode::Custom => "custom".into(),
            raw::CpuMode::HostPassthrough => "host-passthrough".into(),
        },
        dns,
    }
}

fn failures(n: u32) -> String {
    if n == 1 { "1 failure".into() } else { format!("{n} failures") }
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

#[allow(clippy::too_many_arguments)]
pub fn check(
    cx: &mut Ctx,
    raw: &RawConfig,
    backend: &BackendProfile,
    hosts: &[HostSpec],
    network: Option<&NetworkSpec>,
    cluster: Option<&ClusterName>,
    aws: Option<&AwsSpec>,
) -> Option<Nodes> {
    let base = FieldPath::root().key("cluster").key("nodes");
    let template = check_template(cx, &raw.cluster.node_template);
    let mut reg = Registry { ips: BTreeMap::new(), macs: BTreeMap::new(), hosts, backend, network, cluster };
    let nodes = &raw.cluster.nodes;
    let lb = nodes.load_balancer.clone().unwrap_or_default();
    let lb_path = base.key("loadBalancer");

    // The VIP is claimed first so that a node reusing it is the one reported.
    let vip = match (&lb.vip, backend.cloud_lb) {
        (Some(_), true) => None,
        (Some(v), false) => reg.claim_ip(cx, lb_path.key("vip"), v),
        (None, _) => None,
    };

    let t = &raw.cluster.node_template;
    let sizes = sizes_over(t.cpu, t.ram, t.main_disk_size, Resources::DEFAULT);
    let mut control_planes =
        check_group(cx, &mut reg, NodeRole::ControlPlane, &nodes.master, base.key("master"), sizes);
    let mut workers = check_group(cx, &mut reg, NodeRole::Worker, &nodes.worker, base.key("worker"), sizes);

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
            if let Some(mut n) = check_instance(cx, &mut reg, NodeRole::LoadBalancer, view, lb_defaults, &mut seen) {
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

    let vrid = match lb.virtual_router_id {
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
    };

    // Counts and the endpoint.
    let masters = nodes.master.instances.len();
    let lbs = if backend.cloud_lb { 0 } else { lb.instances.len() };
    let mpath = base.key("master").key("instances");
    if masters == 0 {
        cx.error(
            "no-control-plane",
            mpath.clone(),
            "the cluster has no control-plane node",
            "add at least one instance under `cluster.nodes.master.instances`; three tolerate one failure",
        );
    } else if masters.is_multiple_of(2) {
        let q = Quorum::new(masters as u32).expect("masters > 0");
        let lower = Quorum::new(masters as u32 - 1).expect("masters >= 2");
        cx.error(
            "even-control-planes",
            mpath.clone(),
            format!(
                "{masters} control-plane nodes is an even number: each runs an etcd member, and etcd accepts writes only with a quorum of n/2+1 = {} of {masters} members up, so {masters} nodes tolerate {} — no more than {} nodes do, with one more machine that can fail",
                q.size(),
                failures(q.tolerated_failures()),
                masters - 1
            ),
            format!(
                "use an odd number: {} (tolerates {}) or {} (tolerates {})",
                masters - 1,
                lower.tolerated_failures(),
                masters + 1,
                Quorum::new(masters as u32 + 1).expect("positive").tolerated_failures()
            ),
        );
    } else if masters > 7 {
        cx.warn(
            "many-control-planes",
            mpath.clone(),
            format!("{masters} etcd members: every write waits for a majority of them, so writes get slower"),
            "etcd recommends at most 7 members; 5 tolerate two failures",
        );
    }
    if masters > 1 && !backend.cloud_lb && lbs == 0 {
        cx.error(
            "no-endpoint",
            mpath.clone(),
            format!(
                "{masters} control planes need one stable API endpoint in front of them, and none is configured"
            ),
            "kubeadm init needs --control-plane-endpoint: add `cluster.nodes.loadBalancer.instances` (one for a load balancer, two or more plus a `vip` for a highly available endpoint)",
        );
    }
    if lbs > 1 && lb.vip.is_none() {
        cx.error(
            "vip-missing",
            lb_path.key("vip"),
            format!("{lbs} load balancers but no virtual IP"),
            "with several load balancers clients need one address that moves between them: add `vip:` with a free address in the node network",
        );
    }
    if lb.vip.is_some() && lbs == 0 && !backend.cloud_lb {
        cx.error(
            "vip-without-lb",
            lb_path.key("vip"),
            "a virtual IP needs load balancers to hold it",
            "add `cluster.nodes.loadBalancer.instances` (two for failover)",
        );
    }
    if masters == 1 && !backend.cloud_lb {
        cx.warn(
            "single-control-plane",
            mpath.clone(),
            "one control plane is not highly available: losing it stops the Kubernetes API and etcd",
            "use 3 control planes (and a load balancer) to tolerate one failure",
        );
    } else if lbs == 1 && masters > 1 {
        cx.warn(
            "single-load-balancer",
            lb_path.key("instances"),
            "a single load balancer is a single point of failure for the API endpoint",
            "add a second instance and a `vip` so keepalived can fail over",
        );
    }
    if nodes.worker.instances.is_empty() {
        cx.warn(
            "no-workers",
            base.key("worker").key("instances"),
            "no worker nodes: workloads will not be scheduled (control planes are tainted NoSchedule)",
            "add worker instances, or remove the control-plane taint after `up`",
        );
    }

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

    // Multi-host placement needs a network that spans hosts.
    if backend.uses_hosts {
        let used: std::collections::BTreeSet<&str> =
            control_planes.iter().chain(&workers).chain(&load_balancers).filter_map(|n| n.host.as_deref()).collect();
        if let Some(net) = network
            && used.len() > 1
            && net.mode != crate::model::NetworkMode::Bridge
        {
            cx.error(
                    "multi-host-network",
                    FieldPath::root().key("cluster").key("network").key("mode"),
                    format!(
                        "nodes are placed on {} hosts ({}), but a {} network exists only inside one host",
                        used.len(),
                        used.iter().copied().collect::<Vec<_>>().join(", "),
                        net.mode
                    ),
                    "use `mode: bridge` with a bridge that every host has on the same LAN, so nodes on different hosts can reach each other",
                );
        }
    }

    // Failure domains in the cloud: control planes and workers round-robin over the zones.
    if let Some(aws) = aws.filter(|_| backend.name == "aws") {
        let zones = &aws.availability_zones;
        if !zones.is_empty() {
            for group in [&mut control_planes, &mut workers] {
                for (i, n) in group.iter_mut().enumerate() {
                    n.failure_domain = Some(zones[i % zones.len()].clone());
                }
            }
        }
    }

    if cx.has_errors() {
        return None;
    }
    Some(Nodes { template, control_planes, workers, load_balancers, forward_ports, vip: vip.zip(vrid) })
}

/// Warnings about failure domains, computed on the finished model.
pub fn placement_warnings(cx: &mut Ctx, spec: &ClusterSpec) {
    let placement = spec.placement();
    let masters = spec.control_planes.len() as u32;
    let domains = placement.control_planes_per_domain.len();
    let kind = if spec.backend.uses_hosts { "host" } else { "zone" };
    let path = FieldPath::root().key("cluster").key("nodes").key("master").key("instances");
    if masters > 1 && placement.domain_failures_tolerated == 0 && (spec.backend.uses_hosts || spec.aws.is_some()) {
        let (worst, count) = placement
            .control_planes_per_domain
            .iter()
            .max_by_key(|(_, c)| **c)
            .map(|(d, c)| (d.clone(), *c))
            .unwrap_or_default();
        cx.warn(
            "placement-quorum",
            path,
            format!(
                "the {masters} control planes are on {domains} {kind}(s): losing {kind} `{worst}` takes {count} of them and etcd loses quorum ({} needed)",
                spec.quorum.size()
            ),
            format!("spread the control planes so that no {kind} holds {} or more of them", masters - spec.quorum.size() + 1),
        );
    }
    if spec.backend.uses_hosts && spec.load_balancers.len() > 1 {
        let lb_hosts: std::collections::BTreeSet<_> =
            spec.load_balancers.iter().filter_map(|n| n.host.as_deref()).collect();
        if lb_hosts.len() == 1 {
            cx.warn(
                "placement-lb",
                FieldPath::root().key("cluster").key("nodes").key("loadBalancer").key("instances"),
                format!(
                    "all load balancers run on host `{}`: losing it takes the API endpoint down",
                    lb_hosts.iter().next().expect("one host")
                ),
                "put the load balancers on different hosts with `host:`",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kubelet_may_set;

    #[test]
    fn the_kubelet_sets_only_its_own_kubernetes_io_labels() {
        for ok in
            ["tier", "example.com/pool", "node.kubernetes.io/pool", "x.kubelet.kubernetes.io/a", "kubernetes.io/arch"]
        {
            assert!(kubelet_may_set(ok), "{ok}");
        }
        for bad in [
            "node-role.kubernetes.io/worker",
            "kubernetes.io/role",
            "k8s.io/x",
            "foo.k8s.io/y",
            "example.kubernetes.io/z",
        ] {
            assert!(!kubelet_may_set(bad), "{bad}");
        }
    }
}

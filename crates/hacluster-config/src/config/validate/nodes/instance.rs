//! One machine of `cluster.nodes` (a control plane, worker or load balancer): its id, host,
//! address, MAC, sizes, data disks, labels and taints; and a role's group of them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::super::Ctx;
use super::super::hosts::is_simple_name;
use super::super::network::{check_in_network, parse_ip};
use super::labels::{kubelet_may_set, label_part_ok};
use crate::config::diagnostic::{FieldPath, did_you_mean};
use crate::config::raw;
use crate::model::{
    BackendProfile, ClusterName, DataDisk, HostSpec, MacAddr, NetworkSpec, Node, NodeName, NodeRole, Resources, Taint,
};

/// The parts of a master, worker or load-balancer instance that are checked the same way.
pub(super) struct Instance<'a> {
    pub path: FieldPath,
    pub id: &'a str,
    pub host: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub mac: Option<&'a str>,
    pub sizes: [Option<i64>; 3],
    pub data_disks: Vec<(FieldPath, &'a raw::DataDisk)>,
    pub labels: Vec<(FieldPath, &'a BTreeMap<String, String>)>,
    pub taints: Vec<(FieldPath, &'a [String])>,
}

/// Everything shared while checking instances: addresses and MACs taken so far, hosts.
pub(super) struct Registry<'a> {
    pub ips: BTreeMap<Ipv4Addr, FieldPath>,
    pub macs: BTreeMap<[u8; 6], FieldPath>,
    pub hosts: &'a [HostSpec],
    pub backend: &'a BackendProfile,
    pub network: Option<&'a NetworkSpec>,
    pub cluster: Option<&'a ClusterName>,
}

impl Registry<'_> {
    pub(super) fn claim_ip(&mut self, cx: &mut Ctx, path: FieldPath, text: &str) -> Option<Ipv4Addr> {
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

pub(super) fn check_instance(
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
pub(super) fn sizes_over(cpu: Option<i64>, ram: Option<i64>, disk: Option<i64>, under: Resources) -> Resources {
    Resources {
        cpu: cpu.map(|v| v as u32).unwrap_or(under.cpu),
        ram_gib: ram.map(|v| v as u32).unwrap_or(under.ram_gib),
        main_disk_gib: disk.map(|v| v as u32).unwrap_or(under.main_disk_gib),
    }
}

pub(super) fn check_group(
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

//! What the hypervisor capability lets a plugin do, derived from the validated config: the
//! cluster's own objects on the config's hosts and nothing else. libvirt is root on the
//! hypervisor, so every call that changes something is checked here first:
//!
//! - object names are the cluster's (see the name functions below: the plugin contract), on a
//!   host whose URI the call names;
//! - XML passes the allow-list of its kind (`schema.rs`) and its values name only the
//!   cluster's pools, volumes, network, bridge and boot files;
//! - an existing object is changed or removed only if it carries the cluster's ownership mark:
//!   `<hac:cluster>` in a domain's metadata, the bridge name derived from a network's name, the
//!   directory derived from a pool's name.
//!
//! Names cannot collide across clusters: cluster names are DNS labels (no `.`), host and pool
//! names have no `.`, node ids no `-`, so `<cluster>.<host>.<pool>` and
//! `<cluster>-<role>-<id>` each split one way only.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use roxmltree::Node;
use serde::Serialize;

use super::HvError;
use super::schema::{self, MARK_NS};
use crate::model::{ClusterSpec, NetworkMode};

type HvResult<T> = Result<T, HvError>;

/// The libvirt name of a host's storage pool (`main` or a data pool).
pub fn pool_name(cluster: &str, host: &str, pool: &str) -> String {
    format!("{cluster}.{host}.{pool}")
}

/// The libvirt name of the cluster's network on a host (NAT, routed or isolated modes).
pub fn network_name(cluster: &str, host: &str) -> String {
    format!("{cluster}.{host}.net")
}

/// The Linux bridge of a network: `hac` and 8 hex digits of FNV-1a (interface names are at
/// most 15 characters). Derived from the name, so it marks the network as the cluster's.
pub fn bridge_name(network: &str) -> String {
    let h = network.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("hac{:08x}", h as u32)
}

pub fn base_volume(cluster: &str) -> String {
    format!("{cluster}-base.qcow2")
}

pub fn disk_volume(node: &str) -> String {
    format!("{node}.qcow2")
}

pub fn data_volume(node: &str, disk: &str) -> String {
    format!("{node}-{disk}.qcow2")
}

pub fn seed_volume(node: &str) -> String {
    format!("{node}-seed.iso")
}

/// What one plugin call may touch. Without a cluster (`read_only`) it may only list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub cluster: String,
    /// libvirt URIs the config's hosts lead to.
    pub uris: Vec<String>,
    /// Base image sources `import-image` may read (`image.url`, `image.path`).
    pub images: Vec<String>,
    /// Files a domain may boot directly (`image.kernel`, `image.initrd`).
    pub kernels: Vec<String>,
    pub initrds: Vec<String>,
    pub hosts: Vec<HostGrant>,
    pub network: Option<NetGrant>,
    pub nodes: Vec<NodeGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostGrant {
    pub name: String,
    pub uri: String,
    /// (pool key, directory under which the pool's own directory goes): `main` and data pools.
    pub pools: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetGrant {
    pub mode: NetworkMode,
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// The host bridge NICs may join, in bridge mode only.
    pub bridge: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeGrant {
    pub name: String,
    pub host: String,
    /// (disk name, pool key).
    pub disks: Vec<(String, String)>,
}

/// A pool of the cluster: its host, key and directory.
struct PoolRef<'a> {
    host: &'a HostGrant,
    key: &'a str,
    dir: String,
}

/// What a volume of a pool is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vol {
    Base,
    Disk,
    Seed,
    Data,
}

fn deny(why: String) -> HvError {
    HvError::Denied(why)
}

/// `/a//b/` → `/a/b`, as libvirt stores a pool's directory.
fn tidy(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// The trimmed text of `node`'s first child element called `tag` (no namespace).
fn child<'a, 'i>(node: Node<'a, 'i>, tag: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.tag_name().namespace().is_none() && c.tag_name().name() == tag)
}

fn child_text<'a>(node: Node<'a, '_>, tag: &str) -> Option<&'a str> {
    child(node, tag).and_then(|c| c.text()).map(str::trim)
}

fn list(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() { "none".into() } else { v.join(", ") }
}

impl Policy {
    /// Lists on `uris` and nothing else (for tools and tests that only look).
    pub fn read_only(uris: Vec<String>) -> Policy {
        Policy { uris, ..Policy::default() }
    }

    /// The cluster's objects on the config's hosts, for `backend`'s section (`image`).
    pub fn from_spec(spec: &ClusterSpec, backend: &str) -> Policy {
        let default_host = spec.hosts.iter().find(|h| h.default).or(spec.hosts.first());
        let hosts: Vec<HostGrant> = spec
            .hosts
            .iter()
            .map(|h| {
                let mut pools = vec![("main".to_string(), h.main_pool_path.clone())];
                pools.extend(h.data_pools.iter().map(|(k, p)| (k.clone(), p.clone())));
                HostGrant { name: h.name.clone(), uri: h.libvirt_uri(), pools }
            })
            .collect();
        let nodes = spec
            .nodes()
            .filter_map(|n| {
                let host = n.host.clone().or_else(|| default_host.map(|h| h.name.clone()))?;
                let disks = n.data_disks.iter().map(|d| (d.name.clone(), d.pool.clone())).collect();
                Some(NodeGrant { name: n.name.to_string(), host, disks })
            })
            .collect();
        let image = spec.backend_sections.get(backend).and_then(|s| s.get("image"));
        let field = |key: &str| -> Vec<String> {
            image.and_then(|i| i.get(key)).and_then(|v| v.as_str()).map(String::from).into_iter().collect()
        };
        Policy {
            cluster: spec.name.to_string(),
            uris: hosts.iter().map(|h| h.uri.clone()).collect(),
            images: [field("url"), field("path")].concat(),
            kernels: field("kernel"),
            initrds: field("initrd"),
            network: spec.network.as_ref().map(|n| NetGrant {
                mode: n.mode,
                cidr: n.cidr,
                gateway: n.gateway,
                bridge: n.bridge.clone(),
            }),
            hosts,
            nodes,
        }
    }

    /// The URI is one the config names.
    pub fn check_uri(&self, uri: &str) -> HvResult<()> {
        if self.uris.iter().any(|u| u == uri) {
            return Ok(());
        }
        Err(deny(format!(
            "`{uri}` is not one of the hypervisor hosts in the config ({}); add it under `hosts` or use one of those",
            if self.uris.is_empty() { "there are none".to_string() } else { self.uris.join(", ") }
        )))
    }

    /// Calls that change something need a cluster to change things of.
    fn writable(&self, uri: &str) -> HvResult<()> {
        self.check_uri(uri)?;
        if self.cluster.is_empty() {
            return Err(deny(format!("this plugin call may only read on {uri}")));
        }
        Ok(())
    }

    fn hosts_on(&self, uri: &str) -> Vec<&HostGrant> {
        self.hosts.iter().filter(|h| h.uri == uri).collect()
    }

    fn pools_on(&self, uri: &str) -> Vec<PoolRef<'_>> {
        let pools = self.hosts_on(uri).into_iter().flat_map(|h| {
            h.pools.iter().map(move |(key, parent)| PoolRef {
                host: h,
                key,
                dir: join(parent, &pool_name(&self.cluster, &h.name, key)),
            })
        });
        pools.collect()
    }

    fn pool_ref(&self, uri: &str, name: &str) -> HvResult<PoolRef<'_>> {
        self.writable(uri)?;
        let pools = self.pools_on(uri);
        let names = || list(pools.iter().map(|p| pool_name(&self.cluster, &p.host.name, p.key)));
        let Some(i) = pools.iter().position(|p| pool_name(&self.cluster, &p.host.name, p.key) == name) else {
            return Err(deny(format!(
                "pool `{name}` is not one of cluster `{}`'s pools on {uri} ({})",
                self.cluster,
                names()
            )));
        };
        Ok(pools.into_iter().nth(i).expect("found above"))
    }

    /// The pool is one of the cluster's on `uri` (by name; [`Policy::owns_pool`] checks the
    /// pool libvirt has under that name).
    pub fn pool(&self, uri: &str, name: &str) -> HvResult<()> {
        self.pool_ref(uri, name).map(|_| ())
    }

    /// A pool's XML: a `dir` pool of the cluster, in the directory derived from its name.
    pub fn check_pool_xml(&self, uri: &str, xml: &str) -> HvResult<String> {
        self.writable(uri)?;
        let doc = schema::parse(xml, &schema::POOL)?;
        let root = doc.root_element();
        let name = child_text(root, "name").ok_or_else(|| deny("pool XML has no <name>".into()))?;
        let pool = self.pool_ref(uri, name)?;
        let path = child(root, "target").and_then(|t| child_text(t, "path")).unwrap_or("");
        if tidy(path) != tidy(&pool.dir) {
            return Err(deny(format!("pool `{name}` must have its directory at {}, not `{path}`", pool.dir)));
        }
        Ok(name.to_string())
    }

    /// The pool libvirt has under the cluster's name is the cluster's: in its directory.
    pub fn owns_pool(&self, uri: &str, name: &str, existing_xml: &str) -> HvResult<()> {
        let pool = self.pool_ref(uri, name)?;
        let doc = roxmltree::Document::parse(existing_xml)
            .map_err(|e| HvError::Failed(format!("pool {name}: libvirt's XML does not parse: {e}")))?;
        let root = doc.root_element();
        let path = child(root, "target").and_then(|t| child_text(t, "path")).unwrap_or("");
        if root.attribute("type") != Some("dir") || tidy(path) != tidy(&pool.dir) {
            return Err(deny(format!(
                "pool `{name}` on {uri} is not cluster `{}`'s: it is at `{path}`, the cluster's would be a dir pool at {}",
                self.cluster, pool.dir
            )));
        }
        Ok(())
    }

    /// The volumes the cluster puts in a pool: the base image and node disks and seeds in
    /// `main`, data disks in their pool.
    fn volumes_in(&self, pool: &PoolRef) -> Vec<(String, Vol)> {
        let mut out = Vec::new();
        if pool.key == "main" {
            out.push((base_volume(&self.cluster), Vol::Base));
        }
        for n in self.nodes.iter().filter(|n| n.host == pool.host.name) {
            if pool.key == "main" {
                out.push((disk_volume(&n.name), Vol::Disk));
                out.push((seed_volume(&n.name), Vol::Seed));
            }
            for (disk, _) in n.disks.iter().filter(|(_, p)| p == pool.key) {
                out.push((data_volume(&n.name, disk), Vol::Data));
            }
        }
        out
    }

    fn volume_kind(&self, uri: &str, pool: &str, name: &str, kinds: &[Vol]) -> HvResult<(Vol, PoolRef<'_>)> {
        let p = self.pool_ref(uri, pool)?;
        let allowed: Vec<(String, Vol)> = self.volumes_in(&p).into_iter().filter(|(_, k)| kinds.contains(k)).collect();
        match allowed.iter().find(|(n, _)| n == name) {
            Some((_, k)) => Ok((*k, p)),
            None => Err(deny(format!(
                "volume `{name}` is not one cluster `{}` makes in pool `{pool}` ({})",
                self.cluster,
                list(allowed.into_iter().map(|(n, _)| n))
            ))),
        }
    }

    /// A volume's XML: one of the cluster's volumes of that pool; only a node's disk may have
    /// a backing store, and that is the base image in its host's main pool.
    pub fn check_volume_xml(&self, uri: &str, pool: &str, xml: &str) -> HvResult<()> {
        self.writable(uri)?;
        let doc = schema::parse(xml, &schema::VOLUME)?;
        let root = doc.root_element();
        let name = child_text(root, "name").ok_or_else(|| deny("volume XML has no <name>".into()))?;
        let (kind, p) = self.volume_kind(uri, pool, name, &[Vol::Base, Vol::Disk, Vol::Data])?;
        let Some(backing) = child(root, "backingStore") else {
            return Ok(());
        };
        let path = child_text(backing, "path").unwrap_or("");
        let base = join(&self.main_dir(p.host), &base_volume(&self.cluster));
        if kind != Vol::Disk || tidy(path) != base {
            return Err(deny(format!(
                "volume `{name}` may not be backed by `{path}`: only a node's disk has a backing store, the base image {base}"
            )));
        }
        Ok(())
    }

    /// The directory of a host's main pool, as libvirt reports paths in it.
    fn main_dir(&self, host: &HostGrant) -> String {
        let parent = host.pools.iter().find(|(k, _)| k == "main").map(|(_, p)| p.as_str()).unwrap_or("/");
        join(&tidy(parent), &pool_name(&self.cluster, &host.name, "main"))
    }

    /// A seed volume is `<node>-seed.iso` in the main pool of the node's host; its name
    /// without `.iso`, the directory its copy goes to.
    pub fn seed_volume(&self, uri: &str, pool: &str, name: &str) -> HvResult<String> {
        self.volume_kind(uri, pool, name, &[Vol::Seed])?;
        let stem = name.strip_suffix(".iso").unwrap_or(name);
        Ok(stem.to_string())
    }

    /// The base image goes into a main pool under the cluster's base name.
    pub fn base_volume(&self, uri: &str, pool: &str, name: &str) -> HvResult<()> {
        self.volume_kind(uri, pool, name, &[Vol::Base]).map(|_| ())
    }

    /// The cluster's network on a host of `uri` (none in bridge mode).
    pub fn network(&self, uri: &str, name: &str) -> HvResult<()> {
        self.writable(uri)?;
        let routed = self.network.as_ref().is_some_and(|n| n.mode != NetworkMode::Bridge);
        let ours: Vec<String> = if routed {
            self.hosts_on(uri).iter().map(|h| network_name(&self.cluster, &h.name)).collect()
        } else {
            Vec::new()
        };
        if ours.iter().any(|n| n == name) {
            return Ok(());
        }
        Err(deny(format!(
            "network `{name}` is not one of cluster `{}`'s networks on {uri} ({})",
            self.cluster,
            if routed { list(ours.into_iter()) } else { "none: the config's network mode makes no network".into() }
        )))
    }

    /// A network's XML: the mode the config says (no `<forward>` when isolated), the bridge
    /// derived from its name, the config's gateway and netmask, DHCP inside the CIDR for the
    /// cluster's nodes.
    pub fn check_network_xml(&self, uri: &str, xml: &str) -> HvResult<String> {
        self.writable(uri)?;
        let doc = schema::parse(xml, &schema::NETWORK)?;
        let root = doc.root_element();
        let name = child_text(root, "name").ok_or_else(|| deny("network XML has no <name>".into()))?;
        self.network(uri, name)?;
        let net = self.network.as_ref().expect("network() found the config's network");
        let bad = |why: String| Err(deny(format!("network `{name}` refused: {why}")));
        let forward = child(root, "forward").and_then(|f| f.attribute("mode"));
        let want = match net.mode {
            NetworkMode::Nat => Some("nat"),
            NetworkMode::Route => Some("route"),
            _ => None,
        };
        if forward != want {
            return bad(match want {
                Some(m) => format!("cluster.network is {}: the network needs <forward mode='{m}'>", net.mode),
                None => format!("cluster.network is {}: no <forward>, so no way out", net.mode),
            });
        }
        let bridge = child(root, "bridge").and_then(|b| b.attribute("name")).unwrap_or("");
        if bridge != bridge_name(name) {
            return bad(format!("its bridge is `{}`, not `{bridge}`", bridge_name(name)));
        }
        let ip = child(root, "ip");
        let address = ip.and_then(|i| i.attribute("address")).unwrap_or("");
        let mask = ip.and_then(|i| i.attribute("netmask")).unwrap_or("");
        if address != net.gateway.to_string() || mask != net.cidr.netmask().to_string() {
            return bad(format!(
                "<ip address='{address}' netmask='{mask}'> is not the config's gateway {} of {}",
                net.gateway, net.cidr
            ));
        }
        let dhcp = ip.and_then(|i| child(i, "dhcp"));
        for el in dhcp.iter().flat_map(|d| d.children()).filter(|c| c.is_element()) {
            for attr in ["start", "end", "ip"] {
                if let Some(a) = el.attribute(attr)
                    && !a.parse::<Ipv4Addr>().is_ok_and(|a| net.cidr.contains(&a))
                {
                    return bad(format!("DHCP address {a} is outside {}", net.cidr));
                }
            }
            if let Some(host) = el.attribute("name")
                && !self.nodes.iter().any(|n| n.name == host)
            {
                return bad(format!("DHCP host `{host}` is not a node of the cluster"));
            }
        }
        Ok(name.to_string())
    }

    /// The network libvirt has under the cluster's name is the cluster's: on its bridge.
    pub fn owns_network(&self, uri: &str, name: &str, existing_xml: &str) -> HvResult<()> {
        self.network(uri, name)?;
        let doc = roxmltree::Document::parse(existing_xml)
            .map_err(|e| HvError::Failed(format!("network {name}: libvirt's XML does not parse: {e}")))?;
        let bridge = child(doc.root_element(), "bridge").and_then(|b| b.attribute("name")).unwrap_or("");
        if bridge != bridge_name(name) {
            return Err(deny(format!(
                "network `{name}` on {uri} is not cluster `{}`'s: its bridge is `{bridge}`, the cluster's would be {}",
                self.cluster,
                bridge_name(name)
            )));
        }
        Ok(())
    }

    /// A node of the cluster placed on a host of `uri`.
    fn node_on<'a>(&'a self, uri: &str, name: &str) -> HvResult<(&'a NodeGrant, &'a HostGrant)> {
        self.writable(uri)?;
        let found = self
            .nodes
            .iter()
            .filter(|n| n.name == name)
            .find_map(|n| self.hosts.iter().find(|h| h.name == n.host && h.uri == uri).map(|h| (n, h)));
        found.ok_or_else(|| {
            deny(format!(
                "domain `{name}` is not a node of cluster `{}` on {uri} ({})",
                self.cluster,
                list(
                    self.nodes
                        .iter()
                        .filter(|n| self.hosts.iter().any(|h| h.name == n.host && h.uri == uri))
                        .map(|n| n.name.clone())
                )
            ))
        })
    }

    /// A domain that may be started: a node of the cluster on `uri`.
    pub fn node(&self, uri: &str, name: &str) -> HvResult<()> {
        self.node_on(uri, name).map(|_| ())
    }

    /// A domain that may be removed: named like one of the cluster's nodes
    /// (`<cluster>-<master|worker|lb>-<id>`), also one the config no longer has.
    pub fn removable_domain(&self, uri: &str, name: &str) -> HvResult<()> {
        self.writable(uri)?;
        let fits = name.strip_prefix(&format!("{}-", self.cluster)).and_then(|r| r.split_once('-')).is_some_and(
            |(role, id)| {
                matches!(role, "master" | "worker" | "lb")
                    && (1..=20).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            },
        );
        if fits {
            return Ok(());
        }
        Err(deny(format!(
            "domain `{name}` is not named like a node of cluster `{}` (`{}-<master|worker|lb>-<id>`)",
            self.cluster, self.cluster
        )))
    }

    /// An existing domain is the cluster's: its metadata carries the mark.
    pub fn owns_domain(&self, uri: &str, name: &str, existing_xml: &str) -> HvResult<()> {
        let doc = roxmltree::Document::parse(existing_xml)
            .map_err(|e| HvError::Failed(format!("domain {name}: libvirt's XML does not parse: {e}")))?;
        if mark(doc.root_element()) == Some(self.cluster.as_str()) {
            return Ok(());
        }
        Err(deny(format!(
            "domain `{name}` on {uri} is not cluster `{}`'s: it lacks the cluster's ownership mark (<hac:cluster xmlns:hac='{MARK_NS}'> in its metadata); hacluster leaves it alone",
            self.cluster
        )))
    }

    /// A domain's XML: a node of the cluster with the cluster's mark, its own volumes from its
    /// host's pools, NICs on the cluster's network (or the config's bridge), boot files the
    /// config names. Returns the domain's name.
    pub fn check_domain_xml(&self, uri: &str, xml: &str) -> HvResult<String> {
        self.writable(uri)?;
        let doc = schema::parse(xml, &schema::DOMAIN)?;
        let root = doc.root_element();
        let name = child_text(root, "name").ok_or_else(|| deny("domain XML has no <name>".into()))?;
        let (node, host) = self.node_on(uri, name)?;
        let bad = |why: String| Err(deny(format!("domain `{name}` refused: {why}")));
        if mark(root) != Some(self.cluster.as_str()) {
            return bad(format!(
                "it lacks cluster `{c}`'s ownership mark: <metadata><hac:cluster xmlns:hac='{MARK_NS}'>{c}</hac:cluster></metadata>",
                c = self.cluster
            ));
        }
        if let Some(os) = child(root, "os") {
            for (tag, allowed) in [("kernel", &self.kernels), ("initrd", &self.initrds)] {
                if let Some(f) = child_text(os, tag)
                    && !allowed.iter().any(|a| a == f)
                {
                    return bad(format!("<{tag}>{f}</{tag}> is not the file the config names as image.{tag}"));
                }
            }
        }
        let devices: Vec<Node> =
            child(root, "devices").map(|d| d.children().filter(|c| c.is_element()).collect()).unwrap_or_default();
        for disk in devices.iter().filter(|d| d.tag_name().name() == "disk") {
            let src = child(*disk, "source");
            let pool = src.and_then(|s| s.attribute("pool")).unwrap_or("");
            let volume = src.and_then(|s| s.attribute("volume")).unwrap_or("");
            if !self.node_volumes(node, host).iter().any(|(p, v)| p == pool && v == volume) {
                return bad(format!(
                    "disk `{volume}` in pool `{pool}` is not one of its own volumes ({})",
                    list(self.node_volumes(node, host).into_iter().map(|(p, v)| format!("{p}/{v}")))
                ));
            }
        }
        for nic in devices.iter().filter(|d| d.tag_name().name() == "interface") {
            self.check_nic(*nic, host).map_err(|why| deny(format!("domain `{name}` refused: {why}")))?;
        }
        Ok(name.to_string())
    }

    /// (pool, volume) of everything a node's domain may attach.
    fn node_volumes(&self, node: &NodeGrant, host: &HostGrant) -> Vec<(String, String)> {
        let pool = |key: &str| pool_name(&self.cluster, &host.name, key);
        let mut out = vec![(pool("main"), disk_volume(&node.name)), (pool("main"), seed_volume(&node.name))];
        out.extend(node.disks.iter().map(|(d, key)| (pool(key), data_volume(&node.name, d))));
        out
    }

    /// A NIC joins the cluster's network on the node's host, or in bridge mode the config's
    /// bridge; nothing else.
    fn check_nic(&self, nic: Node, host: &HostGrant) -> Result<(), String> {
        let src = child(nic, "source");
        let (network, bridge) = (src.and_then(|s| s.attribute("network")), src.and_then(|s| s.attribute("bridge")));
        let mode = self.network.as_ref().map(|n| n.mode);
        let config_bridge = self.network.as_ref().and_then(|n| n.bridge.as_deref());
        let ok = match (nic.attribute("type"), network, bridge) {
            (Some("network"), Some(n), None) => {
                mode.is_some_and(|m| m != NetworkMode::Bridge) && n == network_name(&self.cluster, &host.name)
            }
            (Some("bridge"), None, Some(b)) => mode == Some(NetworkMode::Bridge) && Some(b) == config_bridge,
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let what = network.map(|n| format!("network `{n}`")).or(bridge.map(|b| format!("bridge `{b}`")));
        Err(format!(
            "a NIC on {} — the cluster's nodes on host {} join only {}",
            what.unwrap_or_else(|| "no source".into()),
            host.name,
            match (mode, config_bridge) {
                (Some(NetworkMode::Bridge), Some(b)) => format!("the config's bridge `{b}`"),
                (Some(_), _) => format!("network `{}`", network_name(&self.cluster, &host.name)),
                (None, _) => "nothing (the config has no network)".into(),
            }
        ))
    }
}

/// The cluster a domain's XML is marked with: `<metadata><hac:cluster>NAME</hac:cluster>`.
fn mark<'a>(root: Node<'a, '_>) -> Option<&'a str> {
    child(root, "metadata")?
        .children()
        .find(|c| c.is_element() && c.tag_name().namespace() == Some(MARK_NS) && c.tag_name().name() == "cluster")?
        .text()
        .map(str::trim)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "qemu:///system";
    const FAR: &str = "qemu+ssh://k8s@10.10.0.6:22/system";

    /// Cluster `c`: host h1 (this machine, a data pool) with c-master-1 (a data disk), host h2
    /// (remote) with c-worker-1; the base image, kernel and initrd the config names.
    fn policy(mode: NetworkMode) -> Policy {
        Policy {
            cluster: "c".into(),
            uris: vec![URI.into(), FAR.into()],
            images: vec!["/img/base.qcow2".into()],
            kernels: vec!["/img/vmlinuz".into()],
            initrds: vec!["/img/initrd.img".into()],
            hosts: vec![
                HostGrant {
                    name: "h1".into(),
                    uri: URI.into(),
                    pools: vec![
                        ("main".into(), "/var/lib/libvirt/images/".into()),
                        ("data".into(), "/srv/pools".into()),
                    ],
                },
                HostGrant {
                    name: "h2".into(),
                    uri: FAR.into(),
                    pools: vec![("main".into(), "/var/lib/libvirt/images/".into())],
                },
            ],
            network: Some(NetGrant {
                mode,
                cidr: "10.0.0.0/24".parse().unwrap(),
                gateway: "10.0.0.1".parse().unwrap(),
                bridge: (mode == NetworkMode::Bridge).then(|| "br0".into()),
            }),
            nodes: vec![
                NodeGrant { name: "c-master-1".into(), host: "h1".into(), disks: vec![("rook".into(), "data".into())] },
                NodeGrant { name: "c-worker-1".into(), host: "h2".into(), disks: vec![] },
            ],
        }
    }

    // The shapes the libvirt plugin renders (plugins/libvirt/src/xml.rs); the e2e tests run
    // its real output through the host.
    const POOL: &str = "<pool type='dir'>\n  <name>c.h1.main</name>\n  <target>\n    <path>/var/lib/libvirt/images/c.h1.main</path>\n  </target>\n</pool>\n";
    const DISK: &str = "<volume>\n  <name>c-master-1.qcow2</name>\n  <capacity unit='GiB'>32</capacity>\n  <allocation>0</allocation>\n  <target>\n    <format type='qcow2'/>\n  </target>\n  <backingStore>\n    <path>/var/lib/libvirt/images/c.h1.main/c-base.qcow2</path>\n    <format type='qcow2'/>\n  </backingStore>\n</volume>\n";
    const DOMAIN: &str = "<domain type='qemu'>
  <name>c-master-1</name>
  <metadata>
    <hac:cluster xmlns:hac='https://hacluster.dev/xmlns/1'>c</hac:cluster>
  </metadata>
  <memory unit='GiB'>4</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>/img/vmlinuz</kernel>
    <initrd>/img/initrd.img</initrd>
    <cmdline>root=/dev/vda rw console=ttyS0 net.ifnames=0</cmdline>
  </os>
  <features>
    <acpi/>
    <tcg>
      <tb-cache unit='MiB'>128</tb-cache>
    </tcg>
  </features>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='c.h1.main' volume='c-master-1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='c.h1.data' volume='c-master-1-rook.qcow2'/>
      <target dev='vdb' bus='virtio'/>
      <serial>rook</serial>
    </disk>
    <disk type='volume' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source pool='c.h1.main' volume='c-master-1-seed.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='c.h1.net'/>
      <mac address='52:54:00:12:34:56'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
";

    fn network() -> String {
        format!(
            "<network>\n  <name>c.h1.net</name>\n  <forward mode='nat'/>\n  <bridge name='{}' stp='on' delay='0'/>\n  <ip address='10.0.0.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='10.0.0.192' end='10.0.0.254'/>\n      <host mac='52:54:00:12:34:56' name='c-master-1' ip='10.0.0.200'/>\n    </dhcp>\n  </ip>\n</network>\n",
            bridge_name("c.h1.net")
        )
    }

    fn edit(base: &str, find: &str, replace: &str) -> String {
        assert_eq!(base.matches(find).count(), 1, "edit target {find:?}");
        base.replacen(find, replace, 1)
    }

    fn denied(r: HvResult<String>, says: &str, what: &str) {
        match r {
            Err(HvError::Denied(m)) if m.contains(says) => {}
            other => panic!("{what}: want a denial naming {says:?}, got {other:?}"),
        }
    }

    #[test]
    fn the_plugins_renderings_pass() {
        let p = policy(NetworkMode::Nat);
        assert_eq!(p.check_pool_xml(URI, POOL), Ok("c.h1.main".into()));
        assert_eq!(p.check_volume_xml(URI, "c.h1.main", DISK), Ok(()));
        assert_eq!(p.check_network_xml(URI, &network()), Ok("c.h1.net".into()));
        assert_eq!(p.check_domain_xml(URI, DOMAIN), Ok("c-master-1".into()));
        let bridged = edit(
            DOMAIN,
            "<interface type='network'>\n      <source network='c.h1.net'/>",
            "<interface type='bridge'>\n      <source bridge='br0'/>",
        );
        assert_eq!(policy(NetworkMode::Bridge).check_domain_xml(URI, &bridged), Ok("c-master-1".into()));
        let isolated = edit(&network(), "  <forward mode='nat'/>\n", "");
        assert_eq!(policy(NetworkMode::Isolated).check_network_xml(URI, &isolated), Ok("c.h1.net".into()));
        let data = "<volume><name>c-master-1-rook.qcow2</name><capacity unit='GiB'>8</capacity><allocation>0</allocation><target><format type='qcow2'/></target></volume>";
        assert_eq!(p.check_volume_xml(URI, "c.h1.data", data), Ok(()));
        assert_eq!(p.seed_volume(URI, "c.h1.main", "c-master-1-seed.iso"), Ok("c-master-1-seed".into()));
        assert_eq!(p.seed_volume(FAR, "c.h2.main", "c-worker-1-seed.iso"), Ok("c-worker-1-seed".into()));
        assert_eq!(p.base_volume(FAR, "c.h2.main", "c-base.qcow2"), Ok(()));
    }

    /// Every way a domain could reach the host or another cluster, each refused.
    #[test]
    fn domain_abuses_are_refused() {
        let p = policy(NetworkMode::Nat);
        let dev = |x: &str| edit(DOMAIN, "  </devices>", &format!("{x}\n  </devices>"));
        let top = |x: &str| edit(DOMAIN, "</domain>", &format!("{x}</domain>"));
        let os = |x: &str| edit(DOMAIN, "  </os>", &format!("{x}\n  </os>"));
        let qemu = "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'";
        for (what, xml, says) in [
            ("emulator", dev("<emulator>/tmp/evil</emulator>"), "<emulator>"),
            ("no confinement", top("<seclabel type='none'/>"), "<seclabel>"),
            (
                "static DAC label",
                top("<seclabel type='static' model='dac'><label>+0:+0</label></seclabel>"),
                "<seclabel>",
            ),
            ("serial to a host socket", edit(DOMAIN, "<serial type='pty'>", "<serial type='unix'>"), "type='unix'"),
            ("serial to a file", edit(DOMAIN, "<serial type='pty'>", "<serial type='file'>"), "type='file'"),
            (
                "console log file",
                edit(
                    DOMAIN,
                    "<target type='serial' port='0'/>",
                    "<target type='serial' port='0'/><log file='/etc/x'/>",
                ),
                "<log>",
            ),
            (
                "serial source path",
                edit(DOMAIN, "<target port='0'/>", "<source path='/etc/x'/><target port='0'/>"),
                "<source>",
            ),
            ("parallel port", dev("<parallel type='file'><source path='/tmp/x'/></parallel>"), "<parallel>"),
            ("channel", dev("<channel type='unix'><source mode='bind' path='/tmp/s'/></channel>"), "<channel>"),
            ("host input device", dev("<input type='evdev'><source dev='/dev/input/event0'/></input>"), "<input>"),
            (
                "TPM passthrough",
                dev("<tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>"),
                "<tpm>",
            ),
            ("ACPI table", os("<acpi><table type='slic'>/etc/shadow</table></acpi>"), "<acpi>"),
            ("firmware loader", os("<loader>/etc/shadow</loader>"), "<loader>"),
            ("hostdev", dev("<hostdev mode='subsystem' type='pci'/>"), "<hostdev>"),
            (
                "shared directory",
                dev("<filesystem type='mount'><source dir='/'/><target dir='r'/></filesystem>"),
                "<filesystem>",
            ),
            ("graphics listening everywhere", dev("<graphics type='vnc' listen='0.0.0.0'/>"), "<graphics>"),
            (
                "QEMU arguments",
                top(&format!("<qemu:commandline {qemu}><qemu:arg value='-x'/></qemu:commandline>")),
                "commandline",
            ),
            ("QEMU override", top(&format!("<qemu:override {qemu}/>")), "override"),
            (
                "a UUID",
                edit(DOMAIN, "  <name>", "  <uuid>11111111-2222-3333-4444-555555555555</uuid>\n  <name>"),
                "<uuid>",
            ),
            (
                "a host file as disk",
                edit(DOMAIN, "<disk type='volume' device='cdrom'>", "<disk type='file' device='cdrom'>"),
                "type='file'",
            ),
            (
                "a block device as disk",
                edit(DOMAIN, "<disk type='volume' device='cdrom'>", "<disk type='block' device='cdrom'>"),
                "type='block'",
            ),
            (
                "a disk without a type (a file)",
                edit(DOMAIN, "<disk type='volume' device='cdrom'>", "<disk device='cdrom'>"),
                "needs attribute `type`",
            ),
            (
                "a host file as source",
                edit(DOMAIN, "<source pool='c.h1.main' volume='c-master-1-seed.iso'/>", "<source file='/etc/shadow'/>"),
                "attribute `file`",
            ),
            (
                "nested backing file",
                edit(
                    DOMAIN,
                    "      <readonly/>",
                    "      <readonly/>\n      <backingStore type='file'><format type='raw'/><source file='/etc/shadow'/></backingStore>",
                ),
                "<backingStore>",
            ),
            ("another cluster's pool", edit(DOMAIN, "pool='c.h1.data'", "pool='d.h1.data'"), "`d.h1.data`"),
            (
                "another node's disk",
                edit(DOMAIN, "volume='c-master-1-rook.qcow2'", "volume='c-worker-1.qcow2'"),
                "c-worker-1.qcow2",
            ),
            (
                "the driver's pool",
                edit(DOMAIN, "pool='c.h1.data' volume='c-master-1-rook.qcow2'", "pool='default' volume='x.img'"),
                "`default`",
            ),
            ("the default network", edit(DOMAIN, "network='c.h1.net'", "network='default'"), "network `default`"),
            ("another host's network", edit(DOMAIN, "network='c.h1.net'", "network='c.h2.net'"), "network `c.h2.net`"),
            (
                "a host bridge in NAT mode",
                edit(
                    DOMAIN,
                    "<interface type='network'>\n      <source network='c.h1.net'/>",
                    "<interface type='bridge'>\n      <source bridge='virbr0'/>",
                ),
                "bridge `virbr0`",
            ),
            ("a direct NIC", edit(DOMAIN, "<interface type='network'>", "<interface type='direct'>"), "type='direct'"),
            (
                "both network and bridge",
                edit(DOMAIN, "<source network='c.h1.net'/>", "<source network='c.h1.net' bridge='br0'/>"),
                "a NIC on network",
            ),
            ("RNG from a host device", edit(DOMAIN, ">/dev/urandom<", ">/dev/sda<"), "/dev/sda"),
            (
                "RNG over a socket",
                edit(DOMAIN, "<backend model='random'>/dev/urandom</backend>", "<backend model='egd' type='unix'/>"),
                "model='egd'",
            ),
            ("a kernel the config does not name", edit(DOMAIN, "/img/vmlinuz", "/etc/shadow"), "/etc/shadow"),
            (
                "an initrd the config does not name",
                edit(DOMAIN, "/img/initrd.img", "/root/.ssh/id_ed25519"),
                "image.initrd",
            ),
            (
                "no mark",
                edit(
                    DOMAIN,
                    "  <metadata>\n    <hac:cluster xmlns:hac='https://hacluster.dev/xmlns/1'>c</hac:cluster>\n  </metadata>\n",
                    "",
                ),
                "mark",
            ),
            ("another cluster's mark", edit(DOMAIN, ">c</hac:cluster>", ">d</hac:cluster>"), "mark"),
            ("a mark in another namespace", edit(DOMAIN, "https://hacluster.dev/xmlns/1", "urn:x"), "namespace urn:x"),
            (
                "another cluster's node",
                edit(DOMAIN, "<name>c-master-1</name>", "<name>d-master-1</name>"),
                "`d-master-1`",
            ),
            (
                "a node of another host",
                edit(DOMAIN, "<name>c-master-1</name>", "<name>c-worker-1</name>"),
                "`c-worker-1`",
            ),
            ("the test driver's domain", edit(DOMAIN, "<name>c-master-1</name>", "<name>test</name>"), "`test`"),
            (
                "two names",
                edit(DOMAIN, "<name>c-master-1</name>", "<name>c-master-1</name><name>victim</name>"),
                "appears twice",
            ),
            ("a lifecycle hook", top("<on_crash>coredump-restart</on_crash>"), "<on_crash>"),
            ("a different emulator type", edit(DOMAIN, "<domain type='qemu'>", "<domain type='xen'>"), "type='xen'"),
            ("entity expansion", format!("<!DOCTYPE domain [<!ENTITY x '/etc/shadow'>]>{DOMAIN}"), ""),
        ] {
            match p.check_domain_xml(URI, &xml) {
                Err(HvError::Failed(m)) if says.is_empty() => assert!(m.contains("does not parse"), "{what}: {m}"),
                r => denied(r, says, what),
            }
        }
    }

    #[test]
    fn pool_volume_and_network_abuses_are_refused() {
        let p = policy(NetworkMode::Nat);
        for (what, xml, says) in [
            ("a pool at /etc", edit(POOL, "/var/lib/libvirt/images/c.h1.main", "/etc"), "not `/etc`"),
            ("a pool at /", edit(POOL, "/var/lib/libvirt/images/c.h1.main", "/"), "not `/`"),
            ("a disk pool", edit(POOL, "type='dir'", "type='disk'"), "type='disk'"),
            (
                "a pool over a device",
                edit(POOL, "  <target>", "  <source><device path='/dev/sda'/></source>\n  <target>"),
                "<source>",
            ),
            (
                "pool permissions",
                edit(POOL, "</path>", "</path><permissions><mode>0777</mode></permissions>"),
                "<permissions>",
            ),
            (
                "another cluster's pool",
                edit(&edit(POOL, "<name>c.h1.main", "<name>d.h1.main"), "/c.h1.main<", "/d.h1.main<"),
                "`d.h1.main`",
            ),
            (
                "a pool of a host on another URI",
                edit(&edit(POOL, "<name>c.h1.main", "<name>c.h2.main"), "/c.h1.main<", "/c.h2.main<"),
                "`c.h2.main`",
            ),
            (
                "a pool the config does not have",
                edit(&edit(POOL, "<name>c.h1.main", "<name>c.h1.loot"), "/c.h1.main<", "/c.h1.loot<"),
                "`c.h1.loot`",
            ),
        ] {
            denied(p.check_pool_xml(URI, &xml), says, what);
        }
        let vol = |pool: &str, xml: &str| p.check_volume_xml(URI, pool, xml).map(|()| String::new());
        for (what, pool, xml, says) in [
            (
                "backed by a device",
                "c.h1.main",
                edit(DISK, "/var/lib/libvirt/images/c.h1.main/c-base.qcow2", "/dev/sda"),
                "`/dev/sda`",
            ),
            (
                "backed by another cluster's image",
                "c.h1.main",
                edit(DISK, "c.h1.main/c-base", "d.h1.main/d-base"),
                "d-base.qcow2",
            ),
            (
                "a raw backing store",
                "c.h1.main",
                edit(DISK, "</path>\n    <format type='qcow2'/>", "</path>\n    <format type='raw'/>"),
                "type='raw'",
            ),
            (
                "a volume at a host path",
                "c.h1.main",
                edit(DISK, "    <format type='qcow2'/>\n  </target>", "    <path>/etc/passwd</path>\n  </target>"),
                "<path>",
            ),
            ("a block volume", "c.h1.main", edit(DISK, "<volume>", "<volume type='block'>"), "attribute `type`"),
            (
                "volume permissions",
                "c.h1.main",
                edit(DISK, "  </target>", "  <permissions><owner>0</owner></permissions>\n  </target>"),
                "<permissions>",
            ),
            ("in the driver's pool", "default", DISK.into(), "`default`"),
            ("in another host's pool", "c.h2.main", DISK.into(), "`c.h2.main`"),
            ("in the data pool", "c.h1.data", DISK.into(), "c-master-1-rook.qcow2"),
            ("a name not the cluster's", "c.h1.main", edit(DISK, "c-master-1.qcow2", "loot.qcow2"), "`loot.qcow2`"),
            (
                "a seed as a plain volume",
                "c.h1.main",
                edit(DISK, "c-master-1.qcow2", "c-master-1-seed.iso"),
                "c-master-1-seed.iso",
            ),
        ] {
            denied(vol(pool, &xml), says, what);
        }
        let base_backed = edit(DISK, "c-master-1.qcow2", "c-base.qcow2");
        denied(vol("c.h1.main", &base_backed), "only a node's disk", "the base image backed by itself");
        let net = network();
        for (what, mode, xml, says) in [
            ("forward on an isolated network", NetworkMode::Isolated, net.clone(), "no <forward>"),
            (
                "route instead of NAT",
                NetworkMode::Nat,
                edit(&net, "mode='nat'", "mode='route'"),
                "<forward mode='nat'>",
            ),
            (
                "NAT by default",
                NetworkMode::Nat,
                edit(&net, "<forward mode='nat'/>", "<forward/>"),
                "needs attribute `mode`",
            ),
            ("a host bridge", NetworkMode::Nat, edit(&net, "mode='nat'", "mode='bridge'"), "mode='bridge'"),
            (
                "a NIC passthrough",
                NetworkMode::Nat,
                edit(&net, "<forward mode='nat'/>", "<forward mode='hostdev'/>"),
                "mode='hostdev'",
            ),
            ("another bridge", NetworkMode::Nat, edit(&net, &bridge_name("c.h1.net"), "virbr0"), "not `virbr0`"),
            (
                "another gateway",
                NetworkMode::Nat,
                edit(&net, "address='10.0.0.1'", "address='192.168.122.1'"),
                "gateway",
            ),
            (
                "another netmask",
                NetworkMode::Nat,
                edit(&net, "255.255.255.0", "255.0.0.0"),
                "gateway 10.0.0.1 of 10.0.0.0/24",
            ),
            (
                "DHCP outside the network",
                NetworkMode::Nat,
                edit(&net, "start='10.0.0.192'", "start='192.168.0.1'"),
                "outside",
            ),
            ("a lease for a stranger", NetworkMode::Nat, edit(&net, "name='c-master-1'", "name='victim'"), "`victim`"),
            (
                "a DNS forwarder",
                NetworkMode::Nat,
                edit(&net, "  <ip ", "  <dns><forwarder addr='203.0.113.1'/></dns>\n  <ip "),
                "<dns>",
            ),
            (
                "a second address",
                NetworkMode::Nat,
                edit(&net, "</network>", "<ip address='10.9.0.1' netmask='255.255.255.0'/></network>"),
                "appears twice",
            ),
            (
                "a port group",
                NetworkMode::Nat,
                edit(&net, "</network>", "<portgroup name='x'/></network>"),
                "<portgroup>",
            ),
            ("the default network", NetworkMode::Nat, edit(&net, "<name>c.h1.net", "<name>default"), "`default`"),
            ("another host's network", NetworkMode::Nat, edit(&net, "<name>c.h1.net", "<name>c.h2.net"), "`c.h2.net`"),
            (
                "a network in bridge mode",
                NetworkMode::Bridge,
                edit(&net, "  <forward mode='nat'/>\n", ""),
                "makes no network",
            ),
        ] {
            denied(policy(mode).check_network_xml(URI, &xml), says, what);
        }
    }

    #[test]
    fn existing_objects_are_touched_only_with_the_clusters_mark() {
        let p = policy(NetworkMode::Nat);
        let libvirts = |mark: &str| {
            format!(
                "<domain type='qemu' id='3'><name>c-master-1</name><uuid>u</uuid><metadata>{mark}<other:x xmlns:other='urn:o'>c</other:x></metadata><devices/></domain>"
            )
        };
        let ours = libvirts("<hac:cluster xmlns:hac=\"https://hacluster.dev/xmlns/1\">c</hac:cluster>");
        assert_eq!(p.owns_domain(URI, "c-master-1", &ours), Ok(()));
        for (what, xml) in [
            ("no mark", libvirts("")),
            ("another cluster's", libvirts("<hac:cluster xmlns:hac=\"https://hacluster.dev/xmlns/1\">d</hac:cluster>")),
            (
                "a look-alike namespace",
                libvirts("<hac:cluster xmlns:hac=\"https://hacluster.dev/xmlns/2\">c</hac:cluster>"),
            ),
            (
                "the mark in a description",
                ours.replace("<metadata>", "<description>&gt;c&lt;/hac:cluster&gt;</description><metadata>")
                    .replace("https://hacluster.dev/xmlns/1", "urn:x"),
            ),
        ] {
            denied(
                p.owns_domain(URI, "c-master-1", &xml).map(|()| String::new()),
                "lacks the cluster's ownership mark",
                what,
            );
        }
        for ok in ["c-master-1", "c-worker-9", "c-lb-abc123"] {
            assert_eq!(p.removable_domain(URI, ok), Ok(()), "{ok}");
        }
        for bad in
            ["test", "c-b-master-1", "c-master-master-1", "c-etcd-1", "c-master-", "cc-master-1", "c-master-1.qcow2"]
        {
            denied(p.removable_domain(URI, bad).map(|()| String::new()), bad, bad);
        }
        let pool = |path: &str, ty: &str| {
            format!("<pool type='{ty}'><name>c.h1.main</name><target><path>{path}</path></target></pool>")
        };
        assert_eq!(p.owns_pool(URI, "c.h1.main", &pool("/var/lib/libvirt/images/c.h1.main", "dir")), Ok(()));
        denied(
            p.owns_pool(URI, "c.h1.main", &pool("/etc", "dir")).map(|()| String::new()),
            "at `/etc`",
            "a pool elsewhere",
        );
        denied(
            p.owns_pool(URI, "c.h1.main", &pool("/var/lib/libvirt/images/c.h1.main", "fs")).map(|()| String::new()),
            "not cluster `c`'s",
            "another pool type",
        );
        let net = |bridge: &str| format!("<network><name>c.h1.net</name><bridge name='{bridge}'/></network>");
        assert_eq!(p.owns_network(URI, "c.h1.net", &net(&bridge_name("c.h1.net"))), Ok(()));
        denied(
            p.owns_network(URI, "c.h1.net", &net("virbr0")).map(|()| String::new()),
            "bridge is `virbr0`",
            "a network of someone else's",
        );
    }

    #[test]
    fn seed_and_base_volume_names_are_the_clusters() {
        let p = policy(NetworkMode::Nat);
        for (pool, name) in [
            ("c.h1.main", "...iso"),
            ("c.h1.main", ".iso"),
            ("c.h1.main", "..iso"),
            ("c.h1.main", "c-worker-1-seed.iso"),
            ("c.h1.main", "c-master-1.qcow2"),
            ("c.h1.data", "c-master-1-seed.iso"),
            ("default", "c-master-1-seed.iso"),
        ] {
            denied(p.seed_volume(URI, pool, name), if pool == "default" { pool } else { name }, name);
        }
        denied(p.base_volume(URI, "c.h1.main", "c-master-1.qcow2").map(|()| String::new()), "c-master-1.qcow2", "base");
        denied(p.base_volume(URI, "c.h1.data", "c-base.qcow2").map(|()| String::new()), "c-base.qcow2", "base in data");
        let reader = Policy::read_only(vec![URI.into()]);
        denied(reader.check_pool_xml(URI, POOL), "may only read", "a reader");
        denied(p.check_pool_xml("qemu:///session", POOL), "not one of the hypervisor hosts", "another URI");
    }

    #[test]
    fn names_split_one_way_only() {
        assert_ne!(pool_name("a", "b-lab", "main"), pool_name("a-b", "lab", "main"));
        assert_ne!(network_name("a", "b-lab"), network_name("a-b", "lab"));
        assert_eq!(bridge_name("a.lab.net").len(), 11);
        assert_eq!(tidy("/var//lib/libvirt/images/"), "/var/lib/libvirt/images");
        assert_eq!(tidy("/"), "/");
    }
}

//! `cluster.network` and the addresses placed in it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::Ctx;
use crate::config::diagnostic::FieldPath;
use crate::config::raw::{self, RawConfig};
use crate::model::{BackendProfile, NetworkMode, NetworkSpec};

/// Parses `a.b.c.d/len`, insisting on the network address so that a typo in the host bits
/// is caught rather than silently masked.
pub fn parse_cidr(cx: &mut Ctx, path: FieldPath, text: &str) -> Option<Ipv4Net> {
    match text.parse::<Ipv4Net>() {
        Ok(net) if net.addr() == net.network() => Some(net),
        Ok(net) => {
            cx.error(
                "cidr-host-bits",
                path,
                format!("`{text}` has host bits set: it is an address inside {}, not a network", net.trunc()),
                format!("write the network address: `{}`", net.trunc()),
            );
            None
        }
        Err(_) => {
            cx.error(
                "bad-cidr",
                path,
                format!("`{text}` is not an IPv4 network in CIDR notation"),
                "write it as ADDRESS/PREFIX, e.g. `192.168.113.0/24`",
            );
            None
        }
    }
}

pub fn parse_ip(cx: &mut Ctx, path: FieldPath, text: &str) -> Option<Ipv4Addr> {
    match text.parse::<Ipv4Addr>() {
        Ok(a) => Some(a),
        Err(_) => {
            cx.error(
                "bad-ip",
                path,
                format!("`{text}` is not an IPv4 address"),
                "write four numbers 0–255 separated by dots, e.g. `192.168.113.10`",
            );
            None
        }
    }
}

pub fn check(cx: &mut Ctx, raw: &RawConfig, backend: &BackendProfile) -> Option<NetworkSpec> {
    let path = FieldPath::root().key("cluster").key("network");
    let Some(n) = &raw.cluster.network else {
        if backend.uses_hosts {
            cx.error(
                "network-missing",
                path,
                format!("the {} backend needs `cluster.network` (mode and cidr)", backend.name),
                "add `network: {mode: nat, cidr: 192.168.113.0/24}`",
            );
        }
        return None;
    };
    let cidr = parse_cidr(cx, path.key("cidr"), &n.cidr)?;
    if cidr.prefix_len() > 29 {
        cx.error(
            "cidr-too-small",
            path.key("cidr"),
            format!("{cidr} has room for {} addresses, too few for a cluster", cidr.hosts().count()),
            "use a prefix of /29 or shorter (for example /24)",
        );
        return None;
    }
    let gateway = match &n.gateway {
        Some(g) => {
            let g = parse_ip(cx, path.key("gateway"), g)?;
            if !cidr.contains(&g) || g == cidr.network() || g == cidr.broadcast() {
                cx.error(
                    "gateway-outside",
                    path.key("gateway"),
                    format!("gateway {g} is not a usable address of {cidr}"),
                    format!("use an address from {} to {} (usually the first)", first_host(cidr), last_host(cidr)),
                );
                return None;
            }
            g
        }
        None => first_host(cidr),
    };
    let mode = match n.mode {
        raw::NetworkMode::Nat => NetworkMode::Nat,
        raw::NetworkMode::Route => NetworkMode::Route,
        raw::NetworkMode::Bridge => NetworkMode::Bridge,
        raw::NetworkMode::Isolated => NetworkMode::Isolated,
    };
    match (mode, &n.bridge) {
        (NetworkMode::Bridge, None) => {
            cx.error(
                "bridge-missing",
                path.key("bridge"),
                "bridge mode needs the name of the host bridge the VMs attach to",
                "add `bridge: br0` (the bridge must already exist on every host)",
            );
            return None;
        }
        (NetworkMode::Bridge, Some(b)) if !valid_ifname(b) => {
            cx.error(
                "bridge-name",
                path.key("bridge"),
                format!("`{b}` is not a valid Linux interface name"),
                "interface names are 1–15 characters without spaces, `/` or `:`",
            );
            return None;
        }
        (m, Some(_)) if m != NetworkMode::Bridge => {
            cx.warn_key(
                "bridge-unused",
                path.key("bridge"),
                "`bridge` is only used in bridge mode and is ignored here",
                "remove it, or set `mode: bridge`",
            );
        }
        _ => {}
    }
    Some(NetworkSpec { mode, cidr, gateway, bridge: n.bridge.clone() })
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && !s.contains(|c: char| c.is_whitespace() || c == '/' || c == ':')
}

pub fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

fn last_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.broadcast()) - 1)
}

/// Checks that a node or virtual address is usable in the node network.
pub fn check_in_network(cx: &mut Ctx, path: FieldPath, addr: Ipv4Addr, net: &NetworkSpec) -> bool {
    let cidr = net.cidr;
    let problem = if !cidr.contains(&addr) {
        Some(format!("{addr} is outside the node network {cidr}"))
    } else if addr == cidr.network() {
        Some(format!("{addr} is the network address of {cidr}"))
    } else if addr == cidr.broadcast() {
        Some(format!("{addr} is the broadcast address of {cidr}"))
    } else if addr == net.gateway {
        Some(format!("{addr} is the gateway of {cidr}"))
    } else {
        None
    };
    match problem {
        Some(msg) => {
            cx.error(
                "address-unusable",
                path,
                msg,
                format!(
                    "pick a free address from {} to {} other than the gateway {}",
                    first_host(cidr),
                    last_host(cidr),
                    net.gateway
                ),
            );
            false
        }
        None => true,
    }
}

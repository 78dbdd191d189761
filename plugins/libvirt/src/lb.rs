//! HAProxy and keepalived configurations for the load-balancer VMs (the seeds' design):
//! HAProxy forwards TCP 6443 to every control plane, health-checked, redispatching failed
//! connections; keepalived holds the VIP on the live balancer with the highest priority and
//! gives it up as soon as its own HAProxy stops answering.

use crate::config::Check;
use crate::xml::cidr_parts;
use crate::{Cluster, NodeRole, NodeSpec};

fn members(cluster: &Cluster, role: NodeRole) -> impl Iterator<Item = &NodeSpec> {
    cluster.nodes.iter().filter(move |n| n.role == role)
}

/// Address a balancer reaches a node at (static addresses; DHCP nodes by name).
fn addr(n: &NodeSpec) -> String {
    n.address.clone().unwrap_or_else(|| n.name.clone())
}

/// A backend server line. A DHCP node is named, not numbered: HAProxy resolves names once at
/// start and refuses to start if one fails — and a name resolves only once its node holds a
/// lease, which a balancer that boots first does not wait for. So named servers start without
/// an address and are resolved at run time through the network's DNS (libvirt's dnsmasq).
fn server(cluster: &Cluster, n: &NodeSpec, port: u16) -> String {
    let dynamic = if n.address.is_none() { " resolvers network init-addr last,libc,none" } else { "" };
    format!("    server {} {}:{port}{dynamic}\n", short(cluster, n), addr(n))
}

fn short(cluster: &Cluster, n: &NodeSpec) -> String {
    n.name.strip_prefix(&format!("{}-", cluster.name)).unwrap_or(&n.name).to_string()
}

pub fn haproxy(cluster: &Cluster, check: Check) -> String {
    let mut s = String::from(
        "# Rendered by hacluster (libvirt backend). Kubernetes API load balancer.\nglobal\n    log /dev/log local0\n    maxconn 4000\n\ndefaults\n    mode tcp\n    log global\n    option tcplog\n    option dontlognull\n    timeout connect 3s\n    timeout client 1h\n    timeout server 1h\n    # A connection to a dead server is retried, on another server the last time.\n    retries 3\n    option redispatch\n\n",
    );
    let forwarded = |fp: &crate::ForwardPort| -> Vec<NodeRole> {
        match fp.target.as_str() {
            "masters" => vec![NodeRole::ControlPlane],
            "all" => vec![NodeRole::ControlPlane, NodeRole::Worker],
            _ => vec![NodeRole::Worker],
        }
    };
    let named = members(cluster, NodeRole::ControlPlane).any(|n| n.address.is_none())
        || cluster
            .forward_ports
            .iter()
            .any(|fp| forwarded(fp).into_iter().any(|r| members(cluster, r).any(|n| n.address.is_none())));
    if named {
        // On a network hacluster makes, libvirt's dnsmasq at the gateway knows the DHCP nodes'
        // names: ask it directly (Ubuntu's resolv.conf names systemd-resolved, which does not
        // pass single-label names on). On an existing bridge, whatever DNS the host uses.
        let dns = match cluster.network.as_ref().filter(|n| n.mode != crate::NetworkMode::Bridge) {
            Some(n) => format!("    nameserver libvirt {}:53\n", n.gateway),
            None => "    parse-resolv-conf\n".to_string(),
        };
        s += &format!(
            "# Servers without a static address are resolved while running (see their lines).\nresolvers network\n{dns}    resolve_retries 3\n    timeout resolve 1s\n    timeout retry 1s\n    hold valid 10s\n    hold nx 5s\n\n"
        );
    }
    s += &format!("frontend kube-apiserver\n    bind *:{}\n    default_backend control-planes\n\n", cluster.api_port);
    s += "backend control-planes\n    balance roundrobin\n";
    match check {
        Check::Https => {
            s += "    # kube-apiserver's own readiness, over TLS (anonymous /readyz is allowed).\n    option httpchk GET /readyz\n    http-check expect status 200\n    default-server inter 1s fall 2 rise 2 check check-ssl verify none\n";
        }
        Check::Tcp => s += "    default-server inter 1s fall 2 rise 2 check\n",
    }
    for n in members(cluster, NodeRole::ControlPlane) {
        s += &server(cluster, n, cluster.api_port);
    }
    for fp in &cluster.forward_ports {
        s += &format!(
            "\nfrontend {name}\n    bind *:{port}\n    default_backend {name}\n\nbackend {name}\n    balance roundrobin\n    default-server inter 2s fall 2 rise 2 check\n",
            name = fp.name,
            port = fp.port
        );
        for role in forwarded(fp) {
            for n in members(cluster, role) {
                s += &server(cluster, n, fp.target_port);
            }
        }
    }
    s
}

/// The check keepalived runs: only this machine's HAProxy (a process check would see others'
/// in shared PID spaces). A failing check puts the instance in FAULT, which hands the VIP over
/// at once instead of waiting for lower-priority adverts.
pub const CHECK_SCRIPT: &str = "#!/bin/sh\n# Rendered by hacluster: is this machine's HAProxy accepting API connections?\nexec timeout 1 bash -c '</dev/tcp/127.0.0.1/6443' 2>/dev/null\n";

pub fn keepalived(cluster: &Cluster, lb: &NodeSpec, vip: &str, vrid: u8, interface: &str, check_path: &str) -> String {
    let prefix = cluster.network.as_ref().map(|n| cidr_parts(&n.cidr).2).unwrap_or(24);
    let priority = lb.priority.unwrap_or(100);
    let peers: Vec<String> = members(cluster, NodeRole::LoadBalancer)
        .filter(|n| n.name != lb.name)
        .filter_map(|n| n.address.clone())
        .collect();
    let unicast = if peers.is_empty() || lb.address.is_none() {
        String::new()
    } else {
        format!(
            "    unicast_src_ip {}\n    unicast_peer {{\n{}    }}\n",
            lb.address.clone().unwrap_or_default(),
            peers.iter().map(|p| format!("        {p}\n")).collect::<String>()
        )
    };
    format!(
        "# Rendered by hacluster (libvirt backend). The Kubernetes API's virtual IP.\nglobal_defs {{\n    router_id {name}\n    # v3 allows sub-second adverts: a dead master is noticed after 3 of them.\n    vrrp_version 3\n    enable_script_security\n    script_user root\n}}\n\nvrrp_script haproxy_alive {{\n    script \"{check_path}\"\n    interval 1\n    timeout 1\n    fall 1\n    rise 2\n}}\n\nvrrp_instance kube_api {{\n    state BACKUP\n    interface {interface}\n    virtual_router_id {vrid}\n    priority {priority}\n    advert_int 0.5\n{unicast}    virtual_ipaddress {{\n        {vip}/{prefix} dev {interface}\n    }}\n    track_script {{\n        haproxy_alive\n    }}\n}}\n",
        name = lb.name,
    )
}

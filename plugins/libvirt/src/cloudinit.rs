//! The NoCloud seed of a VM: meta-data, network-config (v2, the NIC matched by MAC and named
//! eth0, the static address) and user-data — the core's part (login user, authorized key,
//! pinned host key), plus, on load balancers, HAProxy and keepalived.
//! Rendered as JSON, which cloud-init reads as YAML.

use serde_json::{Value, json};

use crate::config::Config;
use crate::xml::{cidr_parts, mac_of};
use crate::{Cluster, EndpointKind, NodeRole, NodeSpec, lb};

pub fn meta_data(node: &NodeSpec) -> String {
    format!("instance-id: {name}\nlocal-hostname: {name}\n", name = node.name)
}

pub fn network_config(cluster: &Cluster, node: &NodeSpec) -> String {
    let mut eth = json!({
        "match": {"macaddress": mac_of(node)},
        "set-name": "eth0",
    });
    match (&node.address, &cluster.network) {
        (Some(a), Some(net)) => {
            let prefix = cidr_parts(&net.cidr).2;
            eth["addresses"] = json!([format!("{a}/{prefix}")]);
            // `0.0.0.0/0`, not `default`: cloud-init before 23.x rejects the keyword.
            eth["routes"] = json!([{"to": "0.0.0.0/0", "via": net.gateway}]);
            eth["nameservers"] = json!({"addresses": [net.gateway]});
        }
        _ => eth["dhcp4"] = json!(true),
    }
    serde_json::to_string_pretty(&json!({"version": 2, "ethernets": {"eth0": eth}})).expect("JSON") + "\n"
}

/// What a load balancer's user-data writes onto it: (path on the machine, mode, content).
pub fn lb_files(cfg: &Config, cluster: &Cluster, node: &NodeSpec) -> Vec<(&'static str, &'static str, String)> {
    if node.role != NodeRole::LoadBalancer {
        return Vec::new();
    }
    let mut files = vec![("/etc/haproxy/haproxy.cfg", "0644", lb::haproxy(cluster, cfg.haproxy_check))];
    if let EndpointKind::Vip(v) = &cluster.endpoint {
        files.push(("/etc/keepalived/check_haproxy.sh", "0755", lb::CHECK_SCRIPT.to_string()));
        files.push((
            "/etc/keepalived/keepalived.conf",
            "0644",
            lb::keepalived(cluster, node, &v.address, v.virtual_router_id, "eth0", "/etc/keepalived/check_haproxy.sh"),
        ));
    }
    files
}

/// The core's `#cloud-config` (JSON after the header), with the load balancer's part merged in.
pub fn user_data(cfg: &Config, cluster: &Cluster, node: &NodeSpec) -> String {
    let body = node.user_data.strip_prefix("#cloud-config\n").unwrap_or(&node.user_data);
    let mut doc: Value = serde_json::from_str(body).unwrap_or_else(|_| json!({}));
    if node.role == NodeRole::LoadBalancer {
        let files: Vec<Value> = lb_files(cfg, cluster, node)
            .into_iter()
            .map(|(path, mode, content)| json!({"path": path, "permissions": mode, "content": content}))
            .collect();
        let mut runcmd =
            vec![json!(["systemctl", "enable", "--now", "haproxy"]), json!(["systemctl", "restart", "haproxy"])];
        if matches!(cluster.endpoint, EndpointKind::Vip(_)) {
            runcmd.push(json!(["systemctl", "enable", "--now", "keepalived"]));
            runcmd.push(json!(["systemctl", "restart", "keepalived"]));
        }
        doc["write_files"] = Value::Array(files);
        doc["runcmd"] = Value::Array(runcmd);
        // Without a way out (isolated network) the image must already have them.
        if cluster.network.as_ref().is_some_and(|n| !matches!(n.mode, crate::NetworkMode::Isolated)) {
            doc["packages"] = json!(["haproxy", "keepalived"]);
        }
    }
    format!("#cloud-config\n{}\n", serde_json::to_string_pretty(&doc).expect("JSON"))
}

/// The files of `node`'s NoCloud seed ISO: (name, content).
pub fn seed(cfg: &Config, cluster: &Cluster, node: &NodeSpec) -> Vec<(&'static str, String)> {
    vec![
        ("meta-data", meta_data(node)),
        ("network-config", network_config(cluster, node)),
        ("user-data", user_data(cfg, cluster, node)),
    ]
}

//! `cluster.nodeTemplate`: the login user, SSH, DNS servers, OS and CPU mode every node shares.

use std::net::IpAddr;

use super::super::Ctx;
use super::DEFAULT_USER;
use crate::config::diagnostic::FieldPath;
use crate::config::raw;
use crate::model::NodeTemplate;

/// The template every node shares, checked.
pub(super) fn check(cx: &mut Ctx, t: &raw::NodeTemplate) -> NodeTemplate {
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

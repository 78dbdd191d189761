//! `hosts[]`: the hypervisors VMs are placed on.

use std::collections::BTreeMap;

use super::Ctx;
use crate::config::diagnostic::FieldPath;
use crate::config::raw::{Connection, ConnectionType, RawConfig};
use crate::model::{BackendProfile, HostConnection, HostSpec, libvirt_uri};
use crate::paths::is_plain_path;

pub const DEFAULT_POOL_PATH: &str = "/var/lib/libvirt/images/";

/// Host and pool names: no `.`, which joins cluster, host and pool in libvirt pool and
/// network names (`<cluster>.<host>.<pool>`), so those names split one way only.
pub fn is_simple_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A directory the host's pools go under (each in a directory of its own, named after the
/// pool): absolute, plain characters, no `.`/`..` components, as the hypervisor policy
/// compares it with what libvirt reports.
fn check_pool_dir(cx: &mut Ctx, path: FieldPath, dir: &str) {
    let trimmed = dir.trim_end_matches('/');
    let ok = if trimmed.is_empty() { dir.starts_with('/') } else { is_plain_path(trimmed) };
    if !ok {
        cx.error(
            "pool-path",
            path,
            format!("`{dir}` is not a plain absolute directory"),
            "write an absolute path of letters, digits, `/`, `.`, `_`, `+` and `-` without `.` or `..` components, e.g. /var/lib/libvirt/images/",
        );
    }
}

/// The values that end up in the libvirt URI (and so in ssh's argv on this machine): the URI
/// itself, or the user, address and key it is built from; and `ssh.verify`, which cannot be
/// turned off.
fn check_connection(cx: &mut Ctx, cp: &FieldPath, conn: &Connection) {
    if let Some(uri) = &conn.uri
        && let Err(why) = libvirt_uri::check(uri)
    {
        cx.error(
            "libvirt-uri",
            cp.key("uri"),
            format!("`{uri}` is not a libvirt URI hacluster opens: {why}"),
            "use qemu:///system (this machine), qemu+ssh://USER@HOST/system?keyfile=PATH (a remote host; or type: remote with user, ip and ssh.keyfile) or test:///default",
        );
    }
    if let Some(user) = &conn.user
        && !libvirt_uri::is_user(user)
    {
        cx.error(
            "host-user",
            cp.key("user"),
            format!("`{user}` is not a user name"),
            "use letters, digits, `_`, `.` and `-` (at most 32, not starting with `-`)",
        );
    }
    if let Some(ip) = &conn.ip
        && !libvirt_uri::is_host(ip)
    {
        cx.error(
            "host-address",
            cp.key("ip"),
            format!("`{ip}` is not an IP address or a DNS name"),
            "write the host's address, e.g. 10.10.0.5 or hv1.example.com",
        );
    }
    let Some(ssh) = &conn.ssh else { return };
    if let Some(k) = &ssh.keyfile
        && !libvirt_uri::is_keyfile(k)
    {
        cx.error(
            "host-keyfile",
            cp.key("ssh").key("keyfile"),
            format!("`{k}` is not a plain path to a private key"),
            "use letters, digits, `/`, `.`, `_`, `~`, `+` and `-` (it becomes a parameter of the libvirt URI)",
        );
    }
    if ssh.verify == Some(false) {
        cx.error(
            "host-key-unverified",
            cp.key("ssh").key("verify"),
            "hacluster always checks the hypervisor's SSH host key; it cannot be turned off",
            "remove `verify: false` and add the host's key to ~/.ssh/known_hosts (ssh-keyscan, checked against the host's fingerprint), which libvirt's ssh transport reads",
        );
    }
}

pub fn check(cx: &mut Ctx, raw: &RawConfig, backend: &BackendProfile) -> Vec<HostSpec> {
    let base = FieldPath::root().key("hosts");
    if backend.uses_hosts && raw.hosts.is_empty() {
        cx.error(
            "no-hosts",
            base.clone(),
            format!("the {} backend needs at least one host to put the VMs on", backend.name),
            "add `hosts: [{name: localhost, connection: {type: local}}]` for this machine",
        );
    }
    let mut out = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut defaults = Vec::new();
    for (i, h) in raw.hosts.iter().enumerate() {
        let p = base.index(i);
        if !is_simple_name(&h.name) {
            cx.error(
                "host-name",
                p.key("name"),
                format!("`{}` is not a valid host name", h.name),
                "use letters, digits, `-` and `_` (at most 63)",
            );
        }
        if let Some(first) = seen.insert(&h.name, i) {
            cx.error(
                "duplicate-host",
                p.key("name"),
                format!("host name `{}` is already used by hosts[{first}]", h.name),
                "give every host its own name; nodes refer to hosts by name",
            );
        }
        if h.default {
            defaults.push(i);
        }
        let conn = &h.connection;
        let remote = conn.kind == ConnectionType::Remote;
        let cp = p.key("connection");
        if remote {
            for (field, present) in [
                ("ip", conn.ip.is_some()),
                ("user", conn.user.is_some()),
                ("ssh", conn.ssh.as_ref().is_some_and(|s| s.keyfile.is_some())),
            ] {
                if !present {
                    let (path, what) = if field == "ssh" {
                        (cp.key("ssh").key("keyfile"), "ssh.keyfile")
                    } else {
                        (cp.key(field), field)
                    };
                    cx.error(
                        "remote-host-incomplete",
                        path,
                        format!("a remote host needs `connection.{what}`"),
                        "libvirt reaches a remote host as qemu+ssh://USER@IP/system with a password-less key (ssh.keyfile)",
                    );
                }
            }
        }
        if let Some(path) = &h.main_resource_pool_path {
            check_pool_dir(cx, p.key("mainResourcePoolPath"), path);
        }
        let mut pools = BTreeMap::new();
        for (j, pool) in h.data_resource_pools.iter().enumerate() {
            let pp = p.key("dataResourcePools").index(j);
            if pool.name == "main" {
                cx.error(
                    "reserved-pool-name",
                    pp.key("name"),
                    "`main` names the host's main pool and cannot be a data pool",
                    "choose another name, e.g. `data-pool`",
                );
            } else if !is_simple_name(&pool.name) {
                cx.error(
                    "pool-name",
                    pp.key("name"),
                    format!("`{}` is not a valid pool name", pool.name),
                    "use letters, digits, `-` and `_`",
                );
            }
            if let Some(path) = &pool.path {
                check_pool_dir(cx, pp.key("path"), path);
            }
            let path = pool.path.clone().unwrap_or_else(|| DEFAULT_POOL_PATH.to_string());
            if pools.insert(pool.name.clone(), path).is_some() {
                cx.error(
                    "duplicate-pool",
                    pp.key("name"),
                    format!("data pool `{}` is defined twice on host `{}`", pool.name, h.name),
                    "keep one definition per pool name",
                );
            }
        }
        check_connection(cx, &cp, conn);
        let ssh = conn.ssh.clone().unwrap_or_default();
        out.push(HostSpec {
            name: h.name.clone(),
            default: false,
            connection: if remote { HostConnection::Remote } else { HostConnection::Local },
            user: conn.user.clone(),
            address: conn.ip.clone(),
            ssh_port: ssh.port.unwrap_or(22) as u16,
            ssh_keyfile: ssh.keyfile,
            main_pool_path: h.main_resource_pool_path.clone().unwrap_or_else(|| DEFAULT_POOL_PATH.to_string()),
            data_pools: pools,
            uri: conn.uri.clone(),
        });
    }
    if defaults.len() > 1 {
        cx.error(
            "several-default-hosts",
            base.index(defaults[1]).key("default"),
            format!("hosts[{}] and hosts[{}] are both marked `default: true`", defaults[0], defaults[1]),
            "mark at most one host as default; nodes without `host:` go there",
        );
    }
    let default_index = defaults.first().copied().unwrap_or(0);
    if let Some(h) = out.get_mut(default_index) {
        h.default = true;
    }
    out
}

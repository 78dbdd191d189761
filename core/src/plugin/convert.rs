//! Between the core's model and the contract's types (the bindings `runtime/mod.rs` generates).

use std::collections::BTreeMap;

use super::runtime::bindings::hacluster::backend::types as w;
use super::{Capabilities, PluginError, PluginInfo};
use crate::config::{Diagnostic, FieldPath};
use crate::infra::{ApiEndpoint, Change, ChangeAction, Infrastructure, JumpHost, Machine, RenderedFile, SshTarget};
use crate::model::ports::{Peer, Protocol};
use crate::model::{ClusterSpec, Endpoint, ForwardTarget, NetworkMode, NodeRole};
use crate::state::NodeIdentity;

/// What the core hands a backend besides the model: node identities and the login key. For
/// `validate` and dry-run `plan` both may be absent (nothing is generated before a real run).
pub struct ClusterInput<'a> {
    pub spec: &'a ClusterSpec,
    pub identities: &'a BTreeMap<String, NodeIdentity>,
    pub authorized_key: &'a str,
    pub backend: &'a str,
}

fn role(r: NodeRole) -> w::NodeRole {
    match r {
        NodeRole::ControlPlane => w::NodeRole::ControlPlane,
        NodeRole::Worker => w::NodeRole::Worker,
        NodeRole::LoadBalancer => w::NodeRole::LoadBalancer,
    }
}

fn role_back(r: w::NodeRole) -> NodeRole {
    match r {
        w::NodeRole::ControlPlane => NodeRole::ControlPlane,
        w::NodeRole::Worker => NodeRole::Worker,
        w::NodeRole::LoadBalancer => NodeRole::LoadBalancer,
    }
}

pub fn cluster(input: &ClusterInput) -> w::Cluster {
    let spec = input.spec;
    let nodes = spec
        .nodes()
        .map(|n| {
            let id = input.identities.get(n.name.as_str());
            w::NodeSpec {
                name: n.name.to_string(),
                role: role(n.role),
                id: n.id.clone(),
                host: n.host.clone(),
                failure_domain: n.failure_domain.clone(),
                address: n.address.map(|a| a.to_string()),
                mac: n.mac.map(|m| m.to_string()),
                resources: w::Resources {
                    cpu: n.resources.cpu,
                    ram_gib: n.resources.ram_gib,
                    main_disk_gib: n.resources.main_disk_gib,
                },
                data_disks: n
                    .data_disks
                    .iter()
                    .map(|d| w::DataDisk { name: d.name.clone(), pool: d.pool.clone(), size_gib: d.size_gib })
                    .collect(),
                priority: n.priority,
                user_data: id
                    .map(|id| crate::identity::user_data(spec, n, id, input.authorized_key))
                    .unwrap_or_default(),
                host_public_key: id.map(|id| id.host_public_key.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let endpoint = match &spec.endpoint {
        Endpoint::Vip { address, virtual_router_id, .. } => {
            w::EndpointKind::Vip(w::Vip { address: address.to_string(), virtual_router_id: *virtual_router_id })
        }
        Endpoint::LoadBalancer { node, .. } => w::EndpointKind::LoadBalancer(node.to_string()),
        Endpoint::CloudLoadBalancer { .. } => w::EndpointKind::CloudLoadBalancer,
        Endpoint::ControlPlane { node, .. } => w::EndpointKind::ControlPlane(node.to_string()),
    };
    let ports = spec
        .port_matrix()
        .rules
        .iter()
        .map(|r| w::PortRule {
            on: role(r.on),
            protocol: match r.protocol {
                Protocol::Tcp => w::Protocol::Tcp,
                Protocol::Udp => w::Protocol::Udp,
                Protocol::IpInIp => w::Protocol::IpInIp,
                Protocol::Vrrp => w::Protocol::Vrrp,
            },
            from_port: r.ports.0,
            to_port: r.ports.1,
            source: match r.from {
                Peer::ControlPlanes => w::Peer::ControlPlanes,
                Peer::Workers => w::Peer::Workers,
                Peer::AllNodes => w::Peer::AllNodes,
                Peer::LoadBalancers => w::Peer::LoadBalancers,
                Peer::CloudLoadBalancer => w::Peer::CloudLoadBalancer,
                Peer::Admins => w::Peer::Admins,
                Peer::NodePortClients => w::Peer::NodePortClients,
                Peer::ApiClients => w::Peer::ApiClients,
            },
            purpose: r.purpose.to_string(),
        })
        .collect();
    w::Cluster {
        name: spec.name.to_string(),
        nodes,
        endpoint,
        api_port: spec.endpoint.port(),
        network: spec.network.as_ref().map(|n| w::Network {
            mode: match n.mode {
                NetworkMode::Nat => w::NetworkMode::Nat,
                NetworkMode::Route => w::NetworkMode::Route,
                NetworkMode::Bridge => w::NetworkMode::Bridge,
                NetworkMode::Isolated => w::NetworkMode::Isolated,
            },
            cidr: n.cidr.to_string(),
            gateway: n.gateway.to_string(),
            bridge: n.bridge.clone(),
        }),
        hosts: spec
            .hosts
            .iter()
            .map(|h| w::HypervisorHost {
                name: h.name.clone(),
                uri: h.libvirt_uri(),
                default: h.default,
                main_pool_path: h.main_pool_path.clone(),
                data_pools: h.data_pools.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            })
            .collect(),
        ports,
        forward_ports: spec
            .forward_ports
            .iter()
            .map(|f| w::ForwardPort {
                name: f.name.clone(),
                port: f.port,
                target_port: f.target_port,
                target: match f.target {
                    ForwardTarget::Workers => "workers",
                    ForwardTarget::Masters => "masters",
                    ForwardTarget::All => "all",
                }
                .into(),
            })
            .collect(),
        kubernetes_version: spec.kubernetes.version.to_string(),
        network_plugin: spec.kubernetes.network_plugin.to_string(),
        pod_subnet: spec.kubernetes.pod_subnet.to_string(),
        service_subnet: spec.kubernetes.service_subnet.to_string(),
        ssh_user: spec.node_template.user.clone(),
        ssh_public_key: input.authorized_key.to_string(),
        config: section(spec.backend_sections.get(input.backend)),
    }
}

/// A backend's config section as the backend gets it: without the keys only the host reads
/// (`egress`, the plugin's allow-list), so a backend declares only its own fields; "{}" when
/// absent. `image` stays: the backend passes it to the host's image import.
fn section(section: Option<&serde_json::Value>) -> String {
    let Some(mut section) = section.cloned() else { return "{}".into() };
    if let Some(keys) = section.as_object_mut() {
        keys.remove("egress");
    }
    section.to_string()
}

/// Sizes of what a plugin describes itself and its work with, as shown.
const MAX_NAME: usize = 128;
const MAX_MESSAGE: usize = 8 << 10;

/// Text from the plugin, as it may be shown (see `crate::text::untrusted`).
fn shown(text: String, max: usize) -> String {
    crate::text::untrusted(&text, max)
}

pub fn info(i: w::PluginInfo) -> PluginInfo {
    PluginInfo {
        name: shown(i.name, MAX_NAME),
        version: shown(i.version, MAX_NAME),
        contract: shown(i.contract, MAX_NAME),
        description: shown(i.description, MAX_MESSAGE),
        supports: Capabilities {
            vip: i.supports.contains(w::Capabilities::VIP),
            cloud_lb: i.supports.contains(w::Capabilities::CLOUD_LB),
            multi_host: i.supports.contains(w::Capabilities::MULTI_HOST),
            data_disks: i.supports.contains(w::Capabilities::DATA_DISKS),
        },
    }
}

pub fn diagnostic(d: w::Diagnostic) -> Diagnostic {
    let path = FieldPath::parse(&shown(d.path, MAX_NAME));
    let message = shown(d.message, MAX_MESSAGE);
    let mut out = match d.severity {
        w::Severity::Error => Diagnostic::error("backend", path, message),
        w::Severity::Warning => Diagnostic::warning("backend", path, message),
    };
    out.help = d.help.map(|h| shown(h, MAX_MESSAGE));
    out
}

pub fn change(c: w::Change) -> Change {
    Change {
        action: match c.action {
            w::ChangeAction::Create => ChangeAction::Create,
            w::ChangeAction::Update => ChangeAction::Update,
            w::ChangeAction::Delete => ChangeAction::Delete,
            w::ChangeAction::Keep => ChangeAction::Keep,
        },
        kind: shown(c.kind, MAX_NAME),
        name: shown(c.name, MAX_NAME),
        detail: shown(c.detail, MAX_MESSAGE),
    }
}

pub fn backend_error(plugin: &str, e: w::Error, denied_egress: Vec<String>) -> PluginError {
    let (kind, message) = match e {
        w::Error::InvalidInput(m) => ("invalid input", m),
        w::Error::NotFound(m) => ("not found", m),
        w::Error::Denied(m) => ("denied", m),
        w::Error::Conflict(m) => ("conflict", m),
        w::Error::Transient(m) => ("transient", m),
        w::Error::Internal(m) => ("internal", m),
    };
    PluginError::Backend { plugin: plugin.into(), kind, message: shown(message, MAX_MESSAGE), denied_egress }
}

/// Limits on what a plugin may hand back, so a buggy or hostile one cannot make the host
/// store or print without bound.
const MAX_MACHINES: usize = 100_000;
const MAX_FIELD: usize = 64 << 10;

/// Checks the infrastructure against the cluster it was asked for and converts it.
pub fn infrastructure(
    plugin: &str,
    spec: &ClusterSpec,
    i: w::Infrastructure,
) -> Result<(Infrastructure, Vec<u8>), PluginError> {
    let bad = |reason: String| PluginError::BadOutput { plugin: plugin.into(), reason };
    if i.state.len() > super::runtime::MAX_STATE_BYTES {
        return Err(PluginError::OutputTooLarge {
            plugin: plugin.into(),
            what: "state",
            unit: "bytes",
            size: i.state.len(),
            limit: super::runtime::MAX_STATE_BYTES,
        });
    }
    if i.machines.len() > MAX_MACHINES {
        return Err(PluginError::OutputTooLarge {
            plugin: plugin.into(),
            what: "machine list",
            unit: "machines",
            size: i.machines.len(),
            limit: MAX_MACHINES,
        });
    }
    let mut machines = Vec::with_capacity(i.machines.len());
    for m in i.machines {
        let fields = [&m.name, &m.private_address, &m.ssh.address, &m.ssh.user, &m.ssh.host_public_key, &m.provider_id];
        if fields.iter().any(|f| f.len() > MAX_FIELD) {
            return Err(bad(format!("machine `{}` has a field over {MAX_FIELD} bytes", truncate(&m.name))));
        }
        let Some(node) = spec.nodes().find(|n| n.name.as_str() == m.name) else {
            return Err(bad(format!("returned machine `{}`, which is not a node of the cluster", truncate(&m.name))));
        };
        if node.role != role_back(m.role) {
            return Err(bad(format!(
                "machine `{}` has role {} but the node is a {}",
                m.name,
                role_back(m.role),
                node.role
            )));
        }
        if machines.iter().any(|x: &Machine| x.name == m.name) {
            return Err(bad(format!("machine `{}` is listed twice", m.name)));
        }
        // These values reach shell scripts run as root on the nodes, and SSH: only what an
        // address or a user name can be, so a plugin cannot smuggle a command in.
        if m.private_address.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(format!(
                "machine `{}` has a private address that is not an IP address: {:?}",
                m.name,
                truncate(&m.private_address)
            )));
        }
        let targets =
            std::iter::once((&m.ssh.address, &m.ssh.user)).chain(m.ssh.jump.as_ref().map(|j| (&j.address, &j.user)));
        for (address, user) in targets {
            if !is_host(address) {
                return Err(bad(format!(
                    "machine `{}` has an SSH address that is neither an IP address nor a DNS name: {:?}",
                    m.name,
                    truncate(address)
                )));
            }
            if !is_user_name(user) {
                return Err(bad(format!("machine `{}` has an unusable SSH user name: {:?}", m.name, truncate(user))));
            }
        }
        if !crate::identity::is_public_key(&m.ssh.host_public_key) {
            return Err(bad(format!(
                "machine `{}` has no valid SSH host key; hacluster never connects to a machine whose key it cannot pin",
                m.name
            )));
        }
        let jump = match m.ssh.jump {
            Some(j) => {
                if !crate::identity::is_public_key(&j.host_public_key) {
                    return Err(bad(format!("the jump host of `{}` has no valid SSH host key", m.name)));
                }
                Some(JumpHost { address: j.address, port: j.port, user: j.user, host_public_key: j.host_public_key })
            }
            None => None,
        };
        machines.push(Machine {
            name: m.name,
            role: node.role,
            private_address: m.private_address,
            ssh: SshTarget {
                address: m.ssh.address,
                port: m.ssh.port,
                user: m.ssh.user,
                jump,
                host_public_key: m.ssh.host_public_key.trim().to_string(),
            },
            // Shown in every machine table: printable, never a way to drive the terminal.
            provider_id: crate::text::printable(&m.provider_id),
        });
    }
    if let Some(missing) = spec.nodes().find(|n| !machines.iter().any(|m| m.name == n.name.as_str())) {
        return Err(bad(format!("no machine for node `{}`", missing.name)));
    }
    if !is_host(&i.endpoint.host) {
        return Err(bad(format!(
            "the API endpoint's host is neither an IP address nor a DNS name: {:?}",
            truncate(&i.endpoint.host)
        )));
    }
    Ok((Infrastructure { machines, endpoint: ApiEndpoint { host: i.endpoint.host, port: i.endpoint.port } }, i.state))
}

/// Files a backend may hand back for `plan --out`, in number and in bytes altogether.
const MAX_RENDERED_FILES: usize = 10_000;
const MAX_RENDERED_BYTES: usize = 64 << 20;
const MAX_DESTINATION: usize = 512;

/// A file name a backend may give a rendered file: it becomes a path under the plan output
/// directory, so only a plain name (no separators, no `..`, no hidden files), and not one the
/// core writes itself.
pub fn is_rendered_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && !s.starts_with("kubeadm-")
        && s != crate::node_files::PREPARE_SCRIPT
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Checks a backend's rendered files against the cluster: known nodes, plain names, each name
/// once per node, bounded sizes; the operator-facing `destination` loses control characters.
pub fn rendered_files(
    plugin: &str,
    spec: &ClusterSpec,
    files: Vec<super::runtime::RenderedFile>,
) -> Result<Vec<RenderedFile>, PluginError> {
    let bad = |reason: String| PluginError::BadOutput { plugin: plugin.into(), reason };
    if files.len() > MAX_RENDERED_FILES {
        return Err(PluginError::OutputTooLarge {
            plugin: plugin.into(),
            what: "list of rendered files",
            unit: "files",
            size: files.len(),
            limit: MAX_RENDERED_FILES,
        });
    }
    let total: usize = files.iter().map(|f| f.content.len() + f.destination.len()).sum();
    if total > MAX_RENDERED_BYTES {
        return Err(PluginError::OutputTooLarge {
            plugin: plugin.into(),
            what: "set of rendered files",
            unit: "bytes",
            size: total,
            limit: MAX_RENDERED_BYTES,
        });
    }
    let mut out: Vec<RenderedFile> = Vec::with_capacity(files.len());
    for f in files {
        if !spec.nodes().any(|n| n.name.as_str() == f.node) {
            return Err(bad(format!(
                "rendered a file for `{}`, which is not a node of the cluster",
                truncate(&f.node)
            )));
        }
        if !is_rendered_file_name(&f.name) {
            return Err(bad(format!(
                "rendered a file named {:?} for `{}`: a name is 1-64 letters, digits, `.`, `-` or `_`, not starting with `.`, and not one of the core's (`kubeadm-*`, `{}`)",
                truncate(&f.name),
                f.node,
                crate::node_files::PREPARE_SCRIPT
            )));
        }
        if out.iter().any(|o| o.node == f.node && o.name == f.name) {
            return Err(bad(format!("rendered `{}` twice for `{}`", f.name, f.node)));
        }
        let mut destination: String = f.destination.chars().filter(|c| !c.is_control()).take(MAX_DESTINATION).collect();
        if destination.is_empty() {
            destination = "(the backend did not say)".into();
        }
        out.push(RenderedFile { node: f.node, name: f.name, destination, content: f.content });
    }
    Ok(out)
}

/// An IP address or a DNS name (letters, digits and hyphens in dot-separated labels).
fn is_host(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A login name as systems allow them (letters, digits, `.`, `_`, `-`; not starting with `-`).
fn is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::{is_host, is_rendered_file_name, is_user_name};

    #[test]
    fn rendered_file_names_stay_inside_their_directory() {
        for ok in ["haproxy.cfg", "user-data", "keepalived.conf", "check_haproxy.sh", "a"] {
            assert!(is_rendered_file_name(ok), "{ok}");
        }
        let long = "n".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            "...iso",
            ".hidden",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\\b",
            "a b",
            "kubeadm-init.yaml",
            "prepare.sh",
            "x\n",
            &long,
        ] {
            assert!(!is_rendered_file_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn hosts_and_user_names_are_only_what_they_can_be() {
        for ok in ["10.0.0.5", "fd00::2", "api-abc123.elb.eu-central-1.amazonaws.com", "lb.example.", "node-1"] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in ["", "10.0.0.1; reboot", "$(reboot)", "a b", "-oProxyCommand=x", "x..y", "a'b", &"a".repeat(64)] {
            assert!(!is_host(bad), "{bad}");
        }
        for ok in ["ubuntu", "ec2-user", "k8s", "first.last", "_svc"] {
            assert!(is_user_name(ok), "{ok}");
        }
        for bad in ["", "-oops", "root; id", "a b", "x$y", &"u".repeat(33)] {
            assert!(!is_user_name(bad), "{bad}");
        }
    }
}

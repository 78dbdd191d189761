//! A hacluster backend for machines that already exist.
//!
//! Bring your own servers: list their addresses and SSH host keys in the config section
//! `backends.static`, and point `endpoint` at your existing load balancer or VIP. `apply`
//! returns them as infrastructure; nothing is created or destroyed. It is also the smallest
//! complete example of the contract: copy it to start a backend of your own.
//!
//! ```yaml
//! backends:
//!   static:
//!     endpoint: 192.0.2.10:6443        # existing LB/VIP (optional with one control plane)
//!     user: ubuntu                     # login user (default: cluster.nodeTemplate.user)
//!     machines:
//!       - node: master-1               # <master|worker|lb>-<id> from cluster.nodes
//!         address: 192.0.2.11
//!         hostKey: ssh-ed25519 AAAA...  # from /etc/ssh/ssh_host_ed25519_key.pub on the machine
//! ```

use serde::{Deserialize, Serialize};

wit_bindgen::generate!({
    world: "backend",
    path: "../../wit",
});

use exports::hacluster::backend::plugin::Guest;
use hacluster::backend::log::{self, Level};
use hacluster::backend::types::*;
use hacluster::backend::{checkpoint, progress};

const CONTRACT: &str = "0.1.1";

/// `backends.static` in the cluster config.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// `host[:port]` of the existing API load balancer or VIP.
    endpoint: Option<String>,
    user: Option<String>,
    #[serde(default = "default_port")]
    port: u16,
    jump: Option<Jump>,
    #[serde(default)]
    machines: Vec<MachineConfig>,
    /// Extra HTTP origins (not needed by this backend; the host reads it for any backend).
    #[serde(default)]
    #[allow(dead_code)]
    egress: Vec<String>,
}

fn default_port() -> u16 {
    22
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Jump {
    address: String,
    #[serde(default = "default_port")]
    port: u16,
    user: String,
    host_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MachineConfig {
    node: String,
    address: String,
    port: Option<u16>,
    user: Option<String>,
    host_key: String,
}

/// What we hand back as opaque state: the machines adopted last time.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct State {
    adopted: Vec<String>,
}

fn parse_config(cluster: &Cluster) -> Result<Config, String> {
    serde_json::from_str(&cluster.config).map_err(|e| e.to_string())
}

fn parse_state(bytes: Option<Vec<u8>>) -> State {
    bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// `master-1` for `<cluster>-master-1`.
fn short_name(cluster: &Cluster, node: &NodeSpec) -> String {
    node.name.strip_prefix(&format!("{}-", cluster.name)).unwrap_or(&node.name).to_string()
}

fn looks_like_host_key(k: &str) -> bool {
    let mut parts = k.split_whitespace();
    matches!(parts.next(), Some(t) if t.starts_with("ssh-") || t.starts_with("ecdsa-"))
        && parts.next().is_some_and(|b| b.len() > 20)
}

fn diag(path: String, message: String, help: &str) -> Diagnostic {
    Diagnostic { severity: Severity::Error, path, message, help: Some(help.to_string()) }
}

fn check(cluster: &Cluster) -> Vec<Diagnostic> {
    let base = "backends.static";
    let cfg = match parse_config(cluster) {
        Ok(c) => c,
        Err(e) => {
            return vec![diag(
                base.into(),
                format!("cannot read the section: {e}"),
                "see examples/static.yaml for the fields",
            )];
        }
    };
    let mut out = Vec::new();
    for (i, m) in cfg.machines.iter().enumerate() {
        let p = format!("{base}.machines[{i}]");
        if !cluster.nodes.iter().any(|n| short_name(cluster, n) == m.node) {
            let names: Vec<String> = cluster.nodes.iter().map(|n| short_name(cluster, n)).collect();
            out.push(diag(
                format!("{p}.node"),
                format!("no node `{}` in cluster.nodes", m.node),
                &format!("nodes are: {}", names.join(", ")),
            ));
        }
        if !looks_like_host_key(&m.host_key) {
            out.push(diag(
                format!("{p}.hostKey"),
                "not an OpenSSH public host key".into(),
                "copy /etc/ssh/ssh_host_ed25519_key.pub from the machine (check its fingerprint out of band); hacluster pins it",
            ));
        }
        if cfg.machines[..i].iter().any(|o| o.node == m.node) {
            out.push(diag(format!("{p}.node"), format!("`{}` is listed twice", m.node), "list each node once"));
        }
    }
    for n in &cluster.nodes {
        let short = short_name(cluster, n);
        if !cfg.machines.iter().any(|m| m.node == short) {
            out.push(diag(
                format!("{base}.machines"),
                format!("node `{short}` has no machine"),
                &format!("add `- {{node: {short}, address: ..., hostKey: ...}}`"),
            ));
        }
    }
    if matches!(cluster.endpoint, EndpointKind::CloudLoadBalancer) && cfg.endpoint.is_none() {
        out.push(diag(
            format!("{base}.endpoint"),
            "the existing API endpoint is not given".into(),
            "set `endpoint: HOST:6443` to your load balancer or VIP in front of the control planes",
        ));
    }
    if let Some(j) = &cfg.jump
        && !looks_like_host_key(&j.host_key)
    {
        out.push(diag(
            format!("{base}.jump.hostKey"),
            "not an OpenSSH public host key".into(),
            "copy the jump host's host key",
        ));
    }
    out
}

fn invalid(diags: Vec<Diagnostic>) -> Error {
    Error::InvalidInput(diags.iter().map(|d| format!("{}: {}", d.path, d.message)).collect::<Vec<_>>().join("; "))
}

fn endpoint(cluster: &Cluster, cfg: &Config, machines: &[Machine]) -> Result<ApiEndpoint, Error> {
    if let Some(e) = &cfg.endpoint {
        let (host, port) = match e.rsplit_once(':') {
            Some((h, p)) => {
                (h.to_string(), p.parse().map_err(|_| Error::InvalidInput(format!("bad endpoint port in `{e}`")))?)
            }
            None => (e.clone(), cluster.api_port),
        };
        return Ok(ApiEndpoint { host, port });
    }
    // One control plane and no load balancer: the control plane itself.
    let cp = machines
        .iter()
        .find(|m| m.role == NodeRole::ControlPlane)
        .ok_or_else(|| Error::InvalidInput("no control plane".into()))?;
    Ok(ApiEndpoint { host: cp.private_address.clone(), port: cluster.api_port })
}

struct Static;

impl Guest for Static {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "static".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            contract: CONTRACT.into(),
            description: "machines that already exist, with an existing load balancer or VIP".into(),
            // The endpoint is the user's existing load balancer, provided like a cloud one.
            supports: Capabilities::CLOUD_LB | Capabilities::MULTI_HOST,
        }
    }

    fn validate(cluster: Cluster) -> Vec<Diagnostic> {
        check(&cluster)
    }

    fn plan(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Vec<Change>, Error> {
        let diags = check(&cluster);
        if !diags.is_empty() {
            return Err(invalid(diags));
        }
        let prior = parse_state(prior);
        let mut changes: Vec<Change> = cluster
            .nodes
            .iter()
            .map(|n| Change {
                action: if prior.adopted.contains(&n.name) { ChangeAction::Keep } else { ChangeAction::Create },
                kind: "machine".into(),
                name: n.name.clone(),
                detail: "adopt an existing machine (nothing is created)".into(),
            })
            .collect();
        for gone in prior.adopted.iter().filter(|a| !cluster.nodes.iter().any(|n| &n.name == *a)) {
            changes.push(Change {
                action: ChangeAction::Delete,
                kind: "machine".into(),
                name: gone.clone(),
                detail: "release (the machine itself is left alone)".into(),
            });
        }
        Ok(changes)
    }

    fn apply(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Infrastructure, Error> {
        let diags = check(&cluster);
        if !diags.is_empty() {
            return Err(invalid(diags));
        }
        let cfg = parse_config(&cluster).map_err(Error::InvalidInput)?;
        let mut state = parse_state(prior);
        let jump = cfg.jump.as_ref().map(|j| JumpHost {
            address: j.address.clone(),
            port: j.port,
            user: j.user.clone(),
            host_public_key: j.host_key.clone(),
        });
        let total = cluster.nodes.len() as u64;
        let mut machines = Vec::new();
        for (i, n) in cluster.nodes.iter().enumerate() {
            let short = short_name(&cluster, n);
            let m = cfg.machines.iter().find(|m| m.node == short).expect("validated: every node has a machine");
            machines.push(Machine {
                name: n.name.clone(),
                role: n.role,
                private_address: m.address.clone(),
                ssh: SshTarget {
                    address: m.address.clone(),
                    port: m.port.unwrap_or(cfg.port),
                    user: m.user.clone().or_else(|| cfg.user.clone()).unwrap_or_else(|| cluster.ssh_user.clone()),
                    jump: jump.clone(),
                    host_public_key: m.host_key.clone(),
                },
                provider_id: format!("static:{}", m.address),
            });
            if !state.adopted.contains(&n.name) {
                state.adopted.push(n.name.clone());
                // Record every adoption as it happens, as a backend that creates things must.
                let bytes = serde_json::to_vec(&state).expect("state serializes");
                checkpoint::save(&bytes).map_err(|e| Error::Internal(format!("checkpoint failed: {e}")))?;
            }
            progress::report("adopt machines", i as u64 + 1, total);
        }
        state.adopted.retain(|a| cluster.nodes.iter().any(|n| &n.name == a));
        log::log(Level::Info, "adopted existing machines", &[("count".into(), machines.len().to_string())]);
        let endpoint = endpoint(&cluster, &cfg, &machines)?;
        Ok(Infrastructure { machines, endpoint, state: serde_json::to_vec(&state).expect("state serializes") })
    }

    fn destroy(_cluster: Cluster, state: Option<Vec<u8>>) -> Result<(), Error> {
        let state = parse_state(state);
        log::log(
            Level::Info,
            "released machines; they keep running and are not changed",
            &[("count".into(), state.adopted.len().to_string())],
        );
        Ok(())
    }
}

export!(Static);

//! A hacluster backend for machines that already exist.
//!
//! Bring your own servers: list their addresses and SSH host keys in the config section
//! `backends.static`, and point `endpoint` at your existing load balancer or VIP. `apply`
//! returns them as infrastructure; nothing is created or destroyed. It is also the smallest
//! complete example of a backend: copy it to start one of your own.
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

use hacluster_backend::*;
use serde::{Deserialize, Serialize};

/// `backends.static` in the cluster config.
#[derive(Debug, Deserialize)]
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

/// What we hand back as state: the machines adopted last time.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    adopted: Vec<String>,
}

fn looks_like_host_key(k: &str) -> bool {
    let mut parts = k.split_whitespace();
    matches!(parts.next(), Some(t) if t.starts_with("ssh-") || t.starts_with("ecdsa-"))
        && parts.next().is_some_and(|b| b.len() > 20)
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

impl Backend for Static {
    type Config = Config;
    type State = State;

    const NAME: &'static str = "static";
    const DESCRIPTION: &'static str = "machines that already exist, with an existing load balancer or VIP";
    // The endpoint is the user's existing load balancer, provided like a cloud one.
    const SUPPORTS: Capabilities = Capabilities::CLOUD_LB.union(Capabilities::MULTI_HOST);
    const CONFIG_HELP: &'static str = "see examples/static.yaml for the fields";

    fn validate(cluster: &Cluster, cfg: &Config, out: &mut Diagnostics) {
        let base = "backends.static";
        for (i, m) in cfg.machines.iter().enumerate() {
            let p = format!("{base}.machines[{i}]");
            if !cluster.nodes.iter().any(|n| cluster.short_name(n) == m.node) {
                let names: Vec<&str> = cluster.nodes.iter().map(|n| cluster.short_name(n)).collect();
                out.error(format!("{p}.node"), format!("no node `{}` in cluster.nodes", m.node))
                    .help(format!("nodes are: {}", names.join(", ")));
            }
            if !looks_like_host_key(&m.host_key) {
                out.error(format!("{p}.hostKey"), "not an OpenSSH public host key").help(
                    "copy /etc/ssh/ssh_host_ed25519_key.pub from the machine (check its fingerprint out of band); hacluster pins it",
                );
            }
            if cfg.machines[..i].iter().any(|o| o.node == m.node) {
                out.error(format!("{p}.node"), format!("`{}` is listed twice", m.node)).help("list each node once");
            }
        }
        for n in &cluster.nodes {
            let short = cluster.short_name(n);
            if !cfg.machines.iter().any(|m| m.node == short) {
                out.error(format!("{base}.machines"), format!("node `{short}` has no machine"))
                    .help(format!("add `- {{node: {short}, address: ..., hostKey: ...}}`"));
            }
        }
        if matches!(cluster.endpoint, EndpointKind::CloudLoadBalancer) && cfg.endpoint.is_none() {
            out.error(format!("{base}.endpoint"), "the existing API endpoint is not given")
                .help("set `endpoint: HOST:6443` to your load balancer or VIP in front of the control planes");
        }
        if let Some(j) = &cfg.jump
            && !looks_like_host_key(&j.host_key)
        {
            out.error(format!("{base}.jump.hostKey"), "not an OpenSSH public host key")
                .help("copy the jump host's host key");
        }
    }

    fn plan(cluster: &Cluster, _cfg: &Config, prior: State) -> Result<Vec<Change>, Error> {
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

    fn apply(cluster: &Cluster, cfg: &Config, mut state: State) -> Result<Provisioned<State>, Error> {
        let jump = cfg.jump.as_ref().map(|j| JumpHost {
            address: j.address.clone(),
            port: j.port,
            user: j.user.clone(),
            host_public_key: j.host_key.clone(),
        });
        let total = cluster.nodes.len() as u64;
        let mut machines = Vec::new();
        for (i, n) in cluster.nodes.iter().enumerate() {
            let short = cluster.short_name(n);
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
                checkpoint(&state)?;
            }
            progress::report("adopt machines", i as u64 + 1, total);
        }
        state.adopted.retain(|a| cluster.nodes.iter().any(|n| &n.name == a));
        log::info("adopted existing machines", &[("count", &machines.len())]);
        let endpoint = endpoint(cluster, cfg, &machines)?;
        Ok(Provisioned { machines, endpoint, state })
    }

    fn destroy(_cluster: &Cluster, _cfg: &Config, state: State) -> Result<(), Error> {
        log::info("released machines; they keep running and are not changed", &[("count", &state.adopted.len())]);
        Ok(())
    }
}

register_backend!(Static);

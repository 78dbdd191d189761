//! Node identities and the shared cloud-init part.
//!
//! The core generates each node's SSH host key, hands the pair to the backend inside the
//! node's user-data, and pins the public half: no trust on first use. The key pairs live in
//! the state file (mode 0600) so that a re-run renders identical user-data.

use std::path::PathBuf;

use serde_json::json;
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::model::{ClusterSpec, Node};
use crate::state::{ClusterState, NodeIdentity};
pub use hacluster_config::paths::expand_home;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot generate an SSH host key: {0}")]
    Keygen(String),
    #[error(
        "no SSH public key for logging in to the nodes: looked for {looked}; create one with `ssh-keygen -t ed25519` or set cluster.nodeTemplate.ssh.privateKeyPath"
    )]
    NoPublicKey { looked: String },
    #[error("cannot read SSH public key {path}: {reason}")]
    BadPublicKey { path: PathBuf, reason: String },
}

pub fn generate_host_key() -> Result<NodeIdentity, IdentityError> {
    let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(|e| IdentityError::Keygen(e.to_string()))?;
    let private = key.to_openssh(LineEnding::LF).map_err(|e| IdentityError::Keygen(e.to_string()))?;
    let public = key.public_key().to_openssh().map_err(|e| IdentityError::Keygen(e.to_string()))?;
    Ok(NodeIdentity { host_private_key: private.to_string(), host_public_key: public })
}

/// Makes sure every node of the cluster has a host key in `state`; returns whether any was
/// added (the caller then saves the state before handing keys to a backend).
pub fn ensure_identities(spec: &ClusterSpec, state: &mut ClusterState) -> Result<bool, IdentityError> {
    let mut added = false;
    for n in spec.nodes() {
        if !state.identities.contains_key(n.name.as_str()) {
            state.identities.insert(n.name.to_string(), generate_host_key()?);
            added = true;
        }
    }
    Ok(added)
}

/// The operator's private key for logging in to nodes: the config's, else ~/.ssh/id_ed25519,
/// else ~/.ssh/id_rsa.
pub fn private_key_candidates(spec: &ClusterSpec) -> Vec<PathBuf> {
    match &spec.node_template.private_key_path {
        Some(p) => vec![expand_home(p)],
        None => vec![expand_home("~/.ssh/id_ed25519"), expand_home("~/.ssh/id_rsa")],
    }
}

/// The public key installed on the nodes for the login user: `<private key>.pub`.
pub fn operator_public_key(spec: &ClusterSpec) -> Result<(PathBuf, String), IdentityError> {
    let candidates = private_key_candidates(spec);
    for c in &candidates {
        let pub_path = PathBuf::from(format!("{}.pub", c.display()));
        if let Ok(text) = std::fs::read_to_string(&pub_path) {
            let key = text.trim().to_string();
            ssh_key::PublicKey::from_openssh(&key)
                .map_err(|e| IdentityError::BadPublicKey { path: pub_path.clone(), reason: e.to_string() })?;
            return Ok((c.clone(), key));
        }
    }
    Err(IdentityError::NoPublicKey {
        looked: candidates.iter().map(|c| format!("{}.pub", c.display())).collect::<Vec<_>>().join(", "),
    })
}

/// The `#cloud-config` every node gets: hostname, the login user with the operator's key and
/// passwordless sudo, and the pre-generated host key (other host keys are not generated, so
/// the pinned one is the only one the node presents). Rendered as JSON, which YAML parsers
/// (cloud-init's included) read as YAML, so no value can break the document's structure.
pub fn user_data(spec: &ClusterSpec, node: &Node, id: &NodeIdentity, authorized_key: &str) -> String {
    let doc = json!({
        "hostname": node.name.as_str(),
        "fqdn": node.name.as_str(),
        "manage_etc_hosts": true,
        "locale": "C.UTF-8",
        "users": [{
            "name": spec.node_template.user,
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "shell": "/bin/bash",
            "lock_passwd": true,
            "ssh_authorized_keys": [authorized_key],
        }],
        "disable_root": true,
        "ssh_pwauth": false,
        "ssh_deletekeys": true,
        // Only the type we bring: cloud-init skips generating a key that exists, and an empty
        // list fails the cloud-config schema of older cloud-init (Debian 12's 22.4).
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {
            "ed25519_private": id.host_private_key,
            "ed25519_public": id.host_public_key,
        },
        "package_upgrade": spec.node_template.update_on_boot,
    });
    format!("#cloud-config\n{}\n", serde_json::to_string_pretty(&doc).expect("JSON serializes"))
}

/// OpenSSH `known_hosts` lines pinning each machine's key, for users' own `ssh`.
pub fn known_hosts_line(address: &str, port: u16, public_key: &str) -> String {
    let host = if port == 22 { address.to_string() } else { format!("[{address}]:{port}") };
    format!("{host} {}", public_key.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

pub fn is_public_key(s: &str) -> bool {
    ssh_key::PublicKey::from_openssh(s.trim()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_ed25519_pairs() {
        let a = generate_host_key().unwrap();
        let b = generate_host_key().unwrap();
        assert_ne!(a.host_public_key, b.host_public_key);
        assert!(a.host_public_key.starts_with("ssh-ed25519 "));
        assert!(a.host_private_key.contains("BEGIN OPENSSH PRIVATE KEY"));
        let parsed = PrivateKey::from_openssh(&a.host_private_key).unwrap();
        assert_eq!(parsed.public_key().to_openssh().unwrap(), a.host_public_key);
        assert!(is_public_key(&a.host_public_key));
    }

    #[test]
    fn known_hosts_format() {
        assert_eq!(known_hosts_line("10.0.0.1", 22, "ssh-ed25519 AAAA comment"), "10.0.0.1 ssh-ed25519 AAAA");
        assert_eq!(known_hosts_line("10.0.0.1", 2222, "ssh-ed25519 AAAA"), "[10.0.0.1]:2222 ssh-ed25519 AAAA");
    }
}

//! Infrastructure as a backend reports it: machines reachable over SSH and the API endpoint.
//! The bootstrap reads only this (and the model), never backend specifics.

use serde::{Deserialize, Serialize};

use crate::model::NodeRole;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JumpHost {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub host_public_key: String,
}

/// How to reach a machine; the host key is verified on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SshTarget {
    pub address: String,
    pub port: u16,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<JumpHost>,
    pub host_public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// The node name (`<cluster>-<role>-<id>`).
    pub name: String,
    pub role: NodeRole,
    pub private_address: String,
    pub ssh: SshTarget,
    pub provider_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiEndpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ApiEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Infrastructure {
    pub machines: Vec<Machine>,
    pub endpoint: ApiEndpoint,
}

impl Infrastructure {
    /// The machine the backend reported for node `name`.
    pub fn machine(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name == name)
    }
}

/// A planned change to infrastructure, as a backend reports it for dry runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub action: ChangeAction,
    pub kind: String,
    pub name: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Create,
    Update,
    Delete,
    Keep,
}

impl std::fmt::Display for ChangeAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
            ChangeAction::Keep => "keep",
        })
    }
}

/// A file a backend puts on a machine (the HAProxy config of a load balancer, a cloud-init
/// seed), as it reports it for `hacluster plan --out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedFile {
    /// The node whose machine gets it.
    pub node: String,
    /// Its file name in that node's directory of the plan output.
    pub name: String,
    /// Where it goes on the machine and how, for the operator.
    pub destination: String,
    pub content: String,
}

//! The AWS backend's settings as validated (`backends.aws` with its defaults applied): what the
//! core needs of them (zones for placement, the endpoint for grants) and hands the AWS plugin.
//! The plugin reads the same JSON into its own `Config` (`plugins/aws/src/config.rs`): two
//! types on purpose, one per side of the sandbox (the component does not link the core's
//! config crate); the JSON between them is the contract, and the moto tests fail on a field
//! one side renames.

use ipnet::Ipv4Net;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NlbScheme {
    InternetFacing,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsSpec {
    pub region: String,
    pub availability_zones: Vec<String>,
    pub control_plane_type: String,
    pub worker_type: String,
    pub ami: Option<String>,
    pub root_volume_gib: u32,
    pub vpc_cidr: Ipv4Net,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub private_subnets: bool,
    pub nlb_scheme: NlbScheme,
    pub admin_cidrs: Vec<Ipv4Net>,
    pub node_port_cidrs: Vec<Ipv4Net>,
    pub endpoint: Option<String>,
}

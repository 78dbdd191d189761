//! `backends.aws` as the core hands it over: already validated, defaults applied. The core's
//! side of this JSON is `AwsSpec` (`crates/hacluster-config/src/model/aws.rs`).

use serde::Deserialize;

use crate::{Cluster, Diagnostics, Error};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub region: String,
    pub availability_zones: Vec<String>,
    pub control_plane_type: String,
    pub worker_type: String,
    pub ami: Option<String>,
    pub root_volume_gib: u32,
    pub vpc_cidr: String,
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    pub private_subnets: bool,
    pub nlb_scheme: String,
    #[serde(default)]
    pub admin_cidrs: Vec<String>,
    #[serde(default)]
    pub node_port_cidrs: Vec<String>,
    pub endpoint: Option<String>,
    /// Name prefix of this cluster's resources.
    #[serde(skip)]
    pub cluster: String,
}

impl Config {
    /// The section as the core validated it, for this cluster.
    pub fn for_cluster(mut self, cluster: &Cluster) -> Result<Config, Error> {
        if self.availability_zones.is_empty() {
            return Err(Error::InvalidInput("backends.aws.availabilityZones is empty".into()));
        }
        self.cluster = cluster.name.clone();
        Ok(self)
    }

    /// ELB names are at most 32 characters and unique per account and region.
    pub fn elb_name(&self, suffix: &str) -> String {
        let max = 32 - suffix.len() - 1;
        let prefix: String = self.cluster.chars().take(max).collect();
        format!("{}-{suffix}", prefix.trim_end_matches('-'))
    }

    /// The subnet CIDR of zone `i`: the VPC split into 16 equal parts (a /16 gives /20s).
    pub fn subnet_cidr(&self, i: usize) -> Result<String, Error> {
        let (addr, len) = self.vpc_cidr.split_once('/').ok_or_else(|| Error::InvalidInput("bad vpc cidr".into()))?;
        let len: u32 = len.parse().map_err(|_| Error::InvalidInput("bad vpc cidr".into()))?;
        let base: u32 = addr
            .split('.')
            .map(|o| o.parse::<u8>())
            .collect::<Result<Vec<u8>, _>>()
            .ok()
            .filter(|o| o.len() == 4)
            .map(|o| u32::from_be_bytes([o[0], o[1], o[2], o[3]]))
            .ok_or_else(|| Error::InvalidInput("bad vpc cidr".into()))?;
        let sub_len = len + 4;
        if i >= 16 || sub_len > 28 {
            return Err(Error::InvalidInput(format!("{} cannot hold a subnet for zone #{}", self.vpc_cidr, i + 1)));
        }
        let step = 1u32 << (32 - sub_len);
        let a = (base + step * i as u32).to_be_bytes();
        Ok(format!("{}.{}.{}.{}/{sub_len}", a[0], a[1], a[2], a[3]))
    }
}

pub fn validate(cfg: &Config, out: &mut Diagnostics) {
    if cfg.ami.is_none() {
        out.error("backends.aws.ami", "no AMI given for the nodes")
            .help("set an Ubuntu or Debian AMI with cloud-init for your region");
    }
    if cfg.availability_zones.len() > 16 {
        out.error("backends.aws.availabilityZones", "more than 16 zones")
            .help("list at most 16 zones; the VPC is split into 16 subnets");
    }
}

//! `backends.aws`.

use super::Ctx;
use super::kubernetes::overlaps;
use super::network::parse_cidr;
use super::urls::{credentialed_endpoint, shown};
use crate::config::diagnostic::{FieldPath, did_you_mean};
use crate::config::raw::{self, RawConfig};
use crate::model::{AwsSpec, BackendProfile, KubernetesSpec, NlbScheme};

pub const DEFAULT_VPC_CIDR: &str = "10.0.0.0/16";
pub const DEFAULT_CONTROL_PLANE_TYPE: &str = "t3.medium";
pub const DEFAULT_WORKER_TYPE: &str = "t3.large";
pub const DEFAULT_ROOT_VOLUME_GIB: u32 = 30;

fn valid_region(r: &str) -> bool {
    // e.g. eu-central-1, us-gov-west-1, ap-southeast-3
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().take(parts.len() - 1).all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

fn valid_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| {
        (8..=17).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

pub fn check(
    cx: &mut Ctx,
    raw: &RawConfig,
    backend: &BackendProfile,
    kube: Option<&KubernetesSpec>,
) -> Option<AwsSpec> {
    let a = raw.backends.aws.as_ref()?;
    let for_aws = backend.name == "aws";
    let base = FieldPath::root().key("backends").key("aws");
    let errors_before = cx.diags.iter().filter(|d| d.is_error()).count();

    if !valid_region(&a.region) {
        cx.error(
            "aws-region",
            base.key("region"),
            format!("`{}` is not an AWS region name", a.region),
            "use a region code such as `eu-central-1` or `us-east-1`",
        );
    }
    if a.availability_zones.is_empty() && for_aws {
        cx.error(
            "aws-zones-missing",
            base.key("availabilityZones"),
            "no availability zones given",
            format!(
                "list the zones to spread nodes over, e.g. `[{0}a, {0}b, {0}c]`; three zones let the control plane survive losing one",
                a.region
            ),
        );
    }
    let mut seen = Vec::new();
    for (i, z) in a.availability_zones.iter().enumerate() {
        let p = base.key("availabilityZones").index(i);
        let suffix_ok = z.strip_prefix(a.region.as_str()).is_some_and(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        if !suffix_ok {
            cx.error(
                "aws-zone",
                p.clone(),
                format!("`{z}` is not a zone of region {}", a.region),
                format!("zones of {0} are named `{0}a`, `{0}b`, …", a.region),
            );
        }
        if seen.contains(&z) {
            cx.error(
                "aws-zone-duplicate",
                p,
                format!("zone `{z}` is listed twice"),
                "list each zone once; control planes are spread round-robin over the list",
            );
        }
        seen.push(z);
    }
    let cp_type = a.instance_types.control_plane.clone().unwrap_or_else(|| DEFAULT_CONTROL_PLANE_TYPE.into());
    let worker_type = a.instance_types.worker.clone().unwrap_or_else(|| DEFAULT_WORKER_TYPE.into());
    for (field, t) in [("controlPlane", &cp_type), ("worker", &worker_type)] {
        let ok = t.split_once('.').is_some_and(|(f, s)| {
            !f.is_empty() && !s.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        });
        if !ok {
            cx.error(
                "aws-instance-type",
                base.key("instanceTypes").key(field),
                format!("`{t}` is not an EC2 instance type"),
                "use a type such as `t3.medium` (control planes need at least 2 vCPU and 2 GiB)",
            );
        }
    }
    match &a.ami {
        Some(ami) if !valid_id(ami, "ami-") => cx.error(
            "aws-ami",
            base.key("ami"),
            format!("`{ami}` is not an AMI id"),
            "AMI ids look like `ami-0123456789abcdef0`",
        ),
        None if for_aws => cx.error(
            "aws-ami-missing",
            base.key("ami"),
            "no AMI given for the nodes",
            "set `ami:` to an Ubuntu 22.04/24.04 or Debian 12 image with cloud-init in your region",
        ),
        _ => {}
    }

    let vpc_path = base.key("vpc");
    if a.vpc.id.is_some() && a.vpc.cidr.is_some() {
        cx.error(
            "aws-vpc-choice",
            vpc_path.key("cidr"),
            "`vpc.cidr` and `vpc.id` are both set",
            "set `cidr` to create a new VPC, or `id` (with `subnetIds`) to use an existing one — not both",
        );
    }
    if let Some(id) = &a.vpc.id {
        if !valid_id(id, "vpc-") {
            cx.error(
                "aws-vpc-id",
                vpc_path.key("id"),
                format!("`{id}` is not a VPC id"),
                "VPC ids look like `vpc-0123456789abcdef0`",
            );
        }
        if a.vpc.subnet_ids.len() != a.availability_zones.len() {
            cx.error(
                "aws-subnets",
                vpc_path.key("subnetIds"),
                format!(
                    "an existing VPC needs one subnet per availability zone: {} zones, {} subnets",
                    a.availability_zones.len(),
                    a.vpc.subnet_ids.len()
                ),
                "list the subnet of each zone, in the order of availabilityZones",
            );
        }
    } else if !a.vpc.subnet_ids.is_empty() {
        cx.error(
            "aws-subnets",
            vpc_path.key("subnetIds"),
            "`subnetIds` only apply to an existing VPC (`vpc.id`)",
            "remove them, or set `vpc.id`",
        );
    }
    for (i, s) in a.vpc.subnet_ids.iter().enumerate() {
        if !valid_id(s, "subnet-") {
            cx.error(
                "aws-subnet-id",
                vpc_path.key("subnetIds").index(i),
                format!("`{s}` is not a subnet id"),
                "subnet ids look like `subnet-0123456789abcdef0`",
            );
        }
    }
    let vpc_cidr = parse_cidr(cx, vpc_path.key("cidr"), a.vpc.cidr.as_deref().unwrap_or(DEFAULT_VPC_CIDR));
    if let Some(c) = vpc_cidr {
        if !(16..=24).contains(&c.prefix_len()) {
            cx.error(
                "aws-vpc-size",
                vpc_path.key("cidr"),
                format!("a VPC of {c} is outside what hacluster can split into zone subnets"),
                "use a prefix from /16 to /24 (AWS allows /16–/28; each zone gets an equal share)",
            );
        }
        if let Some(k) = kube {
            for (field, sub) in [("podSubnet", k.pod_subnet), ("serviceSubnet", k.service_subnet)] {
                if overlaps(c, sub) {
                    cx.error(
                        "subnet-overlap",
                        FieldPath::root().key("kubernetes").key(field),
                        format!("{sub} overlaps the VPC {c}"),
                        "choose cluster subnets outside the VPC range",
                    );
                }
            }
        }
    }
    let mut admin = Vec::new();
    for (i, c) in a.admin_cidrs.iter().enumerate() {
        let p = base.key("adminCidrs").index(i);
        if let Some(net) = parse_cidr(cx, p.clone(), c) {
            if net.prefix_len() == 0 {
                cx.warn(
                    "aws-open-admin",
                    p,
                    "0.0.0.0/0 opens SSH and the Kubernetes API to the whole internet",
                    "list only the networks your operators and CI connect from",
                );
            }
            admin.push(net);
        }
    }
    if a.admin_cidrs.is_empty() && for_aws {
        cx.warn(
            "aws-no-admin",
            base.key("adminCidrs"),
            "no adminCidrs: SSH (22) and the API (6443) accept nothing from outside the VPC",
            "`hacluster up` needs SSH to the nodes; add the CIDR you run it from",
        );
    }
    let mut node_ports = Vec::new();
    for (i, c) in a.node_port_cidrs.iter().enumerate() {
        if let Some(net) = parse_cidr(cx, base.key("nodePortCidrs").index(i), c) {
            node_ports.push(net);
        }
    }
    if let Some(e) = &a.endpoint
        && let Err(why) = credentialed_endpoint(e)
    {
        cx.error(
            "aws-endpoint",
            base.key("endpoint"),
            format!("`{}` is not an https URL: {why}", shown(e)),
            "AWS requests carry signed credentials (and user-data with the nodes' host keys): write `https://host[:port][/path]`; plain http is allowed only to a local test server (http://127.0.0.1:PORT, http://[::1]:PORT or http://localhost:PORT)",
        );
    }
    let errors_after = cx.diags.iter().filter(|d| d.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    let vpc_cidr = vpc_cidr?;
    Some(AwsSpec {
        region: a.region.clone(),
        availability_zones: a.availability_zones.clone(),
        control_plane_type: cp_type,
        worker_type,
        ami: a.ami.clone(),
        root_volume_gib: a.root_volume_size.map(|v| v as u32).unwrap_or(DEFAULT_ROOT_VOLUME_GIB),
        vpc_cidr,
        vpc_id: a.vpc.id.clone(),
        subnet_ids: a.vpc.subnet_ids.clone(),
        private_subnets: a.private_subnets.unwrap_or(false),
        nlb_scheme: match a.nlb_scheme.unwrap_or(raw::NlbScheme::InternetFacing) {
            raw::NlbScheme::InternetFacing => NlbScheme::InternetFacing,
            raw::NlbScheme::Internal => NlbScheme::Internal,
        },
        admin_cidrs: admin,
        node_port_cidrs: if node_ports.is_empty() { vec![vpc_cidr] } else { node_ports },
        endpoint: a.endpoint.clone(),
    })
}

/// The aws backend chosen (by `--backend aws`) needs its section; a misspelled one is named.
pub fn check_section_present(cx: &mut Ctx, raw: &RawConfig, backend: &BackendProfile) {
    if backend.name == "aws" && raw.backends.aws.is_none() {
        let hint = did_you_mean("aws", raw.backends.other.keys().map(String::as_str));
        cx.error(
            "aws-section-missing",
            FieldPath::root().key("backends").key("aws"),
            "the aws backend needs a `backends.aws` section",
            match hint {
                Some(h) => {
                    format!("did you mean `aws` instead of `{h}`? the section holds region, availabilityZones and ami")
                }
                None => {
                    "add `backends: {aws: {region: ..., availabilityZones: [...], ami: ...}}` (see examples/aws.yaml)"
                        .into()
                }
            },
        );
    }
}

//! Security-group rules from the cluster's port matrix: each rule names its source as another
//! group (control planes, workers, the NLB's) or the configured CIDRs — never 0.0.0.0/0
//! unless the user configured it.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};

use crate::config::Config;
use crate::{Cluster, NodeRole, Peer, Protocol};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Group(String),
    Cidr(String),
}

/// One ingress rule in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub protocol: String,
    pub from: i32,
    pub to: i32,
    pub source: Source,
    pub purpose: String,
}

impl Rule {
    fn key(&self) -> (String, i32, i32, Source) {
        (self.protocol.clone(), self.from, self.to, self.source.clone())
    }

    pub fn to_permission(&self) -> IpPermission {
        // Protocols without ports (IP-in-IP, VRRP) carry -1/-1, as the EC2 API documents.
        let p = IpPermission::builder().ip_protocol(&self.protocol).from_port(self.from).to_port(self.to);
        match &self.source {
            Source::Group(g) => {
                p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).description(&self.purpose).build())
            }
            Source::Cidr(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).description(&self.purpose).build()),
        }
        .build()
    }
}

fn protocol(p: Protocol) -> (&'static str, bool) {
    match p {
        Protocol::Tcp => ("tcp", true),
        Protocol::Udp => ("udp", true),
        Protocol::IpInIp => ("4", false),
        Protocol::Vrrp => ("112", false),
    }
}

/// The rules a node group must have: `role` is whose group it is.
pub fn desired(
    cluster: &Cluster,
    cfg: &Config,
    role: NodeRole,
    cp_sg: &str,
    worker_sg: &str,
    lb_sg: &str,
) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for r in cluster.ports.iter().filter(|r| r.on == role) {
        let sources: Vec<Source> = match r.source {
            Peer::ControlPlanes => vec![Source::Group(cp_sg.into())],
            Peer::Workers => vec![Source::Group(worker_sg.into())],
            Peer::AllNodes => vec![Source::Group(cp_sg.into()), Source::Group(worker_sg.into())],
            // No load-balancer machines on AWS: the NLB stands in for them.
            Peer::LoadBalancers => vec![],
            // The NLB does not keep client addresses (see `lb_rules`): what it forwards, and
            // its health checks, come from the NLB itself, which has its own group.
            Peer::CloudLoadBalancer => vec![Source::Group(lb_sg.into())],
            Peer::Admins | Peer::ApiClients => cfg.admin_cidrs.iter().cloned().map(Source::Cidr).collect(),
            Peer::NodePortClients => cfg.node_port_cidrs.iter().cloned().map(Source::Cidr).collect(),
        };
        let (proto, ports) = protocol(r.protocol);
        let (from, to) = if ports { (r.from_port as i32, r.to_port as i32) } else { (-1, -1) };
        for source in sources {
            let rule = Rule { protocol: proto.into(), from, to, source, purpose: r.purpose.clone() };
            if !out.iter().any(|x| x.key() == rule.key()) {
                out.push(rule);
            }
        }
    }
    out
}

/// The NLB's group: the API port from the admin networks, from the nodes inside the VPC, and —
/// for an internet-facing NLB, whose name resolves to public addresses even inside the VPC —
/// from each node's public address (`node_public_ips`: node name → address).
///
/// The NLB forwards with its own address (client-address preservation is off): with it on, a
/// control plane that reaches the API through the NLB and is sent to itself gets no answer
/// (kubeadm does exactly that during init and joins), and traffic from nodes' public addresses
/// would match no rule of the node groups. So client filtering happens here.
pub fn lb_rules(
    cfg: &Config,
    api_port: u16,
    cp_sg: &str,
    worker_sg: &str,
    node_public_ips: &[(String, String)],
) -> Vec<Rule> {
    let port = api_port as i32;
    let rule =
        |source, purpose: &str| Rule { protocol: "tcp".into(), from: port, to: port, source, purpose: purpose.into() };
    let mut out: Vec<Rule> = cfg.admin_cidrs.iter().map(|c| rule(Source::Cidr(c.clone()), "API clients")).collect();
    out.push(rule(Source::Group(cp_sg.into()), "control planes, inside the VPC"));
    out.push(rule(Source::Group(worker_sg.into()), "workers, inside the VPC"));
    if cfg.nlb_scheme != "internal" {
        for (node, ip) in node_public_ips {
            out.push(rule(Source::Cidr(format!("{ip}/32")), &format!("{node}, by its public address")));
        }
    }
    // An admin CIDR may be a node's /32: one rule, not a duplicate AWS refuses.
    let mut seen = BTreeSet::new();
    out.retain(|r| seen.insert(r.key()));
    out
}

/// Existing permissions, split into comparable rules.
pub fn existing(perms: &[IpPermission]) -> BTreeSet<(String, i32, i32, Source)> {
    let mut out = BTreeSet::new();
    for p in perms {
        let proto = p.ip_protocol().unwrap_or("-1").to_string();
        let (from, to) = match (proto.as_str(), p.from_port(), p.to_port()) {
            ("tcp" | "udp", Some(f), Some(t)) => (f, t),
            _ => (-1, -1),
        };
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.insert((proto.clone(), from, to, Source::Group(id.into())));
            }
        }
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.insert((proto.clone(), from, to, Source::Cidr(c.into())));
            }
        }
    }
    out
}

/// Desired rules not present yet.
pub fn missing(desired: &[Rule], perms: &[IpPermission]) -> Vec<Rule> {
    let have = existing(perms);
    desired.iter().filter(|r| !have.contains(&r.key())).cloned().collect()
}

//! Semantic validation: the structurally sound config → the typed `ClusterSpec`, or every
//! reason it cannot be one. Each rule lives with the part of the config it reads; each says
//! what is wrong, why it matters, and how to fix it. All rules run, so one run shows every
//! problem.

mod aws;
mod backends;
mod hosts;
mod kubernetes;
mod network;
mod nodes;
pub mod urls;

use std::collections::BTreeMap;

use super::diagnostic::{Diagnostic, FieldPath, key_span_of, span_of};
use super::raw::RawConfig;
use super::yaml::Node as YamlNode;
use crate::model::{API_PORT, BackendProfile, ClusterName, ClusterSpec, Endpoint, Quorum};

/// Inputs to validation besides the config itself.
#[derive(Debug, Clone)]
pub struct Options {
    /// The backend the config will be applied with; `None` infers it from the config.
    pub backend: Option<BackendProfile>,
    /// Today's date (`YYYY-MM-DD`), for Kubernetes end-of-life checks.
    pub today: String,
}

impl Default for Options {
    fn default() -> Self {
        Options { backend: None, today: crate::model::version::today_utc() }
    }
}

pub(crate) struct Ctx<'a> {
    root: &'a YamlNode,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub fn error(&mut self, code: &'static str, path: FieldPath, msg: impl Into<String>, help: impl Into<String>) {
        let span = span_of(self.root, &path);
        self.diags.push(Diagnostic::error(code, path, msg).help(help).at(span));
    }

    pub fn warn(&mut self, code: &'static str, path: FieldPath, msg: impl Into<String>, help: impl Into<String>) {
        let span = span_of(self.root, &path);
        self.diags.push(Diagnostic::warning(code, path, msg).help(help).at(span));
    }

    /// A warning pointing at the field's key (for fields that are accepted but not used).
    pub fn warn_key(&mut self, code: &'static str, path: FieldPath, msg: impl Into<String>, help: impl Into<String>) {
        let span = key_span_of(self.root, &path);
        self.diags.push(Diagnostic::warning(code, path, msg).help(help).at(span));
    }

    /// An error pointing at the field's key (for a bad name rather than a bad value).
    pub fn error_key(&mut self, code: &'static str, path: FieldPath, msg: impl Into<String>, help: impl Into<String>) {
        let span = key_span_of(self.root, &path);
        self.diags.push(Diagnostic::error(code, path, msg).help(help).at(span));
    }

    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }
}

/// The backend a config is checked for: the one named, else `aws` for a config with only an
/// AWS section and no hosts, else the single third-party section, else libvirt (Kubitect's
/// default).
pub fn infer_backend(raw: &RawConfig) -> BackendProfile {
    if raw.hosts.is_empty() {
        if raw.backends.aws.is_some() && raw.backends.other.is_empty() {
            return BackendProfile::aws();
        }
        if raw.backends.aws.is_none() && raw.backends.other.len() == 1 {
            let name = raw.backends.other.keys().next().expect("one key");
            return BackendProfile::builtin(name);
        }
    }
    BackendProfile::libvirt()
}

pub fn validate(raw: &RawConfig, root: &YamlNode, opts: &Options) -> (Option<ClusterSpec>, Vec<Diagnostic>) {
    let mut cx = Ctx { root, diags: Vec::new() };
    let backend = opts.backend.clone().unwrap_or_else(|| infer_backend(raw));
    let cluster_path = FieldPath::root().key("cluster");

    let name = ClusterName::parse(&raw.cluster.name);
    if name.is_none() {
        cx.error(
            "cluster-name",
            cluster_path.key("name"),
            format!("`{}` cannot be a cluster name", raw.cluster.name),
            "use a DNS label of at most 40 characters: lowercase letters, digits and `-`, starting with a letter (it prefixes every VM, volume and cloud resource)",
        );
    }

    let hosts = hosts::check(&mut cx, raw, &backend);
    let network = network::check(&mut cx, raw, &backend);
    let kube = kubernetes::check(&mut cx, raw, opts, network.as_ref());
    let aws = aws::check(&mut cx, raw, &backend, kube.as_ref());
    let nodes = nodes::check(&mut cx, raw, &backend, &hosts, network.as_ref(), name.as_ref(), aws.as_ref());
    backends::check(&mut cx, raw);

    if !backend.uses_hosts && !raw.hosts.is_empty() {
        cx.warn_key(
            "hosts-unused",
            FieldPath::root().key("hosts"),
            format!("`hosts` are not used by the {} backend", backend.name),
            "remove them, or choose a backend that places VMs on hosts (--backend libvirt)",
        );
    }
    aws::check_section_present(&mut cx, raw, &backend);

    if cx.has_errors() {
        return (None, cx.diags);
    }
    let (Some(name), Some(kubernetes), Some(nodes)) = (name, kube, nodes) else {
        // Every `None` above pushed an error.
        unreachable!("validation produced no model but reported no error");
    };
    let quorum = Quorum::new(nodes.control_planes.len() as u32).expect("at least one control plane was checked");
    let endpoint = if backend.cloud_lb {
        Endpoint::CloudLoadBalancer { dns_name: None, port: API_PORT }
    } else if let Some((address, virtual_router_id)) = nodes.vip {
        Endpoint::Vip { address, port: API_PORT, virtual_router_id }
    } else if let Some(lb) = nodes.load_balancers.first() {
        Endpoint::LoadBalancer { node: lb.name.clone(), address: lb.address, port: API_PORT }
    } else {
        let cp = &nodes.control_planes[0];
        Endpoint::ControlPlane { node: cp.name.clone(), address: cp.address, port: API_PORT }
    };
    let mut backend_sections: BTreeMap<String, serde_json::Value> = raw.backends.other.clone();
    // The aws backend gets its section resolved (defaults applied), so that the defaults
    // live in one place.
    if let Some(a) = &aws {
        backend_sections.insert("aws".into(), serde_json::to_value(a).expect("model serializes"));
    }
    let spec = ClusterSpec {
        name,
        backend,
        hosts,
        network,
        node_template: nodes.template,
        control_planes: nodes.control_planes,
        workers: nodes.workers,
        load_balancers: nodes.load_balancers,
        forward_ports: nodes.forward_ports,
        endpoint,
        quorum,
        kubernetes,
        aws,
        backend_sections,
    };
    nodes::placement_warnings(&mut cx, &spec);
    (Some(spec), cx.diags)
}

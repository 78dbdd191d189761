//! `kubernetes`: version, CNI, subnets.

use ipnet::Ipv4Net;

use super::network::parse_cidr;
use super::{Ctx, Options};
use crate::config::diagnostic::FieldPath;
use crate::config::raw::{self, RawConfig};
use crate::model::version::{self, KubeVersion, Support};
use crate::model::{KubernetesSpec, NetworkPlugin, NetworkSpec};

pub const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";
pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";

pub fn check(cx: &mut Ctx, raw: &RawConfig, opts: &Options, network: Option<&NetworkSpec>) -> Option<KubernetesSpec> {
    let k = &raw.kubernetes;
    let base = FieldPath::root().key("kubernetes");

    for (field, why) in [
        ("kubespray", "hacluster runs kubeadm itself and does not use Kubespray"),
        ("manager", "hacluster always bootstraps with kubeadm"),
        ("other", "these Kubitect options have no hacluster equivalent"),
    ] {
        let present = match field {
            "kubespray" => k.kubespray.is_some(),
            "manager" => k.manager.is_some(),
            _ => k.other.is_some(),
        };
        if present {
            cx.warn_key(
                "ignored-field",
                base.key(field),
                format!("`kubernetes.{field}` is accepted for Kubitect compatibility and ignored: {why}"),
                "you can remove it",
            );
        }
    }

    let version = match &k.version {
        None => Some(version::DEFAULT_VERSION),
        Some(text) => match text.parse::<KubeVersion>() {
            Ok(v) => check_support(cx, base.key("version"), v, &opts.today, k.package_mirror.is_some()),
            Err(e) => {
                cx.error(
                    "k8s-version",
                    base.key("version"),
                    e.to_string(),
                    format!("write a released version such as `{}`", version::DEFAULT_VERSION),
                );
                None
            }
        },
    };

    if let Some(m) = &k.package_mirror
        && (!(m.starts_with("https://") || m.starts_with("http://")) || m.len() < 10)
    {
        cx.error(
            "mirror-url",
            base.key("packageMirror"),
            format!("`{m}` is not an http(s) URL"),
            "give the base URL of the mirror, e.g. `https://mirror.example.com/kubernetes`",
        );
    }

    let pod = parse_cidr(cx, base.key("podSubnet"), k.pod_subnet.as_deref().unwrap_or(DEFAULT_POD_SUBNET));
    let svc = parse_cidr(cx, base.key("serviceSubnet"), k.service_subnet.as_deref().unwrap_or(DEFAULT_SERVICE_SUBNET));
    if let (Some(pod), Some(svc)) = (pod, svc) {
        if overlaps(pod, svc) {
            cx.error(
                "subnet-overlap",
                base.key("serviceSubnet"),
                format!("the service subnet {svc} overlaps the pod subnet {pod}"),
                "pods and services need separate ranges; the defaults are 10.244.0.0/16 and 10.96.0.0/12",
            );
        }
        if let Some(net) = network {
            for (field, sub) in [("podSubnet", pod), ("serviceSubnet", svc)] {
                if overlaps(sub, net.cidr) {
                    cx.error(
                        "subnet-overlap",
                        base.key(field),
                        format!("{sub} overlaps the node network {}", net.cidr),
                        format!(
                            "nodes would route their own traffic into the cluster network; choose a {field} outside {}",
                            net.cidr
                        ),
                    );
                }
            }
        }
        if pod.prefix_len() > 24 {
            cx.error(
                "pod-subnet-small",
                base.key("podSubnet"),
                format!("{pod} is too small: each node takes a /24 from the pod subnet"),
                "use a /16 (the default 10.244.0.0/16)",
            );
        }
    }

    let network_plugin = match k.network_plugin.unwrap_or(raw::NetworkPlugin::Calico) {
        raw::NetworkPlugin::Calico => NetworkPlugin::Calico,
        raw::NetworkPlugin::Cilium => NetworkPlugin::Cilium,
        raw::NetworkPlugin::Flannel => NetworkPlugin::Flannel,
    };
    Some(KubernetesSpec {
        version: version?,
        network_plugin,
        dns_mode: "coredns".into(),
        pod_subnet: pod?,
        service_subnet: svc?,
        package_mirror: k.package_mirror.clone(),
    })
}

pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_support(cx: &mut Ctx, path: FieldPath, v: KubeVersion, today: &str, has_mirror: bool) -> Option<KubeVersion> {
    let newest = version::RELEASE_LINES.last().expect("table is not empty").minor;
    match v.support(today) {
        Support::Supported { .. } => Some(v),
        Support::EndOfLife { end_of_life } => {
            let packages = if v.on_pkgs_k8s_io() {
                format!("its packages are still on pkgs.k8s.io, but it gets no security fixes since {end_of_life}")
            } else if has_mirror {
                format!(
                    "pkgs.k8s.io starts at v1.{} and the legacy apt.kubernetes.io repository is gone, so its packages come only from your packageMirror",
                    version::FIRST_PKGS_K8S_IO_MINOR
                )
            } else {
                format!(
                    "pkgs.k8s.io starts at v1.{} and the legacy apt.kubernetes.io repository was shut down in 2024, so `up` will find no packages for it unless you set kubernetes.packageMirror",
                    version::FIRST_PKGS_K8S_IO_MINOR
                )
            };
            cx.warn(
                "k8s-end-of-life",
                path,
                format!("Kubernetes {v} is end-of-life (since {end_of_life}): {packages}"),
                format!(
                    "move to a supported release such as {} (upgrade one minor version at a time on existing clusters)",
                    version::DEFAULT_VERSION
                ),
            );
            Some(v)
        }
        Support::TooNew { newest_minor } => {
            cx.error(
                "k8s-too-new",
                path,
                format!("Kubernetes {v} is newer than this hacluster knows (up to v1.{newest_minor})"),
                format!("use v1.{newest}.x or older, or upgrade hacluster"),
            );
            None
        }
        Support::TooOld { oldest_minor } => {
            cx.error(
                "k8s-too-old",
                path,
                format!("Kubernetes {v} is older than hacluster supports (v1.{oldest_minor} and later)"),
                "kubeadm before v1.22 lacks the v1beta3 config API that hacluster renders; use a newer version",
            );
            None
        }
    }
}

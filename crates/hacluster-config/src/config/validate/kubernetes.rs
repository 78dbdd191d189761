//! `kubernetes`: version, CNI, subnets.

use ipnet::Ipv4Net;

use super::network::parse_cidr;
use super::urls::{http_url, is_dns_label, shown};
use super::{Ctx, Options};
use crate::config::diagnostic::FieldPath;
use crate::config::raw::{self, RawConfig};
use crate::model::version::{self, KubeVersion, Support};
use crate::model::{ContainerdSource, ContainerdSpec, KubernetesSpec, NetworkPlugin, NetworkSpec, RegistryMirror};

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
        && let Err(why) = http_url(m)
    {
        cx.error(
            "mirror-url",
            base.key("packageMirror"),
            format!("`{}` is not an http(s) URL: {why}", shown(m)),
            "give the base URL of the mirror, e.g. `https://mirror.example.com/kubernetes`: letters, digits and `-._~:/` only, without credentials, query or fragment (it is written into apt's sources list on every node)",
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
        raw::NetworkPlugin::KubeRouter => NetworkPlugin::KubeRouter,
    };

    if let Some(r) = &k.image_repository
        && !is_image_repository(r)
    {
        cx.error(
            "image-repository",
            base.key("imageRepository"),
            format!("`{r}` is not a registry and repository path"),
            "write `host[:port][/path]` in lowercase, e.g. `registry.example.com:5000/k8s` (no scheme: kubeadm names images by it)",
        );
    }
    // Each valid mirror with its position in the file: an invalid one before it must not shift
    // where a duplicate is reported.
    let valid = k
        .registry_mirrors
        .iter()
        .enumerate()
        .filter_map(|(i, m)| registry_mirror(cx, base.key("registryMirrors").index(i), m).map(|r| (i, r)))
        .collect::<Vec<_>>();
    for (n, (i, m)) in valid.iter().enumerate() {
        if valid[..n].iter().any(|(_, o)| o.registry == m.registry) {
            cx.error(
                "duplicate-mirror",
                base.key("registryMirrors").index(*i).key("registry"),
                format!("`{}` has a mirror already", m.registry),
                "give each registry one entry",
            );
        }
    }
    let registry_mirrors: Vec<_> = valid.into_iter().map(|(_, m)| m).collect();

    let source = match k.containerd.source {
        Some(raw::ContainerdSource::Docker) => ContainerdSource::Docker,
        Some(raw::ContainerdSource::Distro) => ContainerdSource::Distro,
        Some(raw::ContainerdSource::Mirror) => ContainerdSource::Mirror,
        None if k.package_mirror.is_some() => ContainerdSource::Mirror,
        None => ContainerdSource::Docker,
    };
    if source == ContainerdSource::Mirror && k.package_mirror.is_none() {
        cx.error(
            "containerd-mirror",
            base.key("containerd").key("source"),
            "containerd from the mirror needs `kubernetes.packageMirror`",
            "set packageMirror (containerd.io then comes from <packageMirror>/containerd/deb), or choose `docker` or `distro`",
        );
    }
    if source == ContainerdSource::Distro {
        cx.warn(
            "containerd-distro",
            base.key("containerd").key("source"),
            "the distribution's containerd is old on some releases (1.6 on Debian 12): kubelets from 1.37 warn that its CRI lacks the RuntimeConfig call and will stop supporting it in 1.38",
            "use `docker` (containerd.io 2.x) or a mirror of it, unless your distribution ships containerd 2.x",
        );
    }

    let mut ignore = Vec::new();
    for (i, check) in k.ignore_preflight_errors.iter().enumerate() {
        let path = base.key("ignorePreflightErrors").index(i);
        let ok = !check.is_empty()
            && check.len() <= 128
            && check.as_bytes()[0].is_ascii_alphanumeric()
            && check.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            cx.error(
                "preflight-name",
                path,
                format!("`{check}` is not a kubeadm preflight check name"),
                "use kubeadm's names as its errors print them, e.g. `SystemVerification`, `Swap`, `Port-6443`",
            );
        } else if ignore.iter().any(|c: &String| c.eq_ignore_ascii_case(check)) {
            cx.error("preflight-name", path, format!("`{check}` is listed twice"), "list each check once");
        } else {
            ignore.push(check.clone());
        }
    }
    if ignore.len() > 1 && ignore.iter().any(|c| c.eq_ignore_ascii_case("all")) {
        cx.error(
            "preflight-all",
            base.key("ignorePreflightErrors"),
            "`all` cannot be mixed with named checks (kubeadm refuses the combination)",
            "either `[all]` alone, or the names of the checks to ignore",
        );
    }

    let max_unavailable_workers = k.upgrade.max_unavailable_workers.unwrap_or(1);
    if max_unavailable_workers == 0 {
        cx.error(
            "upgrade-batch",
            base.key("upgrade").key("maxUnavailableWorkers"),
            "`maxUnavailableWorkers: 0` would never upgrade a worker",
            "use 1 (the default: one worker drained at a time) or more",
        );
    }

    component_fields(
        cx,
        &base,
        "kubelet",
        k.kubelet.keys(),
        "KubeletConfiguration",
        "kubelet.config.k8s.io/v1beta1",
        "`failCgroupV1` or `maxPods`",
    );
    component_fields(
        cx,
        &base,
        "kubeProxy",
        k.kube_proxy.keys(),
        "KubeProxyConfiguration",
        "kubeproxy.config.k8s.io/v1alpha1",
        "`conntrack` or `mode`",
    );

    Some(KubernetesSpec {
        version: version?,
        network_plugin,
        dns_mode: "coredns".into(),
        pod_subnet: pod?,
        service_subnet: svc?,
        package_mirror: k.package_mirror.clone(),
        image_repository: k.image_repository.clone(),
        registry_mirrors,
        containerd: ContainerdSpec {
            source,
            restrict_oom_score_adj: k.containerd.restrict_oom_score_adj.unwrap_or(false),
        },
        ignore_preflight_errors: ignore,
        kubelet: k.kubelet.clone(),
        kube_proxy: k.kube_proxy.clone(),
        max_unavailable_workers,
    })
}

/// `host[:port]` of a registry, as image names spell it: a DNS name or an IPv4 address, and
/// an optional port.
pub fn is_registry_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0) && !p.starts_with('0'));
    port_ok && host.len() <= 253 && host.split('.').all(is_dns_label)
}

/// A repository prefix: a registry host, then optional lowercase path segments.
pub fn is_image_repository(s: &str) -> bool {
    let (host, path) = s.split_once('/').unwrap_or((s, ""));
    is_registry_host(host)
        && s.len() <= 255
        && (path.is_empty()
            || path.split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
            }))
}

fn registry_mirror(cx: &mut Ctx, path: FieldPath, m: &raw::RegistryMirror) -> Option<RegistryMirror> {
    let mut ok = true;
    if !is_registry_host(&m.registry) || m.registry.chars().any(|c| c.is_ascii_uppercase()) {
        cx.error(
            "mirror-registry",
            path.key("registry"),
            format!("`{}` is not a registry name", m.registry),
            "write the registry as image names spell it: `docker.io`, `registry.k8s.io`, `registry.example.com:5000`",
        );
        ok = false;
    }
    let endpoint = match http_url(&m.endpoint) {
        Ok(u) => Some(u),
        Err(why) => {
            cx.error(
                "mirror-endpoint",
                path.key("endpoint"),
                format!("`{}` is not a registry mirror URL: {why}", shown(&m.endpoint)),
                "write `https://host[:port][/path]` (or `http://…` with `plainHttp: true`), without credentials, query or fragment",
            );
            None
        }
    };
    let plain = m.plain_http.unwrap_or(false);
    if let Some(u) = &endpoint {
        if u.scheme() == "http" && !plain {
            cx.error(
                "mirror-plain-http",
                path.key("endpoint"),
                format!("`{}` is plain HTTP", m.endpoint),
                "images would travel unauthenticated: say so with `plainHttp: true`, or use an https:// endpoint",
            );
            ok = false;
        }
        if u.scheme() == "https" && plain {
            cx.error(
                "mirror-plain-http",
                path.key("plainHttp"),
                "`plainHttp: true` with an https:// endpoint",
                "remove `plainHttp`, or give the http:// URL the mirror really serves",
            );
            ok = false;
        }
        if m.ca_file.is_some() && u.scheme() != "https" {
            cx.error("mirror-ca", path.key("caFile"), "a CA file is for an https:// endpoint", "remove `caFile`");
            ok = false;
        }
    }
    let endpoint = endpoint?;
    ok.then(|| RegistryMirror {
        registry: m.registry.clone(),
        endpoint: endpoint.as_str().trim_end_matches('/').to_string(),
        plain_http: plain,
        ca_file: m.ca_file.as_deref().map(crate::paths::expand_home),
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

/// The field names of a component's configuration the config passes on (`kubelet`,
/// `kubeProxy`): camelCase names, and never the document's own `apiVersion` or `kind`.
fn component_fields<'k>(
    cx: &mut Ctx,
    base: &FieldPath,
    section: &str,
    keys: impl Iterator<Item = &'k String>,
    kind: &str,
    api: &str,
    examples: &str,
) {
    for key in keys {
        let ok = key.len() <= 128
            && key.as_bytes().first().is_some_and(|b| b.is_ascii_lowercase())
            && key.bytes().all(|b| b.is_ascii_alphanumeric());
        let rule = if section == "kubelet" { "kubelet-field" } else { "kube-proxy-field" };
        if matches!(key.as_str(), "apiVersion" | "kind") {
            cx.error_key(
                rule,
                base.key(section).key(key.clone()),
                format!("`{key}` of the {kind} is hacluster's to set"),
                format!("remove it: hacluster renders {api}"),
            );
        } else if !ok {
            cx.error_key(
                rule,
                base.key(section).key(key.clone()),
                format!("`{key}` is not a {kind} field name"),
                format!("{kind} fields are camelCase names such as {examples}"),
            );
        }
    }
}

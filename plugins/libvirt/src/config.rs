//! `backends.libvirt`: how the VMs are made. Everything has a default, so Kubitect files need
//! no section at all.

use serde::Deserialize;

use crate::{Cluster, Diagnostics};

/// The base image every node's disk is a copy-on-write layer of.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    /// http(s) URL the host downloads once per pool.
    pub url: Option<String>,
    /// Or a file on the hypervisor host.
    pub path: Option<String>,
    /// Expected SHA-256; for URLs without it the host looks for a SHA256SUMS file beside.
    pub sha256: Option<String>,
    /// Direct kernel boot (images without a bootloader, such as a debootstrap tree).
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
}

impl Default for Image {
    fn default() -> Self {
        Image {
            url: Some("https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img".into()),
            path: None,
            sha256: None,
            kernel: None,
            initrd: None,
            cmdline: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// HAProxy asks each API server `GET /readyz` over TLS (a live but broken API server is out).
    #[default]
    Https,
    /// A TCP connect, as Kubitect does.
    Tcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// `kvm` on real hosts; `qemu` (software emulation) where KVM does not work; `test` for
    /// libvirt's test driver.
    #[serde(default = "default_domain_type")]
    pub domain_type: String,
    #[serde(default)]
    pub image: Image,
    #[serde(default)]
    pub haproxy_check: Check,
    /// The cluster's name, which every object's name carries.
    #[serde(skip)]
    pub cluster: String,
}

fn default_domain_type() -> String {
    "kvm".into()
}

impl Config {
    pub fn test_driver(&self) -> bool {
        self.domain_type == "test"
    }
}

pub fn validate(cfg: &Config, cluster: &Cluster, out: &mut Diagnostics) {
    if !matches!(cfg.domain_type.as_str(), "kvm" | "qemu" | "test") {
        out.error("backends.libvirt.domainType", format!("`{}` is not a domain type hacluster makes", cfg.domain_type))
            .help("use kvm (hardware virtualization), qemu (software emulation) or test (libvirt's test driver)");
    }
    match (&cfg.image.url, &cfg.image.path) {
        (Some(_), Some(_)) => {
            out.error("backends.libvirt.image", "both `url` and `path` are set").help("give one");
        }
        (None, None) if !cfg.test_driver() => {
            out.error("backends.libvirt.image", "no base image")
                .help("set `url` (downloaded once) or `path` (on the host)");
        }
        (Some(u), None) if !(u.starts_with("https://") || u.starts_with("http://")) => {
            out.error("backends.libvirt.image.url", format!("`{u}` is not an http(s) URL"))
                .help("use `path` for files on the host");
        }
        (Some(u), None) if u.starts_with("http://") && cfg.image.sha256.is_none() => {
            out.error(
                "backends.libvirt.image.url",
                format!("`{u}` is plain http, and a SHA256SUMS fetched beside it over plain http proves nothing"),
            )
            .help("set `image.sha256` to the image's published SHA-256, or use an https URL");
        }
        _ => {}
    }
    if let Some(h) = &cfg.image.sha256
        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        out.error("backends.libvirt.image.sha256", "not a SHA-256 (64 hex digits)")
            .help("copy it from the image's SHA256SUMS");
    }
    // Every DHCP node gets a fixed lease from the top quarter of the network.
    if let Some(net) = cluster.network.as_ref().filter(|n| n.mode != crate::NetworkMode::Bridge) {
        let dynamic = cluster.nodes.iter().filter(|n| n.address.is_none()).count();
        let room = crate::xml::dhcp_range(net).map_or(0, |(start, end)| {
            let in_range = crate::xml::taken_addresses(cluster).iter().filter(|a| (start..=end).contains(*a)).count();
            (end - start + 1) as usize - in_range
        });
        if dynamic > room {
            out.error(
                "cluster.network.cidr",
                format!("{dynamic} nodes without `ip` need DHCP leases, and {} has room for {room}", net.cidr),
            )
            .help("give some nodes a static `ip`, or use a larger network (DHCP takes its top quarter)");
        }
    }
    if cluster.hosts.is_empty() {
        out.error("hosts", "the libvirt backend needs at least one host").help("add `hosts: [{name: localhost}]`");
    }
}

//! containerd on the nodes: where its package comes from, and the files hacluster renders for
//! it: `config.toml` (the CRI's sandbox image, the cgroup driver the kubelet uses, the
//! registry config directory, CNI directories; importing drop-ins from `conf.d/`), a drop-in
//! for the settings the config asks for, and a `hosts.toml` per mirrored registry.
//!
//! containerd 2.x reads config version 3 (the CRI split into `io.containerd.cri.v1.images` and
//! `io.containerd.cri.v1.runtime`); 1.x reads version 2 (`io.containerd.grpc.v1.cri`). Both are
//! rendered; the node's installed major version picks one.

use crate::model::{ClusterSpec, ContainerdSource, RegistryMirror};

pub const CONFIG: &str = "/etc/containerd/config.toml";
pub const DROP_IN_DIR: &str = "/etc/containerd/conf.d";
pub const DROP_IN: &str = "/etc/containerd/conf.d/50-hacluster.toml";
pub const CERTS_DIR: &str = "/etc/containerd/certs.d";
/// Replaced on the node by the pause image its kubeadm names (it depends on the version and
/// the image repository, and kubeadm knows it exactly).
pub const SANDBOX_PLACEHOLDER: &str = "@HACLUSTER_SANDBOX_IMAGE@";

/// A TOML basic string (the values here are validated, so escaping is a second line).
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `config.toml` for containerd of `major` version (1 or 2).
pub fn config(spec: &ClusterSpec, major: u32) -> String {
    let systemd = super::kubeadm::systemd_cgroups(spec);
    let head = format!("# Rendered by hacluster. Settings of your own go in drop-ins: {DROP_IN_DIR}/*.toml.\n");
    let imports = format!("imports = [{}]\n", toml_str(&format!("{DROP_IN_DIR}/*.toml")));
    let certs = toml_str(CERTS_DIR);
    let sandbox = toml_str(SANDBOX_PLACEHOLDER);
    if major >= 2 {
        format!(
            r#"{head}version = 3
{imports}
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = {sandbox}

[plugins."io.containerd.cri.v1.images".registry]
  config_path = {certs}

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = {systemd}

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]
  conf_dir = "/etc/cni/net.d"
"#
        )
    } else {
        format!(
            r#"{head}version = 2
{imports}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = {certs}

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = {systemd}

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
"#
        )
    }
}

/// The drop-in with what the config asks of containerd, if anything.
pub fn drop_in(spec: &ClusterSpec, major: u32) -> Option<String> {
    if !spec.kubernetes.containerd.restrict_oom_score_adj {
        return None;
    }
    let (version, table) =
        if major >= 2 { (3, "io.containerd.cri.v1.runtime") } else { (2, "io.containerd.grpc.v1.cri") };
    Some(format!(
        "# Rendered by hacluster from kubernetes.containerd in the cluster config.\nversion = {version}\n\n[plugins.\"{table}\"]\n  # Containers here cannot lower their OOM score (no CAP_SYS_RESOURCE).\n  restrict_oom_score_adj = true\n"
    ))
}

/// `server` of a registry: where it is when no mirror answers.
fn upstream(registry: &str) -> String {
    match registry {
        "docker.io" => "https://registry-1.docker.io".into(),
        r => format!("https://{r}"),
    }
}

/// `certs.d/<registry>/hosts.toml` of one mirror; `ca` names the CA file beside it.
pub fn hosts_toml(m: &RegistryMirror, ca: Option<&str>) -> String {
    let mut s = format!(
        "# Rendered by hacluster from kubernetes.registryMirrors: images of {} come from {}.\nserver = {}\n\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
        m.registry,
        m.endpoint,
        toml_str(&upstream(&m.registry)),
        toml_str(&m.endpoint)
    );
    if let Some(ca) = ca {
        s += &format!("  ca = {}\n", toml_str(ca));
    }
    s
}

/// The directory of a registry's hosts.toml (containerd names it after the registry's host,
/// `host:port` included).
pub fn hosts_dir(m: &RegistryMirror) -> String {
    format!("{CERTS_DIR}/{}", m.registry)
}

/// Shell that adds containerd's apt repository for `source` (the script has `. /etc/os-release`
/// done) and prints nothing; and the package to install.
pub fn package(spec: &ClusterSpec) -> (String, &'static str) {
    use crate::ssh::shell_quote;
    match spec.kubernetes.containerd.source {
        ContainerdSource::Distro => (String::new(), "containerd"),
        ContainerdSource::Docker => (
            r#"curl -fsSL "https://download.docker.com/linux/$ID/gpg" -o /etc/apt/keyrings/hacluster-docker.asc
echo "deb [signed-by=/etc/apt/keyrings/hacluster-docker.asc] https://download.docker.com/linux/$ID $VERSION_CODENAME stable" > /etc/apt/sources.list.d/hacluster-containerd.list
"#
            .into(),
            "containerd.io",
        ),
        ContainerdSource::Mirror => {
            let base = format!(
                "{}/containerd/deb",
                spec.kubernetes.package_mirror.as_deref().unwrap_or_default().trim_end_matches('/')
            );
            (
                format!(
                    "curl -fsSL {} -o /etc/apt/keyrings/hacluster-containerd.asc\necho {} > /etc/apt/sources.list.d/hacluster-containerd.list\n",
                    shell_quote(&format!("{base}/Release.key")),
                    shell_quote(&format!("deb [signed-by=/etc/apt/keyrings/hacluster-containerd.asc] {base}/ /"))
                ),
                "containerd.io",
            )
        }
    }
}

/// The registry mirrors' CA certificates, read from the operator's machine: (registry, PEM).
/// Only certificates: a file with a private key (or anything else) is refused.
pub fn read_cas(spec: &ClusterSpec) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for m in &spec.kubernetes.registry_mirrors {
        let Some(path) = &m.ca_file else { continue };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the CA file of the {} mirror, {}: {e}", m.registry, path.display()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") || pem.contains("PRIVATE KEY") {
            return Err(format!(
                "{} (the CA file of the {} mirror) is not a PEM certificate, or holds a private key as well: give the CA certificate alone",
                path.display(),
                m.registry
            ));
        }
        out.push((m.registry.clone(), pem));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_cannot_break_out() {
        assert_eq!(toml_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}

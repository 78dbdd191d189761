//! What a plugin is allowed to do, decided by the host from the config and the backend: the
//! HTTP origins it may reach, the credentials it may ask for, the hypervisor URIs it may use.
//! A plugin asks through its imports; what is not granted here is refused.

use serde::Serialize;

use super::egress::{EgressPolicy, Origin};
use crate::model::ClusterSpec;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grants {
    pub egress: EgressPolicy,
    /// Credential providers the plugin may read (e.g. "aws").
    pub credentials: Vec<String>,
    /// libvirt URIs the hypervisor import may open.
    pub hypervisor_uris: Vec<String>,
    /// Files and URLs the hypervisor import may read from: the configured base image,
    /// kernel and initrd.
    pub images: Vec<String>,
    /// Where the host keeps a copy of each cloud-init seed it makes (the state directory).
    #[serde(skip)]
    pub seed_copies: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("backends.{backend}.egress[{index}]: `{url}` is not an http(s) URL")]
pub struct BadEgress {
    pub backend: String,
    pub index: usize,
    pub url: String,
}

impl Grants {
    pub fn none() -> Self {
        Grants::default()
    }

    /// The grants for running `backend` on `spec`.
    pub fn for_backend(spec: &ClusterSpec, backend: &str) -> Result<Grants, BadEgress> {
        let mut g = Grants::none();
        if backend == "aws" {
            if let Some(aws) = &spec.aws {
                match aws.endpoint.as_deref().and_then(Origin::parse) {
                    Some(o) => g.egress.allowed.push(o),
                    None => {
                        for svc in ["ec2", "elasticloadbalancing"] {
                            g.egress.allowed.push(Origin {
                                https: true,
                                host: format!("{svc}.{}.amazonaws.com", aws.region),
                                port: 443,
                            });
                        }
                    }
                }
            }
            g.credentials.push("aws".into());
        }
        // The config's hypervisor hosts, to whichever backend asks for libvirt (a plugin that
        // does not import `hypervisor` cannot use them), and the image files its section names.
        g.hypervisor_uris = spec.hosts.iter().map(|h| h.libvirt_uri()).collect();
        if let Some(image) = spec.backend_sections.get(backend).and_then(|s| s.get("image")) {
            for key in ["url", "path", "kernel", "initrd"] {
                if let Some(v) = image.get(key).and_then(|v| v.as_str()) {
                    g.images.push(v.to_string());
                }
            }
        }
        // Any backend's section may list extra origins it needs: `egress: [https://api.example.com]`.
        if let Some(list) = spec.backend_sections.get(backend).and_then(|s| s.get("egress")).and_then(|e| e.as_array())
        {
            for (index, v) in list.iter().enumerate() {
                let url = v.as_str().unwrap_or_default();
                let origin =
                    Origin::parse(url).ok_or_else(|| BadEgress { backend: backend.into(), index, url: url.into() })?;
                g.egress.allowed.push(origin);
            }
        }
        Ok(g)
    }
}

/// Reads credentials for a provider the plugin was granted. Values are secrets: they go to the
/// plugin and nowhere else (never logged, never in errors).
pub fn read_credentials(provider: &str) -> Result<Vec<(String, String)>, String> {
    match provider {
        "aws" => aws_credentials(),
        other => Err(format!("no credential provider `{other}`")),
    }
}

/// AWS credentials: the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), else the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or
/// `~/.aws/credentials`) for `AWS_PROFILE` (default `default`).
fn aws_credentials() -> Result<Vec<(String, String)>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        let mut out = vec![("access-key-id".into(), id), ("secret-access-key".into(), secret)];
        if let Some(t) = env("AWS_SESSION_TOKEN") {
            out.push(("session-token".into(), t));
        }
        return Ok(out);
    }
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let path = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".aws/credentials")))
        .ok_or("no home directory for ~/.aws/credentials")?;
    let text = std::fs::read_to_string(&path).map_err(|_| {
        format!(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile `{profile}` to {}",
            path.display()
        )
    })?;
    let mut in_profile = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_profile = line.trim_matches(['[', ']']).trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let name = match k.trim() {
                "aws_access_key_id" => "access-key-id",
                "aws_secret_access_key" => "secret-access-key",
                "aws_session_token" => "session-token",
                _ => continue,
            };
            out.push((name.to_string(), v.trim().to_string()));
        }
    }
    if out.iter().any(|(k, _)| k == "access-key-id") && out.iter().any(|(k, _)| k == "secret-access-key") {
        Ok(out)
    } else {
        Err(format!("profile `{profile}` in {} has no aws_access_key_id/aws_secret_access_key", path.display()))
    }
}

//! What a plugin is allowed to do, decided by the host from the config and the backend: the
//! HTTP origins it may reach, the credentials it may ask for, the hypervisor URIs it may use.
//! A plugin asks through its imports; what is not granted here is refused.

use serde::Serialize;

use super::egress::{EgressPolicy, Origin};
use super::hypervisor::policy::Policy;
use crate::config::validate::urls::{UrlError, credentialed_endpoint, shown};
use crate::model::ClusterSpec;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grants {
    pub egress: EgressPolicy,
    /// Credential providers the plugin may read (e.g. "aws").
    pub credentials: Vec<String>,
    /// What the hypervisor import may do: the libvirt URIs of the config's hosts, the
    /// cluster's own objects there, the configured base image, kernel and initrd.
    pub hypervisor: Policy,
    /// Where the host keeps a copy of each cloud-init seed it makes (the state directory).
    #[serde(skip)]
    pub seed_copies: Option<std::path::PathBuf>,
}

/// An origin the config asks to grant that the config's URL rule refuses. Validation refuses
/// these first; the grant side checks again, so no path around validation grants them.
#[derive(Debug, thiserror::Error)]
pub enum BadEgress {
    #[error("backends.{backend}.egress[{index}]: `{url}` is not an http(s) URL: {why}")]
    Listed { backend: String, index: usize, url: String, why: UrlError },
    #[error("backends.aws.endpoint: `{url}` is not an https URL: {why}")]
    AwsEndpoint { url: String, why: UrlError },
}

impl Grants {
    pub fn none() -> Self {
        Grants::default()
    }

    /// The grants for running `backend` on `spec`, where `credentials` are the providers whose
    /// credentials this plugin may read (see [`credential_providers`]). A plugin named `aws`
    /// reaches the AWS endpoints only together with AWS credentials.
    pub fn for_backend(spec: &ClusterSpec, backend: &str, credentials: &[String]) -> Result<Grants, BadEgress> {
        let mut g = Grants::none();
        g.credentials = credentials.to_vec();
        if backend == "aws"
            && credentials.iter().any(|c| c == "aws")
            && let Some(aws) = &spec.aws
        {
            match aws.endpoint.as_deref() {
                // Signed requests: https, or http to this machine only.
                Some(url) => {
                    let u =
                        credentialed_endpoint(url).map_err(|why| BadEgress::AwsEndpoint { url: shown(url), why })?;
                    g.egress.allowed.push(Origin::of(&u));
                }
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
        // The config's hypervisor hosts and the cluster's objects there, to whichever backend
        // asks for libvirt (a plugin that does not import `hypervisor` cannot use them), and
        // the image files its section names.
        g.hypervisor = Policy::from_spec(spec, backend);
        // Any backend's section may list extra origins it needs: `egress: [https://api.example.com]`.
        if let Some(list) = spec.backend_sections.get(backend).and_then(|s| s.get("egress")).and_then(|e| e.as_array())
        {
            for (index, v) in list.iter().enumerate() {
                let url = v.as_str().unwrap_or_default();
                let origin = Origin::parse(url).map_err(|why| BadEgress::Listed {
                    backend: backend.into(),
                    index,
                    url: shown(url),
                    why,
                })?;
                g.egress.allowed.push(origin);
            }
        }
        Ok(g)
    }
}

/// Credential providers a plugin may read. A plugin's name is what the plugin says it is, so
/// the name alone earns nothing: the `aws` plugin shipped with this build gets AWS
/// credentials; any other component (a `--plugin` path, the user's plugin directory) gets
/// only the providers the operator grants on the command line (`--grant-credentials aws`),
/// never from a config file, which may come from someone else.
pub fn credential_providers(name: &str, origin: super::discovery::Origin, granted: &[String]) -> Vec<String> {
    let mut out: Vec<String> = granted.to_vec();
    if name == "aws" && origin == super::discovery::Origin::Builtin && !out.iter().any(|p| p == "aws") {
        out.push("aws".into());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::{BadEgress, Grants, credential_providers};
    use crate::config::{Options, check_str};
    use crate::model::ClusterSpec;
    use crate::plugin::discovery::Origin;
    use crate::plugin::egress::Origin as HttpOrigin;

    /// A valid AWS cluster, then `endpoint` set behind validation's back.
    fn aws_spec(endpoint: Option<&str>) -> ClusterSpec {
        let text = "cluster:\n  name: demo\n  nodes:\n    master:\n      instances: [{id: 1}]\nbackends:\n  aws:\n    region: eu-central-1\n    availabilityZones: [eu-central-1a]\n    ami: ami-0123456789abcdef0\n";
        let checked = check_str("aws.yaml", text, &Options::default());
        let mut spec = checked.spec.unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
        spec.aws.as_mut().expect("aws section").endpoint = endpoint.map(Into::into);
        spec
    }

    #[test]
    fn the_aws_endpoint_is_granted_as_https_or_plain_http_to_this_machine_only() {
        let aws = ["aws".to_string()];
        for evil in ["http://localhost.evil.example", "http://127.0.0.1.evil.example:5000", "http://localhostx"] {
            let e = Grants::for_backend(&aws_spec(Some(evil)), "aws", &aws).unwrap_err();
            assert!(matches!(e, BadEgress::AwsEndpoint { .. }), "{evil}: {e}");
            assert!(e.to_string().contains("plain http goes only to this machine"), "{e}");
        }
        let local = Grants::for_backend(&aws_spec(Some("http://127.0.0.1:5000")), "aws", &aws).unwrap();
        assert_eq!(local.egress.allowed, [HttpOrigin { https: false, host: "127.0.0.1".into(), port: 5000 }]);
        let v6 = Grants::for_backend(&aws_spec(Some("http://[::1]:4566")), "aws", &aws).unwrap();
        assert!(v6.egress.allows(false, "[::1]:4566"));
        let default = Grants::for_backend(&aws_spec(None), "aws", &aws).unwrap();
        assert!(default.egress.allows(true, "ec2.eu-central-1.amazonaws.com"));
        assert!(!default.egress.allows(false, "ec2.eu-central-1.amazonaws.com"));
    }

    #[test]
    fn listed_origins_are_granted_only_by_the_url_rule() {
        let mut spec = aws_spec(None);
        let section = |list: serde_json::Value| serde_json::json!({ "egress": list });
        spec.backend_sections.insert("mine".into(), section(serde_json::json!(["https://api.example.com:8443/v1"])));
        let g = Grants::for_backend(&spec, "mine", &[]).unwrap();
        assert_eq!(g.egress.allowed, [HttpOrigin { https: true, host: "api.example.com".into(), port: 8443 }]);
        for bad in ["https://api.example.com\nhttps://evil.example", "https://me@api.example.com", "file:///etc"] {
            spec.backend_sections.insert("mine".into(), section(serde_json::json!(["https://ok.example", bad])));
            let e = Grants::for_backend(&spec, "mine", &[]).unwrap_err();
            assert!(matches!(e, BadEgress::Listed { index: 1, .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn only_the_built_in_aws_plugin_or_an_explicit_grant_gets_aws_credentials() {
        let none: &[String] = &[];
        let granted = &["aws".to_string()];
        assert_eq!(credential_providers("aws", Origin::Builtin, none), ["aws"]);
        assert!(credential_providers("aws", Origin::Path, none).is_empty(), "a name is only a claim");
        assert!(credential_providers("aws", Origin::User, none).is_empty());
        assert!(credential_providers("libvirt", Origin::Builtin, none).is_empty());
        assert_eq!(credential_providers("aws", Origin::Path, granted), ["aws"]);
        assert_eq!(credential_providers("my-cloud", Origin::User, granted), ["aws"]);
        assert_eq!(credential_providers("aws", Origin::Builtin, granted), ["aws"], "no duplicate");
    }
}

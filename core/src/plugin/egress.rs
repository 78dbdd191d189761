//! Which HTTP origins a plugin may reach through `wasi:http`. Decided by the host from the
//! config; everything else is refused before a connection is made.

use std::fmt;

use serde::Serialize;
use url::{Host, Url};

use crate::config::validate::urls::{UrlError, http_url};

/// `scheme://host:port`, lowercase host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of an http(s) URL the config's URL rule accepted ([`http_url`]).
    pub fn of(url: &Url) -> Origin {
        let host = match url.host() {
            // As a request's authority names it once the brackets are gone (`split_authority`).
            Some(Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        };
        let https = url.scheme() == "https";
        Origin { https, host, port: url.port_or_known_default().unwrap_or(if https { 443 } else { 80 }) }
    }

    /// Parses `https://host[:port][/...]` or `http://...` by the config's URL rule.
    pub fn parse(text: &str) -> Result<Origin, UrlError> {
        http_url(text).map(|u| Origin::of(&u))
    }
}

/// `host`, `host:port`, `[v6]:port` → (lowercase host, port).
pub fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((h.to_ascii_lowercase(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_ascii_lowercase(), p.parse().ok()?)),
        None => Some((authority.to_ascii_lowercase(), default_port)),
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", if self.https { "https" } else { "http" }, self.host, self.port)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EgressPolicy {
    pub allowed: Vec<Origin>,
}

impl EgressPolicy {
    pub fn none() -> Self {
        EgressPolicy::default()
    }

    pub fn allows(&self, https: bool, authority: &str) -> bool {
        let Some((host, port)) = split_authority(authority, if https { 443 } else { 80 }) else {
            return false;
        };
        self.allowed.iter().any(|o| o.https == https && o.host == host && o.port == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly() {
        let p = EgressPolicy {
            allowed: vec![
                Origin::parse("https://ec2.eu-central-1.amazonaws.com").unwrap(),
                Origin::parse("http://127.0.0.1:5000/").unwrap(),
            ],
        };
        assert!(p.allows(true, "ec2.eu-central-1.amazonaws.com"));
        assert!(p.allows(true, "EC2.eu-central-1.amazonaws.com:443"));
        assert!(!p.allows(false, "ec2.eu-central-1.amazonaws.com"), "plain http to an https origin");
        assert!(!p.allows(true, "ec2.eu-west-1.amazonaws.com"));
        assert!(!p.allows(true, "ec2.eu-central-1.amazonaws.com.evil.com"));
        assert!(p.allows(false, "127.0.0.1:5000"));
        assert!(!p.allows(false, "127.0.0.1:5001"));
        assert_eq!(Origin::parse("https://user@host"), Err(UrlError::Credentials));
        assert!(Origin::parse("ftp://host").is_err());
        assert!(Origin::parse("https://host\nevil").is_err());
        let v6 = EgressPolicy { allowed: vec![Origin::parse("http://[::1]:4566").unwrap()] };
        assert!(v6.allows(false, "[::1]:4566"));
        assert!(!v6.allows(false, "[::1]:4567"));
    }
}

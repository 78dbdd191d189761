//! Which HTTP origins a plugin may reach through `wasi:http`. Decided by the host from the
//! config; everything else is refused before a connection is made.

use std::fmt;

use serde::Serialize;

/// `scheme://host:port`, lowercase host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses `https://host[:port][/...]` or `http://...`.
    pub fn parse(url: &str) -> Option<Origin> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return None;
        };
        let authority = rest.split(['/', '?', '#']).next()?;
        if authority.contains('@') || authority.is_empty() {
            return None;
        }
        let (host, port) = split_authority(authority, if https { 443 } else { 80 })?;
        Some(Origin { https, host, port })
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
        assert!(Origin::parse("https://user@host").is_none());
        assert!(Origin::parse("ftp://host").is_none());
    }
}

//! libvirt connection URIs: the only ones hacluster opens, checked and built with the `url`
//! parser. A libvirt URI picks a transport that can run programs (`qemu+ext://…?command=`)
//! and takes parameters that weaken it (`?no_verify=1` skips the SSH host key check,
//! `?command=`, `?netcat=`, `?socket=` change what runs on either side), so only these pass:
//!
//! - `qemu:///system`, `qemu:///session`: the local daemon;
//! - `qemu+ssh://[USER@]HOST[:PORT]/system|session[?keyfile=PATH]`: a remote daemon through
//!   OpenSSH, which checks the host key against known_hosts;
//! - `test:///default` or `test:///PATH`: libvirt's in-process test driver.

use url::Url;

use crate::paths::is_plain_path;

/// Why a URI is refused, as a sentence for the config's error message.
pub fn check(uri: &str) -> Result<(), String> {
    let u = Url::parse(uri).map_err(|e| format!("`{uri}` is not a URI ({e})"))?;
    // libvirt gets the string as written: what is checked must be exactly that, with no dot
    // segments or escapes the parser would resolve differently.
    if u.as_str() != uri {
        return Err(format!("`{uri}` is not written plainly; as parsed it is `{}`", u.as_str()));
    }
    if u.fragment().is_some() || u.password().is_some() {
        return Err(format!("`{uri}` has a fragment or a password; libvirt URIs have neither"));
    }
    let host = u.host_str().unwrap_or("");
    match u.scheme() {
        "qemu" | "test" if !host.is_empty() || !u.username().is_empty() || u.port().is_some() => Err(format!(
            "`{uri}` names a remote machine; reach remote hosts over SSH (qemu+ssh://USER@HOST/system), whose host key is checked"
        )),
        "qemu" => {
            daemon_path(&u)?;
            no_query(&u)
        }
        "test" if is_plain_path(u.path()) => no_query(&u),
        "test" => Err(format!("`{}` is not test:///default or a plain absolute file path", u.path())),
        "qemu+ssh" => {
            if !is_host(host) {
                return Err(format!("`{host}` is not an IP address or a DNS name"));
            }
            if !u.username().is_empty() && !is_user(u.username()) {
                return Err(format!("`{}` is not a user name", u.username()));
            }
            daemon_path(&u)?;
            for (i, (k, v)) in u.query_pairs().enumerate() {
                if k != "keyfile" || i > 0 {
                    return Err(format!(
                        "parameter `{k}` is not allowed; a qemu+ssh URI takes one `keyfile` and no other (`no_verify`, `command`, `netcat`, `socket`… change what runs or what is checked)"
                    ));
                }
                if !is_keyfile(&v) {
                    return Err(format!("keyfile `{v}` is not a plain path"));
                }
            }
            Ok(())
        }
        other => Err(format!(
            "transport `{other}` is not one hacluster uses; use qemu:///system (this machine), qemu+ssh://USER@HOST/system (a remote host, host key checked) or test:///default"
        )),
    }
}

fn daemon_path(u: &Url) -> Result<(), String> {
    match u.path() {
        "/system" | "/session" => Ok(()),
        p => Err(format!("path `{p}` is not /system or /session")),
    }
}

fn no_query(u: &Url) -> Result<(), String> {
    match u.query() {
        None => Ok(()),
        Some(q) => Err(format!("parameters (`?{q}`) are not allowed on a {} URI", u.scheme())),
    }
}

/// `qemu+ssh://USER@HOST:PORT/system?keyfile=KEY`, built by the URL parser from values that
/// passed [`is_user`], [`is_host`] and [`is_keyfile`].
pub fn remote(user: &str, host: &str, port: u16, keyfile: Option<&str>) -> String {
    let mut u = Url::parse("qemu+ssh://localhost/system").expect("a constant URI");
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    // Validation refuses what these would reject; the URI then keeps its placeholder parts.
    let _ = u.set_host(Some(&host));
    let _ = u.set_username(user);
    let _ = u.set_port(Some(port));
    if let Some(k) = keyfile {
        u.set_query(Some(&format!("keyfile={k}")));
    }
    u.to_string()
}

/// A login name as OpenSSH and the useradd tools take it.
pub fn is_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// An IPv4 or IPv6 address, or a DNS name (labels of letters, digits and `-`).
pub fn is_host(s: &str) -> bool {
    // The URL parser shows IPv6 hosts in brackets.
    let bare = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A private key's path: plain characters (`~` for the home directory), nothing that could
/// end a URI parameter or start an option.
pub fn is_keyfile(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 4096
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'~' | b'+' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_daemons_ssh_with_a_keyfile_and_the_test_driver() {
        for ok in [
            "qemu:///system",
            "qemu:///session",
            "qemu+ssh://kubitect@10.10.0.5:22/system?keyfile=~/.ssh/id_rsa_ha",
            "qemu+ssh://hv1.example.com/system",
            "qemu+ssh://root@[fd00::5]/session",
            "test:///default",
            "test:///tmp/.tmpAbC/hv-b.xml",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("qemu+ext:///system?command=/bin/x", "transport `qemu+ext`"),
            ("qemu+ssh://u@h/system?no_verify=1", "`no_verify` is not allowed"),
            ("qemu+ssh://u@h/system?keyfile=/k&command=/bin/x", "`command` is not allowed"),
            ("qemu+ssh://u@h/system?keyfile=/k;command=/bin/x", "not a plain path"),
            ("qemu+ssh://u@h/system?keyfile=/k%26command=x", "not a plain path"),
            ("qemu+ssh://u@h/system?keyfile=/a&keyfile=/b", "one `keyfile`"),
            ("qemu+ssh://u@-oProxyCommand=x/system", "not an IP address or a DNS name"),
            ("qemu+ssh://-oProxyCommand@h/system", "not a user name"),
            ("qemu+ssh://-oProxyCommand=x@h/system", "not written plainly"),
            ("qemu+ssh://u:secret@h/system", "password"),
            ("qemu+tcp://h/system", "transport `qemu+tcp`"),
            ("qemu+tls://h/system", "transport `qemu+tls`"),
            ("qemu+unix:///system?socket=/tmp/s", "transport `qemu+unix`"),
            ("qemu://h/system", "over SSH"),
            ("qemu:///embed?root=/tmp/x", "not /system or /session"),
            ("qemu:///system?no_tty=1", "parameters"),
            ("test:///default?x=1", "parameters"),
            ("test:///a/../etc/x.xml", "not written plainly"),
            ("test:///etc/x.xml/", "plain absolute file path"),
            ("xen:///system", "transport `xen`"),
            ("not a uri", "not a URI"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn remote_uris_are_built_by_the_parser_and_pass_the_check() {
        let u = remote("kubitect", "10.10.0.5", 22, Some("~/.ssh/id_rsa_ha"));
        assert_eq!(u, "qemu+ssh://kubitect@10.10.0.5:22/system?keyfile=~/.ssh/id_rsa_ha");
        assert_eq!(check(&u), Ok(()));
        let v6 = remote("root", "fd00::5", 2222, None);
        assert_eq!(v6, "qemu+ssh://root@[fd00::5]:2222/system");
        assert_eq!(check(&v6), Ok(()));
        for bad in ["/k&command=/bin/x", "-i", "a b", "k#x", "k?x"] {
            assert!(!is_keyfile(bad), "{bad}");
        }
        assert!(!is_user("a@b") && !is_user("-oX") && is_user("kubitect"));
        assert!(!is_host("a b") && !is_host("-oX") && !is_host("a..b") && is_host("hv-1.lab"));
    }
}

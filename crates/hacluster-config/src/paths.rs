//! Paths in the config: the one rule for a plain absolute path (pools, base images, libvirt
//! test-driver files), and `~/` expansion.

use std::path::PathBuf;

/// An absolute path of plain characters with no `.`/`..` components or empty ones.
pub fn is_plain_path(p: &str) -> bool {
    p.len() <= 4096
        && p.starts_with('/')
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'+' | b'-'))
        && p[1..].split('/').enumerate().all(|(i, c)| !matches!(c, "." | "..") && (!c.is_empty() || i == 0 && p == "/"))
}

/// `~/` at the start of `p` as the user's home directory.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        for ok in ["/", "/var/lib/libvirt/images/c.h.main", "/srv/a_b+c-d.qcow2"] {
            assert!(is_plain_path(ok), "{ok}");
        }
        for bad in ["", "relative", "/a/../etc", "/a/./b", "/a//b", "/a/", "/a b", "/a\nb", "/a;b", "/$(x)"] {
            assert!(!is_plain_path(bad), "{bad:?}");
        }
    }
}

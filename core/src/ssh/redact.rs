//! Secrets (join tokens, certificate keys, private keys) never reach a log line or an error:
//! everything the executor shows passes through here first.

use std::sync::RwLock;

pub const MASK: &str = "[REDACTED]";

#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<String>>,
}

impl Redactor {
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Registers a secret. Multi-line secrets (keys) are also registered line by line, since
    /// output may split them.
    pub fn add(&self, secret: &str) {
        let mut s = self.secrets.write().expect("redactor lock");
        let mut push = |v: &str| {
            let v = v.trim();
            // Short strings would mask ordinary words.
            if v.len() >= 8 && !s.iter().any(|x| x == v) {
                s.push(v.to_string());
            }
        };
        push(secret);
        if secret.contains('\n') {
            for line in secret.lines() {
                if !line.starts_with("-----") {
                    push(line);
                }
            }
        }
        // Longest first, so a secret containing another is masked whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }

    pub fn redact(&self, text: &str) -> String {
        let s = self.secrets.read().expect("redactor lock");
        let mut out = text.to_string();
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        mask_shapes(&out)
    }
}

/// Secrets by their shape, for those nobody registered (a token an earlier run created, read
/// again from a job's log; a key a plugin echoes): PEM private key blocks, kubeadm bootstrap
/// tokens (`[a-z0-9]{6}.[a-z0-9]{16}`) and certificate keys (64 hex digits), but not a
/// `sha256:` CA hash, which is public.
fn mask_shapes(text: &str) -> String {
    mask_words(&mask_private_key_blocks(text))
}

/// The body of every `-----BEGIN … PRIVATE KEY-----` block, up to its `-----END` marker (or the
/// end of the text), becomes the mask; the markers stay, so a reader sees what was there. Not
/// line by line: a key inside JSON (cloud-init user-data) has its newlines escaped.
fn mask_private_key_blocks(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(BEGIN) {
        let label_start = i + BEGIN.len();
        let Some(close) = rest[label_start..].find("-----").map(|j| label_start + j) else { break };
        let body = close + "-----".len();
        out.push_str(&rest[..body]);
        if !rest[label_start..close].ends_with("PRIVATE KEY") {
            rest = &rest[body..];
            continue;
        }
        out.push_str(MASK);
        match rest[body..].find("-----END") {
            Some(k) => rest = &rest[body + k..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

fn mask_words(text: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '.';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_word) {
        out.push_str(&rest[..start]);
        let len = rest[start..].find(|c: char| !is_word(c)).unwrap_or(rest.len() - start);
        let word = &rest[start..start + len];
        // Sentence dots around a word are not part of it.
        let core = word.trim_matches('.');
        let lead = word.len() - word.trim_start_matches('.').len();
        let ca_hash = out.ends_with("sha256:") && lead == 0;
        if is_token(core) || (is_certificate_key(core) && !ca_hash) {
            out.push_str(&word[..lead]);
            out.push_str(MASK);
            out.push_str(&word[lead + core.len()..]);
        } else {
            out.push_str(word);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

fn is_token(w: &str) -> bool {
    let b = w.as_bytes();
    let part = |x: &[u8]| x.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    b.len() == 23 && b[6] == b'.' && part(&b[..6]) && part(&b[7..])
}

fn is_certificate_key(w: &str) -> bool {
    w.len() == 64 && w.bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_private_key_blocks_nobody_registered() {
        let r = Redactor::new();
        let text = "before\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACD\n-----END OPENSSH PRIVATE KEY-----\nafter -----BEGIN RSA PRIVATE KEY----- cut off";
        assert_eq!(
            r.redact(text),
            "before\n-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED]-----END OPENSSH PRIVATE KEY-----\nafter -----BEGIN RSA PRIVATE KEY-----[REDACTED]"
        );
        // Inside JSON (cloud-init user-data), with its newlines escaped.
        let json = r#"{"ed25519_private": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz\nQyNTUx\n-----END OPENSSH PRIVATE KEY-----\n", "x": 1}"#;
        assert_eq!(
            r.redact(json),
            r#"{"ed25519_private": "-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED]-----END OPENSSH PRIVATE KEY-----\n", "x": 1}"#
        );
        // Public material stays.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(r.redact(cert), cert);
    }

    #[test]
    fn masks_tokens_keys_and_key_lines() {
        let r = Redactor::new();
        r.add("abcdef.0123456789abcdef");
        r.add("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACD\n-----END OPENSSH PRIVATE KEY-----\n");
        let t = r.redact("kubeadm join x:6443 --token abcdef.0123456789abcdef; key b3BlbnNzaC1rZXktdjEAAAAA");
        assert_eq!(t, "kubeadm join x:6443 --token [REDACTED]; key [REDACTED]");
        r.add("short");
        assert_eq!(r.redact("a short word"), "a short word");
    }

    #[test]
    fn masks_tokens_and_certificate_keys_nobody_registered() {
        let r = Redactor::new();
        let key = "9f2c".repeat(16);
        let hash = "ab01".repeat(16);
        let line = format!(
            "kubeadm join lb:6443 --token q1w2e3.r4t5y6u7i8o9p0a1. --discovery-token-ca-cert-hash sha256:{hash} --certificate-key {key}"
        );
        assert_eq!(
            r.redact(&line),
            format!(
                "kubeadm join lb:6443 --token [REDACTED]. --discovery-token-ca-cert-hash sha256:{hash} --certificate-key [REDACTED]"
            )
        );
        // Near misses stay: a DNS name, a short hex id, uppercase, 63 digits.
        for keep in ["api.example.com", "deadbeef", "ABCDEF.0123456789ABCDEF", &"a".repeat(63), "v1.35.0"] {
            assert_eq!(r.redact(keep), keep);
        }
        assert_eq!(r.redact("µ naïve ünïcode stays"), "µ naïve ünïcode stays");
    }
}

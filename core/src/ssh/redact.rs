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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Running commands on the cluster's machines over SSH (russh: pure Rust, async on tokio,
//! maintained, no C toolchain needed).
//!
//! - Host keys are verified against the keys the backend returned; a mismatch fails closed.
//! - Authentication with the operator's key file, or the SSH agent.
//! - Jump hosts (a `direct-tcpip` channel through the jump, then SSH inside it).
//! - One connection per machine, reused; bounded parallelism; a timeout per command.
//! - Connection-level failures are retried with backoff; command failures are not.
//! - Scripts go to `bash` on stdin (never on the command line, where `ps` would show any
//!   secret in them); `sudo -n` when the login user is not root.
//! - Every line of output and every error is redacted before anyone sees it.

mod redact;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};
use tokio::sync::{Mutex, Semaphore};

pub use redact::Redactor;

use crate::events::{Events, LogLevel};
use crate::infra::{JumpHost, Machine, SshTarget};

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "host key of {host} does not match the pinned key: expected {expected}, the machine presented {presented}; not connecting (a different key means a different machine, or someone in between)"
    )]
    HostKeyMismatch { host: String, expected: String, presented: String },
    #[error("the pinned host key of {host} is not an OpenSSH public key: {reason}")]
    BadPinnedKey { host: String, reason: String },
    #[error("cannot connect to {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("{user}@{host} refused our key{hint}")]
    Auth { host: String, user: String, hint: String },
    #[error("no usable SSH key: {0}")]
    NoKey(String),
    #[error("`{what}` on {host} did not finish within {}s", .timeout.as_secs())]
    Timeout { host: String, what: String, timeout: Duration },
    #[error("`{what}` failed on {host} (exit {status}): {stderr}")]
    Failed { host: String, what: String, status: u32, stderr: String },
    #[error("SSH channel to {host} failed: {reason}")]
    Channel { host: String, reason: String },
}

impl SshError {
    /// Failures worth another connection attempt (the machine may still be booting, a
    /// connection dropped), as opposed to wrong keys, refused logins or failing commands.
    pub fn is_connection(&self) -> bool {
        matches!(self, SshError::Connect { .. } | SshError::Channel { .. })
    }
}

/// How the executor logs in and how patient it is.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The operator's private key; `None` uses the SSH agent (`SSH_AUTH_SOCK`).
    pub identity: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Connection attempts for one command before giving up.
    pub connect_attempts: usize,
    /// Commands running at the same time over all machines.
    pub parallelism: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            identity: None,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(600),
            connect_attempts: 4,
            parallelism: 32,
        }
    }
}

/// A script to run on a machine.
#[derive(Debug, Clone)]
pub struct Script {
    /// A short name for logs and errors (`kubeadm init`); the script itself is not shown.
    pub what: String,
    pub body: String,
    /// Run as root (through `sudo -n` unless the login user is root).
    pub root: bool,
    pub timeout: Option<Duration>,
    /// Its output holds secrets (a kubeconfig): never stream it to the logs.
    pub quiet: bool,
}

impl Script {
    pub fn root(what: impl Into<String>, body: impl Into<String>) -> Self {
        Script { what: what.into(), body: body.into(), root: true, timeout: None, quiet: false }
    }

    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

struct Verifier {
    host: String,
    expected: PublicKey,
    presented: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let presented = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            // Certificates are not pinned keys; refuse rather than trust a CA we never saw.
            russh::keys::PublicKeyOrCertificate::Certificate(c) => {
                *self.presented.lock().expect("lock") = Some(format!("a certificate for {}", c.key_id()));
                return Ok(false);
            }
        };
        let ok = presented.key_data() == self.expected.key_data();
        if !ok {
            *self.presented.lock().expect("lock") =
                Some(presented.fingerprint(russh::keys::HashAlg::Sha256).to_string());
        }
        let _ = &self.host;
        Ok(ok)
    }
}

fn parse_pinned(host: &str, key: &str) -> Result<PublicKey, SshError> {
    PublicKey::from_openssh(key.trim()).map_err(|e| SshError::BadPinnedKey { host: host.into(), reason: e.to_string() })
}

/// The operator's credentials, loaded once.
enum Credential {
    Key(Arc<russh::keys::PrivateKey>),
    Agent,
}

pub struct Executor {
    settings: Settings,
    credential: Credential,
    redactor: Arc<Redactor>,
    events: Arc<dyn Events>,
    sessions: Mutex<HashMap<String, Arc<Handle<Verifier>>>>,
    limit: Arc<Semaphore>,
}

fn host_label(t: &SshTarget) -> String {
    format!("{}@{}:{}", t.user, t.address, t.port)
}

impl Executor {
    pub fn new(settings: Settings, redactor: Arc<Redactor>, events: Arc<dyn Events>) -> Result<Self, SshError> {
        let credential = match &settings.identity {
            Some(path) => match russh::keys::load_secret_key(path, None) {
                Ok(k) => Credential::Key(Arc::new(k)),
                // An encrypted key is what the agent is for.
                Err(_) if std::env::var_os("SSH_AUTH_SOCK").is_some() => Credential::Agent,
                Err(e) => return Err(SshError::NoKey(format!("{}: {e}", path.display()))),
            },
            None if std::env::var_os("SSH_AUTH_SOCK").is_some() => Credential::Agent,
            None => return Err(SshError::NoKey("no key file configured and no SSH agent (SSH_AUTH_SOCK)".into())),
        };
        let limit = Arc::new(Semaphore::new(settings.parallelism.max(1)));
        Ok(Executor { settings, credential, redactor, events, sessions: Mutex::new(HashMap::new()), limit })
    }

    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    fn config(&self) -> Arc<client::Config> {
        Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(3600)),
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            ..Default::default()
        })
    }

    async fn authenticate(&self, h: &mut Handle<Verifier>, host: &str, user: &str) -> Result<(), SshError> {
        let auth_err = |hint: &str| SshError::Auth { host: host.into(), user: user.into(), hint: hint.into() };
        match &self.credential {
            Credential::Key(key) => {
                let hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
                let r = h
                    .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
                    .await
                    .map_err(|e| SshError::Connect { host: host.into(), reason: e.to_string() })?;
                if r.success() { Ok(()) } else { Err(auth_err(" (is its public key in the user's authorized_keys?)")) }
            }
            Credential::Agent => {
                let mut agent = russh::keys::agent::client::AgentClient::connect_env()
                    .await
                    .map_err(|e| SshError::NoKey(format!("SSH agent: {e}")))?;
                let ids = agent.request_identities().await.map_err(|e| SshError::NoKey(format!("SSH agent: {e}")))?;
                for id in ids {
                    let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else { continue };
                    let hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
                    if let Ok(r) = h.authenticate_publickey_with(user, key, hash, &mut agent).await
                        && r.success()
                    {
                        return Ok(());
                    }
                }
                Err(auth_err(" (none of the SSH agent's keys was accepted)"))
            }
        }
    }

    async fn handshake<S>(&self, stream: S, target_host: &str, pinned: &str) -> Result<Handle<Verifier>, SshError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let presented = Arc::new(std::sync::Mutex::new(None));
        let verifier = Verifier {
            host: target_host.into(),
            expected: parse_pinned(target_host, pinned)?,
            presented: presented.clone(),
        };
        let fut = client::connect_stream(self.config(), stream, verifier);
        match tokio::time::timeout(self.settings.connect_timeout, fut).await {
            Ok(Ok(h)) => Ok(h),
            Ok(Err(e)) => match presented.lock().expect("lock").take() {
                Some(p) => Err(SshError::HostKeyMismatch {
                    host: target_host.into(),
                    expected: parse_pinned(target_host, pinned)?.fingerprint(russh::keys::HashAlg::Sha256).to_string(),
                    presented: p,
                }),
                None => Err(SshError::Connect { host: target_host.into(), reason: e.to_string() }),
            },
            Err(_) => Err(SshError::Connect { host: target_host.into(), reason: "SSH handshake timed out".into() }),
        }
    }

    async fn tcp(&self, host: &str, address: &str, port: u16) -> Result<tokio::net::TcpStream, SshError> {
        let connect = tokio::net::TcpStream::connect((address, port));
        let s = tokio::time::timeout(self.settings.connect_timeout, connect)
            .await
            .map_err(|_| SshError::Connect { host: host.into(), reason: "connection timed out".into() })?
            .map_err(|e| SshError::Connect { host: host.into(), reason: e.to_string() })?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    async fn connect_via(&self, jump: &JumpHost, t: &SshTarget) -> Result<Handle<Verifier>, SshError> {
        let jlabel = format!("{}@{}:{} (jump host)", jump.user, jump.address, jump.port);
        let stream = self.tcp(&jlabel, &jump.address, jump.port).await?;
        let mut jh = self.handshake(stream, &jlabel, &jump.host_public_key).await?;
        self.authenticate(&mut jh, &jlabel, &jump.user).await?;
        let ch = jh
            .channel_open_direct_tcpip(t.address.clone(), t.port as u32, "127.0.0.1", 0)
            .await
            .map_err(|e| SshError::Connect { host: host_label(t), reason: format!("through {jlabel}: {e}") })?;
        // The jump session must outlive the tunnelled one: keep its handle alive in a task
        // that ends when the tunnel does.
        let label = host_label(t);
        let h = self.handshake(ch.into_stream(), &label, &t.host_public_key).await?;
        tokio::spawn(async move {
            let jh = jh;
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if jh.is_closed() {
                    break;
                }
            }
        });
        Ok(h)
    }

    async fn connect(&self, t: &SshTarget) -> Result<Handle<Verifier>, SshError> {
        let label = host_label(t);
        let mut h = match &t.jump {
            Some(j) => self.connect_via(j, t).await?,
            None => {
                let stream = self.tcp(&label, &t.address, t.port).await?;
                self.handshake(stream, &label, &t.host_public_key).await?
            }
        };
        self.authenticate(&mut h, &label, &t.user).await?;
        Ok(h)
    }

    /// The machine's session, connecting (with retries for connection failures) if needed.
    async fn session(&self, m: &Machine) -> Result<Arc<Handle<Verifier>>, SshError> {
        if let Some(h) = self.sessions.lock().await.get(&m.name)
            && !h.is_closed()
        {
            return Ok(h.clone());
        }
        let attempt = || async { self.connect(&m.ssh).await };
        let h = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(500))
                    .with_max_delay(Duration::from_secs(10))
                    .with_max_times(self.settings.connect_attempts.saturating_sub(1)),
            )
            .when(SshError::is_connection)
            .notify(|e, d| {
                self.events.log(&m.name, LogLevel::Debug, &format!("retrying in {d:?}: {e}"), &[]);
            })
            .await?;
        let h = Arc::new(h);
        self.sessions.lock().await.insert(m.name.clone(), h.clone());
        Ok(h)
    }

    /// Connects, retrying until `deadline` (machines may still be booting).
    pub async fn wait_reachable(&self, m: &Machine, deadline: Duration) -> Result<(), SshError> {
        let start = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            match self.session(m).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_connection() && start.elapsed() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn command_line(&self, m: &Machine, root: bool, inner: &str) -> String {
        if root && m.ssh.user != "root" { format!("sudo -n -- {inner}") } else { inner.to_string() }
    }

    async fn exec(
        &self,
        m: &Machine,
        what: &str,
        command: String,
        stdin: Vec<u8>,
        timeout: Duration,
        quiet: bool,
    ) -> Result<Output, SshError> {
        let _permit = self.limit.acquire().await.expect("semaphore is never closed");
        let h = self.session(m).await?;
        let host = m.name.clone();
        let chan_err = |e: russh::Error| SshError::Channel { host: host.clone(), reason: e.to_string() };
        let run = async {
            let mut ch = h.channel_open_session().await.map_err(chan_err)?;
            ch.exec(true, command.as_bytes()).await.map_err(chan_err)?;
            if !stdin.is_empty() {
                ch.data(&stdin[..]).await.map_err(chan_err)?;
            }
            ch.eof().await.map_err(chan_err)?;
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut status = None;
            // One line buffer per stream: interleaved chunks of stdout and stderr must not mix
            // into lines, or a secret split between them would escape the redactor.
            let (mut pending_out, mut pending_err) = (String::new(), String::new());
            while let Some(msg) = ch.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        out.extend_from_slice(&data);
                        if !quiet {
                            self.stream_lines(&m.name, &mut pending_out, &data);
                        }
                    }
                    ChannelMsg::ExtendedData { data, .. } => {
                        err.extend_from_slice(&data);
                        self.stream_lines(&m.name, &mut pending_err, &data);
                    }
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    _ => {}
                }
            }
            for rest in [pending_out, pending_err] {
                if !rest.is_empty() {
                    self.events.log(
                        &m.name,
                        LogLevel::Debug,
                        &crate::text::printable(&self.redactor.redact(&rest)),
                        &[],
                    );
                }
            }
            Ok::<_, SshError>(Output {
                status: status.unwrap_or(255),
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
            })
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(SshError::Timeout { host: m.name.clone(), what: what.into(), timeout }),
        }
    }

    /// Streams a command's output to the debug log, one redacted line at a time.
    fn stream_lines(&self, source: &str, pending: &mut String, data: &[u8]) {
        pending.push_str(&String::from_utf8_lossy(data));
        while let Some(i) = pending.find('\n') {
            let line: String = pending.drain(..=i).collect();
            let line = line.trim_end();
            if !line.is_empty() {
                self.events.log(source, LogLevel::Debug, &crate::text::printable(&self.redactor.redact(line)), &[]);
            }
        }
    }

    /// Runs a script; returns its output whatever the exit status.
    pub async fn run_unchecked(&self, m: &Machine, s: &Script) -> Result<Output, SshError> {
        self.events.log(&m.name, LogLevel::Debug, &format!("run: {}", s.what), &[]);
        let cmd = self.command_line(m, s.root, "bash -s");
        let body = format!("set -o pipefail\n{}\n", s.body);
        let out = self
            .exec(m, &s.what, cmd, body.into_bytes(), s.timeout.unwrap_or(self.settings.command_timeout), s.quiet)
            .await;
        // stdout is read by the callers (JSON, versions); stderr only ever reaches a person.
        out.map(|o| Output {
            stdout: self.redactor.redact(&o.stdout),
            stderr: crate::text::printable(&self.redactor.redact(&o.stderr)),
            status: o.status,
        })
        .map_err(|e| self.redact_error(e))
    }

    /// Runs a script and fails unless it exits 0.
    pub async fn run(&self, m: &Machine, s: &Script) -> Result<Output, SshError> {
        let out = self.run_unchecked(m, s).await?;
        if out.status == 0 {
            return Ok(out);
        }
        // Why it failed is on stderr: its last lines, and stdout's only where stderr says
        // nothing (a long apt log on stdout hid the error before).
        let lines =
            |t: &str| -> Vec<String> { t.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect() };
        let (err, std) = (lines(&out.stderr), lines(&out.stdout));
        let tail = if err.is_empty() { std } else { err };
        let stderr = crate::text::printable(&tail[tail.len().saturating_sub(5)..].join(" | "));
        Err(SshError::Failed { host: m.name.clone(), what: s.what.clone(), status: out.status, stderr })
    }

    /// Writes a file atomically with `mode` (as root), creating its directory.
    pub async fn upload(&self, m: &Machine, path: &str, mode: u32, data: &[u8]) -> Result<(), SshError> {
        let q = shell_quote(path);
        let inner = format!(
            "sh -c 'umask 077 && mkdir -p \"$(dirname \"$1\")\" && cat > \"$1.hacluster-tmp\" && chmod {mode:o} \"$1.hacluster-tmp\" && mv -f \"$1.hacluster-tmp\" \"$1\"' sh {q}"
        );
        let cmd = self.command_line(m, true, &inner);
        self.events.log(&m.name, LogLevel::Debug, &format!("upload {path} ({} bytes, mode {mode:o})", data.len()), &[]);
        let out = self
            .exec(m, &format!("upload {path}"), cmd, data.to_vec(), self.settings.command_timeout, true)
            .await
            .map_err(|e| self.redact_error(e))?;
        if out.status != 0 {
            return Err(SshError::Failed {
                host: m.name.clone(),
                what: format!("upload {path}"),
                status: out.status,
                stderr: crate::text::printable(&self.redactor.redact(out.stderr.trim())),
            });
        }
        Ok(())
    }

    /// A file's bytes (read as root), never logged nor redacted: it travels as base64, which no
    /// redaction pattern can match, and is decoded here.
    pub async fn download(&self, m: &Machine, path: &str) -> Result<Vec<u8>, SshError> {
        let q = shell_quote(path);
        let cmd = self.command_line(m, true, &format!("base64 -w0 -- {q}"));
        self.events.log(&m.name, LogLevel::Debug, &format!("download {path}"), &[]);
        let what = format!("download {path}");
        let out = self
            .exec(m, &what, cmd, Vec::new(), self.settings.command_timeout, true)
            .await
            .map_err(|e| self.redact_error(e))?;
        if out.status != 0 {
            let stderr = crate::text::printable(&self.redactor.redact(out.stderr.trim()));
            return Err(SshError::Failed { host: m.name.clone(), what, status: out.status, stderr });
        }
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(out.stdout.trim()).map_err(|e| SshError::Failed {
            host: m.name.clone(),
            what,
            status: 0,
            stderr: format!("its base64 does not decode: {e}"),
        })
    }

    fn redact_error(&self, e: SshError) -> SshError {
        match e {
            SshError::Failed { host, what, status, stderr } => {
                SshError::Failed { host, what, status, stderr: crate::text::printable(&self.redactor.redact(&stderr)) }
            }
            // A reason may quote what the other end sent (its version string, a banner).
            SshError::Connect { host, reason } => {
                SshError::Connect { host, reason: crate::text::printable(&self.redactor.redact(&reason)) }
            }
            SshError::Channel { host, reason } => {
                SshError::Channel { host, reason: crate::text::printable(&self.redactor.redact(&reason)) }
            }
            other => other,
        }
    }

    /// Drops the machine's connection (after a reboot or a chaos test).
    pub async fn forget(&self, m: &Machine) {
        if let Some(h) = self.sessions.lock().await.remove(&m.name) {
            let _ = h.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }

    pub async fn close(&self) {
        let all: Vec<_> = self.sessions.lock().await.drain().map(|(_, h)| h).collect();
        for h in all {
            let _ = h.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }
}

/// Single-quotes a string for POSIX sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}

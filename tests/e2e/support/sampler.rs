//! What the day-2 tests do around a run: kill it with SIGKILL at a named point, and sample the
//! API and a Service with `scripts/lab sample` meanwhile.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Scratch, eventually, repo};

/// Runs `hacluster ARGS` until it prints a line containing `line` (on stderr), runs
/// `before_kill` (a wait, or a wait for a condition on the nodes), then SIGKILLs it.
pub(crate) fn kill_at(s: &Scratch, args: &[&str], line: &str, before_kill: impl FnOnce()) {
    let mut child = s.cmd(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = Vec::new();
    for l in stderr.lines().map_while(Result::ok) {
        let found = l.contains(line);
        said.push(l);
        if found {
            break;
        }
    }
    assert!(said.last().is_some_and(|l| l.contains(line)), "ended before `{line}`:\n{}", said.join("\n"));
    before_kill();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// `scripts/lab sample`, stopped (and its report read) by `finish`.
pub(crate) struct Sampler {
    child: Child,
    out: std::path::PathBuf,
    stop: std::path::PathBuf,
    started: Instant,
}

impl Sampler {
    pub(crate) fn start(s: &Scratch, kubeconfig: &std::path::Path, service: &str) -> Sampler {
        let (out, stop) = (s.dir.path().join("samples.json"), s.dir.path().join("samples.stop"));
        let child = Command::new(repo().join("scripts/lab"))
            .arg("sample")
            .arg(kubeconfig)
            .arg("/api/v1/namespaces/default/services/web")
            .arg(service)
            .arg(&out)
            .arg(&stop)
            .spawn()
            .unwrap();
        eventually("the sampler's first report", Duration::from_secs(120), || {
            std::fs::read_to_string(&out).map_err(|e| e.to_string())
        });
        Sampler { child, out, stop, started: Instant::now() }
    }

    pub(crate) fn finish(mut self) -> (Value, f64) {
        std::fs::write(&self.stop, "").unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "scripts/lab sample failed");
        let secs = self.started.elapsed().as_secs_f64();
        (serde_json::from_str(&std::fs::read_to_string(&self.out).unwrap()).unwrap(), secs)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, "");
        let _ = self.child.wait();
    }
}

//! Long node operations (`kubeadm init`, `kubeadm join`) as detached jobs.
//!
//! A command run over SSH dies with the connection: when hacluster is killed, or the network
//! drops, kubeadm loses its stdout and dies at its next line of output — halfway through a
//! join, after kubelet.conf was written and perhaps after its etcd member was added. So these
//! operations are started once, run by the node on its own (`setsid`, holding a `flock` for as
//! long as they run), and leave their exit code in a file. Whoever runs next — this run, or a
//! later `up` after a crash — waits for a running job or reads its result instead of starting
//! it again. A job that failed, or ended without a result (the node rebooted), is started again
//! with `HACLUSTER_JOB_RETRY=1`, so its script can clean up first.
//!
//! Every job records which cluster's bootstrap ran it (`owner`): the records of another cluster
//! on a reused machine are neither resumed, nor retried, nor taken for this cluster's success.
//! While that cluster's job runs or what it made is there, the node is left alone; once it was
//! reset, the job starts as on a fresh node. Records without an owner are another cluster's,
//! except for a cluster whose state predates owners.
//!
//! Layout on the node: `/etc/kubernetes/hacluster/jobs/<name>/{run.sh,log,rc,lock,attempted,owner}`,
//! root only (the log holds what kubeadm prints, join commands included).

use std::time::Duration;

use super::BootstrapError;
use super::kubeadm::NODE_DIR;
use crate::infra::Machine;
use crate::ssh::{Executor, Script};

/// What a finished job left.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Everything the job printed (redacted).
    pub log: String,
    /// `true` when this call started it; `false` when an earlier run had (it ran, or finished,
    /// without us).
    pub started_here: bool,
}

fn dir(name: &str) -> String {
    format!("{NODE_DIR}/jobs/{name}")
}

/// A kind of job on a node, and the bootstrap it belongs to.
pub struct Job<'a> {
    pub name: &'a str,
    /// The file a success leaves (and a reset removes).
    pub proof: &'a str,
    /// The cluster's bootstrap identity (`BootstrapRecord::id`).
    pub owner: &'a str,
    /// Whether records without an owner are this cluster's: only on a node that a cluster
    /// whose state predates owners records as set up (its records were written without one).
    pub adopt_unowned: bool,
}

impl Job<'_> {
    /// Shell that sets `$d` to the job's directory and, when another cluster's bootstrap owns
    /// what is there, `$foreign` to 1 and `$whose` to that owner.
    fn locate(&self) -> String {
        format!("d={}\n{}", dir(self.name), foreign_test(self.owner, self.adopt_unowned))
    }
}

/// Shell that, for the job directory `$d`, sets `$foreign` to 1 and `$whose` to its owner when
/// another cluster's bootstrap owns it (`owner` is ours; records without an owner are ours only
/// when `adopt_unowned`). Node preparation asks it of every job directory on a node.
pub(crate) fn foreign_test(owner: &str, adopt_unowned: bool) -> String {
    format!(
        r#"foreign=""
whose=""
if [ -f "$d/owner" ]; then
  whose=$(cat "$d/owner")
  if [ "$whose" != {owner} ]; then foreign=1; fi
elif [ -d "$d" ] && [ -z "{adopt}" ]; then
  foreign=1
  whose="a cluster made by an earlier hacluster version"
fi
"#,
        owner = crate::ssh::shell_quote(owner),
        adopt = if adopt_unowned { "1" } else { "" }
    )
}

/// The marker that ends the job's status line, after its new log output.
const STATUS: &str = "@@hacluster-job";

/// Where a job stands on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Never started there (or its success was undone since: its proof is gone).
    None,
    /// No record of the job, but its proof exists: the node was set up by something else — or
    /// by hacluster, if the cluster's state says so and the node lost its job records.
    Unrecorded,
    Running,
    /// Ended with exit code 0, and its proof still exists.
    Succeeded,
    /// Ended with a non-zero exit code.
    Failed,
    /// Started, but ended without a result (the node restarted, or the job was killed).
    Lost,
    /// Another cluster's bootstrap ran it (named), and it is running or what it made is there.
    Foreign(String),
}

/// Where `job` stands on `m`. Another cluster's records count as none once the node was reset.
pub async fn status(exec: &Executor, m: &Machine, job: &Job<'_>) -> Result<Status, BootstrapError> {
    let (name, locate) = (job.name, job.locate());
    let script = format!(
        r#"{locate}if [ ! -d "$d" ]; then
  if [ -e {proof} ]; then echo unrecorded; else echo none; fi
  exit 0
fi
exec 9>>"$d/lock"
if [ -n "$foreign" ]; then
  if ! flock -n 9 || [ -e {proof} ]; then echo "foreign $whose"; else echo none; fi
elif ! flock -n 9; then echo running
elif [ -f "$d/rc" ]; then
  if [ "$(cat "$d/rc")" != 0 ]; then echo failed
  elif [ -e {proof} ]; then echo succeeded
  else echo none; fi
elif [ -f "$d/attempted" ]; then echo lost
elif [ -e {proof} ]; then echo unrecorded
else echo none; fi
"#,
        proof = crate::ssh::shell_quote(job.proof)
    );
    let out = exec.run(m, &Script::root(format!("{name}: status"), script)).await?;
    Ok(match out.stdout.trim() {
        "running" => Status::Running,
        "succeeded" => Status::Succeeded,
        "failed" => Status::Failed,
        "lost" => Status::Lost,
        "unrecorded" => Status::Unrecorded,
        s if s.starts_with("foreign") => Status::Foreign(s["foreign".len()..].trim().to_string()),
        _ => Status::None,
    })
}

/// A file the job needs, written (as root, atomically, with `mode`) when the job is started.
pub struct File<'a> {
    pub path: &'a str,
    pub mode: u32,
    pub content: &'a [u8],
}

/// Starts `job` with `body` unless it already succeeded or is running, then waits (up to
/// `limit`) for it to end. `Ok` only when it exited 0. `files` are written just before a start,
/// in the same round trip (they may hold secrets: they travel inside the SSH channel and land
/// with their mode, never in a log).
/// The job body runs with `HACLUSTER_JOB_DIR` set and must `touch "$HACLUSTER_JOB_DIR/attempted"`
/// once it has decided to act (after any refusal): only an attempt that got that far makes the
/// next start a retry (`HACLUSTER_JOB_RETRY=1`, which may clean up). A stored success counts
/// only while `proof` exists; without it (the node was reset since) the job starts afresh.
pub async fn run(
    exec: &Executor,
    m: &Machine,
    job: &Job<'_>,
    body: &str,
    files: &[File<'_>],
    limit: Duration,
) -> Result<Finished, BootstrapError> {
    use base64::Engine as _;
    let (name, proof, locate) = (job.name, job.proof, job.locate());
    let d = dir(name);
    let mut write_files = String::new();
    for f in files {
        let q = crate::ssh::shell_quote(f.path);
        let b64 = base64::engine::general_purpose::STANDARD.encode(f.content);
        write_files.push_str(&format!(
            "mkdir -p \"$(dirname {q})\"\n(umask 077; base64 -d > {q}.hacluster-tmp <<'HACLUSTER_FILE_EOF'\n{b64}\nHACLUSTER_FILE_EOF\n)\nchmod {mode:o} {q}.hacluster-tmp\nmv -f {q}.hacluster-tmp {q}\n",
            mode = f.mode
        ));
    }
    // The launcher holds the job's lock (fd 9) and hands it to the detached job, which keeps it
    // until it ends; the job's own commands run with fd 9 closed, so a daemon it starts (the
    // kubelet) cannot hold the lock after the job is over.
    let launch = format!(
        r#"set -eu
d={d}
mkdir -p "$d"
chmod 700 "$d"
exec 9>>"$d/lock"
if ! flock -n 9; then
  {locate}if [ -n "$foreign" ]; then echo "foreign running $whose"; else echo running; fi
  exit 0
fi
# Holding the lock, no job runs: a result file is final (a job writes it before it lets go),
# and the owner is the one that started what is there.
{locate}if [ -n "$foreign" ]; then
  # Another cluster's: left as it is while what its job made is there; once the node was reset,
  # nothing of its records is ours to resume or retry.
  if [ -e {proof} ]; then echo "foreign made $whose"; exit 0; fi
  mv -f "$d/log" "$d/log.previous" 2>/dev/null || true
  rm -f "$d/rc" "$d/attempted"
fi
printf '%s\n' {owner} > "$d/owner.tmp"
mv -f "$d/owner.tmp" "$d/owner"
if [ -f "$d/rc" ]; then
  if [ "$(cat "$d/rc")" = 0 ]; then
    if [ -e {proof} ]; then echo finished; exit 0; fi
    # It succeeded once, but what it made is gone (kubeadm reset): a new start, not a retry.
    rm -f "$d/attempted"
  fi
  mv -f "$d/log" "$d/log.previous" 2>/dev/null || true
  rm -f "$d/rc"
fi
{write_files}retry=""
if [ -f "$d/attempted" ]; then retry=1; fi
cat > "$d/run.sh" <<'HACLUSTER_JOB_EOF'
{body}
HACLUSTER_JOB_EOF
: > "$d/log"
HACLUSTER_JOB_RETRY="$retry" HACLUSTER_JOB_DIR="$d" setsid sh -c 'bash "$1/run.sh" >"$1/log" 2>&1 9>&-; echo $? >"$1/rc.tmp"; mv -f "$1/rc.tmp" "$1/rc"' job "$d" </dev/null >/dev/null 2>&1 &
echo started
"#,
        proof = crate::ssh::shell_quote(proof),
        owner = crate::ssh::shell_quote(job.owner)
    );
    let out = exec.run(m, &Script::root(format!("{name}: start"), launch)).await?;
    let answer = out.stdout.trim();
    let foreign = |whose: &str, what: String| {
        step(name, m, format!("{what} (another cluster's bootstrap: `{whose}`); hacluster leaves it alone"))
    };
    if let Some(whose) = answer.strip_prefix("foreign running ") {
        return Err(foreign(whose, format!("another cluster is running {name} on this node")));
    }
    if let Some(whose) = answer.strip_prefix("foreign made ") {
        return Err(foreign(
            whose,
            format!(
                "this node is part of another cluster, whose {name} left {proof} here; free the machine with `kubeadm reset -f` if it should be part of this cluster"
            ),
        ));
    }
    let started_here = match answer {
        "finished" => false,
        "running" => false,
        "started" => true,
        other => return Err(step(name, m, format!("unexpected answer from the job launcher: `{other}`"))),
    };
    // Waits on the node for up to 20 s at a time, then prints the log's new lines and a
    // status. Only whole lines while the job runs: each line reaches the redactor whole, so a
    // secret is never split between two reads. The wait is on the job's lock, which the job
    // holds until it has written its result: the node wakes the moment the job ends, with no
    // polling loop (a `sleep` every 0.2 s, on every node at once, while the joins need the CPU).
    let deadline = tokio::time::Instant::now() + limit;
    let mut next_line: u64 = 1;
    let mut log = String::new();
    loop {
        let wait = format!(
            r#"d={d}
# Gone with its directory (/etc/kubernetes wiped): no result will come.
if [ ! -d "$d" ]; then printf '\n{STATUS} lost {from}\n'; exit 0; fi
[ -f "$d/rc" ] || flock -w 20 "$d/lock" true 2>/dev/null || true
if [ -f "$d/rc" ]; then s="rc=$(cat "$d/rc")"
elif flock -n "$d/lock" true; then
  # Free lock: the job ended. It writes its result before letting go, so look once more.
  if [ -f "$d/rc" ]; then s="rc=$(cat "$d/rc")"; else s=lost; fi
else s=running; fi
next={from}
if [ "$s" = running ]; then
  n=$(wc -l <"$d/log" 2>/dev/null || echo 0)
  if [ "$n" -ge {from} ]; then sed -n "{from},${{n}}p" "$d/log"; next=$((n+1)); fi
else
  tail -n +{from} "$d/log" 2>/dev/null || true
fi
printf '\n{STATUS} %s %s\n' "$s" "$next"
"#,
            from = next_line
        );
        let out = exec.run(m, &Script::root(format!("{name}: wait"), wait).timeout(Duration::from_secs(60))).await?;
        let (new, status) = out.stdout.rsplit_once(&format!("\n{STATUS} ")).unwrap_or((out.stdout.as_str(), ""));
        log.push_str(new);
        let mut words = status.split_whitespace();
        let (state, next) = (words.next().unwrap_or(""), words.next().and_then(|s| s.parse().ok()));
        next_line = next.unwrap_or(next_line);
        match state {
            "rc=0" => return Ok(Finished { log, started_here }),
            s if s.starts_with("rc=") => {
                let shown = crate::text::printable(&log);
                let tail: Vec<&str> = shown.lines().filter(|l| !l.trim().is_empty()).collect();
                let tail = tail[tail.len().saturating_sub(6)..].join(" | ");
                return Err(step(
                    name,
                    m,
                    format!(
                        "exited with {} on the node: {tail} (full log in {d}/log on the node; `hacluster up` retries it)",
                        &s[3..]
                    ),
                ));
            }
            "lost" => {
                return Err(step(
                    name,
                    m,
                    format!(
                        "ended without a result (was the node restarted?); `hacluster up` starts it again after cleaning up (log in {d}/log)"
                    ),
                ));
            }
            _ => {}
        }
        if tokio::time::Instant::now() > deadline {
            return Err(step(
                name,
                m,
                format!(
                    "still running after {}s; it goes on on the node, and the next `hacluster up` waits for it",
                    limit.as_secs()
                ),
            ));
        }
    }
}

fn step(name: &str, m: &Machine, reason: String) -> BootstrapError {
    BootstrapError::Job { job: name.to_string(), node: m.name.clone(), reason }
}

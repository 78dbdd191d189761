//! Taking a control plane out of the API endpoint while its API server and etcd restart (an
//! upgrade, a certificate renewal), and putting it back: done on the node itself, so that it works behind any balancer that checks
//! the API server's health or retries a refused connection.
//!
//! The node refuses new connections to 6443 from other machines (an iptables rule of its own,
//! marked with a comment; local components reach their API server over `lo` and keep it). A
//! balancer's health check then fails and takes the server out (the libvirt backend's HAProxy,
//! and the lab's: /readyz every second, out after 2 failures), and a connection the balancer
//! opens meanwhile is refused at once and retried on another server (HAProxy: `retries 3`,
//! `option redispatch`). Connections already established are served until the API server,
//! stopped by its kubelet, shuts down gracefully. An AWS NLB retries nothing: its target is
//! not deregistered first, as the contract has no call for it yet (noted in `plan`).

use std::time::Duration;

use crate::bootstrap::BootstrapError;
use crate::events::{Events, LogLevel};
use crate::infra::Machine;
use crate::ssh::{Executor, Script};

/// How `plan` and `upgrade` describe the drain.
pub const DESCRIPTION: &str = "on the node: new connections to 6443 from other machines are refused while its API server and etcd restart; a balancer that checks /readyz (HAProxy: every 1 s, out after 2 failures) takes it out, and one that retries refused connections (HAProxy: retries 3, redispatch) sends them to another control plane. Not yet a backend call: an AWS NLB target is not deregistered first, and requests it sends to the member may fail until its health check notices";

/// Long enough for HAProxy's check (1 s interval, 2 failures to go out, 2 successes to come
/// back) to see a change, with a second to spare.
pub const SETTLE: Duration = Duration::from_secs(4);

const RULE: &str = "INPUT ! -i lo -p tcp --dport 6443 -m conntrack --ctstate NEW -m comment --comment hacluster-endpoint-drain -j REJECT --reject-with tcp-reset";

/// Shell that takes the node out (idempotent: one rule, whatever the number of runs).
pub fn out() -> String {
    format!("set -eu\niptables -C {RULE} 2>/dev/null || iptables -I {RULE}\necho drained\n")
}

/// Shell that puts the node back (every copy of the rule goes); prints `restored` when it was
/// out, `serving` when it was not.
pub fn back() -> String {
    format!("set -eu\nwas=serving\nwhile iptables -D {RULE} 2>/dev/null; do was=restored; done\necho \"$was\"\n")
}

/// How long a restarted control plane may take to answer again.
pub const READY_LIMIT: Duration = Duration::from_secs(300);

/// The local API server answers /readyz and the local etcd member is healthy.
const LOCAL_READY: &str = "a=$(curl -sk --max-time 3 https://127.0.0.1:6443/readyz 2>/dev/null || true); e=$(curl -fsS --max-time 3 http://127.0.0.1:2381/health 2>/dev/null || true); case \"$e\" in *'\"true\"'*) e=ok ;; esac; echo \"$a $e\"";

/// Takes control plane `m` out of the endpoint, and gives the balancer time to notice.
pub async fn take_out(exec: &Executor, events: &dyn Events, m: &Machine) -> Result<(), BootstrapError> {
    exec.run(m, &Script::root("out of the endpoint", out())).await?;
    events.log(
        "drain",
        LogLevel::Info,
        &format!(
            "{}: out of the endpoint (new connections refused); waiting {} s for the balancer",
            m.name,
            SETTLE.as_secs()
        ),
        &[],
    );
    tokio::time::sleep(SETTLE).await;
    Ok(())
}

/// Once its API server and etcd member answer, control plane `m` goes back into the endpoint
/// (if it was out), and the balancer gets time to take it back before another goes out.
pub async fn put_back(exec: &Executor, events: &dyn Events, m: &Machine) -> Result<(), BootstrapError> {
    wait_local_ready(exec, m).await?;
    let out = exec.run(m, &Script::root("back into the endpoint", back())).await?;
    if out.stdout.trim() == "restored" {
        tokio::time::sleep(SETTLE).await;
        events.log("drain", LogLevel::Info, &format!("{}: /readyz and etcd answer; back in the endpoint", m.name), &[]);
    }
    Ok(())
}

/// Until `m`'s API server answers /readyz and its etcd member is healthy.
pub async fn wait_local_ready(exec: &Executor, m: &Machine) -> Result<(), BootstrapError> {
    let deadline = tokio::time::Instant::now() + READY_LIMIT;
    loop {
        let out = exec.run_unchecked(m, &Script::root("local readyz and etcd", LOCAL_READY).quiet()).await?;
        if out.stdout.trim() == "ok ok" {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(BootstrapError::Step {
                step: "control plane ready",
                node: m.name.clone(),
                reason: format!(
                    "its API server's /readyz and its etcd member did not both answer within {} s (last: `{}`); it stays out of the endpoint until a next run finds them answering",
                    READY_LIMIT.as_secs(),
                    crate::text::printable(out.stdout.trim())
                ),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

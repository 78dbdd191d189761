//! Taking a control plane out of the API endpoint while its API server and etcd restart (an
//! upgrade, a certificate renewal, an operator's `hacluster endpoint drain`), and putting it
//! back: first the backend's balancer is told (contract 0.1.2's `endpoint`, when the backend
//! exports it: the AWS backend deregisters the NLB target), then the node itself refuses new
//! connections, so that it works behind any balancer that checks the API server's health or
//! retries a refused connection, told or not.
//!
//! The node refuses new connections to 6443 from other machines (an iptables rule of its own,
//! marked with a comment; local components reach their API server over `lo` and keep it). A
//! balancer's health check then fails and takes the server out (the libvirt backend's HAProxy,
//! and the lab's: /readyz every second, out after 2 failures), and a connection the balancer
//! opens meanwhile is refused at once and retried on another server (HAProxy: `retries 3`,
//! `option redispatch`). Connections already established are served until the API server,
//! stopped by its kubelet, shuts down gracefully. A balancer that neither checks nor retries (an
//! AWS NLB retries nothing) must be told first: `plan` warns when its backend cannot be.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bootstrap::BootstrapError;
use crate::events::{Events, LogLevel};
use crate::infra::Machine;
use crate::model::ClusterSpec;
use crate::plugin::{ClusterInput, Grants, Plugin, PluginError};
use crate::ssh::{Executor, Script};
use crate::state::{ClusterState, NodeIdentity};

/// How `plan` and `upgrade` describe the drain on the node.
pub const DESCRIPTION: &str = "on the node: new connections to 6443 from other machines are refused while its API server and etcd restart; a balancer that checks /readyz (HAProxy: every 1 s, out after 2 failures) takes it out, and one that retries refused connections (HAProxy: retries 3, redispatch) sends them to another control plane";

/// The backend's side of the drain: its `endpoint` export, called with `apply`'s grants, the
/// backend's recorded state, and placeholders for the nodes' private host keys (it needs the
/// nodes' names, never their keys).
pub struct Balancer<'a> {
    plugin: &'a Plugin<'a>,
    spec: &'a ClusterSpec,
    identities: BTreeMap<String, NodeIdentity>,
    state: Option<Vec<u8>>,
    grants: Grants,
}

impl<'a> Balancer<'a> {
    /// `None` when the backend does not export `endpoint` (contract before 0.1.2).
    pub fn new(
        plugin: &'a Plugin<'a>,
        spec: &'a ClusterSpec,
        state: &ClusterState,
    ) -> Result<Option<Self>, PluginError> {
        if !plugin.drains_endpoint() {
            return Ok(None);
        }
        let grants = plugin
            .grants(spec)
            .map_err(|e| PluginError::Host { plugin: plugin.name().to_string(), reason: e.to_string() })?;
        let identities = crate::node_files::placeholder_identities(spec, &state.identities);
        Ok(Some(Balancer { plugin, spec, identities, state: state.backend_state.clone(), grants }))
    }

    /// The backend's name, for messages.
    pub fn backend(&self) -> &str {
        self.plugin.name()
    }

    async fn call(&self, node: &str, drain: bool) -> Result<String, BootstrapError> {
        let input = ClusterInput {
            spec: self.spec,
            identities: &self.identities,
            authorized_key: "",
            backend: self.plugin.name(),
        };
        let step = if drain { "drain-member" } else { "restore-member" };
        match self.plugin.endpoint_member(&input, self.state.as_deref(), self.grants.clone(), node, drain).await {
            Ok(Some(done)) => Ok(done),
            Ok(None) => Ok(String::new()),
            Err(e) => Err(BootstrapError::Step { step, node: node.to_string(), reason: e.to_string() }),
        }
    }

    /// Out of the backend's balancer; what the backend did.
    pub async fn drain(&self, node: &str) -> Result<String, BootstrapError> {
        self.call(node, true).await
    }

    /// Back into the backend's balancer; what the backend did.
    pub async fn restore(&self, node: &str) -> Result<String, BootstrapError> {
        self.call(node, false).await
    }
}

/// Takes control planes out of the endpoint and puts them back: the backend's balancer (when
/// it can be told) and the node.
pub struct Drain<'a> {
    pub exec: &'a Executor,
    pub events: &'a dyn Events,
    pub balancer: Option<&'a Balancer<'a>>,
}

impl Drain<'_> {
    fn log(&self, message: String) {
        self.events.log("drain", LogLevel::Info, &message, &[]);
    }

    /// The balancer told first (it returns once the member is drained), then the node; what
    /// the backend did, if it was told.
    pub async fn take_out(&self, m: &Machine) -> Result<Option<String>, BootstrapError> {
        let mut told = None;
        if let Some(b) = self.balancer {
            let done = b.drain(&m.name).await?;
            self.log(format!("{}: out of backend `{}`'s balancer: {done}", m.name, b.backend()));
            told = Some(done);
        }
        take_out(self.exec, self.events, m).await?;
        Ok(told)
    }

    /// Once its API server and etcd answer: the node, then the balancer (which returns once
    /// it finds the member healthy); what the backend did, if it was told.
    pub async fn put_back(&self, m: &Machine) -> Result<Option<String>, BootstrapError> {
        put_back(self.exec, self.events, m).await?;
        let mut told = None;
        if let Some(b) = self.balancer {
            let done = b.restore(&m.name).await?;
            self.log(format!("{}: back in backend `{}`'s balancer: {done}", m.name, b.backend()));
            told = Some(done);
        }
        Ok(told)
    }
}

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

/// Whether `m`'s API server answers /readyz and its etcd member is healthy, now.
pub async fn answers(exec: &Executor, m: &Machine) -> Result<bool, BootstrapError> {
    let out = exec.run_unchecked(m, &Script::root("local readyz and etcd", LOCAL_READY).quiet()).await?;
    Ok(out.stdout.trim() == "ok ok")
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

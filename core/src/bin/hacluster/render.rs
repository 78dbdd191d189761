//! Turning library results into what people (text, with source snippets) and machines (JSON)
//! read.

use std::fmt::Write as _;
use std::io::IsTerminal;

use hacluster::bootstrap::verify::{Chaos, Health};
use hacluster::config::{Checked, Diagnostic, Located, Severity, SourceFile};
use hacluster::infra::{Change, ChangeAction};
use hacluster::model::ports::{Peer, Protocol};
use hacluster::model::{ClusterSpec, Endpoint, NodeRole};
use hacluster::plan::Plan;
use hacluster::plugin::Plugin;
use hacluster::session::Provisioned;
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

use crate::Output;

/// Writes a result to stdout. A closed pipe ends the program quietly with
/// [`crate::exit::CLOSED_PIPE`]; any other write error is reported once and exits with USAGE
/// (an I/O error).
pub fn write_out(s: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(crate::exit::CLOSED_PIPE);
        }
        errln!("error: cannot write to standard output: {e}");
        std::process::exit(crate::exit::USAGE as i32);
    }
}

pub fn print_json(v: &serde_json::Value) {
    outln!("{}", serde_json::to_string_pretty(v).expect("JSON values serialize"));
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A config diagnostic as a miette report, so it prints with a snippet of the file.
#[derive(Debug)]
struct Report {
    d: Diagnostic,
    src: NamedSource<String>,
    label: Option<LabeledSpan>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.d.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.label.as_ref().map(|_| &self.src as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.label.clone().map(|l| Box::new(std::iter::once(l)) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
}

/// Prints every diagnostic to stderr: a `file:line:col` headline for grep and editors, then
/// the snippet, then a count.
pub fn diagnostics(c: &Checked) {
    if c.diagnostics.is_empty() {
        return;
    }
    let theme = if color() { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1).with_wrap_lines(false);
    let mut out = String::new();
    // Large inputs can produce thousands of findings; the first hundred with snippets are
    // enough to act on, the rest as one line each.
    for (i, d) in c.diagnostics.iter().enumerate() {
        let loc = Located::new(d, &c.source);
        let _ = writeln!(out, "{}", headline(&loc, i >= 100));
        if i < 100 {
            let report = to_report(d, &c.source);
            let _ = handler.render_report(&mut out, &report);
            out.push('\n');
        }
    }
    let errors = c.errors().count();
    let warnings = c.warnings().count();
    let _ = writeln!(out, "{}: {errors} error(s), {warnings} warning(s)", c.source.name);
    {
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), "{out}");
    }
}

/// `error[code]: file:line:col: field.path`, with the message when no snippet follows.
fn headline(l: &Located, with_message: bool) -> String {
    let sev = match l.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut h = format!("{sev}[{}]: {}:{}:{}: {}", l.code, l.file, l.line, l.column, l.path);
    if with_message {
        h.push_str(": ");
        h.push_str(&l.message);
    }
    h
}

fn to_report(d: &Diagnostic, src: &SourceFile) -> Report {
    let label = d.span.filter(|_| !src.text.is_empty()).map(|s| {
        let (offset, len) = src.byte_range(s);
        // Keep labels on one line so snippets stay short.
        let line_end = src.text[offset..].find('\n').map(|e| offset + e).unwrap_or(src.text.len());
        let len = len.min(line_end.saturating_sub(offset)).max(1);
        LabeledSpan::new(Some(d.path.to_string()), offset, len)
    });
    Report { d: d.clone(), src: NamedSource::new(&src.name, src.text.to_string()), label }
}

/// An error that stops a command (not a config finding): one line, or `{"error": ...}`.
pub fn error(e: &dyn std::error::Error, output: Output) {
    match output {
        Output::Json => print_json(&serde_json::json!({"error": e.to_string()})),
        Output::Text => errln!("error: {e}"),
    }
}

/// Config findings as JSON: `{file, valid, errors, warnings}`.
pub fn findings_json(c: &Checked) -> serde_json::Value {
    let located = c.located();
    serde_json::json!({
        "file": c.source.name,
        "valid": c.is_valid(),
        "errors": located.iter().filter(|d| d.severity == Severity::Error).collect::<Vec<_>>(),
        "warnings": located.iter().filter(|d| d.severity == Severity::Warning).collect::<Vec<_>>(),
    })
}

/// What `plan --out` wrote.
pub fn plan_files(dir: &std::path::Path, files: &hacluster::node_files::PlanFiles) {
    let count: usize = files.nodes.iter().map(|n| n.files.len()).sum();
    let mut s = format!(
        "\nFiles for the machines: {count} in {} ({} nodes; what each is: {}/README)\n",
        dir.display(),
        files.nodes.len(),
        dir.display()
    );
    for p in &files.placeholders {
        s += &format!("  placeholder: {} shown as {}\n", p.what, p.shown_as);
    }
    if let Some(why) = &files.backend_files_missing {
        s += &format!("  not written: the backend's own files ({why})\n");
    }
    out!("{s}");
}

pub fn changes(changes: &[Change]) {
    let mut s = String::from("\nInfrastructure changes (from the backend):\n");
    if changes.is_empty() {
        s.push_str("  none\n");
    }
    // Columns as wide as their longest entry: resource names grow with the cluster's name.
    let kind_w = changes.iter().map(|c| c.kind.len()).max().unwrap_or(0);
    let name_w = changes.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in changes {
        let _ = writeln!(s, "  {:<7} {:<kind_w$} {:<name_w$}  {}", c.action.to_string(), c.kind, c.name, c.detail);
    }
    let count = |a: ChangeAction| changes.iter().filter(|c| c.action == a).count();
    let _ = writeln!(
        s,
        "  {} to create, {} to update, {} to delete, {} unchanged",
        count(ChangeAction::Create),
        count(ChangeAction::Update),
        count(ChangeAction::Delete),
        count(ChangeAction::Keep)
    );
    out!("{s}");
}

pub fn infrastructure(spec: &ClusterSpec, plugin: &Plugin, p: &Provisioned) {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Provisioned cluster {} with backend {} (plugin {}, contract {})",
        spec.name,
        plugin.name(),
        plugin.info.version,
        plugin.contract()
    );
    let _ = writeln!(s, "API endpoint: {}", p.infrastructure.endpoint);
    let _ = writeln!(s, "Machines:");
    for m in &p.infrastructure.machines {
        let via = m.ssh.jump.as_ref().map(|j| format!(" via {}@{}:{}", j.user, j.address, j.port)).unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<32} {:<14} {:<16} ssh {}@{}:{}{}  {}",
            m.name,
            m.role.to_string(),
            m.private_address,
            m.ssh.user,
            m.ssh.address,
            m.ssh.port,
            via,
            m.provider_id
        );
    }
    let _ = writeln!(s, "State: {}", p.state_dir.join(hacluster::state::STATE_FILE).display());
    let _ = writeln!(s, "Pinned host keys: {}", p.state_dir.join("known_hosts").display());
    out!("{s}");
}

pub fn plugin_list(rows: &[serde_json::Value]) {
    if rows.is_empty() {
        outln!(
            "No plugins found. Built-in ones come from ./scripts/build-plugins; yours go in {}.",
            hacluster::plugin::discovery::user_dir().display()
        );
        return;
    }
    for r in rows {
        match r.get("error") {
            Some(e) => outln!(
                "{:<12} {}  (unusable: {})",
                r["name"].as_str().unwrap_or("?"),
                r["path"].as_str().unwrap_or("?"),
                e.as_str().unwrap_or("?")
            ),
            None => outln!(
                "{:<12} {:<8} contract {:<7} {:<8} {}",
                r["name"].as_str().unwrap_or("?"),
                r["info"]["version"].as_str().unwrap_or("?"),
                r["contract"].as_str().unwrap_or("?"),
                r["origin"].as_str().unwrap_or("?"),
                r["info"]["description"].as_str().unwrap_or("")
            ),
        }
    }
}

pub fn plugin_inspect(r: &serde_json::Value) {
    let mut s = String::new();
    let _ = writeln!(s, "name:        {}", r["name"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "version:     {}", r["info"]["version"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "contract:    hacluster:backend@{}", r["contract"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "description: {}", r["info"]["description"].as_str().unwrap_or(""));
    let supports: Vec<&str> = ["vip", "cloudLb", "multiHost", "dataDisks"]
        .into_iter()
        .filter(|k| r["info"]["supports"][k].as_bool() == Some(true))
        .collect();
    let _ = writeln!(s, "supports:    {}", if supports.is_empty() { "-".into() } else { supports.join(", ") });
    let files = if r["rendersFiles"].as_bool() == Some(true) {
        "renders the files it puts on machines (`files` export, shown by `plan --out`)"
    } else {
        "-"
    };
    let _ = writeln!(s, "files:       {files}");
    let _ = writeln!(s, "path:        {} ({})", r["path"].as_str().unwrap_or("?"), r["origin"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "sha256:      {}", r["sha256"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "imports (what it asks the host for):");
    for i in r["imports"].as_array().into_iter().flatten() {
        let _ =
            writeln!(s, "  {:<44} {}", i["interface"].as_str().unwrap_or("?"), i["capability"].as_str().unwrap_or("?"));
    }
    out!("{s}");
}

fn tolerates(n: u32) -> String {
    match n {
        1 => "1 failure".into(),
        n => format!("{n} failures"),
    }
}

pub fn summary_line(spec: &ClusterSpec) -> String {
    format!(
        "{} control plane(s) (etcd quorum {}, tolerates {}), {} worker(s), {} load balancer(s); endpoint: {}",
        spec.quorum.members(),
        spec.quorum.size(),
        tolerates(spec.quorum.tolerated_failures()),
        spec.workers.len(),
        spec.load_balancers.len(),
        spec.endpoint
    )
}

pub fn summary_json(spec: &ClusterSpec) -> serde_json::Value {
    serde_json::json!({
        "name": spec.name,
        "backend": spec.backend.name,
        "controlPlanes": spec.quorum.members(),
        "quorum": spec.quorum.size(),
        "toleratedFailures": spec.quorum.tolerated_failures(),
        "workers": spec.workers.len(),
        "loadBalancers": spec.load_balancers.len(),
        "endpoint": spec.endpoint,
        "kubernetesVersion": spec.kubernetes.version,
    })
}

fn role_title(r: NodeRole) -> &'static str {
    match r {
        NodeRole::ControlPlane => "Control planes",
        NodeRole::Worker => "Workers",
        NodeRole::LoadBalancer => "Load balancers",
    }
}

fn peer(p: Peer) -> &'static str {
    match p {
        Peer::ControlPlanes => "control planes",
        Peer::Workers => "workers",
        Peer::AllNodes => "all nodes",
        Peer::LoadBalancers => "load balancers",
        Peer::CloudLoadBalancer => "the backend's load balancer",
        Peer::Admins => "admin networks",
        Peer::NodePortClients => "NodePort clients",
        Peer::ApiClients => "API clients",
    }
}

pub fn plan(p: &Plan) {
    let mut s = String::new();
    let _ = writeln!(s, "Cluster {} — backend {}, Kubernetes {}", p.cluster, p.backend, p.kubernetes_version);
    let _ = writeln!(s, "API endpoint: {}", p.endpoint);
    let _ = writeln!(
        s,
        "Control plane: {} etcd member(s), quorum {}, tolerates {}",
        p.control_plane.members,
        p.control_plane.quorum,
        tolerates(p.control_plane.tolerated_failures)
    );
    let domains: Vec<String> = p.placement.control_planes_per_domain.iter().map(|(d, c)| format!("{d}: {c}")).collect();
    let _ = writeln!(
        s,
        "Placement: control planes per failure domain [{}]; survives the loss of {} whole domain(s)",
        domains.join(", "),
        p.placement.domain_failures_tolerated
    );
    if let Endpoint::CloudLoadBalancer { .. } = p.endpoint {
        let _ = writeln!(s, "  (the endpoint's DNS name is known once the backend has created the load balancer)");
    }
    for role in [NodeRole::ControlPlane, NodeRole::Worker, NodeRole::LoadBalancer] {
        let nodes: Vec<_> = p.nodes.iter().filter(|n| n.role == role).collect();
        if nodes.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{} ({}):", role_title(role), nodes.len());
        for n in nodes {
            let addr = n.address.map(|a| a.to_string()).unwrap_or_else(|| "(assigned)".into());
            let place = n.host.as_deref().or(n.failure_domain.as_deref()).unwrap_or("-");
            let init = if p.join_order.init == n.name { "  ← kubeadm init" } else { "" };
            let _ = writeln!(
                s,
                "  {:<32} {:<16} {:<14} {}{}{}",
                n.name.as_str(),
                addr,
                place,
                n.machine,
                if n.data_disks > 0 { format!(", {} data disk(s)", n.data_disks) } else { String::new() },
                init
            );
        }
    }
    let _ = writeln!(s, "\nSteps of `up`:");
    for (i, st) in p.steps.iter().enumerate() {
        let mode = if st.targets.len() > 1 { if st.parallel { " [parallel]" } else { " [one at a time]" } } else { "" };
        let _ = writeln!(s, "  {:>2}. {}{}", i + 1, st.description, mode);
    }
    let _ = writeln!(s, "\nPorts to open:");
    for r in &p.ports.rules {
        let ports = match r.protocol {
            Protocol::IpInIp => "IP protocol 4".to_string(),
            Protocol::Vrrp => "IP protocol 112 (VRRP)".to_string(),
            proto => {
                let name = if proto == Protocol::Tcp { "tcp" } else { "udp" };
                if r.ports.0 == r.ports.1 {
                    format!("{}/{name}", r.ports.0)
                } else {
                    format!("{}-{}/{name}", r.ports.0, r.ports.1)
                }
            }
        };
        let _ = writeln!(s, "  {:<15} {:<24} from {:<24} {}", r.on.to_string(), ports, peer(r.from), r.purpose);
    }
    out!("{s}");
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAILED" }
}

pub fn status(spec: &ClusterSpec, infra: &hacluster::infra::Infrastructure, completed: &[String], h: &Health) {
    let mut s = String::new();
    let _ = writeln!(s, "Cluster {} — endpoint {} ({})", spec.name, h.endpoint, mark(h.endpoint_ok));
    let _ = writeln!(s, "Machines:");
    for m in &infra.machines {
        let ready = if m.role == NodeRole::LoadBalancer {
            "-"
        } else if h.nodes_ready.contains(&m.name) {
            "Ready"
        } else {
            "not ready"
        };
        let _ = writeln!(s, "  {:<32} {:<14} {:<16} {}", m.name, m.role.to_string(), m.private_address, ready);
    }
    let _ = writeln!(s, "Control planes:");
    for c in &h.control_planes {
        let _ = writeln!(
            s,
            "  {:<32} apiserver {:<7} etcd {}{}",
            c.name,
            mark(c.apiserver),
            mark(c.etcd),
            c.problem.as_ref().map(|p| format!("  ({p})")).unwrap_or_default()
        );
    }
    let _ = writeln!(
        s,
        "etcd: {} of {} members healthy, quorum {} ({}), tolerates {} failure(s)",
        h.etcd_healthy,
        h.etcd_members,
        h.quorum,
        if h.quorum_ok { "kept" } else { "LOST" },
        h.tolerated_failures
    );
    match &h.etcd_member_list {
        Some(list) => {
            for m in list.iter().filter(|m| !m.started) {
                // kubeadm adds a joining control plane's member as a learner, which does not
                // vote; etcd takes one learner at a time, so it blocks every other join.
                let why = if m.learner { "a learner that never started" } else { "a voting member that never started" };
                let effect = if m.learner {
                    "it does not count toward the quorum, but etcd takes no other learner while it is there, so no other control plane can join"
                } else {
                    "it raises the quorum"
                };
                let _ = writeln!(
                    s,
                    "  etcd has {why} ({}): {effect}; `hacluster up` removes it before that node joins again",
                    m.peer_urls.join(", ")
                );
            }
        }
        None => {
            let _ = writeln!(s, "  (etcd's member list could not be read; the count is the configured one)");
        }
    }
    let _ = writeln!(
        s,
        "Bootstrap steps done: {}",
        if completed.is_empty() { "none".into() } else { completed.join(", ") }
    );
    out!("{s}");
}

pub fn verify(
    spec: &ClusterSpec,
    h: &Health,
    chaos: Option<&Result<Chaos, hacluster::session::RunError>>,
    asked: bool,
) {
    let mut s = String::new();
    let _ = writeln!(s, "Cluster {}:", spec.name);
    let _ = writeln!(s, "  API through the endpoint {:<30} {}", h.endpoint, mark(h.endpoint_ok));
    for c in &h.control_planes {
        let _ = writeln!(s, "  {:<40} apiserver {:<7} etcd {}", c.name, mark(c.apiserver), mark(c.etcd));
    }
    if h.quorum_ok {
        let _ = writeln!(
            s,
            "  etcd quorum kept: {} of {} healthy, {} needed; tolerates {} more failure(s)",
            h.etcd_healthy,
            h.etcd_members,
            h.quorum,
            h.etcd_healthy - h.quorum
        );
    } else {
        let _ = writeln!(
            s,
            "  etcd QUORUM LOST: {} of {} members healthy, {} needed — the cluster cannot accept writes until a member returns",
            h.etcd_healthy, h.etcd_members, h.quorum
        );
    }
    let _ = writeln!(s, "  nodes Ready: {} of {}", h.nodes_ready.len(), h.nodes_total);
    match chaos {
        Some(Ok(c)) => {
            let _ = writeln!(s, "Chaos: stopped {} (static pods and kubelet)", c.stopped);
            let _ = writeln!(
                s,
                "  API through the endpoint: {}, longest gap {:.1} s (limit {:.0} s), {} of {} samples failed",
                if c.api_answered { "kept" } else { "LOST" },
                c.api_gap_secs,
                c.api_gap_limit_secs,
                c.api_failures,
                c.api_samples
            );
            let _ = writeln!(
                s,
                "  etcd during: {} healthy, quorum {}",
                c.etcd_healthy_during,
                if c.quorum_kept { "kept" } else { "LOST" }
            );
            let _ = writeln!(s, "  restored: {} ({:.1} s)", mark(c.restored), c.restore_secs);
        }
        Some(Err(e)) => {
            let _ = writeln!(s, "Chaos: {e}");
        }
        None if asked => {
            let _ = writeln!(s, "Chaos: not run, the API or etcd quorum is already down");
        }
        None => {}
    }
    out!("{s}");
}

use std::fmt;

use hacluster::infra::{Change, ChangeAction};
use hacluster::model::ports::{Peer, Protocol};
use hacluster::model::{Endpoint, NodeRole};
use hacluster::node_files::PlanFiles;
use hacluster::plan::Plan;
use hacluster::plugin::NotFound;
use hacluster::session;
use serde::Serialize;

use super::open::{self, Backend};
use super::{ConfigArgs, HostArgs};
use crate::diagnostics::Findings;
use crate::error::{CliError, CliResult};
use crate::exit;
use crate::shell::Shell;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub host: HostArgs,
    /// Do not run the backend plugin: no provider or hypervisor calls, no credentials needed.
    /// Shows the topology, quorum, endpoint, ports and steps only.
    #[arg(long, conflicts_with_all = ["backend", "plugin"])]
    pub offline: bool,
    /// Also write every file `up` would put on each machine into DIR, one directory per node
    /// (kubeadm configs, cloud-init user-data, the node preparation script, the backend's own
    /// files such as HAProxy and keepalived configs), secrets replaced by placeholders, with a
    /// README saying what each file is. DIR must be new, empty, or an earlier plan output.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

/// `plan`: the cluster, what the backend would change, the steps of `up`, and with `--out` the
/// files `up` would put on each machine.
pub fn exec(shell: &Shell, args: &Args) -> CliResult {
    // A backend named explicitly must be there; an inferred one is optional for a plan.
    let backend = match (args.offline, args.config.explicit()) {
        (true, _) => Backend::Offline,
        (false, true) => Backend::Required,
        (false, false) => Backend::Optional,
    };
    open::with_config(shell, &args.config, &args.host, backend, async |cfg| {
        let spec = &cfg.spec;
        let root = args.host.state_root();
        // With an inferred backend, a plan whose backend cannot look (no daemon, no
        // credentials) still shows the topology and says why the changes are missing.
        let mut unavailable = None;
        let changes = match &cfg.plugin {
            Some(p) => match session::plan_changes(p, spec, &root).await {
                Ok(c) => Some(c),
                Err(e) if !args.config.explicit() => {
                    unavailable = Some(e.to_string());
                    None
                }
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let out = match &args.out {
            None => None,
            Some(dir) => {
                let no_backend = if args.offline {
                    Some("--offline: no backend plugin was run".to_string())
                } else {
                    unavailable.clone().or_else(|| cfg.missing.as_ref().map(|m| m.to_string()))
                };
                let plugin = if unavailable.is_some() { None } else { cfg.plugin.as_ref() };
                let (files, secrets) = session::plan_files(plugin, spec, &root, no_backend).await?;
                let secrets: Vec<(&'static str, &str)> = secrets.iter().map(|(w, s)| (*w, s.as_str())).collect();
                hacluster::node_files::write(dir, spec, &files, &secrets).map_err(|e| {
                    let usage = matches!(e, hacluster::node_files::OutError::NotOurs(_));
                    CliError::new(e, if usage { exit::USAGE } else { exit::FAILED })
                })?;
                Some(Written { files, dir: dir.display().to_string() })
            }
        };
        let balancer = session::balancer_drain(cfg.plugin.as_ref(), spec);
        let (upgrade, refused) = match session::planned_upgrade(spec, &root, &balancer) {
            Ok(u) => (u.map(|(plan, completed)| UpgradeView { plan, completed }), None),
            Err(e) => (None, Some(format!("{}: {e}", args.config.config.display()))),
        };
        let (removal, removal_refused) = match session::planned_removal(spec, &root) {
            Ok(r) => (r, None),
            Err(e) => (None, Some(format!("{}: {e}", args.config.config.display()))),
        };
        shell.diagnostics(&cfg.checked);
        shell.print(&Planned {
            removal,
            removal_refused: removal_refused.clone(),
            upgrade,
            upgrade_refused: refused.clone(),
            findings: Findings::of(&cfg.checked),
            plan: Plan::for_cluster(spec),
            changes,
            changes_unavailable: unavailable,
            out,
            missing: cfg.missing.as_ref(),
        });
        // The config asks for a version the cluster cannot be upgraded to, or a change of
        // membership that `up` refuses.
        if refused.is_some() || removal_refused.is_some() { Err(CliError::code(exit::INVALID)) } else { Ok(()) }
    })
}

/// The upgrade from the version the state records to the config's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpgradeView {
    #[serde(flatten)]
    plan: hacluster::upgrade::UpgradePlan,
    /// Steps an upgrade under way has finished.
    completed: Vec<String>,
}

fn upgrade_view(f: &mut fmt::Formatter<'_>, u: &UpgradeView) -> fmt::Result {
    writeln!(
        f,
        "\nUpgrade from {} to {} (`hacluster upgrade -c FILE` carries it out; `up` does not change the version):",
        u.plan.from, u.plan.to
    )?;
    for (i, s) in u.plan.steps.iter().enumerate() {
        let done = if u.completed.contains(&s.id) { " [done]" } else { "" };
        writeln!(f, "  {:>2}. {}{done}", i + 1, s.description)?;
    }
    writeln!(f, "  Endpoint drain: {}", u.plan.endpoint_drain)?;
    for w in &u.plan.warnings {
        writeln!(f, "  warning: {w}")?;
    }
    Ok(())
}

fn removal_view(f: &mut fmt::Formatter<'_>, r: &hacluster::membership::PlannedRemoval) -> fmt::Result {
    writeln!(
        f,
        "\nRemoval of nodes the config no longer lists (`hacluster up` carries it out, one node at a time; a control plane only from a healthy cluster):"
    )?;
    for (i, s) in r.steps.iter().enumerate() {
        let done = if r.completed.contains(&s.id) { " [done]" } else { "" };
        writeln!(f, "  {:>2}. {}{done}", i + 1, s.description)?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Planned<'a> {
    #[serde(flatten)]
    findings: Findings<'a>,
    plan: Plan,
    /// The nodes a running cluster has and the config no longer lists: what `up` does to
    /// remove them, step by step.
    #[serde(skip_serializing_if = "Option::is_none")]
    removal: Option<hacluster::membership::PlannedRemoval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removal_refused: Option<String>,
    /// The rolling upgrade to the config's version, when the state records another.
    #[serde(skip_serializing_if = "Option::is_none")]
    upgrade: Option<UpgradeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upgrade_refused: Option<String>,
    /// `None` when no backend looked.
    changes: Option<Vec<Change>>,
    /// Why an inferred backend could not look.
    #[serde(skip_serializing_if = "Option::is_none")]
    changes_unavailable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<Written>,
    /// Why there is no backend to look.
    #[serde(skip)]
    missing: Option<&'a NotFound>,
}

/// What `plan --out` wrote, and where.
#[derive(Serialize)]
struct Written {
    #[serde(flatten)]
    files: PlanFiles,
    dir: String,
}

impl fmt::Display for Planned<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        plan_view(f, &self.plan)?;
        match (&self.changes, &self.missing) {
            (Some(c), _) => changes_view(f, c)?,
            (None, _) if self.changes_unavailable.is_some() => writeln!(
                f,
                "\nInfrastructure changes: not shown, the backend could not look: {}\n(--backend NAME makes this an error; --offline skips the backend)",
                self.changes_unavailable.as_deref().unwrap_or_default()
            )?,
            (None, Some(nf)) => writeln!(f, "\nInfrastructure changes: not shown ({nf})")?,
            (None, None) => {}
        }
        if let Some(r) = &self.removal {
            removal_view(f, r)?;
        }
        if let Some(r) = &self.removal_refused {
            writeln!(f, "\nRemoval REFUSED: {r}")?;
        }
        if let Some(u) = &self.upgrade {
            upgrade_view(f, u)?;
        }
        if let Some(r) = &self.upgrade_refused {
            writeln!(f, "\nUpgrade REFUSED: {r}")?;
        }
        if let Some(w) = &self.out {
            files_view(f, &w.dir, &w.files)?;
        }
        Ok(())
    }
}

fn plan_view(f: &mut fmt::Formatter<'_>, p: &Plan) -> fmt::Result {
    writeln!(f, "Cluster {} — backend {}, Kubernetes {}", p.cluster, p.backend, p.kubernetes_version)?;
    writeln!(f, "API endpoint: {}", p.endpoint)?;
    writeln!(
        f,
        "Control plane: {} etcd member(s), quorum {}, tolerates {}",
        p.control_plane.members,
        p.control_plane.quorum,
        tolerates(p.control_plane.tolerated_failures)
    )?;
    let domains: Vec<String> = p.placement.control_planes_per_domain.iter().map(|(d, c)| format!("{d}: {c}")).collect();
    writeln!(
        f,
        "Placement: control planes per failure domain [{}]; survives the loss of {} whole domain(s)",
        domains.join(", "),
        p.placement.domain_failures_tolerated
    )?;
    if let Endpoint::CloudLoadBalancer { .. } = p.endpoint {
        writeln!(f, "  (the endpoint's DNS name is known once the backend has created the load balancer)")?;
    }
    for role in [NodeRole::ControlPlane, NodeRole::Worker, NodeRole::LoadBalancer] {
        let nodes: Vec<_> = p.nodes.iter().filter(|n| n.role == role).collect();
        if nodes.is_empty() {
            continue;
        }
        writeln!(f, "\n{} ({}):", role_title(role), nodes.len())?;
        for n in nodes {
            let addr = n.address.map(|a| a.to_string()).unwrap_or_else(|| "(assigned)".into());
            let place = n.host.as_deref().or(n.failure_domain.as_deref()).unwrap_or("-");
            let init = if p.join_order.init == n.name { "  ← kubeadm init" } else { "" };
            writeln!(
                f,
                "  {:<32} {:<16} {:<14} {}{}{}",
                n.name.as_str(),
                addr,
                place,
                n.machine,
                if n.data_disks > 0 { format!(", {} data disk(s)", n.data_disks) } else { String::new() },
                init
            )?;
        }
    }
    writeln!(f, "\nSteps of `up`:")?;
    for (i, st) in p.steps.iter().enumerate() {
        let mode = if st.targets.len() > 1 { if st.parallel { " [parallel]" } else { " [one at a time]" } } else { "" };
        writeln!(f, "  {:>2}. {}{}", i + 1, st.description, mode)?;
    }
    writeln!(f, "\nPorts to open:")?;
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
        writeln!(f, "  {:<15} {:<24} from {:<24} {}", r.on.to_string(), ports, peer(r.from), r.purpose)?;
    }
    Ok(())
}

fn changes_view(f: &mut fmt::Formatter<'_>, changes: &[Change]) -> fmt::Result {
    f.write_str("\nInfrastructure changes (from the backend):\n")?;
    if changes.is_empty() {
        f.write_str("  none\n")?;
    }
    // Columns as wide as their longest entry: resource names grow with the cluster's name.
    let kind_w = changes.iter().map(|c| c.kind.len()).max().unwrap_or(0);
    let name_w = changes.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in changes {
        writeln!(f, "  {:<7} {:<kind_w$} {:<name_w$}  {}", c.action.to_string(), c.kind, c.name, c.detail)?;
    }
    let count = |a: ChangeAction| changes.iter().filter(|c| c.action == a).count();
    writeln!(
        f,
        "  {} to create, {} to update, {} to delete, {} unchanged",
        count(ChangeAction::Create),
        count(ChangeAction::Update),
        count(ChangeAction::Delete),
        count(ChangeAction::Keep)
    )?;
    Ok(())
}

/// What `plan --out` wrote.
fn files_view(f: &mut fmt::Formatter<'_>, dir: &str, files: &PlanFiles) -> fmt::Result {
    let count: usize = files.nodes.iter().map(|n| n.files.len()).sum();
    writeln!(
        f,
        "\nFiles for the machines: {count} in {dir} ({} nodes; what each is: {dir}/README)",
        files.nodes.len()
    )?;
    for p in &files.placeholders {
        writeln!(f, "  placeholder: {} shown as {}", p.what, p.shown_as)?;
    }
    if let Some(why) = &files.backend_files_missing {
        writeln!(f, "  not written: the backend's own files ({why})")?;
    }
    Ok(())
}

pub fn tolerates(n: u32) -> String {
    match n {
        1 => "1 failure".into(),
        n => format!("{n} failures"),
    }
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

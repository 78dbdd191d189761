//! The operations behind the CLI, as library calls: open a config together with its backend
//! plugin, plan, provision, destroy. State is read and written here, under the cluster's lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::{self, Checked, LoadError, Options};
use crate::identity::{self, IdentityError};
use crate::infra::{Change, Infrastructure};
use crate::model::ClusterSpec;
use crate::plugin::grants::BadEgress;
use crate::plugin::{ClusterInput, Plugin, PluginError, PluginHost, discovery};
use crate::state::{ClusterState, PluginRecord, StateDir, StateError, StateLock};

mod membership;
pub use membership::{planned_removal, remove_dropped, replace};

/// How the user chose the backend.
#[derive(Debug, Clone)]
pub enum BackendSel {
    Named(String),
    Path(PathBuf),
    /// From the config (see `config::validate::infer_backend`).
    Inferred,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Grants(#[from] BadEgress),
    #[error(
        "cluster `{cluster}` was provisioned with backend `{was}`, not `{now}`; use --backend {was} (or `hacluster down --backend {was}` first)"
    )]
    BackendChanged { cluster: String, was: String, now: String },
    #[error("nothing is provisioned for cluster `{0}` (no state); there is nothing to do")]
    NoState(String),
    #[error("{0}")]
    Input(String),
    #[error("cluster `{0}` is provisioned but has no Kubernetes yet: run `hacluster up` first")]
    NotBootstrapped(String),
    #[error("{0}")]
    VersionChange(String),
}

impl SessionError {
    /// Usage and I/O problems (exit 2) versus failures of the operation itself (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SessionError::Load(_)
                | SessionError::Plugin(PluginError::NotFound(_))
                | SessionError::Plugin(PluginError::Read { .. })
                | SessionError::State(StateError::Busy { .. })
                | SessionError::State(StateError::Io { .. })
                | SessionError::Identity(IdentityError::NoPublicKey { .. })
                | SessionError::Grants(_)
                | SessionError::BackendChanged { .. }
                | SessionError::Input(_)
                | SessionError::NotBootstrapped(_)
                | SessionError::VersionChange(_)
        )
    }
}

/// A checked config and, when one could be found, its backend plugin.
pub struct Opened<'h> {
    pub checked: Checked,
    pub plugin: Option<Plugin<'h>>,
    /// Why there is no plugin, when one was looked for.
    pub missing: Option<discovery::NotFound>,
}

impl Opened<'_> {
    pub fn spec(&self) -> Option<&ClusterSpec> {
        if self.checked.is_valid() { self.checked.spec.as_ref() } else { None }
    }
}

/// Reads and checks the config for its backend. With `require_plugin`, a backend whose plugin
/// cannot be found is an error; otherwise the config is checked with the built-in profile of
/// that backend, without the plugin's own checks.
pub async fn open<'h>(
    host: &'h PluginHost,
    path: &Path,
    sel: &BackendSel,
    require_plugin: bool,
    opts: &Options,
) -> Result<Opened<'h>, SessionError> {
    let (named, found) = match sel {
        BackendSel::Named(n) => (Some(n.clone()), Some(discovery::resolve(n))),
        BackendSel::Path(p) => (None, Some(Ok(discovery::from_path(p)))),
        BackendSel::Inferred => (None, None),
    };
    let builtin = named.as_deref().map(crate::model::BackendProfile::builtin);
    let mut checked = config::load(path, &Options { backend: builtin.or(opts.backend.clone()), ..opts.clone() })?;
    let found = found.or_else(|| checked.backend.as_ref().map(|b| discovery::resolve(&b.name)));
    let found = match found {
        Some(Ok(f)) => f,
        Some(Err(nf)) if require_plugin => return Err(PluginError::from(nf).into()),
        Some(Err(nf)) => return Ok(Opened { checked, plugin: None, missing: Some(nf) }),
        None => return Ok(Opened { checked, plugin: None, missing: None }),
    };
    let plugin = host.load(&found).await?;
    let profile = plugin.profile();
    if checked.backend.as_ref() != Some(&profile) {
        checked = config::load(path, &Options { backend: Some(profile), ..opts.clone() })?;
    }
    if let Some(spec) = checked.spec.as_ref().filter(|_| checked.is_valid()) {
        let grants = plugin.grants(spec)?;
        let empty = BTreeMap::new();
        let input = ClusterInput { spec, identities: &empty, authorized_key: "", backend: plugin.name() };
        let diags = plugin.validate(&input, grants).await?;
        checked.add(diags);
    }
    Ok(Opened { checked, plugin: Some(plugin), missing: None })
}

/// Opens the config of a cluster that may already be provisioned: without an explicit backend,
/// the config is checked for the backend recorded in its state (no plugin needed).
pub async fn open_provisioned<'h>(
    host: &'h PluginHost,
    path: &Path,
    sel: &BackendSel,
    state_root: &Path,
    opts: &Options,
) -> Result<Opened<'h>, SessionError> {
    if !matches!(sel, BackendSel::Inferred) {
        return open(host, path, sel, false, opts).await;
    }
    let checked = config::load(path, opts)?;
    let recorded = config::cluster_name(&checked)
        .and_then(|name| StateDir::new(state_root, &name).read().ok().flatten())
        .and_then(|s| s.backend_profile);
    match recorded {
        Some(profile) => {
            let checked = config::load(path, &Options { backend: Some(profile), ..opts.clone() })?;
            Ok(Opened { checked, plugin: None, missing: None })
        }
        None => open(host, path, sel, false, opts).await,
    }
}

/// What `apply` would change, given the recorded state.
pub async fn plan_changes(
    plugin: &Plugin<'_>,
    spec: &ClusterSpec,
    state_root: &Path,
) -> Result<Vec<Change>, SessionError> {
    let state = StateDir::new(state_root, spec.name.as_str()).read()?;
    let empty = BTreeMap::new();
    let identities = state.as_ref().map(|s| &s.identities).unwrap_or(&empty);
    let prior = state.as_ref().and_then(|s| s.backend_state.clone());
    let input = ClusterInput { spec, identities, authorized_key: "", backend: plugin.name() };
    let grants = plugin.grants(spec)?;
    Ok(plugin.plan(&input, prior.as_deref(), grants).await?)
}

/// What `plan --out` writes (see `node_files`), and the cluster's real secrets, none of which
/// may be in it. The backend is asked for its own files when it renders any (`files` export),
/// with placeholder identities: it never sees a private key in this call. `no_backend` says
/// why there is no plugin, when there is none.
pub async fn plan_files(
    plugin: Option<&Plugin<'_>>,
    spec: &ClusterSpec,
    state_root: &Path,
    no_backend: Option<String>,
) -> Result<(crate::node_files::PlanFiles, Vec<(&'static str, String)>), SessionError> {
    use crate::node_files;
    let state = StateDir::new(state_root, spec.name.as_str()).read()?;
    let mut placeholders = Vec::new();
    let recorded = state.as_ref().and_then(|s| s.infrastructure.as_ref());
    let infra = node_files::projected_infrastructure(spec, recorded, &mut placeholders);
    let provisioned = recorded.is_some_and(|r| r == &infra);
    let empty = BTreeMap::new();
    let identities = node_files::placeholder_identities(spec, state.as_ref().map(|s| &s.identities).unwrap_or(&empty));
    let authorized_key = node_files::authorized_key(spec, &mut placeholders);
    let (backend_files, backend_files_missing) = match plugin {
        Some(p) => {
            let input =
                ClusterInput { spec, identities: &identities, authorized_key: &authorized_key, backend: p.name() };
            let prior = state.as_ref().and_then(|s| s.backend_state.clone());
            match p.rendered_files(&input, prior.as_deref()).await? {
                Some(files) => (files, None),
                None => (
                    Vec::new(),
                    Some(format!(
                        "backend `{}` (contract {}) does not export `files`, so it shows none",
                        p.name(),
                        p.contract()
                    )),
                ),
            }
        }
        None => (Vec::new(), Some(no_backend.unwrap_or_else(|| "no backend plugin was run".into()))),
    };
    let backend = plugin.map(|p| p.name()).unwrap_or(spec.backend.name.as_str());
    let cas = crate::bootstrap::containerd::read_cas(spec).map_err(SessionError::Input)?;
    let nodes = node_files::assemble(spec, &infra, &identities, &authorized_key, backend, &backend_files, &cas);
    let mut secrets: Vec<(&'static str, String)> = Vec::new();
    if let Some(s) = &state {
        for id in s.identities.values() {
            secrets.push(("a node's SSH host private key", id.host_private_key.clone()));
        }
        if let Some(b) = &s.bootstrap {
            secrets.push(("the bootstrap token", b.secrets.token.clone()));
            secrets.push(("the certificate key", b.secrets.certificate_key.clone()));
        }
    }
    Ok((node_files::PlanFiles { nodes, placeholders, backend_files_missing, provisioned }, secrets))
}

pub struct Provisioned {
    pub infrastructure: Infrastructure,
    pub state_dir: PathBuf,
}

/// Persists checkpoints from the plugin into the state file, under the held lock.
struct Checkpointer {
    lock: Arc<StateLock>,
    state: Arc<Mutex<ClusterState>>,
}

impl Checkpointer {
    fn sink(&self) -> crate::plugin::CheckpointFn {
        let lock = self.lock.clone();
        let state = self.state.clone();
        Box::new(move |bytes: &[u8]| {
            let mut s = state.lock().map_err(|_| "state lock poisoned".to_string())?;
            s.backend_state = Some(bytes.to_vec());
            lock.save(&s).map_err(|e| e.to_string())
        })
    }
}

fn plugin_record(p: &Plugin) -> PluginRecord {
    PluginRecord {
        name: p.name().to_string(),
        version: p.info.version.clone(),
        contract: p.contract().to_string(),
        sha256: p.sha256.clone(),
    }
}

/// A running cluster's node that the config no longer lists stays in the cluster (a control
/// plane: an etcd member) until `up` has removed it (`membership::remove`): before that, the
/// backend must not release or destroy its machine. Refused, before the backend is asked.
fn refuse_unremoved_nodes(spec: &ClusterSpec, state: &ClusterState) -> Result<(), SessionError> {
    let removals = crate::membership::removals(spec, state).map_err(|e| SessionError::Input(e.to_string()))?;
    let pending: Vec<&str> = removals
        .in_order()
        .filter(|m| !crate::membership::done(state, &format!("remove:{}", m.name)))
        .map(|m| m.name.as_str())
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    Err(SessionError::Input(format!(
        "cluster `{}` runs node(s) {} that the config no longer lists; `hacluster up` removes them one at a time (drain; for a control plane its etcd member, checking quorum; kubeadm reset; the Node) before the backend releases the machines, `provision` alone does not (nothing was changed)",
        spec.name,
        pending.join(", ")
    )))
}

/// Once the backend has released the machines of removed nodes, their records go (a node of
/// that name added later joins as a new one).
fn forget_released(state: &mut ClusterState, infra: &Infrastructure) {
    let Some(b) = state.bootstrap.as_mut() else { return };
    b.completed.retain(|c| {
        let node = c
            .strip_prefix("remove:")
            .map(|rest| rest.split(':').next().unwrap_or(rest))
            .or_else(|| c.strip_prefix("join:"))
            .or_else(|| c.strip_prefix(crate::membership::replace::RECORD))
            .or_else(|| c.strip_prefix(crate::membership::replace::RESET_RECORD));
        node.is_none_or(|n| infra.machine(n).is_some())
    });
}

/// Creates or converges the infrastructure and records it. Resumable: the plugin gets the
/// state it checkpointed last, also after a crash.
pub async fn provision(
    plugin: &Plugin<'_>,
    spec: &ClusterSpec,
    state_root: &Path,
) -> Result<Provisioned, SessionError> {
    let dir = StateDir::new(state_root, spec.name.as_str());
    let lock = Arc::new(dir.lock()?);
    let mut state = lock.load_or_new(spec.name.as_str(), plugin.name())?;
    if state.backend != plugin.name() && (state.backend_state.is_some() || state.infrastructure.is_some()) {
        return Err(SessionError::BackendChanged {
            cluster: spec.name.to_string(),
            was: state.backend.clone(),
            now: plugin.name().into(),
        });
    }
    refuse_unremoved_nodes(spec, &state)?;
    state.backend = plugin.name().into();
    state.backend_profile = Some(plugin.profile());
    let (_, authorized_key) = identity::operator_public_key(spec)?;
    // Keys are saved before any backend sees them, so a crash cannot lose the ones in use.
    if identity::ensure_identities(spec, &mut state)? || state.plugin.is_none() {
        state.plugin = Some(plugin_record(plugin));
        lock.save(&state)?;
    }
    let prior = state.backend_state.clone();
    let identities = state.identities.clone();
    let shared = Arc::new(Mutex::new(state));
    let checkpointer = Checkpointer { lock: lock.clone(), state: shared.clone() };
    let input = ClusterInput { spec, identities: &identities, authorized_key: &authorized_key, backend: plugin.name() };
    let mut grants = plugin.grants(spec)?;
    grants.seed_copies = Some(dir.path.join("seeds"));
    let (infra, blob) = plugin.apply(&input, prior.as_deref(), grants, checkpointer.sink()).await?;
    let mut state = shared.lock().expect("no checkpoint is running any more").clone();
    state.backend_state = Some(blob);
    forget_released(&mut state, &infra);
    state.infrastructure = Some(infra.clone());
    state.plugin = Some(plugin_record(plugin));
    lock.save(&state)?;
    write_known_hosts(&dir, &infra)?;
    Ok(Provisioned { infrastructure: infra, state_dir: dir.path })
}

/// The pinned host keys in OpenSSH's format, so users can `ssh -o UserKnownHostsFile=...`.
fn write_known_hosts(dir: &StateDir, infra: &Infrastructure) -> Result<(), StateError> {
    let mut text = String::new();
    for m in &infra.machines {
        text.push_str(&identity::known_hosts_line(&m.ssh.address, m.ssh.port, &m.ssh.host_public_key));
        text.push('\n');
    }
    crate::state::write_atomic(&dir.path.join("known_hosts"), text.as_bytes())
}

/// What `destroy` removed from the operator's machine besides the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destroyed {
    /// The cluster's admin kubeconfig, when there was one.
    pub kubeconfig: Option<PathBuf>,
}

/// Removes everything the backend created, then the state. Works without state too: the
/// backend finds its resources by name or tag.
pub async fn destroy(plugin: &Plugin<'_>, spec: &ClusterSpec, state_root: &Path) -> Result<Destroyed, SessionError> {
    let dir = StateDir::new(state_root, spec.name.as_str());
    let lock = Arc::new(dir.lock()?);
    let state = lock.load_or_new(spec.name.as_str(), plugin.name())?;
    if state.backend != plugin.name() && (state.backend_state.is_some() || state.infrastructure.is_some()) {
        return Err(SessionError::BackendChanged {
            cluster: spec.name.to_string(),
            was: state.backend.clone(),
            now: plugin.name().into(),
        });
    }
    let prior = state.backend_state.clone();
    let identities = state.identities.clone();
    let shared = Arc::new(Mutex::new(state));
    let checkpointer = Checkpointer { lock: lock.clone(), state: shared.clone() };
    let input = ClusterInput { spec, identities: &identities, authorized_key: "", backend: plugin.name() };
    let grants = plugin.grants(spec)?;
    plugin.destroy(&input, prior.as_deref(), grants, checkpointer.sink()).await?;
    // Only now, after the backend confirmed, is the record removed.
    lock.remove()?;
    let _ = std::fs::remove_file(dir.path.join("known_hosts"));
    let _ = std::fs::remove_dir_all(dir.path.join("seeds"));
    // Cluster-admin credentials of a cluster that is gone: removed, and a failure is an error,
    // not a silence.
    let kubeconfig = remove_file_if_present(&dir.path.join("kubeconfig"))?;
    Ok(Destroyed { kubeconfig })
}

/// Removes `path`; `Some(path)` when it was there.
fn remove_file_if_present(path: &Path) -> Result<Option<PathBuf>, StateError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Some(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io { path: path.to_path_buf(), source }),
    }
}

/// Errors of the bootstrap and the checks after it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Bootstrap(#[from] crate::bootstrap::BootstrapError),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error(transparent)]
    Chaos(#[from] crate::bootstrap::verify::ChaosError),
    #[error(transparent)]
    Merge(#[from] crate::bootstrap::kubeconfig::MergeError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Upgrade(#[from] crate::upgrade::UpgradeError),
    #[error(transparent)]
    Archive(#[from] crate::backup::archive::ArchiveError),
    #[error(transparent)]
    Membership(#[from] crate::membership::MembershipError),
}

impl RunError {
    pub fn is_usage(&self) -> bool {
        match self {
            RunError::Session(s) => s.is_usage(),
            RunError::State(StateError::Busy { .. }) => true,
            RunError::Ssh(crate::ssh::SshError::NoKey(_)) => true,
            // A recipient, an identity or an archive the operator named.
            RunError::Archive(_) => true,
            RunError::Membership(m) => m.is_refusal(),
            _ => false,
        }
    }
}

/// SSH settings for a cluster: the operator's key from the config (or the agent).
pub fn ssh_settings(spec: &ClusterSpec) -> crate::ssh::Settings {
    let identity = identity::private_key_candidates(spec).into_iter().find(|p| p.is_file());
    crate::ssh::Settings { identity, ..Default::default() }
}

/// The recorded infrastructure of a provisioned cluster.
pub fn provisioned(
    spec: &ClusterSpec,
    state_root: &Path,
) -> Result<(StateDir, ClusterState, Infrastructure), SessionError> {
    let dir = StateDir::new(state_root, spec.name.as_str());
    let state = dir.read()?.ok_or_else(|| SessionError::NoState(spec.name.to_string()))?;
    let infra = state.infrastructure.clone().ok_or_else(|| SessionError::NoState(spec.name.to_string()))?;
    Ok((dir, state, infra))
}

/// Runs `f` with an SSH executor (its own redactor), and closes its connections after.
async fn over_ssh<R>(
    settings: crate::ssh::Settings,
    events: Arc<dyn crate::events::Events>,
    f: impl AsyncFnOnce(&crate::ssh::Executor) -> R,
) -> Result<R, RunError> {
    let exec = crate::ssh::Executor::new(settings, Arc::new(crate::ssh::Redactor::new()), events)?;
    let r = f(&exec).await;
    exec.close().await;
    Ok(r)
}

/// `over_ssh` with the nodes' SSH host private keys of `state` masked in every line shown.
async fn over_ssh_masked<R>(
    settings: crate::ssh::Settings,
    events: Arc<dyn crate::events::Events>,
    state: &ClusterState,
    f: impl AsyncFnOnce(&crate::ssh::Executor) -> R,
) -> Result<R, RunError> {
    over_ssh(settings, events, async |exec| {
        for id in state.identities.values() {
            exec.redactor().add(&id.host_private_key);
        }
        f(exec).await
    })
    .await
}

/// A provisioned cluster opened for a run: its lock (held until dropped), its state and the
/// recorded infrastructure.
struct Locked {
    lock: StateLock,
    state: ClusterState,
    infra: Infrastructure,
}

impl Locked {
    fn open(spec: &ClusterSpec, state_root: &Path) -> Result<Locked, SessionError> {
        let (dir, _, _) = provisioned(spec, state_root)?;
        let lock = dir.lock()?;
        let state = lock.load_or_new(spec.name.as_str(), "")?;
        let infra = state.infrastructure.clone().ok_or_else(|| SessionError::NoState(spec.name.to_string()))?;
        Ok(Locked { lock, state, infra })
    }

    /// The same, refused unless the state records `kubeadm init`.
    fn running(spec: &ClusterSpec, state_root: &Path) -> Result<Locked, SessionError> {
        let l = Locked::open(spec, state_root)?;
        if !crate::membership::running(&l.state) {
            return Err(SessionError::NotBootstrapped(spec.name.to_string()));
        }
        Ok(l)
    }
}

pub struct Bootstrapped {
    pub kubeconfig: PathBuf,
    pub endpoint: String,
}

/// Turns provisioned machines into the cluster (resumable), writes the kubeconfig, and merges
/// it into `merge_into` when given.
pub async fn bootstrap(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
    merge_into: Option<&Path>,
    restore: Option<&crate::backup::restore::Restore>,
) -> Result<Bootstrapped, RunError> {
    let Locked { lock, state, infra } = Locked::open(spec, state_root)?;
    if let (Some(what), None) = (&state.restoring, restore) {
        return Err(SessionError::Input(format!(
            "a restore of {what} is under way for cluster `{}`: finish it with `hacluster restore` (a plain bootstrap would start an empty cluster in its place)",
            spec.name
        ))
        .into());
    }
    over_ssh(settings, events.clone(), async |exec| {
        crate::bootstrap::Bootstrap::new(spec, &infra, exec, events, &lock, state).restoring(restore).run().await
    })
    .await??;
    let kubeconfig = lock.dir().path.join("kubeconfig");
    if let Some(target) = merge_into {
        let text =
            std::fs::read_to_string(&kubeconfig).map_err(|e| StateError::Io { path: kubeconfig.clone(), source: e })?;
        crate::bootstrap::kubeconfig::merge_into(target, spec.name.as_str(), &text)?;
    }
    Ok(Bootstrapped { kubeconfig, endpoint: crate::bootstrap::kubeadm::endpoint(&infra) })
}

/// A rolling upgrade to the config's version (resumable; nothing to do when it is there).
pub async fn upgrade(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
    plugin: Option<&Plugin<'_>>,
) -> Result<crate::upgrade::Outcome, RunError> {
    let Locked { lock, state, infra } = Locked::running(spec, state_root)?;
    refuse_recorded_version_skip(spec, &state)?;
    let balancer = balancer(plugin, spec, &state)?;
    let r = over_ssh_masked(settings, events.clone(), &state, async |exec| {
        crate::upgrade::Upgrade::new(spec, &infra, exec, events, &lock, state.clone())
            .with_balancer(balancer.as_ref())
            .run()
            .await
    })
    .await?;
    Ok(r?)
}

/// Whether the backend's balancer can be told, as `plan` shows it.
pub fn balancer_drain(plugin: Option<&Plugin<'_>>, spec: &ClusterSpec) -> crate::upgrade::BalancerDrain {
    use crate::upgrade::BalancerDrain;
    match plugin {
        Some(p) if p.drains_endpoint() => BalancerDrain::Told { backend: p.name().to_string() },
        Some(p) => BalancerDrain::CannotBeTold { backend: p.name().to_string(), contract: p.contract().to_string() },
        None => BalancerDrain::NotFound { backend: spec.backend.name.to_string() },
    }
}

/// The backend's balancer, when its plugin was found and exports `endpoint`.
fn balancer<'p>(
    plugin: Option<&'p Plugin<'p>>,
    spec: &'p ClusterSpec,
    state: &ClusterState,
) -> Result<Option<crate::drain::Balancer<'p>>, SessionError> {
    match plugin {
        Some(p) => Ok(crate::drain::Balancer::new(p, spec, state)?),
        None => Ok(None),
    }
}

/// The upgrade `plan` shows: from the version the state records (or the start of an upgrade
/// under way, with its finished steps) to the config's. `Ok(None)`: no state, no recorded
/// version, or nothing to upgrade.
pub fn planned_upgrade(
    spec: &ClusterSpec,
    state_root: &Path,
    balancer: &crate::upgrade::BalancerDrain,
) -> Result<Option<(crate::upgrade::UpgradePlan, Vec<String>)>, crate::upgrade::Refusal> {
    let Ok(Some(state)) = StateDir::new(state_root, spec.name.as_str()).read() else { return Ok(None) };
    let to = spec.kubernetes.version;
    let (from, completed) = match &state.upgrade {
        Some(u) if u.to == to.to_string() => (u.from.parse().ok(), u.completed.clone()),
        _ => (recorded_version(&state), Vec::new()),
    };
    let Some(from) = from else { return Ok(None) };
    Ok(crate::upgrade::plan::plan(spec, from, balancer)?.map(|p| (p, completed)))
}

/// The version the state records for the cluster, when it records one.
pub fn recorded_version(state: &ClusterState) -> Option<crate::model::KubeVersion> {
    state.bootstrap.as_ref()?.kubernetes_version.as_deref()?.parse().ok()
}

/// A skipped minor or a downgrade against the recorded version is refused before any node
/// is asked (the live check follows in the upgrade itself).
fn refuse_recorded_version_skip(spec: &ClusterSpec, state: &ClusterState) -> Result<(), crate::upgrade::UpgradeError> {
    if state.upgrade.is_some() {
        return Ok(());
    }
    if let Some(from) = recorded_version(state) {
        crate::upgrade::plan::check(from, spec.kubernetes.version)?;
    }
    Ok(())
}

/// `up` and `bootstrap` on a cluster made at another version: they do not upgrade (that
/// restarts every control plane, and has its own checks): `hacluster upgrade` does.
pub fn refuse_version_change(spec: &ClusterSpec, state_root: &Path) -> Result<(), SessionError> {
    let dir = StateDir::new(state_root, spec.name.as_str());
    let Some(state) = dir.read()? else { return Ok(()) };
    let to = spec.kubernetes.version;
    let under_way = state.upgrade.as_ref().map(|u| u.to.clone());
    match (recorded_version(&state), under_way) {
        (_, Some(u)) => Err(SessionError::VersionChange(format!(
            "an upgrade to {u} is under way on cluster `{}`: finish it with `hacluster upgrade -c FILE` (the config must ask for {u}) before `up`",
            spec.name
        ))),
        (Some(from), None) if from != to => Err(SessionError::VersionChange(format!(
            "cluster `{}` runs {from} and the config asks for {to}: `up` does not change a running cluster's version. Run `hacluster plan -c FILE` to see the upgrade, and `hacluster upgrade -c FILE` to carry it out",
            spec.name
        ))),
        _ => Ok(()),
    }
}

/// Every node's certificates and when they expire.
pub async fn certificates(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
) -> Result<Vec<crate::certs::NodeCertificates>, RunError> {
    let (_, _, infra) = provisioned(spec, state_root)?;
    over_ssh(settings, events, async |exec| crate::certs::survey(spec, &infra, exec).await).await
}

/// `certs renew`: kubeadm's certificates renewed on every control plane in turn, and the admin
/// kubeconfig in the state rewritten with its renewed client certificate.
pub async fn renew_certificates(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
    plugin: Option<&Plugin<'_>>,
) -> Result<(Vec<crate::certs::Renewed>, PathBuf), RunError> {
    let Locked { lock, state, infra } = Locked::running(spec, state_root)?;
    let balancer = balancer(plugin, spec, &state)?;
    let (renewed, admin) = over_ssh(settings, events.clone(), async |exec| {
        crate::certs::renew(spec, &infra, exec, events.clone(), balancer.as_ref()).await
    })
    .await??;
    let text = crate::bootstrap::kubeconfig::with_server(&admin, &infra.endpoint.host, infra.endpoint.port);
    let path = lock.dir().path.join("kubeconfig");
    crate::state::write_atomic(&path, text.as_bytes())?;
    Ok((renewed, path))
}

/// What `hacluster endpoint drain|restore` did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberChange {
    pub node: String,
    /// What the backend's balancer did (`None`: it cannot be told, or was not asked).
    pub balancer: Option<String>,
    /// Whether the node itself was changed (not with `--balancer-only`).
    pub on_node: bool,
}

/// What `hacluster endpoint` is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct MemberRequest<'a> {
    pub node: &'a str,
    /// Out of the endpoint (`true`) or back in.
    pub drain: bool,
    /// The backend's balancer alone, the node untouched (a machine that does not answer).
    pub balancer_only: bool,
}

/// Takes a control plane out of the endpoint or puts it back: its backend's balancer and the
/// node, or the balancer alone (for a node that does not answer: a dead machine about to be
/// replaced).
pub async fn endpoint_member(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
    plugin: Option<&Plugin<'_>>,
    request: MemberRequest<'_>,
) -> Result<MemberChange, RunError> {
    let MemberRequest { node, drain, balancer_only } = request;
    if !spec.control_planes.iter().any(|n| n.name.as_str() == node) {
        let names: Vec<&str> = spec.control_planes.iter().map(|n| n.name.as_str()).collect();
        return Err(SessionError::Input(format!(
            "`{node}` is not a control plane of cluster `{}`: only control planes are members of the API endpoint ({})",
            spec.name,
            names.join(", ")
        ))
        .into());
    }
    // The lock is held throughout: no upgrade or other run may take members out meanwhile.
    let Locked { lock: _lock, state, infra } = Locked::open(spec, state_root)?;
    let balancer = balancer(plugin, spec, &state)?;
    if balancer_only {
        let Some(b) = balancer.as_ref() else {
            let why = balancer_drain(plugin, spec).warning().unwrap_or_default();
            return Err(SessionError::Input(format!("--balancer-only: {why}")).into());
        };
        let done = if drain { b.drain(node).await? } else { b.restore(node).await? };
        return Ok(MemberChange { node: node.to_string(), balancer: Some(done), on_node: false });
    }
    let m = infra.machine(node).ok_or_else(|| crate::bootstrap::BootstrapError::NoMachine(node.to_string()))?;
    let r = over_ssh_masked(settings, events.clone(), &state, async |exec| {
        let d = crate::drain::Drain { exec, events: events.as_ref(), balancer: balancer.as_ref() };
        if drain { d.take_out(m).await } else { d.put_back(m).await }
    })
    .await??;
    Ok(MemberChange { node: node.to_string(), balancer: r, on_node: true })
}

/// A backup of a running cluster, encrypted to `recipients` and written to `out` (mode 0600,
/// never over an existing file).
pub async fn backup(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
    recipients: &[age::x25519::Recipient],
    out: Option<&Path>,
) -> Result<(crate::backup::archive::Manifest, PathBuf), RunError> {
    let Locked { lock: _lock, state, infra } = Locked::running(spec, state_root)?;
    let version = state
        .bootstrap
        .as_ref()
        .and_then(|b| b.kubernetes_version.clone())
        .unwrap_or_else(|| spec.kubernetes.version.to_string());
    let (manifest, files) =
        over_ssh_masked(settings, events, &state, async |exec| crate::backup::take(spec, &infra, exec, &version).await)
            .await??;
    let sealed = crate::backup::archive::seal(&manifest, &files, recipients)?;
    let path = match out {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(format!("{}-{}.backup.age", spec.name, manifest.taken_at.replace([':', '-'], ""))),
    };
    write_new_private(&path, &sealed)?;
    Ok((manifest, path))
}

/// Records that `backup` is being restored as this cluster, before any machine is made (so
/// that `up` will not start an empty cluster in its place); refused over a cluster that runs
/// (its state records `kubeadm init`).
pub fn begin_restore(
    spec: &ClusterSpec,
    state_root: &Path,
    backend: &str,
    backup: &crate::backup::archive::Manifest,
) -> Result<(), SessionError> {
    let dir = StateDir::new(state_root, spec.name.as_str());
    let lock = dir.lock()?;
    let mut state = lock.load_or_new(spec.name.as_str(), backend)?;
    if state.bootstrap.as_ref().is_some_and(|b| b.completed.iter().any(|c| c == "kubeadm-init")) {
        return Err(SessionError::Input(format!(
            "cluster `{}` runs already (its state records `kubeadm init`): a restore builds a new cluster on new machines; restore with another config (another cluster name), or `hacluster down` this one first (a restore interrupted after `kubeadm init` is finished by `hacluster up`)",
            spec.name
        )));
    }
    state.restoring = Some(format!("the backup of {} taken at {}", backup.cluster, backup.taken_at));
    lock.save(&state)?;
    Ok(())
}

/// Writes a new file, 0600, refusing to replace one (a backup is never overwritten).
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), crate::backup::archive::ArchiveError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |e: std::io::Error| crate::backup::archive::ArchiveError::Io {
        path: path.to_path_buf(),
        reason: if e.kind() == std::io::ErrorKind::AlreadyExists {
            "exists; a backup is never overwritten: give another --out".into()
        } else {
            e.to_string()
        },
    };
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        // No half archive left to be taken for a backup.
        let _ = std::fs::remove_file(path);
        return Err(io(e));
    }
    Ok(())
}

/// Live health of a provisioned cluster.
pub async fn health(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
) -> Result<(ClusterState, crate::bootstrap::verify::Health), RunError> {
    let (_, state, infra) = provisioned(spec, state_root)?;
    let h = over_ssh(settings, events, async |exec| crate::bootstrap::verify::health(spec, &infra, exec).await).await?;
    Ok((state, h))
}

/// Before `verify --chaos` judges the cluster: puts back what an interrupted chaos run stopped.
pub async fn restore_interrupted_chaos(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
) -> Result<(), RunError> {
    let (dir, _, infra) = provisioned(spec, state_root)?;
    let _lock = dir.lock()?;
    over_ssh(settings, events.clone(), async |exec| {
        crate::bootstrap::verify::restore_interrupted(spec, &infra, exec, events.as_ref()).await
    })
    .await
}

/// `verify --chaos`: stop one control plane, check the API and quorum, restore.
pub async fn chaos(
    spec: &ClusterSpec,
    state_root: &Path,
    events: Arc<dyn crate::events::Events>,
    settings: crate::ssh::Settings,
) -> Result<crate::bootstrap::verify::Chaos, RunError> {
    let (dir, _, infra) = provisioned(spec, state_root)?;
    // One run at a time: chaos changes the cluster.
    let _lock = dir.lock()?;
    let r = over_ssh(settings, events.clone(), async |exec| {
        crate::bootstrap::verify::chaos(spec, &infra, exec, events.as_ref()).await
    })
    .await?;
    Ok(r?)
}

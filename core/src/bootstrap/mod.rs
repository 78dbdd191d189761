//! The kubeadm bootstrap, the same for every backend: SSH to the machines the backend reported,
//! prepare them, `kubeadm init` on the first control plane, the CNI, control-plane joins one at
//! a time, workers all at once, wait for Ready, write the kubeconfig.
//!
//! Every step checks the node before it acts, so a second run (or a run after a crash) does
//! only what is missing. Progress and the bootstrap secrets are recorded in the cluster's state
//! after every step.

pub mod containerd;
pub mod jobs;
pub mod kubeadm;
pub mod kubeconfig;
pub mod scripts;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Mutex;

use crate::events::{Events, LogLevel};
use crate::infra::{Infrastructure, Machine};
use crate::model::{ClusterSpec, Node};
use crate::plan::{Plan, StepKind};
use crate::ssh::{Executor, Script, SshError, shell_quote};
use crate::state::{BootstrapRecord, ClusterState, StateError, StateLock};
use kubeadm::{INIT_CONFIG, JOIN_CONFIG, NODE_DIR, Secrets};

pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";

/// Node jobs (see `jobs`).
const INIT_JOB: &str = "kubeadm-init";
const JOIN_JOB: &str = "kubeadm-join";

/// How long one kubeadm init or join may take before this run stops waiting for it.
const KUBEADM_LIMIT: Duration = Duration::from_secs(900);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{step} on {node}: {reason}")]
    Step { step: &'static str, node: String, reason: String },
    #[error("{job} on {node}: {reason}")]
    Job { job: String, node: String, reason: String },
    #[error("the infrastructure has no machine for node `{0}`; run provision (or up) again")]
    NoMachine(String),
    #[error("nothing is provisioned for cluster `{0}`; run `hacluster up` or `provision` first")]
    NotProvisioned(String),
}

/// How long the bootstrap waits for things that take time.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub ssh_ready: Duration,
    pub nodes_ready: Duration,
    pub etcd_healthy: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            ssh_ready: Duration::from_secs(600),
            nodes_ready: Duration::from_secs(900),
            etcd_healthy: Duration::from_secs(180),
        }
    }
}

pub struct Bootstrap<'a> {
    pub spec: &'a ClusterSpec,
    pub infra: &'a Infrastructure,
    pub exec: &'a Executor,
    pub events: Arc<dyn Events>,
    pub lock: &'a StateLock,
    pub timeouts: Timeouts,
    /// A backup to build the cluster from (`hacluster restore`).
    restore: Option<&'a crate::backup::restore::Restore>,
    /// Control planes whose old etcd member and Node `hacluster replace` removed: each joins
    /// again as a new machine, even the first (it is not initialized twice).
    replacing: Vec<String>,
    state: Mutex<ClusterState>,
}

const SRC: &str = "bootstrap";

/// `kubectl` against the cluster from a control plane, with the admin credentials.
pub(crate) fn kubectl(args: &str) -> String {
    format!("kubectl --kubeconfig {ADMIN_CONF} {args}")
}

/// `etcdctl` inside control plane `node`'s etcd pod (the etcd image's own etcdctl, with the
/// health-check client certificate): append the etcdctl command.
pub(crate) fn etcdctl(node: &str) -> String {
    kubectl(&format!(
        "-n kube-system exec {} -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
        shell_quote(&format!("etcd-{node}"))
    ))
}

impl<'a> Bootstrap<'a> {
    pub fn new(
        spec: &'a ClusterSpec,
        infra: &'a Infrastructure,
        exec: &'a Executor,
        events: Arc<dyn Events>,
        lock: &'a StateLock,
        state: ClusterState,
    ) -> Self {
        let replacing = state
            .bootstrap
            .iter()
            .flat_map(|b| &b.completed)
            .filter_map(|c| c.strip_prefix(crate::membership::replace::RECORD))
            .map(str::to_string)
            .collect();
        Bootstrap {
            spec,
            infra,
            exec,
            events,
            lock,
            timeouts: Timeouts::default(),
            restore: None,
            replacing,
            state: Mutex::new(state),
        }
    }

    /// Builds the cluster from `restore`'s etcd snapshot and PKI.
    pub fn restoring(mut self, restore: Option<&'a crate::backup::restore::Restore>) -> Self {
        self.restore = restore;
        self
    }

    fn machine(&self, node: &Node) -> Result<&'a Machine, BootstrapError> {
        self.infra.machine(node.name.as_str()).ok_or_else(|| BootstrapError::NoMachine(node.name.to_string()))
    }

    /// Whether `node` is a control plane `hacluster replace` is bringing back as a new machine.
    fn replacing_now(&self, node: &str) -> bool {
        self.replacing.iter().any(|r| r == node)
    }

    /// Where kubectl and kubeadm's cluster-wide commands run: the first control plane, or
    /// while it is being replaced, the first other one.
    fn admin(&self) -> Result<&'a Machine, BootstrapError> {
        let node = self
            .spec
            .control_planes
            .iter()
            .find(|n| !self.replacing_now(n.name.as_str()))
            .unwrap_or(self.spec.init_node());
        self.machine(node)
    }

    fn info(&self, msg: &str) {
        self.events.log(SRC, LogLevel::Info, msg, &[]);
    }

    async fn record<R>(&self, f: impl FnOnce(&mut BootstrapRecord) -> R) -> Result<R, BootstrapError> {
        let mut st = self.state.lock().await;
        let rec = st.bootstrap.get_or_insert_with(BootstrapRecord::default);
        let r = f(rec);
        self.lock.save(&st)?;
        Ok(r)
    }

    async fn done(&self, step: &str) -> Result<(), BootstrapError> {
        self.record(|r| {
            if !r.completed.iter().any(|c| c == step) {
                r.completed.push(step.to_string());
            }
        })
        .await
    }

    pub async fn state(&self) -> ClusterState {
        self.state.lock().await.clone()
    }

    /// The secrets, generated (and saved) on first use and registered with the redactor.
    async fn secrets(&self) -> Result<Secrets, BootstrapError> {
        let cluster = self.spec.name.to_string();
        let s = self
            .record(|r| {
                if r.secrets.token.is_empty() {
                    if r.id.is_empty() {
                        r.id = kubeadm::new_bootstrap_id(&cluster);
                    }
                    r.secrets.token = kubeadm::new_token();
                    r.secrets.certificate_key = kubeadm::new_certificate_key();
                }
                r.secrets.clone()
            })
            .await?;
        self.exec.redactor().add(&s.token);
        self.exec.redactor().add(&s.certificate_key);
        Ok(s)
    }

    /// This cluster's bootstrap identity, which every kubeadm job on a node records, and
    /// whether job records without one are its own (a state from before ids: the id is made
    /// with the secrets, so a state with secrets and no id predates them).
    async fn owner(&self) -> Result<(String, bool), BootstrapError> {
        if let Some(b) = self.state.lock().await.bootstrap.as_ref().filter(|b| !b.id.is_empty()) {
            return Ok((b.id.clone(), b.adopt_unowned_jobs));
        }
        // Made (and saved) once; every job asks.
        let cluster = self.spec.name.to_string();
        self.record(|r| {
            if r.id.is_empty() {
                r.id = kubeadm::new_bootstrap_id(&cluster);
                r.adopt_unowned_jobs = !r.secrets.token.is_empty();
            }
            (r.id.clone(), r.adopt_unowned_jobs)
        })
        .await
    }

    /// Whether the state records `step` as done.
    async fn step_done(&self, step: &str) -> bool {
        self.state.lock().await.bootstrap.as_ref().is_some_and(|b| b.completed.iter().any(|c| c == step))
    }

    /// Whether the state records that this cluster's bootstrap set `node` up (init or join).
    async fn set_up_here(&self, node: &str) -> bool {
        if self.replacing_now(node) {
            return false;
        }
        if node == self.spec.init_node().name.as_str() {
            self.step_done("kubeadm-init").await
        } else {
            self.step_done(&format!("join:{node}")).await
        }
    }

    /// The owner that `node`'s jobs record, and whether records there without an owner are
    /// ours: only on a node the state records as set up by a bootstrap from before owners.
    async fn job_owner(&self, node: &str) -> Result<(String, bool), BootstrapError> {
        let (owner, adopt) = self.owner().await?;
        Ok((owner, adopt && self.set_up_here(node).await))
    }

    fn step_error(step: &'static str, node: &str, reason: impl Into<String>) -> BootstrapError {
        BootstrapError::Step { step, node: node.into(), reason: reason.into() }
    }

    /// Runs every step of the plan after provisioning.
    pub async fn run(&self) -> Result<(), BootstrapError> {
        // Everything secret we hold is masked in every line we show.
        for id in self.state.lock().await.identities.values() {
            self.exec.redactor().add(&id.host_private_key);
        }
        let plan = Plan::for_cluster(self.spec);
        let steps: Vec<_> = plan.steps.iter().filter(|s| s.kind != StepKind::Provision).collect();
        let total = steps.len() as u64;
        for (i, step) in steps.iter().enumerate() {
            self.events.progress(SRC, "bootstrap", i as u64, total);
            self.info(&format!("step {}/{}: {}", i + 1, total, step.description));
            let started = std::time::Instant::now();
            match step.kind {
                StepKind::WaitForSsh => self.wait_ssh().await?,
                StepKind::PrepareNodes => self.prepare().await?,
                StepKind::CheckEndpoint => self.check_endpoint().await?,
                StepKind::KubeadmInit => self.init().await?,
                StepKind::InstallCni => self.cni().await?,
                StepKind::JoinControlPlane => {
                    let node = self
                        .spec
                        .control_planes
                        .iter()
                        .find(|n| step.targets.contains(&n.name))
                        .expect("target is a control plane");
                    self.join_control_plane(node).await?;
                }
                StepKind::JoinWorkers => self.join_workers().await?,
                StepKind::WaitReady => self.wait_ready().await?,
                StepKind::WriteKubeconfig => {
                    let path = self.write_kubeconfig().await?;
                    self.info(&format!("kubeconfig written to {}", path.display()));
                }
                StepKind::Provision => {}
            }
            // Where the time goes, for whoever waits on a slow step (and for the benchmark).
            self.info(&format!("step {}/{} done in {:.1} s", i + 1, total, started.elapsed().as_secs_f64()));
        }
        self.events.progress(SRC, "bootstrap", total, total);
        Ok(())
    }

    async fn wait_ssh(&self) -> Result<(), BootstrapError> {
        let total = self.infra.machines.len() as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let waits = self.infra.machines.iter().map(|m| async {
            self.exec.wait_reachable(m, self.timeouts.ssh_ready).await?;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            self.events.progress(SRC, "wait for SSH", n, total);
            Ok::<_, BootstrapError>(())
        });
        for r in join_all(waits).await {
            r?;
        }
        self.done("ssh").await
    }

    fn kube_nodes(&self) -> impl Iterator<Item = &'a Node> {
        self.spec.control_planes.iter().chain(&self.spec.workers)
    }

    async fn prepare(&self) -> Result<(), BootstrapError> {
        let cas = containerd::read_cas(self.spec).map_err(|e| Self::step_error("prepare nodes", "this machine", e))?;
        let prepare = scripts::prepare(self.spec, &cas);
        let (owner, adopt) = self.owner().await?;
        let ca_hash = self.state.lock().await.bootstrap.as_ref().and_then(|b| b.secrets.ca_cert_hash.clone());
        let nodes: Vec<&Node> = self.kube_nodes().collect();
        let total = nodes.len() as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let jobs = nodes.iter().map(|n| {
            let (prepare, owner) = (&prepare, &owner);
            let ca_hash = ca_hash.as_deref();
            let done = &done;
            async move {
                // A node of another cluster is refused before its packages or containerd are touched.
                let recorded = self.set_up_here(n.name.as_str()).await;
                let check = scripts::foreign_node_check(owner, adopt && recorded, recorded, ca_hash);
                let script = format!("{check}{prepare}");
                let m = self.machine(n)?;
                self.exec.run(m, &Script::root("prepare node", script).timeout(Duration::from_secs(1800))).await?;
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                self.events.progress(SRC, "prepare nodes", d, total);
                Ok::<_, BootstrapError>(())
            }
        });
        for r in join_all(jobs).await {
            r?;
        }
        self.done("prepare").await
    }

    async fn check_endpoint(&self) -> Result<(), BootstrapError> {
        let m = self.admin()?;
        let (host, port) = (&self.infra.endpoint.host, self.infra.endpoint.port);
        let out =
            self.exec.run_unchecked(m, &Script::root("check endpoint", scripts::endpoint_check(host, port))).await?;
        if out.status != 0 {
            return Err(Self::step_error(
                "endpoint check",
                &m.name,
                format!("the API endpoint {host}:{port} is not reachable: {}", out.stderr.trim()),
            ));
        }
        self.done("endpoint").await
    }

    async fn init_config_on_node(&self, m: &Machine, secrets: &Secrets) -> Result<(), BootstrapError> {
        let cfg = kubeadm::init_config(self.spec, self.infra, secrets);
        self.exec.upload(m, INIT_CONFIG, 0o600, cfg.as_bytes()).await?;
        Ok(())
    }

    async fn init(&self) -> Result<(), BootstrapError> {
        let node = self.spec.init_node();
        if self.replacing_now(node.name.as_str()) {
            self.info(&format!("{} was replaced: it joins the running control planes as a new machine", node.name));
            return self.join_control_plane(node).await;
        }
        let m = self.machine(node)?;
        let secrets = self.secrets().await?;
        let (owner, adopt_unowned) = self.job_owner(node.name.as_str()).await?;
        let job = jobs::Job { name: INIT_JOB, proof: ADMIN_CONF, owner: &owner, adopt_unowned };
        match self.recorded_job(m, "kubeadm-init", &job).await? {
            Some(jobs::Status::Unrecorded) => return self.after_init(m).await,
            // The cluster was initialized here, and what init made is gone: a second init
            // would put a new cluster (new CA, new etcd) behind the same endpoint.
            Some(jobs::Status::None) => {
                return Err(Self::step_error(
                    "kubeadm init",
                    &m.name,
                    format!(
                        "the cluster was initialized on this node, and its control plane is gone (the node was reset or replaced); a new `kubeadm init` would start a second cluster behind the same endpoint. `hacluster replace -c FILE {}` removes its old etcd member and joins it to the running control planes as a new machine",
                        node.name
                    ),
                ));
            }
            _ => {}
        }
        // Started here (with its config file), or an earlier run's job awaited or read.
        let cfg = kubeadm::init_config(self.spec, self.infra, &secrets);
        let mut command = scripts::init_job();
        if let Some(r) = self.restore {
            if !matches!(jobs::status(self.exec, m, &job).await?, jobs::Status::Running | jobs::Status::Succeeded) {
                self.stage_restore(m, r).await?;
            }
            let ip = kubeadm::address_of(self.infra, node);
            command = scripts::init_job_restoring(&crate::backup::restore::prepare_script(node.name.as_str(), ip));
        }
        let file = jobs::File { path: INIT_CONFIG, mode: 0o600, content: cfg.as_bytes() };
        let job = jobs::run(self.exec, m, &job, &command, &[file], KUBEADM_LIMIT).await?;
        if !job.started_here {
            self.info(&format!("{} is already initialized", node.name));
        }
        let hash = kubeadm::parse_ca_hash(&job.log);
        let now = kubeadm::now();
        self.record(|r| {
            // Only a job started here tells when the token and the certificates were made;
            // otherwise the record keeps what it knew (nothing: they are renewed before use).
            if job.started_here {
                r.secrets.token_created = now;
                r.secrets.certs_uploaded = now;
            }
            if hash.is_some() {
                r.secrets.ca_cert_hash = hash.clone();
            }
        })
        .await?;
        self.after_init(m).await
    }

    /// Before `kubeadm init` of a restore: the backup's snapshot and PKI staged on the node
    /// (the init job puts them in place).
    async fn stage_restore(&self, m: &Machine, r: &crate::backup::restore::Restore) -> Result<(), BootstrapError> {
        self.info(&format!(
            "{}: restoring the backup of {} taken at {} (etcd revision {})",
            m.name, r.manifest.cluster, r.manifest.taken_at, r.manifest.etcd.revision
        ));
        for (path, data) in r.staged() {
            self.exec.upload(m, &path, 0o600, data).await?;
        }
        Ok(())
    }

    /// After `kubeadm init` of a restore: what belonged to the old machines goes.
    async fn after_restore(&self, m: &Machine) -> Result<(), BootstrapError> {
        if self.restore.is_none() || self.step_done("restore-cleanup").await {
            return Ok(());
        }
        let token = self.secrets().await?.token;
        let id = token.split('.').next().unwrap_or_default().to_string();
        let script = crate::backup::restore::cleanup_script(&kubectl(""), self.spec.init_node().name.as_str(), &id);
        let out = self.exec.run(m, &Script::root("clean up after the restore", script).quiet()).await?;
        self.info(&format!("{}: the old cluster's join tokens and Nodes deleted ({})", m.name, out.stdout.trim()));
        self.done("restore-cleanup").await
    }

    /// Once `kubeadm init` has run on the restored data, the cluster is no longer being restored.
    async fn record_restored(&self) -> Result<(), BootstrapError> {
        let mut st = self.state.lock().await;
        if st.restoring.take().is_some() {
            self.lock.save(&st)?;
        }
        Ok(())
    }

    /// When the state records `step` as done: where its job stands on the node (`None` when the
    /// state does not record it). `Unrecorded` means the node has what the step made but not
    /// the job's record (lost with the node's /etc/kubernetes/hacluster): done, not to be
    /// refused or redone.
    async fn recorded_job(
        &self,
        m: &Machine,
        step: &str,
        job: &jobs::Job<'_>,
    ) -> Result<Option<jobs::Status>, BootstrapError> {
        if !self.step_done(step).await {
            return Ok(None);
        }
        let status = jobs::status(self.exec, m, job).await?;
        if let jobs::Status::Foreign(whose) = &status {
            // Ours once, and another cluster's now (the node was reset and reused since).
            return Err(Self::step_error(
                "kubeadm",
                &m.name,
                format!(
                    "{step} is recorded for this cluster, but the node now belongs to another cluster's bootstrap (`{whose}`); hacluster leaves it alone. Remove it from this cluster's config, or give the cluster another machine"
                ),
            ));
        }
        if status == jobs::Status::Unrecorded {
            self.info(&format!("{}: {step} is recorded in the state and its files are there", m.name));
        }
        Ok(Some(status))
    }

    /// After init: the API through the endpoint, and the CA hash joins pin.
    async fn after_init(&self, m: &Machine) -> Result<(), BootstrapError> {
        self.wait_endpoint(m).await?;
        self.after_restore(m).await?;
        self.record_restored().await?;
        if self.record(|r| r.secrets.ca_cert_hash.is_none()).await? {
            // Resumed after init: compute the hash the way kubeadm's docs do.
            let out = self.exec.run(m, &Script::root("CA hash", scripts::CA_HASH)).await?;
            let Some(hash) = kubeadm::parse_ca_hash(&out.stdout) else {
                let shown = crate::text::bounded(&crate::text::printable(out.stdout.trim()), 200);
                return Err(Self::step_error("CA hash", &m.name, format!("unexpected output `{shown}`")));
            };
            self.record(|r| r.secrets.ca_cert_hash = Some(hash)).await?;
        }
        // The version the cluster is made at: `up` and `plan` compare the config's with it.
        let version = self.spec.kubernetes.version.to_string();
        self.record(|r| {
            r.kubernetes_version.get_or_insert(version);
        })
        .await?;
        self.done("kubeadm-init").await
    }

    /// Waits until the API answers through the endpoint: a load balancer needs a few health
    /// checks before it sends traffic to a new API server.
    async fn wait_endpoint(&self, m: &Machine) -> Result<(), BootstrapError> {
        let endpoint = kubeadm::endpoint(self.infra);
        let script = format!("curl -sk --max-time 3 {}", shell_quote(&format!("https://{endpoint}/readyz")));
        let deadline = tokio::time::Instant::now() + self.timeouts.etcd_healthy;
        loop {
            let out = self.exec.run_unchecked(m, &Script::root("API through the endpoint", script.clone())).await?;
            if out.status == 0 && out.stdout.trim() == "ok" {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Self::step_error(
                    "API through the endpoint",
                    &m.name,
                    format!(
                        "https://{endpoint}/readyz did not answer `ok` within {}s",
                        self.timeouts.etcd_healthy.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn cni(&self) -> Result<(), BootstrapError> {
        let m = self.admin()?;
        let (ns, ds) = scripts::cni_daemonset(self.spec.kubernetes.network_plugin);
        let check = self
            .exec
            .run_unchecked(m, &Script::root("check CNI", kubectl(&format!("-n {ns} get daemonset {ds}"))))
            .await?;
        if check.status == 0 {
            self.info(&format!("the {} CNI is already installed", self.spec.kubernetes.network_plugin));
            return self.done("cni").await;
        }
        let url = scripts::cni_manifest(self.spec);
        let pod = self.spec.kubernetes.pod_subnet.to_string();
        let file = format!("{NODE_DIR}/cni.yaml");
        // Keep the manifest's pod network consistent with the cluster's podSubnet.
        let patch = match self.spec.kubernetes.network_plugin {
            crate::model::NetworkPlugin::Calico => format!(
                r#"sed -i -e 's|# - name: CALICO_IPV4POOL_CIDR|- name: CALICO_IPV4POOL_CIDR|' -e 's|#   value: "192.168.0.0/16"|  value: "{pod}"|' {file}"#
            ),
            crate::model::NetworkPlugin::Flannel => format!(
                r#"sed -i -e 's|"Network": "10.244.0.0/16"|"Network": "{pod}"|' -e 's|"Type": "vxlan"|"Type": "vxlan", "Port": 4789|' {file}"#
            ),
            crate::model::NetworkPlugin::Cilium => format!(
                r#"sed -i -e 's|tunnel-port: .*|tunnel-port: "4789"|' -e 's|cluster-pool-ipv4-cidr: .*|cluster-pool-ipv4-cidr: "{pod}"|' {file}"#
            ),
            // Pod ranges come from the controller-manager (podSubnet); the manifest names its
            // image without a tag, which is `latest`: pin the release it belongs to.
            crate::model::NetworkPlugin::KubeRouter => format!(
                r#"sed -i -e 's|image: docker.io/cloudnativelabs/kube-router$|image: docker.io/cloudnativelabs/kube-router:{}|' {file}"#,
                scripts::KUBE_ROUTER
            ),
        };
        let script = format!(
            "set -eu\ncurl -fsSL {} -o {file}\n{patch}\n{}\n",
            shell_quote(&url),
            kubectl(&format!("apply -f {file}"))
        );
        self.exec
            .run(m, &Script::root(format!("install the {} CNI", self.spec.kubernetes.network_plugin), script))
            .await?;
        self.done("cni").await
    }

    /// Renews the token and the uploaded certificates when they are about to expire (both
    /// live 2 h; a long pause between joins, or a resumed run, can outlive them). The new
    /// token reaches kubeadm inside the init config file (root only, 0600), as the certificate
    /// key does: on its command line it would be readable in the node's process list.
    async fn fresh_secrets(&self, need_certs: bool) -> Result<Secrets, BootstrapError> {
        let mut s = self.secrets().await?;
        let m = self.admin()?;
        let now = kubeadm::now();
        let token_stale = now.saturating_sub(s.token_created) > kubeadm::REFRESH_AFTER_SECS;
        let certs_stale = need_certs && now.saturating_sub(s.certs_uploaded) > kubeadm::REFRESH_AFTER_SECS;
        if !token_stale && !certs_stale {
            return Ok(s);
        }
        let mut next = s.clone();
        if token_stale {
            next.token = kubeadm::new_token();
            self.exec.redactor().add(&next.token);
        }
        self.init_config_on_node(m, &next).await?;
        if token_stale {
            // `--config` takes the token (and its TTL) from the file's bootstrapTokens.
            self.exec
                .run(
                    m,
                    &Script::root(
                        "renew join token",
                        format!("kubeadm token create --config {INIT_CONFIG} --print-join-command >/dev/null"),
                    ),
                )
                .await?;
            s = self
                .record(|r| {
                    r.secrets.token = next.token.clone();
                    r.secrets.token_created = now;
                    r.secrets.clone()
                })
                .await?;
            self.info("renewed the join token");
        }
        if certs_stale {
            self.exec
                .run(
                    m,
                    &Script::root(
                        "re-upload control-plane certificates",
                        format!("kubeadm init phase upload-certs --upload-certs --config {INIT_CONFIG} >/dev/null"),
                    ),
                )
                .await?;
            s = self
                .record(|r| {
                    r.secrets.certs_uploaded = now;
                    r.secrets.clone()
                })
                .await?;
            self.info("re-uploaded the control-plane certificates");
        }
        Ok(s)
    }

    /// Removes the etcd member that an earlier, failed join of `m` left, whatever became of it:
    /// added and never started (etcd takes no other learner while it is there, and a voter of
    /// that kind raises the quorum), or started since — its data goes with the retry's
    /// `kubeadm reset`, which cannot remove the member itself when the node never registered
    /// (seen with kubeadm 1.37: the member is added before the kubelet's TLS bootstrap, and a
    /// learner that started late made the retried join's etcd crash-loop, so the node's API
    /// server, which its kubelet bootstraps against, never came up). This is the manual
    /// `etcdctl member remove` kubeadm's docs give; etcd itself refuses a removal that would
    /// cost quorum. Only after that join is known to have ended: a join still running is
    /// unstarted for a moment too.
    async fn remove_member_of_failed_join(&self, m: &Machine) -> Result<(), BootstrapError> {
        // Asked through any other control plane's etcd pod: the first that answers.
        let mut last = None;
        for cp in self
            .spec
            .control_planes
            .iter()
            .filter(|n| n.name.as_str() != m.name && !self.replacing_now(n.name.as_str()))
        {
            let via = self.machine(cp)?;
            match crate::membership::etcd::remove_members_at(self.exec, via, &m.private_address).await {
                Ok(removed) => {
                    for r in removed {
                        self.info(&format!(
                            "removed etcd member {} ({}) that an earlier, failed join of {} left, before joining it again",
                            r.id,
                            r.describe(),
                            m.name
                        ));
                    }
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Joins `node`, or waits for a join an earlier run started there (or finds it done): one
    /// round trip to start it, config file included, then the waits.
    async fn join(&self, node: &Node, secrets: &Secrets) -> Result<(), BootstrapError> {
        let m = self.machine(node)?;
        let step = format!("join:{}", node.name);
        let (owner, adopt_unowned) = self.job_owner(node.name.as_str()).await?;
        let job = jobs::Job { name: JOIN_JOB, proof: KUBELET_CONF, owner: &owner, adopt_unowned };
        let status = match self.recorded_job(m, &step, &job).await? {
            Some(jobs::Status::Unrecorded) => return Ok(()),
            Some(s) => s,
            None => jobs::status(self.exec, m, &job).await?,
        };
        if !matches!(status, jobs::Status::Running | jobs::Status::Succeeded) {
            self.forget_node(node).await?;
        }
        let cfg = kubeadm::join_config(self.spec, self.infra, node, secrets);
        let file = jobs::File { path: JOIN_CONFIG, mode: 0o600, content: cfg.as_bytes() };
        jobs::run(self.exec, m, &job, &scripts::join_job(), &[file], KUBEADM_LIMIT).await?;
        Ok(())
    }

    /// Deletes `node`'s Node object before it joins, if one is left: kubeadm refuses to join a
    /// name whose Node exists and is Ready, and `kubeadm reset` leaves the object behind (seen
    /// with kubeadm 1.37: a node reset and joined again failed for as long as its old Node
    /// looked Ready).
    async fn forget_node(&self, node: &Node) -> Result<(), BootstrapError> {
        let init = self.admin()?;
        let script =
            kubectl(&format!("delete node {} --ignore-not-found --wait=false", shell_quote(node.name.as_str())));
        let out = self.exec.run(init, &Script::root("delete a stale Node", script)).await?;
        if out.stdout.contains("deleted") {
            self.info(&format!("{}: deleted the Node object an earlier join left, before joining it again", node.name));
        }
        Ok(())
    }

    /// One control plane, confirmed (registered, etcd member healthy) before the next starts:
    /// adding etcd members concurrently can cost quorum.
    async fn join_control_plane(&self, node: &Node) -> Result<(), BootstrapError> {
        let m = self.machine(node)?;
        let reset = format!("{}{}", crate::membership::replace::RESET_RECORD, node.name);
        if self.replacing_now(node.name.as_str()) && !self.step_done(&reset).await {
            // The machine the backend gives back may be the old one with its disk, whose join
            // record would be taken for this join (and its etcd member is gone): reset it
            // first, once (nothing to do on a new machine).
            let script = crate::membership::remove::reset_script(crate::model::NodeRole::ControlPlane, false);
            self.exec
                .run(m, &Script::root("reset the replaced control plane", script).timeout(Duration::from_secs(300)))
                .await?;
            self.done(&reset).await?;
        }
        let (owner, adopt_unowned) = self.job_owner(node.name.as_str()).await?;
        let job = jobs::Job { name: JOIN_JOB, proof: KUBELET_CONF, owner: &owner, adopt_unowned };
        match jobs::status(self.exec, m, &job).await? {
            jobs::Status::Succeeded => self.info(&format!("{} has already joined", node.name)),
            status => {
                if matches!(status, jobs::Status::Failed | jobs::Status::Lost) {
                    self.remove_member_of_failed_join(m).await?;
                }
                let secrets = self.fresh_secrets(true).await?;
                self.join(node, &secrets).await?;
            }
        }
        // Confirm before the next one: the node is registered and its etcd member healthy.
        let init = self.admin()?;
        self.exec
            .run(
                init,
                &Script::root(
                    "check node registered",
                    kubectl(&format!("get node {}", shell_quote(node.name.as_str()))),
                ),
            )
            .await?;
        let deadline = tokio::time::Instant::now() + self.timeouts.etcd_healthy;
        loop {
            let out = self
                .exec
                .run_unchecked(m, &Script::root("etcd health", "curl -fsS --max-time 3 http://127.0.0.1:2381/health"))
                .await?;
            if out.status == 0 && out.stdout.contains("\"true\"") {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Self::step_error(
                    "control-plane join",
                    node.name.as_str(),
                    format!("its etcd member did not become healthy within {}s", self.timeouts.etcd_healthy.as_secs()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.done(&format!("join:{}", node.name)).await?;
        if self.replacing_now(node.name.as_str()) {
            let record = format!("{}{}", crate::membership::replace::RECORD, node.name);
            self.record(|r| r.completed.retain(|c| *c != record && *c != reset)).await?;
            self.info(&format!("{}: replaced; its new etcd member is healthy", node.name));
        }
        Ok(())
    }

    async fn join_workers(&self) -> Result<(), BootstrapError> {
        let secrets = self.fresh_secrets(false).await?;
        let total = self.spec.workers.len() as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let jobs = self.spec.workers.iter().map(|n| {
            let secrets = &secrets;
            let done = &done;
            async move {
                self.join(n, secrets).await?;
                self.done(&format!("join:{}", n.name)).await?;
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                self.events.progress(SRC, "join workers", d, total);
                Ok::<_, BootstrapError>(())
            }
        });
        let mut first = None;
        for r in join_all(jobs).await {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn wait_ready(&self) -> Result<(), BootstrapError> {
        let m = self.admin()?;
        let want: Vec<String> = self.kube_nodes().map(|n| n.name.to_string()).collect();
        let deadline = tokio::time::Instant::now() + self.timeouts.nodes_ready;
        loop {
            let out =
                self.exec.run_unchecked(m, &Script::root("list nodes", kubectl("get nodes -o json")).quiet()).await?;
            let ready = if out.status == 0 { verify::ready_nodes(&out.stdout) } else { Vec::new() };
            let count = want.iter().filter(|w| ready.contains(w)).count();
            self.events.progress(SRC, "nodes Ready", count as u64, want.len() as u64);
            if count == want.len() {
                return self.done("ready").await;
            }
            if tokio::time::Instant::now() > deadline {
                let missing: Vec<&String> = want.iter().filter(|w| !ready.contains(w)).collect();
                return Err(Self::step_error(
                    "wait for Ready",
                    &m.name,
                    format!(
                        "not Ready after {}s: {}",
                        self.timeouts.nodes_ready.as_secs(),
                        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn write_kubeconfig(&self) -> Result<std::path::PathBuf, BootstrapError> {
        let m = self.admin()?;
        let out = self.exec.run(m, &Script::root("read admin kubeconfig", format!("cat {ADMIN_CONF}")).quiet()).await?;
        let text = kubeconfig::with_server(&out.stdout, &self.infra.endpoint.host, self.infra.endpoint.port);
        let path = self.lock.dir().path.join("kubeconfig");
        crate::state::write_atomic(&path, text.as_bytes())?;
        self.record(|r| r.kubeconfig = Some(path.clone())).await?;
        self.done("kubeconfig").await?;
        Ok(path)
    }
}

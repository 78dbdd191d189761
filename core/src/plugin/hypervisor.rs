//! The host's side of the `hypervisor` import: libvirt through its C library (`virt`), on the
//! URIs the config's hosts lead to and on nothing else.
//!
//! libvirt is root on a hypervisor host, and the plugin is untrusted, so every call goes
//! through the policy (`hypervisor/policy.rs`) built from the validated config: changes touch
//! only the cluster's own objects, named as the cluster names them and carrying its mark; XML
//! of every kind passes an allow-list of what hacluster's plugin renders (`hypervisor/schema.rs`);
//! seeds take only NoCloud's files (`hypervisor/seed.rs`); a base image comes only from the
//! config's `image.url` / `image.path` (`hypervisor/image.rs`). Lists are not restricted.
//!
//! This file is the call surface; libvirt itself is `hypervisor/libvirt.rs` (or
//! `hypervisor/no_libvirt.rs` in a build without it). libvirt calls block, so each runs on
//! tokio's blocking pool. Connections stay open for the life of the process: opening
//! `qemu:///system` costs seconds, and the `test:///default` driver keeps its (in-memory)
//! objects only while a connection is open.

mod image;
#[cfg(feature = "libvirt")]
mod libvirt;
#[cfg(not(feature = "libvirt"))]
mod no_libvirt;
pub mod policy;
pub(crate) mod schema;
mod seed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use image::MAX_IMAGE_BYTES;
// The implementation the build has: every function blocks, on one connection per URI.
#[cfg(feature = "libvirt")]
use libvirt as imp;
#[cfg(not(feature = "libvirt"))]
use no_libvirt as imp;

/// How a hypervisor call failed, in the contract's three kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HvError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct DomainInfo {
    pub name: String,
    pub uuid: String,
    pub active: bool,
    pub xml: String,
}

#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub name: String,
    pub active: bool,
    pub xml: String,
}

#[derive(Debug, Clone)]
pub struct PoolInfo {
    pub name: String,
    pub active: bool,
    pub xml: String,
}

#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub name: String,
    pub path: String,
    pub capacity_bytes: u64,
}

/// What one plugin call may do (the policy derived from the config), and where the host keeps
/// a copy of every seed it makes (for inspection; they hold private host keys, so the
/// directory is 0700 and the files 0600).
#[derive(Debug, Clone, Default)]
pub struct Hypervisor {
    pub policy: Arc<policy::Policy>,
    pub seed_copies: Option<PathBuf>,
    /// The largest base image downloaded (`None`: [`MAX_IMAGE_BYTES`]).
    pub max_image_bytes: Option<u64>,
    /// How long a first connection to a URI may take (`None`: [`CONNECT_LIMIT`]).
    pub connect_limit: Option<Duration>,
    /// Who hears "connecting to libvirt on host …" (the plugin's events).
    pub reporter: Option<Reporter>,
    /// Test mode: fail one changing call (`hv-fail-at=N`).
    pub faults: Option<Arc<super::faults::Faults>>,
}

/// How long the host waits for a hypervisor's first answer unless told otherwise.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// Where the hypervisor capability reports what it is waiting for.
#[derive(Clone)]
pub struct Reporter {
    pub plugin: String,
    pub events: Arc<dyn super::Events>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reporter({})", self.plugin)
    }
}

type HvResult<T> = Result<T, HvError>;

impl Hypervisor {
    pub fn new(policy: policy::Policy) -> Hypervisor {
        Hypervisor { policy: Arc::new(policy), ..Hypervisor::default() }
    }

    fn check(&self, uri: &str) -> HvResult<()> {
        self.policy.check_uri(uri)
    }

    /// For calls that change something: the injected failure, if this is the one.
    fn change(&self, uri: &str) -> HvResult<()> {
        self.check(uri)?;
        if self.faults.as_ref().is_some_and(|f| f.hv_fail_now()) {
            return Err(HvError::Failed("injected fault (HACLUSTER_FAULT_INJECTION hv-fail-at)".into()));
        }
        Ok(())
    }

    /// Connects to `uri` unless a connection is open already: said as progress (naming the
    /// host), and bounded by the connect limit. libvirt's open cannot be cancelled: a host that
    /// does not answer (a `qemu+ssh` host out of reach) leaves its thread behind, and the call
    /// fails naming the host and the limit instead of hanging.
    async fn connected(&self, uri: &str) -> HvResult<()> {
        if imp::is_connected(uri) {
            return Ok(());
        }
        let host = self.policy.hosts.iter().find(|h| h.uri == uri).map_or(uri, |h| h.name.as_str());
        let step = format!("connect to libvirt on host `{host}` ({uri})");
        let limit = self.connect_limit.unwrap_or(CONNECT_LIMIT);
        if let Some(r) = &self.reporter {
            r.events.progress(&r.plugin, &step, 0, 1);
        }
        let u = uri.to_string();
        let opened = tokio::time::timeout(limit, tokio::task::spawn_blocking(move || imp::connection(&u).map(|_| ())));
        match opened.await {
            Ok(Ok(r)) => r?,
            Ok(Err(e)) => return Err(HvError::Failed(format!("connecting to {uri} did not finish: {e}"))),
            Err(_) => {
                return Err(HvError::Failed(format!(
                    "libvirt on host `{host}` ({uri}) did not answer within {} s: is it reachable from here (your ssh_config applies to qemu+ssh)? `--hypervisor-connect-secs` sets the limit",
                    limit.as_secs()
                )));
            }
        }
        if let Some(r) = &self.reporter {
            r.events.progress(&r.plugin, &step, 1, 1);
        }
        Ok(())
    }

    /// Runs `f` with the connection for `uri` on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        uri: &str,
        f: impl FnOnce(&imp::Connect) -> HvResult<T> + Send + 'static,
    ) -> HvResult<T> {
        self.check(uri)?;
        self.connected(uri).await?;
        let uri = uri.to_string();
        tokio::task::spawn_blocking(move || {
            let conn = imp::connection(&uri)?;
            f(&conn)
        })
        .await
        .map_err(|e| HvError::Failed(format!("libvirt call did not finish: {e}")))?
    }

    pub async fn list_domains(&self, uri: &str) -> HvResult<Vec<DomainInfo>> {
        self.with(uri, imp::list_domains).await
    }

    /// Defines a node's domain; one that exists already under that name must be the cluster's.
    pub async fn define_domain(&self, uri: &str, xml: String) -> HvResult<()> {
        self.change(uri)?;
        let name = self.policy.check_domain_xml(uri, &xml)?;
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            if let Some(existing) = imp::domain_xml(c, &name)? {
                policy.owns_domain(&u, &name, &existing)?;
            }
            imp::define_domain(c, &xml)
        })
        .await
    }

    pub async fn start_domain(&self, uri: &str, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.policy.node(uri, &name)?;
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_domain(&u, &name, &imp::domain_xml(c, &name)?.ok_or_else(|| missing("domain", &name))?)?;
            imp::start_domain(c, &name)
        })
        .await
    }

    pub async fn delete_domain(&self, uri: &str, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.policy.removable_domain(uri, &name)?;
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_domain(&u, &name, &imp::domain_xml(c, &name)?.ok_or_else(|| missing("domain", &name))?)?;
            imp::delete_domain(c, &name)
        })
        .await
    }

    pub async fn domain_addresses(&self, uri: &str, name: String) -> HvResult<Vec<String>> {
        self.with(uri, move |c| imp::domain_addresses(c, &name)).await
    }

    pub async fn list_networks(&self, uri: &str) -> HvResult<Vec<NetworkInfo>> {
        self.with(uri, imp::list_networks).await
    }

    pub async fn create_network(&self, uri: &str, xml: String) -> HvResult<()> {
        self.change(uri)?;
        self.policy.check_network_xml(uri, &xml)?;
        self.with(uri, move |c| imp::create_network(c, &xml)).await
    }

    pub async fn delete_network(&self, uri: &str, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.policy.network(uri, &name)?;
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_network(&u, &name, &imp::network_xml(c, &name)?)?;
            imp::delete_network(c, &name)
        })
        .await
    }

    pub async fn list_pools(&self, uri: &str) -> HvResult<Vec<PoolInfo>> {
        self.with(uri, imp::list_pools).await
    }

    pub async fn create_pool(&self, uri: &str, xml: String) -> HvResult<()> {
        self.change(uri)?;
        self.policy.check_pool_xml(uri, &xml)?;
        self.with(uri, move |c| imp::create_pool(c, &xml)).await
    }

    pub async fn delete_pool(&self, uri: &str, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.policy.pool(uri, &name)?;
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_pool(&u, &name, &imp::pool_xml(c, &name)?)?;
            imp::delete_pool(c, &name)
        })
        .await
    }

    pub async fn list_volumes(&self, uri: &str, pool: String) -> HvResult<Vec<VolumeInfo>> {
        self.with(uri, move |c| imp::list_volumes(c, &pool)).await
    }

    pub async fn create_volume(&self, uri: &str, pool: String, xml: String) -> HvResult<()> {
        self.change(uri)?;
        self.policy.check_volume_xml(uri, &pool, &xml)?;
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_pool(&u, &pool, &imp::pool_xml(c, &pool)?)?;
            imp::create_volume(c, &pool, &xml)
        })
        .await
    }

    /// Removes a volume from one of the cluster's own pools (everything in them is the
    /// cluster's, also volumes of nodes the config no longer has).
    pub async fn delete_volume(&self, uri: &str, pool: String, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.policy.pool(uri, &pool)?;
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_pool(&u, &pool, &imp::pool_xml(c, &pool)?)?;
            imp::delete_volume(c, &pool, &name)
        })
        .await
    }

    /// Makes the NoCloud ISO (volume id `cidata`) with genisoimage and stores it as a raw
    /// volume `<node>-seed.iso` in the main pool of the node's host. libvirt's test driver
    /// cannot take uploads: there the volume is created empty and the copy under the state
    /// directory is what shows the content.
    pub async fn create_seed_volume(
        &self,
        uri: &str,
        pool: String,
        name: String,
        files: Vec<(String, Vec<u8>)>,
    ) -> HvResult<()> {
        self.change(uri)?;
        let stem = self.policy.seed_volume(uri, &pool, &name)?;
        seed::check_files(&files)?;
        let copies = self.seed_copies.clone();
        let test_driver = uri.starts_with("test:");
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_pool(&u, &pool, &imp::pool_xml(c, &pool)?)?;
            if let Some(dir) = &copies {
                seed::keep_copy(dir, &stem, &files)
                    .map_err(|e| HvError::Failed(format!("keeping a copy of seed `{name}`: {e}")))?;
            }
            let iso = seed::make_iso(&files)?;
            imp::create_volume_with(c, &pool, &name, "raw", &mut &iso[..], iso.len() as u64, test_driver)
        })
        .await
    }

    /// Creates a volume from the configured base image: a file on this machine or an http(s)
    /// URL, checked against its SHA-256 (required for URLs: from the config or from the
    /// SHA256SUMS file beside the image).
    pub async fn import_image(
        &self,
        uri: &str,
        pool: String,
        name: String,
        source: String,
        sha256: Option<String>,
    ) -> HvResult<()> {
        self.change(uri)?;
        let images = &self.policy.images;
        if !images.iter().any(|i| i == &source) {
            return Err(HvError::Denied(format!(
                "image `{source}` is not one the config names in the backend's `image` section ({})",
                if images.is_empty() { "none set".to_string() } else { images.join(", ") }
            )));
        }
        self.policy.base_volume(uri, &pool, &name)?;
        let test_driver = uri.starts_with("test:");
        // One open file from the check to the upload: a path could be swapped in between.
        let file = image::open(&source, sha256, self.max_image_bytes.unwrap_or(image::MAX_IMAGE_BYTES)).await?;
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_pool(&u, &pool, &imp::pool_xml(c, &pool)?)?;
            let mut f = file;
            let (format, len) = image::format_and_size(&mut f)?;
            imp::create_volume_with(c, &pool, &name, format, &mut f, len, test_driver)
        })
        .await
    }
}

/// A lookup that found nothing, for calls that need the object to exist.
fn missing(kind: &str, name: &str) -> HvError {
    HvError::NotFound(format!("no {kind} named `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cluster `c` on host `h` (`test:///default`) with node `c-master-1`.
    fn policy() -> policy::Policy {
        policy::Policy {
            cluster: "c".into(),
            uris: vec!["test:///default".into()],
            hosts: vec![policy::HostGrant {
                name: "h".into(),
                uri: "test:///default".into(),
                pools: vec![("main".into(), "/var/lib/libvirt/images/".into())],
            }],
            nodes: vec![policy::NodeGrant { name: "c-master-1".into(), host: "h".into(), disks: vec![] }],
            ..Default::default()
        }
    }

    /// A seed volume's name becomes the directory of its copy (`...iso` was `..` once `.iso`
    /// was cut: the files landed in the cluster's state directory), and its files' names reach
    /// genisoimage's argv: only `<node>-seed.iso` and NoCloud's file names pass, and a refused
    /// call writes nothing.
    #[tokio::test]
    async fn seed_volumes_take_only_nocloud_file_names_and_node_seed_names() {
        let dir = tempfile::tempdir().unwrap();
        let hv = Hypervisor { seed_copies: Some(dir.path().join("c/seeds")), ..Hypervisor::new(policy()) };
        let seed = |name: &str, files: Vec<(String, Vec<u8>)>| {
            hv.create_seed_volume("test:///default", "c.h.main".into(), name.into(), files)
        };
        let ok_files = vec![("meta-data".to_string(), b"instance-id: x\n".to_vec())];
        for name in ["...iso", ".iso", "..iso", "c-master-2-seed.iso", "c-master-1-seed.iso/../x.iso"] {
            let e = seed(name, ok_files.clone()).await.unwrap_err();
            assert!(matches!(&e, HvError::Denied(m) if m.contains(name)), "{name}: {e}");
        }
        for bad in ["-path-list", "list", "user-data.bak", ".hidden", "meta-data/../x"] {
            let e = seed("c-master-1-seed.iso", vec![(bad.to_string(), b"x".to_vec())]).await.unwrap_err();
            assert!(matches!(&e, HvError::Denied(m) if m.contains(bad)), "{bad}: {e}");
        }
        let e = seed("c-master-1-seed.iso", vec![ok_files[0].clone(), ok_files[0].clone()]).await.unwrap_err();
        assert!(matches!(&e, HvError::Denied(m) if m.contains("twice")), "{e}");
        let e = seed("c-master-1-seed.iso", vec![("user-data".to_string(), vec![b'x'; 2 << 20])]).await.unwrap_err();
        assert!(matches!(&e, HvError::Denied(m) if m.contains("1 MiB")), "{e}");
        let e = hv
            .create_seed_volume("test:///default", "default-pool".into(), "c-master-1-seed.iso".into(), ok_files)
            .await
            .unwrap_err();
        assert!(matches!(&e, HvError::Denied(m) if m.contains("default-pool")), "{e}");
        // Nothing was written anywhere: not even the seed directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn uris_the_config_does_not_name_are_refused_and_a_reader_only_reads() {
        let hv = Hypervisor::new(policy::Policy::read_only(vec!["test:///default".into()]));
        let e = hv.list_domains("qemu:///system").await.unwrap_err();
        assert!(
            matches!(&e, HvError::Denied(m) if m.contains("qemu:///system") && m.contains("test:///default")),
            "{e}"
        );
        assert!(hv.list_domains("test:///default").await.is_ok());
        let e = hv.delete_domain("test:///default", "test".into()).await.unwrap_err();
        assert!(matches!(&e, HvError::Denied(m) if m.contains("may only read")), "{e}");
        let e =
            hv.import_image("test:///default", "p".into(), "v".into(), "/etc/shadow".into(), None).await.unwrap_err();
        assert!(matches!(&e, HvError::Denied(m) if m.contains("/etc/shadow")), "{e}");
    }
}

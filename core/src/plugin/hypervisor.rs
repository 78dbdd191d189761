//! The host's side of the `hypervisor` import: libvirt through its C library (`virt`), on the
//! URIs the config's hosts lead to and on nothing else.
//!
//! libvirt is root on a hypervisor host, and the plugin is untrusted, so every call goes
//! through the policy (`hypervisor/policy.rs`) built from the validated config: changes touch
//! only the cluster's own objects, named as the cluster names them and carrying its mark; XML
//! of every kind passes an allow-list of what hacluster's plugin renders (`hypervisor/schema.rs`);
//! seeds take only NoCloud's files (`hypervisor/seed.rs`); a base image comes only from the
//! config's `image.url` / `image.path`. Lists are not restricted.
//!
//! libvirt calls block, so each runs on tokio's blocking pool. Connections stay open for the
//! life of the process: opening `qemu:///system` costs seconds, and the `test:///default`
//! driver keeps its (in-memory) objects only while a connection is open.

pub mod policy;
pub(crate) mod schema;
mod seed;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

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
        let file = if source.starts_with("http://") || source.starts_with("https://") {
            let want = match sha256 {
                Some(s) => s,
                // A SHA256SUMS beside the image comes over the same channel: over TLS it vouches
                // for the image, over plain http an attacker on the path rewrites both.
                None if source.starts_with("http://") => {
                    return Err(HvError::Denied(format!(
                        "`{source}` is plain http, so a SHA256SUMS beside it proves nothing; set `image.sha256` (or use https)"
                    )));
                }
                None => sums_file_entry(&source).await?,
            };
            download(&source, &want, self.max_image_bytes.unwrap_or(MAX_IMAGE_BYTES)).await?
        } else {
            let p = PathBuf::from(source.strip_prefix("file://").unwrap_or(&source));
            let f = std::fs::File::open(&p).map_err(|e| HvError::Failed(format!("image {}: {e}", p.display())))?;
            match sha256 {
                Some(want) => {
                    let (f, got) = tokio::task::spawn_blocking(move || {
                        let mut f = f;
                        file_sha256(&mut f).map(|h| (f, h))
                    })
                    .await
                    .map_err(|e| HvError::Failed(e.to_string()))?
                    .map_err(|e| HvError::Failed(format!("reading image {}: {e}", p.display())))?;
                    if !got.eq_ignore_ascii_case(&want) {
                        return Err(HvError::Failed(format!(
                            "image {} has SHA-256 {got}, the config expects {want}",
                            p.display()
                        )));
                    }
                    f
                }
                None => f,
            }
        };
        let (policy, u) = (self.policy.clone(), uri.to_string());
        self.with(uri, move |c| {
            policy.owns_pool(&u, &pool, &imp::pool_xml(c, &pool)?)?;
            let mut f = file;
            let io = |e: std::io::Error| HvError::Failed(format!("reading the image: {e}"));
            let len = f.metadata().map_err(io)?.len();
            let mut magic = [0u8; 4];
            f.seek(SeekFrom::Start(0)).map_err(io)?;
            let format = if f.read_exact(&mut magic).is_ok() && &magic == b"QFI\xfb" { "qcow2" } else { "raw" };
            f.seek(SeekFrom::Start(0)).map_err(io)?;
            imp::create_volume_with(c, &pool, &name, format, &mut f, len, test_driver)
        })
        .await
    }
}

/// The largest base image the host downloads: cloud images are a few hundred MiB; a server
/// that never stops sending must not fill the disk.
pub const MAX_IMAGE_BYTES: u64 = 32 << 30;

/// SHA-256 of what is left to read in `f`.
fn file_sha256(f: &mut std::fs::File) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The image's line in the SHA256SUMS file beside it (as cloud-images.ubuntu.com and
/// cloud.debian.org publish them).
async fn sums_file_entry(url: &str) -> HvResult<String> {
    let (dir, file) = url.rsplit_once('/').ok_or_else(|| HvError::Failed(format!("`{url}` has no file name")))?;
    let sums_url = format!("{dir}/SHA256SUMS");
    let mut body = Vec::new();
    super::http_client::get(&sums_url, &mut |chunk| {
        body.extend_from_slice(chunk);
        if body.len() > 4 << 20 {
            return Err("SHA256SUMS is over 4 MiB".into());
        }
        Ok(())
    })
    .await
    .map_err(|e| {
        HvError::Failed(format!("no sha256 in the config and {sums_url} could not be read ({e}); set `image.sha256`"))
    })?;
    sums_entry(&String::from_utf8_lossy(&body), file)
        .ok_or_else(|| HvError::Failed(format!("{sums_url} has no line for `{file}`; set `image.sha256`")))
}

/// The hash `sha256sum` wrote for `file` (`<hex>  <file>`, or `<hex> *<file>` in binary mode).
fn sums_entry(text: &str, file: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .find(|(h, f)| f.trim().trim_start_matches('*') == file && h.len() == 64)
        .map(|(h, _)| h.to_string())
}

/// Downloads `url` into a file that has no name (it goes when it is closed, and nobody can put
/// a link or another file in its place), at most `max` bytes, checking the SHA-256 as it
/// streams; nothing is kept on a mismatch.
async fn download(url: &str, want: &str, max: u64) -> HvResult<std::fs::File> {
    let mut file = tempfile::tempfile().map_err(|e| HvError::Failed(format!("a temporary file for {url}: {e}")))?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    super::http_client::get(url, &mut |chunk| {
        size += chunk.len() as u64;
        if size > max {
            return Err(format!("the image is over the limit of {max} bytes"));
        }
        h.update(chunk);
        file.write_all(chunk).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| HvError::Failed(format!("downloading {url}: {e}")))?;
    let got = hex(&h.finalize());
    if !got.eq_ignore_ascii_case(want) {
        return Err(HvError::Failed(format!("{url} has SHA-256 {got}, expected {want}; the download was discarded")));
    }
    Ok(file)
}

/// A lookup that found nothing, for calls that need the object to exist.
fn missing(kind: &str, name: &str) -> HvError {
    HvError::NotFound(format!("no {kind} named `{name}`"))
}

#[cfg(feature = "libvirt")]
mod imp {
    use super::*;
    use virt::error::ErrorNumber;
    use virt::sys;

    pub use virt::connect::Connect;
    use virt::domain::Domain;
    use virt::network::Network;
    use virt::storage_pool::StoragePool;
    use virt::storage_vol::StorageVol;
    use virt::stream::Stream;

    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    /// One slot per URI, each with its own lock: a host that does not answer holds up the
    /// calls for that URI only, and the table itself is locked only to find a slot.
    type Slot = Arc<Mutex<Option<Arc<Connect>>>>;
    static CONNECTIONS: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();

    fn slot(uri: &str) -> HvResult<Slot> {
        let map = CONNECTIONS.get_or_init(|| {
            // libvirt prints every error to stderr by default; ours reach the user as errors.
            virt::error::clear_error_callback();
            Mutex::new(HashMap::new())
        });
        let mut map = map.lock().map_err(|_| HvError::Failed("libvirt connection table poisoned".into()))?;
        Ok(map.entry(uri.to_string()).or_default().clone())
    }

    pub fn connection(uri: &str) -> HvResult<Arc<Connect>> {
        let slot = slot(uri)?;
        let mut slot = slot.lock().map_err(|_| HvError::Failed("libvirt connection slot poisoned".into()))?;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(
            Connect::open(Some(uri)).map_err(|e| HvError::Failed(format!("connecting to {uri}: {}", msg(&e))))?,
        );
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Whether a connection to `uri` is open (without waiting on one being made).
    pub fn is_connected(uri: &str) -> bool {
        slot(uri).is_ok_and(|s| s.try_lock().is_ok_and(|c| c.is_some()))
    }

    fn skip_vanished<T>(items: impl Iterator<Item = HvResult<T>>) -> HvResult<Vec<T>> {
        items.filter(|r| !matches!(r, Err(HvError::NotFound(_)))).collect()
    }

    fn msg(e: &virt::error::Error) -> String {
        e.message().to_string()
    }

    fn failed(what: &str) -> impl Fn(virt::error::Error) -> HvError + '_ {
        move |e| match e.code() {
            ErrorNumber::NoDomain
            | ErrorNumber::NoNetwork
            | ErrorNumber::NoStoragePool
            | ErrorNumber::NoStorageVolume => HvError::NotFound(format!("{what}: {}", msg(&e))),
            ErrorNumber::AuthFailed | ErrorNumber::AuthCancelled | ErrorNumber::AccessDenied => {
                HvError::Denied(format!("{what}: {}", msg(&e)))
            }
            _ => HvError::Failed(format!("{what}: {}", msg(&e))),
        }
    }

    pub fn list_domains(c: &Connect) -> HvResult<Vec<DomainInfo>> {
        let doms = c.list_all_domains(0).map_err(failed("listing domains"))?;
        // An object removed between the listing and the lookups is simply not there.
        skip_vanished(doms.iter().map(|d| {
            Ok(DomainInfo {
                name: d.get_name().map_err(failed("domain name"))?,
                uuid: d.get_uuid_string().map_err(failed("domain uuid"))?,
                active: d.is_active().map_err(failed("domain state"))?,
                xml: d.get_xml_desc(0).map_err(failed("domain XML"))?,
            })
        }))
    }

    /// A domain's XML, or `None` when there is no domain of that name.
    pub fn domain_xml(c: &Connect, name: &str) -> HvResult<Option<String>> {
        match Domain::lookup_by_name(c, name) {
            Ok(d) => d.get_xml_desc(0).map(Some).map_err(failed(name)),
            Err(e) if e.code() == ErrorNumber::NoDomain => Ok(None),
            Err(e) => Err(failed(name)(e)),
        }
    }

    pub fn network_xml(c: &Connect, name: &str) -> HvResult<String> {
        let n = Network::lookup_by_name(c, name).map_err(failed(name))?;
        n.get_xml_desc(0).map_err(failed(name))
    }

    pub fn pool_xml(c: &Connect, name: &str) -> HvResult<String> {
        let p = StoragePool::lookup_by_name(c, name).map_err(failed(&format!("pool {name}")))?;
        p.get_xml_desc(0).map_err(failed(&format!("pool {name}")))
    }

    pub fn define_domain(c: &Connect, xml: &str) -> HvResult<()> {
        Domain::define_xml(c, xml).map(|_| ()).map_err(failed("defining a domain"))
    }

    pub fn start_domain(c: &Connect, name: &str) -> HvResult<()> {
        let d = Domain::lookup_by_name(c, name).map_err(failed(name))?;
        if !d.is_active().map_err(failed(name))? {
            d.create().map_err(failed(&format!("starting domain {name}")))?;
        }
        let _ = d.set_autostart(true);
        Ok(())
    }

    pub fn delete_domain(c: &Connect, name: &str) -> HvResult<()> {
        let d = Domain::lookup_by_name(c, name).map_err(failed(name))?;
        if d.is_active().map_err(failed(name))? {
            d.destroy().map_err(failed(&format!("stopping domain {name}")))?;
        }
        d.undefine_flags(sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | sys::VIR_DOMAIN_UNDEFINE_NVRAM)
            .or_else(|_| d.undefine())
            .map_err(failed(&format!("undefining domain {name}")))
    }

    pub fn domain_addresses(c: &Connect, name: &str) -> HvResult<Vec<String>> {
        let d = Domain::lookup_by_name(c, name).map_err(failed(name))?;
        let ifaces = d
            .interface_addresses(sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
            .map_err(failed(&format!("addresses of {name}")))?;
        Ok(ifaces
            .iter()
            .flat_map(|i| i.addrs.iter())
            .filter(|a| a.typed == sys::VIR_IP_ADDR_TYPE_IPV4 as i64)
            .map(|a| a.addr.clone())
            .collect())
    }

    pub fn list_networks(c: &Connect) -> HvResult<Vec<NetworkInfo>> {
        let nets = c.list_all_networks(0).map_err(failed("listing networks"))?;
        skip_vanished(nets.iter().map(|n| {
            Ok(NetworkInfo {
                name: n.get_name().map_err(failed("network name"))?,
                active: n.is_active().map_err(failed("network state"))?,
                xml: n.get_xml_desc(0).map_err(failed("network XML"))?,
            })
        }))
    }

    pub fn create_network(c: &Connect, xml: &str) -> HvResult<()> {
        let n = Network::define_xml(c, xml).map_err(failed("defining a network"))?;
        if !n.is_active().map_err(failed("network state"))? {
            n.create().map_err(failed("starting a network"))?;
        }
        let _ = n.set_autostart(true);
        Ok(())
    }

    pub fn delete_network(c: &Connect, name: &str) -> HvResult<()> {
        let n = Network::lookup_by_name(c, name).map_err(failed(name))?;
        if n.is_active().map_err(failed(name))? {
            n.destroy().map_err(failed(&format!("stopping network {name}")))?;
        }
        n.undefine().map_err(failed(&format!("undefining network {name}")))
    }

    pub fn list_pools(c: &Connect) -> HvResult<Vec<PoolInfo>> {
        let pools = c.list_all_storage_pools(0).map_err(failed("listing pools"))?;
        skip_vanished(pools.iter().map(|p| {
            Ok(PoolInfo {
                name: p.get_name().map_err(failed("pool name"))?,
                active: p.is_active().map_err(failed("pool state"))?,
                xml: p.get_xml_desc(0).map_err(failed("pool XML"))?,
            })
        }))
    }

    pub fn create_pool(c: &Connect, xml: &str) -> HvResult<()> {
        let p = StoragePool::define_xml(c, xml, 0).map_err(failed("defining a pool"))?;
        if !p.is_active().map_err(failed("pool state"))? {
            // Creates the directory (and its parents) if missing; an existing one is kept.
            let _ = p.build(sys::VIR_STORAGE_POOL_BUILD_NEW);
            p.create(0).map_err(failed("starting a pool"))?;
        }
        let _ = p.set_autostart(true);
        Ok(())
    }

    pub fn delete_pool(c: &Connect, name: &str) -> HvResult<()> {
        let p = StoragePool::lookup_by_name(c, name).map_err(failed(name))?;
        if p.is_active().map_err(failed(name))? {
            // Only an empty directory goes; the pool's owner checked that.
            let _ = p.refresh(0);
            if p.num_of_volumes().unwrap_or(0) == 0 {
                let _ = p.destroy();
                let _ = p.delete(sys::VIR_STORAGE_POOL_DELETE_NORMAL);
            } else {
                return Err(HvError::Failed(format!("pool {name} still holds volumes; not removed")));
            }
        }
        p.undefine().map_err(failed(&format!("undefining pool {name}")))
    }

    fn pool(c: &Connect, name: &str) -> HvResult<StoragePool> {
        let p = StoragePool::lookup_by_name(c, name).map_err(failed(&format!("pool {name}")))?;
        let _ = p.refresh(0);
        Ok(p)
    }

    pub fn list_volumes(c: &Connect, pool_name: &str) -> HvResult<Vec<VolumeInfo>> {
        let p = pool(c, pool_name)?;
        let vols = p.list_all_volumes(0).map_err(failed(&format!("volumes of {pool_name}")))?;
        skip_vanished(vols.iter().map(|v| {
            Ok(VolumeInfo {
                name: v.get_name().map_err(failed("volume name"))?,
                path: v.get_path().map_err(failed("volume path"))?,
                capacity_bytes: v.get_info().map_err(failed("volume size"))?.capacity,
            })
        }))
    }

    pub fn create_volume(c: &Connect, pool_name: &str, xml: &str) -> HvResult<()> {
        let p = pool(c, pool_name)?;
        StorageVol::create_xml(&p, xml, 0).map(|_| ()).map_err(failed(&format!("creating a volume in {pool_name}")))
    }

    pub fn delete_volume(c: &Connect, pool_name: &str, name: &str) -> HvResult<()> {
        let p = pool(c, pool_name)?;
        let v = StorageVol::lookup_by_name(&p, name).map_err(failed(&format!("volume {name}")))?;
        v.delete(0).map_err(failed(&format!("deleting volume {name}")))
    }

    /// Creates a volume of `len` bytes and streams `data` into it. On the test driver, which
    /// has no uploads, the volume stays empty.
    pub fn create_volume_with(
        c: &Connect,
        pool_name: &str,
        name: &str,
        format: &str,
        data: &mut dyn Read,
        len: u64,
        test_driver: bool,
    ) -> HvResult<()> {
        let p = pool(c, pool_name)?;
        let xml = format!(
            "<volume><name>{}</name><capacity unit='bytes'>{len}</capacity><target><format type='{format}'/></target></volume>",
            xml_escape(name)
        );
        let vol = StorageVol::create_xml(&p, &xml, 0).map_err(failed(&format!("creating volume {name}")))?;
        if test_driver {
            return Ok(());
        }
        let mut upload = || -> HvResult<()> {
            let stream = Stream::new(c, 0).map_err(failed("opening a stream"))?;
            vol.upload(&stream, 0, len, 0).map_err(failed(&format!("uploading to {name}")))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = data.read(&mut buf).map_err(|e| HvError::Failed(format!("reading for {name}: {e}")))?;
                if n == 0 {
                    break;
                }
                let mut sent = 0;
                while sent < n {
                    sent += stream.send(&buf[sent..n]).map_err(failed(&format!("uploading to {name}")))?;
                }
            }
            stream.finish().map_err(failed(&format!("finishing the upload to {name}")))
        };
        upload().inspect_err(|_| {
            // A half-written volume must not pass for a good one on the next run.
            let _ = vol.delete(0);
        })
    }

    fn xml_escape(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;")
    }
}

#[cfg(not(feature = "libvirt"))]
mod imp {
    use super::*;

    /// Stands in for libvirt's connection in builds without libvirt.
    pub struct Connect;

    pub fn connection(_uri: &str) -> HvResult<Arc<Connect>> {
        Err(HvError::Failed("this hacluster was built without libvirt (cargo feature `libvirt`)".into()))
    }
    pub fn is_connected(_uri: &str) -> bool {
        false
    }
    pub fn list_domains(_: &Connect) -> HvResult<Vec<DomainInfo>> {
        unreachable!()
    }
    pub fn domain_xml(_: &Connect, _: &str) -> HvResult<Option<String>> {
        unreachable!()
    }
    pub fn network_xml(_: &Connect, _: &str) -> HvResult<String> {
        unreachable!()
    }
    pub fn pool_xml(_: &Connect, _: &str) -> HvResult<String> {
        unreachable!()
    }
    pub fn define_domain(_: &Connect, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn start_domain(_: &Connect, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn delete_domain(_: &Connect, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn domain_addresses(_: &Connect, _: &str) -> HvResult<Vec<String>> {
        unreachable!()
    }
    pub fn list_networks(_: &Connect) -> HvResult<Vec<NetworkInfo>> {
        unreachable!()
    }
    pub fn create_network(_: &Connect, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn delete_network(_: &Connect, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn list_pools(_: &Connect) -> HvResult<Vec<PoolInfo>> {
        unreachable!()
    }
    pub fn create_pool(_: &Connect, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn delete_pool(_: &Connect, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn list_volumes(_: &Connect, _: &str) -> HvResult<Vec<VolumeInfo>> {
        unreachable!()
    }
    pub fn create_volume(_: &Connect, _: &str, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn delete_volume(_: &Connect, _: &str, _: &str) -> HvResult<()> {
        unreachable!()
    }
    pub fn create_volume_with(
        _: &Connect,
        _: &str,
        _: &str,
        _: &str,
        _: &mut dyn Read,
        _: u64,
        _: bool,
    ) -> HvResult<()> {
        unreachable!()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_lines_in_text_and_binary_mode() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!("{a}  noble-server-cloudimg-amd64.img\n{b} *noble.qcow2\nshort  x.img\n");
        assert_eq!(sums_entry(&text, "noble-server-cloudimg-amd64.img"), Some(a));
        assert_eq!(sums_entry(&text, "noble.qcow2"), Some(b));
        assert_eq!(sums_entry(&text, "x.img"), None, "not a SHA-256");
        assert_eq!(sums_entry(&text, "noble"), None, "whole names only");
    }

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

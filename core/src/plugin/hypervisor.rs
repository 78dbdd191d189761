//! The host's side of the `hypervisor` import: libvirt through its C library (`virt`), on the
//! URIs the config's hosts lead to and on nothing else.
//!
//! What the host checks, since libvirt itself is root-equivalent on a hypervisor host:
//! - the URI is one the config names (`Denied` otherwise);
//! - a domain uses only storage volumes, networks or bridges for its disks and NICs: no host
//!   files or block devices, no device passthrough, no raw QEMU arguments; a direct-boot
//!   kernel or initrd must be one the config names;
//! - a base image comes only from the config's `image.url` / `image.path`.
//!
//! libvirt calls block, so each runs on tokio's blocking pool. Connections stay open for the
//! life of the process: opening `qemu:///system` costs seconds, and the `test:///default`
//! driver keeps its (in-memory) objects only while a connection is open.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

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

/// What one plugin call may do: the URIs and image sources the config names, and where the
/// host keeps a copy of every seed it makes (for inspection; they hold private host keys,
/// so the directory is 0700 and the files 0600).
#[derive(Debug, Clone, Default)]
pub struct Hypervisor {
    pub uris: Vec<String>,
    pub images: Vec<String>,
    pub seed_copies: Option<PathBuf>,
    /// Test mode: fail one changing call (`hv-fail-at=N`).
    pub faults: Option<Arc<super::faults::Faults>>,
}

type HvResult<T> = Result<T, HvError>;

impl Hypervisor {
    fn check(&self, uri: &str) -> HvResult<()> {
        if self.uris.iter().any(|u| u == uri) {
            return Ok(());
        }
        Err(HvError::Denied(format!(
            "`{uri}` is not one of the hypervisor hosts in the config ({}); add it under `hosts` or use one of those",
            if self.uris.is_empty() { "there are none".to_string() } else { self.uris.join(", ") }
        )))
    }

    /// For calls that change something: the injected failure, if this is the one.
    fn change(&self, uri: &str) -> HvResult<()> {
        self.check(uri)?;
        if self.faults.as_ref().is_some_and(|f| f.hv_fail_now()) {
            return Err(HvError::Failed("injected fault (HACLUSTER_FAULT_INJECTION hv-fail-at)".into()));
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

    pub async fn define_domain(&self, uri: &str, xml: String) -> HvResult<()> {
        self.change(uri)?;
        check_domain_xml(&xml, &self.images)?;
        self.with(uri, move |c| imp::define_domain(c, &xml)).await
    }

    pub async fn start_domain(&self, uri: &str, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.with(uri, move |c| imp::start_domain(c, &name)).await
    }

    pub async fn delete_domain(&self, uri: &str, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.with(uri, move |c| imp::delete_domain(c, &name)).await
    }

    pub async fn domain_addresses(&self, uri: &str, name: String) -> HvResult<Vec<String>> {
        self.with(uri, move |c| imp::domain_addresses(c, &name)).await
    }

    pub async fn list_networks(&self, uri: &str) -> HvResult<Vec<NetworkInfo>> {
        self.with(uri, imp::list_networks).await
    }

    pub async fn create_network(&self, uri: &str, xml: String) -> HvResult<()> {
        self.change(uri)?;
        self.with(uri, move |c| imp::create_network(c, &xml)).await
    }

    pub async fn delete_network(&self, uri: &str, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.with(uri, move |c| imp::delete_network(c, &name)).await
    }

    pub async fn list_pools(&self, uri: &str) -> HvResult<Vec<PoolInfo>> {
        self.with(uri, imp::list_pools).await
    }

    pub async fn create_pool(&self, uri: &str, xml: String) -> HvResult<()> {
        self.change(uri)?;
        self.with(uri, move |c| imp::create_pool(c, &xml)).await
    }

    pub async fn delete_pool(&self, uri: &str, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.with(uri, move |c| imp::delete_pool(c, &name)).await
    }

    pub async fn list_volumes(&self, uri: &str, pool: String) -> HvResult<Vec<VolumeInfo>> {
        self.with(uri, move |c| imp::list_volumes(c, &pool)).await
    }

    pub async fn create_volume(&self, uri: &str, pool: String, xml: String) -> HvResult<()> {
        self.change(uri)?;
        self.with(uri, move |c| imp::create_volume(c, &pool, &xml)).await
    }

    pub async fn delete_volume(&self, uri: &str, pool: String, name: String) -> HvResult<()> {
        self.change(uri)?;
        self.with(uri, move |c| imp::delete_volume(c, &pool, &name)).await
    }

    /// Makes the NoCloud ISO (volume id `cidata`) with genisoimage and stores it as a raw
    /// volume. libvirt's test driver cannot take uploads: there the volume is created empty
    /// and the copy under the state directory is what shows the content.
    pub async fn create_seed_volume(
        &self,
        uri: &str,
        pool: String,
        name: String,
        files: Vec<(String, Vec<u8>)>,
    ) -> HvResult<()> {
        self.change(uri)?;
        for (f, _) in &files {
            if f.is_empty() || f.contains('/') || f.starts_with('.') {
                return Err(HvError::Failed(format!("seed file name `{f}` is not a plain file name")));
            }
        }
        if !name.ends_with(".iso") || name.contains('/') {
            return Err(HvError::Failed(format!("seed volume `{name}` must be a plain name ending in .iso")));
        }
        let copies = self.seed_copies.clone();
        let test_driver = uri.starts_with("test:");
        self.with(uri, move |c| {
            if let Some(dir) = &copies {
                keep_copy(dir, &name, &files)
                    .map_err(|e| HvError::Failed(format!("keeping a copy of seed `{name}`: {e}")))?;
            }
            let iso = make_iso(&files)?;
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
        if !self.images.iter().any(|i| i == &source) {
            return Err(HvError::Denied(format!(
                "image `{source}` is not one the config names in the backend's `image` section ({})",
                if self.images.is_empty() { "none set".to_string() } else { self.images.join(", ") }
            )));
        }
        let test_driver = uri.starts_with("test:");
        let (path, temp) = if source.starts_with("http://") || source.starts_with("https://") {
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
            let tmp = temp_path("image");
            download(&source, &tmp, &want).await?;
            (tmp.clone(), Some(tmp))
        } else {
            let p = PathBuf::from(source.strip_prefix("file://").unwrap_or(&source));
            if let Some(want) = sha256 {
                let got = tokio::task::spawn_blocking({
                    let p = p.clone();
                    move || file_sha256(&p)
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
            }
            (p, None)
        };
        let res = self
            .with(uri, move |c| {
                let mut f =
                    std::fs::File::open(&path).map_err(|e| HvError::Failed(format!("{}: {e}", path.display())))?;
                let len = f.metadata().map_err(|e| HvError::Failed(e.to_string()))?.len();
                let mut magic = [0u8; 4];
                let format = if f.read_exact(&mut magic).is_ok() && &magic == b"QFI\xfb" { "qcow2" } else { "raw" };
                drop(f);
                let mut f =
                    std::fs::File::open(&path).map_err(|e| HvError::Failed(format!("{}: {e}", path.display())))?;
                imp::create_volume_with(c, &pool, &name, format, &mut f, len, test_driver)
            })
            .await;
        if let Some(t) = temp {
            let _ = std::fs::remove_file(t);
        }
        res
    }
}

fn temp_path(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!("hacluster-{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
}

fn file_sha256(p: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(p)?;
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
    super::runtime::http_get(&sums_url, &mut |chunk| {
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

/// Downloads `url` to `to`, checking the SHA-256 as it streams; nothing is kept on mismatch.
async fn download(url: &str, to: &Path, want: &str) -> HvResult<()> {
    let mut file = std::fs::File::create(to).map_err(|e| HvError::Failed(format!("{}: {e}", to.display())))?;
    let mut h = Sha256::new();
    let res = super::runtime::http_get(url, &mut |chunk| {
        h.update(chunk);
        file.write_all(chunk).map_err(|e| e.to_string())
    })
    .await;
    let got = hex(&h.finalize());
    let res = res
        .map_err(|e| HvError::Failed(format!("downloading {url}: {e}")))
        .and_then(|_| file.sync_all().map_err(|e| HvError::Failed(e.to_string())))
        .and_then(|_| {
            if got.eq_ignore_ascii_case(want) {
                Ok(())
            } else {
                Err(HvError::Failed(format!("{url} has SHA-256 {got}, expected {want}; the download was discarded")))
            }
        });
    if res.is_err() {
        let _ = std::fs::remove_file(to);
    }
    res
}

fn keep_copy(dir: &Path, name: &str, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let sub = dir.join(name.trim_end_matches(".iso"));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&sub)?;
    for (f, content) in files {
        crate::state::write_atomic(&sub.join(f), content).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// The NoCloud ISO from `genisoimage` (Debian's cdrkit), in a private temporary directory.
fn make_iso(files: &[(String, Vec<u8>)]) -> HvResult<Vec<u8>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = temp_path("seed");
    let fail = |what: &str, e: &dyn std::fmt::Display| HvError::Failed(format!("making the seed ISO: {what}: {e}"));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| fail("temporary directory", &e))?;
    let result = (|| {
        let mut args: Vec<String> = ["-quiet", "-output", "seed.iso", "-volid", "cidata", "-joliet", "-rock"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (name, content) in files {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.join(name))
                .map_err(|e| fail(name, &e))?;
            f.write_all(content).map_err(|e| fail(name, &e))?;
            args.push(name.clone());
        }
        let out = std::process::Command::new("genisoimage")
            .args(&args)
            .current_dir(&dir)
            .output()
            .map_err(|e| fail("running genisoimage (install the `genisoimage` package)", &e))?;
        if !out.status.success() {
            return Err(fail("genisoimage", &String::from_utf8_lossy(&out.stderr).trim()));
        }
        std::fs::read(dir.join("seed.iso")).map_err(|e| fail("reading the ISO", &e))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Refuses domain XML that reaches past volumes and networks: host files or devices as
/// disks, passthrough, shared host directories, raw QEMU arguments, or a kernel/initrd the
/// config does not name.
pub fn check_domain_xml(xml: &str, allowed_files: &[String]) -> HvResult<()> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| HvError::Failed(format!("domain XML does not parse: {e}")))?;
    let deny = |why: String| Err(HvError::Denied(format!("domain XML refused: {why}")));
    for n in doc.descendants().filter(|n| n.is_element()) {
        let tag = n.tag_name().name();
        let parent = n.parent_element().map(|p| p.tag_name().name()).unwrap_or("");
        match tag {
            "hostdev" | "filesystem" | "smartcard" | "redirdev" | "shmem" => {
                return deny(format!("<{tag}> gives the guest host resources"));
            }
            "commandline" | "capabilities" if n.tag_name().namespace().is_some_and(|ns| ns.contains("qemu")) => {
                return deny("raw QEMU arguments".into());
            }
            "disk" if !matches!(n.attribute("type"), Some("volume")) => {
                return deny(format!("disk type `{}`; only storage-pool volumes", n.attribute("type").unwrap_or("?")));
            }
            "interface" if !matches!(n.attribute("type"), Some("network" | "bridge")) => {
                return deny(format!(
                    "interface type `{}`; only libvirt networks and bridges",
                    n.attribute("type").unwrap_or("?")
                ));
            }
            "kernel" | "initrd" | "loader" | "nvram" | "dtb" if parent == "os" => {
                let path = n.text().unwrap_or("").trim();
                if !allowed_files.iter().any(|a| a == path) {
                    return deny(format!("<{tag}>{path}</{tag}> is not a file the config names"));
                }
            }
            "serial" | "console" | "channel" | "parallel"
                if parent == "devices"
                    && !matches!(n.attribute("type"), Some("pty" | "unix" | "null" | "spicevmc")) =>
            {
                return deny(format!("<{tag} type='{}'>", n.attribute("type").unwrap_or("?")));
            }
            "channel"
                if parent == "devices" && n.attribute("type") == Some("unix")
                // Guest agent sockets are placed by libvirt; a path would be a host file.
                && n.children().any(|c| c.tag_name().name() == "source" && c.attribute("path").is_some()) =>
            {
                return deny("a channel with a host socket path".into());
            }
            _ => {}
        }
    }
    Ok(())
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

    static CONNECTIONS: OnceLock<Mutex<HashMap<String, Arc<Connect>>>> = OnceLock::new();

    pub fn connection(uri: &str) -> HvResult<Arc<Connect>> {
        let map = CONNECTIONS.get_or_init(|| {
            // libvirt prints every error to stderr by default; ours reach the user as errors.
            virt::error::clear_error_callback();
            Mutex::new(HashMap::new())
        });
        let mut map = map.lock().map_err(|_| HvError::Failed("libvirt connection table poisoned".into()))?;
        if let Some(c) = map.get(uri) {
            return Ok(c.clone());
        }
        let c = Arc::new(
            Connect::open(Some(uri)).map_err(|e| HvError::Failed(format!("connecting to {uri}: {}", msg(&e))))?,
        );
        map.insert(uri.to_string(), c.clone());
        Ok(c)
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
    pub fn list_domains(_: &Connect) -> HvResult<Vec<DomainInfo>> {
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

    #[test]
    fn domain_xml_may_use_volumes_and_networks_only() {
        let ok = "<domain type='qemu'><os><kernel>/img/vmlinuz</kernel></os><devices><disk type='volume' device='disk'><source pool='p' volume='v'/><serial>data</serial></disk><interface type='network'><source network='n'/></interface><serial type='pty'/></devices></domain>";
        assert_eq!(check_domain_xml(ok, &["/img/vmlinuz".into()]), Ok(()));
        let bad_kernel = check_domain_xml(ok, &[]).unwrap_err();
        assert!(bad_kernel.to_string().contains("/img/vmlinuz"), "{bad_kernel}");
        for (xml, why) in [
            (
                "<domain><devices><disk type=\"file\"><source file='/etc/shadow'/></disk></devices></domain>",
                "disk type `file`",
            ),
            (
                "<domain><devices><disk type='block'><source dev='/dev/sda'/></disk></devices></domain>",
                "disk type `block`",
            ),
            ("<domain><devices><hostdev mode='subsystem'/></devices></domain>", "<hostdev>"),
            ("<domain><devices><filesystem type='mount'/></devices></domain>", "<filesystem>"),
            ("<domain><devices><interface type='direct'/></devices></domain>", "interface type `direct`"),
            ("<domain><devices><serial type='file'/></devices></domain>", "<serial type='file'>"),
            (
                "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:commandline><qemu:arg value='-x'/></qemu:commandline></domain>",
                "raw QEMU",
            ),
        ] {
            let e = check_domain_xml(xml, &[]).unwrap_err();
            assert!(matches!(e, HvError::Denied(_)) && e.to_string().contains(why), "{xml}: {e}");
        }
        assert!(matches!(check_domain_xml("<domain>", &[]), Err(HvError::Failed(_))));
    }

    #[tokio::test]
    async fn uris_the_config_does_not_name_are_refused() {
        let hv = Hypervisor { uris: vec!["test:///default".into()], ..Default::default() };
        let e = hv.list_domains("qemu:///system").await.unwrap_err();
        assert!(
            matches!(&e, HvError::Denied(m) if m.contains("qemu:///system") && m.contains("test:///default")),
            "{e}"
        );
        let e =
            hv.import_image("test:///default", "p".into(), "v".into(), "/etc/shadow".into(), None).await.unwrap_err();
        assert!(matches!(&e, HvError::Denied(m) if m.contains("/etc/shadow")), "{e}");
    }
}

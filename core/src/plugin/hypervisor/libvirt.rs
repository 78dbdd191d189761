//! The hypervisor capability on libvirt, through its C library (`virt`): one connection per
//! URI, kept for the life of the process; every function blocks (the caller runs it on
//! tokio's blocking pool) and maps libvirt's errors onto the contract's three kinds.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

pub use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::ErrorNumber;
use virt::network::Network;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;
use virt::sys;

use super::{DomainInfo, HvError, HvResult, NetworkInfo, PoolInfo, VolumeInfo};

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
    let c =
        Arc::new(Connect::open(Some(uri)).map_err(|e| HvError::Failed(format!("connecting to {uri}: {}", msg(&e))))?);
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
        ErrorNumber::NoDomain | ErrorNumber::NoNetwork | ErrorNumber::NoStoragePool | ErrorNumber::NoStorageVolume => {
            HvError::NotFound(format!("{what}: {}", msg(&e)))
        }
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

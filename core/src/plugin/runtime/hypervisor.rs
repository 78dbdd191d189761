//! The `hypervisor` import: the guest's calls, passed to the host's hypervisor capability
//! (`plugin::hypervisor`, which checks them against the policy) and its answers converted.

use super::HostState;
use super::bindings::hacluster::backend as iface;
use crate::plugin::hypervisor::HvError;

type HvResult<T> = wasmtime::Result<Result<T, iface::hypervisor::HvError>>;

fn hv<T, U>(r: Result<T, HvError>, f: impl FnOnce(T) -> U) -> HvResult<U> {
    use iface::hypervisor::HvError as W;
    Ok(r.map(f).map_err(|e| match e {
        HvError::Denied(m) => W::Denied(m),
        HvError::NotFound(m) => W::NotFound(m),
        HvError::Failed(m) => W::Failed(m),
    }))
}

impl iface::hypervisor::Host for HostState {
    async fn list_domains(&mut self, uri: String) -> HvResult<Vec<iface::hypervisor::DomainInfo>> {
        hv(self.hv.list_domains(&uri).await, |v| {
            v.into_iter()
                .map(|d| iface::hypervisor::DomainInfo { name: d.name, uuid: d.uuid, active: d.active, xml: d.xml })
                .collect()
        })
    }
    async fn define_domain(&mut self, uri: String, xml: String) -> HvResult<()> {
        hv(self.hv.define_domain(&uri, xml).await, |_| ())
    }
    async fn start_domain(&mut self, uri: String, name: String) -> HvResult<()> {
        hv(self.hv.start_domain(&uri, name).await, |_| ())
    }
    async fn delete_domain(&mut self, uri: String, name: String) -> HvResult<()> {
        hv(self.hv.delete_domain(&uri, name).await, |_| ())
    }
    async fn domain_addresses(&mut self, uri: String, name: String) -> HvResult<Vec<String>> {
        hv(self.hv.domain_addresses(&uri, name).await, |v| v)
    }
    async fn list_networks(&mut self, uri: String) -> HvResult<Vec<iface::hypervisor::NetworkInfo>> {
        hv(self.hv.list_networks(&uri).await, |v| {
            v.into_iter()
                .map(|n| iface::hypervisor::NetworkInfo { name: n.name, active: n.active, xml: n.xml })
                .collect()
        })
    }
    async fn create_network(&mut self, uri: String, xml: String) -> HvResult<()> {
        hv(self.hv.create_network(&uri, xml).await, |_| ())
    }
    async fn delete_network(&mut self, uri: String, name: String) -> HvResult<()> {
        hv(self.hv.delete_network(&uri, name).await, |_| ())
    }
    async fn list_pools(&mut self, uri: String) -> HvResult<Vec<iface::hypervisor::PoolInfo>> {
        hv(self.hv.list_pools(&uri).await, |v| {
            v.into_iter().map(|p| iface::hypervisor::PoolInfo { name: p.name, active: p.active, xml: p.xml }).collect()
        })
    }
    async fn create_pool(&mut self, uri: String, xml: String) -> HvResult<()> {
        hv(self.hv.create_pool(&uri, xml).await, |_| ())
    }
    async fn delete_pool(&mut self, uri: String, name: String) -> HvResult<()> {
        hv(self.hv.delete_pool(&uri, name).await, |_| ())
    }
    async fn list_volumes(&mut self, uri: String, pool: String) -> HvResult<Vec<iface::hypervisor::VolumeInfo>> {
        hv(self.hv.list_volumes(&uri, pool).await, |v| {
            v.into_iter()
                .map(|v| iface::hypervisor::VolumeInfo { name: v.name, path: v.path, capacity_bytes: v.capacity_bytes })
                .collect()
        })
    }
    async fn create_volume(&mut self, uri: String, pool: String, xml: String) -> HvResult<()> {
        hv(self.hv.create_volume(&uri, pool, xml).await, |_| ())
    }
    async fn create_seed_volume(
        &mut self,
        uri: String,
        pool: String,
        name: String,
        files: Vec<(String, Vec<u8>)>,
    ) -> HvResult<()> {
        hv(self.hv.create_seed_volume(&uri, pool, name, files).await, |_| ())
    }
    async fn import_image(
        &mut self,
        uri: String,
        pool: String,
        name: String,
        source: String,
        sha256: Option<String>,
    ) -> HvResult<()> {
        hv(self.hv.import_image(&uri, pool, name, source, sha256).await, |_| ())
    }
    async fn delete_volume(&mut self, uri: String, pool: String, name: String) -> HvResult<()> {
        hv(self.hv.delete_volume(&uri, pool, name).await, |_| ())
    }
}

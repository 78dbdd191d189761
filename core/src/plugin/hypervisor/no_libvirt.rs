//! The hypervisor capability in a build without libvirt (cargo feature `libvirt` off): no
//! connection can be made, so no call gets past `connection`.

use std::io::Read;
use std::sync::Arc;

use super::{DomainInfo, HvError, HvResult, NetworkInfo, PoolInfo, VolumeInfo};

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
pub fn create_volume_with(_: &Connect, _: &str, _: &str, _: &str, _: &mut dyn Read, _: u64, _: bool) -> HvResult<()> {
    unreachable!()
}

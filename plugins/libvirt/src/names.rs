//! Names of everything the cluster owns. Derived from the cluster and its config alone, so that
//! `destroy` finds them without state.

use crate::NodeSpec;

pub fn network(cluster: &str, host: &str) -> String {
    format!("{cluster}-{host}-net")
}

pub fn pool(cluster: &str, host: &str, pool: &str) -> String {
    format!("{cluster}-{host}-{pool}")
}

pub fn base_volume(cluster: &str) -> String {
    format!("{cluster}-base.qcow2")
}

pub fn disk(node: &NodeSpec) -> String {
    format!("{}.qcow2", node.name)
}

pub fn data_disk(node: &NodeSpec, disk: &str) -> String {
    format!("{}-{disk}.qcow2", node.name)
}

pub fn seed(node: &NodeSpec) -> String {
    format!("{}-seed.iso", node.name)
}

/// FNV-1a, for short stable suffixes.
pub fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Linux interface names are at most 15 characters: `hac` + 8 hex digits.
pub fn bridge(network: &str) -> String {
    format!("hac{:08x}", hash(network) as u32)
}

/// A stable locally-administered MAC in libvirt's 52:54:00 range.
pub fn mac(node: &str) -> String {
    let h = hash(node);
    format!("52:54:00:{:02x}:{:02x}:{:02x}", (h >> 16) as u8, (h >> 8) as u8, h as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_and_macs_are_stable() {
        assert!(bridge("a-very-long-cluster-name-host1-net").len() <= 15);
        assert_eq!(mac("c-master-1"), mac("c-master-1"));
        assert_ne!(mac("c-master-1"), mac("c-master-2"));
        assert!(mac("x").starts_with("52:54:00:"));
    }
}

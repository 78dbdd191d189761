//! Names of everything the cluster owns. Derived from the cluster and its config alone, so that
//! `destroy` finds them without state. The host allows these names and no others (its
//! `hypervisor/policy.rs`), so they are the contract of the `hypervisor` import.
//!
//! Pools and networks join cluster, host and pool with `.`, which none of them may contain:
//! `a` on host `b-lab` and `a-b` on host `lab` cannot meet on one name, as they did when `-`
//! joined them (`a-b-lab-main`). Node names are `<cluster>-<role>-<id>` with ids that have no
//! `-`, unique for the same reason.

use crate::NodeSpec;

pub fn network(cluster: &str, host: &str) -> String {
    format!("{cluster}.{host}.net")
}

pub fn pool(cluster: &str, host: &str, pool: &str) -> String {
    format!("{cluster}.{host}.{pool}")
}

/// The names earlier releases gave pools and networks. They could belong to another cluster
/// as well, so `destroy` leaves them and says so.
pub fn legacy_network(cluster: &str, host: &str) -> String {
    format!("{cluster}-{host}-net")
}

pub fn legacy_pool(cluster: &str, host: &str, pool: &str) -> String {
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

/// Whether `name` is one of the cluster's node names, `<cluster>-<master|worker|lb>-<id>` with
/// an id of lowercase letters and digits: what the host lets this cluster remove.
pub fn is_node_name(cluster: &str, name: &str) -> bool {
    name.strip_prefix(cluster).and_then(|r| r.strip_prefix('-')).and_then(|r| r.split_once('-')).is_some_and(
        |(role, id)| {
            matches!(role, "master" | "worker" | "lb")
                && (1..=20).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        },
    )
}

/// Whether volume `v` belongs to node `node`: its disk (`<node>.qcow2`), a data disk
/// (`<node>-<disk>.qcow2`) or its seed (`<node>-seed.iso`). Ids have no `-`, so no other
/// node's volume starts with `<node>-`.
pub fn is_volume_of(node: &str, v: &str) -> bool {
    v == format!("{node}.qcow2")
        || v.strip_prefix(node)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| r.len() > 5 && (r.ends_with(".qcow2") || r.ends_with(".iso")))
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
    fn a_nodes_volumes_are_its_own_and_no_other_nodes() {
        for v in ["c-worker-2.qcow2", "c-worker-2-seed.iso", "c-worker-2-data.qcow2"] {
            assert!(is_volume_of("c-worker-2", v), "{v}");
        }
        for v in ["c-worker-20.qcow2", "c-worker-20-seed.iso", "c-base.qcow2", "c-worker-2-.iso", "c-worker-2.img"] {
            assert!(!is_volume_of("c-worker-2", v), "{v}");
        }
    }

    #[test]
    fn names_of_two_clusters_never_meet() {
        assert_ne!(pool("a", "b-lab", "main"), pool("a-b", "lab", "main"));
        assert_ne!(network("a", "b-lab"), network("a-b", "lab"));
        assert!(is_node_name("a", "a-master-1"));
        assert!(!is_node_name("a", "a-b-master-1"), "cluster a-b's");
        assert!(!is_node_name("a", "a-master-master-1"), "ids have no `-`");
        assert!(!is_node_name("a", "a-etcd-1"));
        assert!(!is_node_name("a", "test"));
    }

    #[test]
    fn bridge_names_fit_and_macs_are_stable() {
        assert!(bridge("a-very-long-cluster-name-host1-net").len() <= 15);
        assert_eq!(mac("c-master-1"), mac("c-master-1"));
        assert_ne!(mac("c-master-1"), mac("c-master-2"));
        assert!(mac("x").starts_with("52:54:00:"));
    }
}

//! etcd quorum arithmetic for a stacked control plane: every control-plane node is an etcd
//! member, and etcd needs a majority of members to accept writes.

use serde::Serialize;

/// The etcd membership of a control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quorum {
    members: u32,
}

impl Quorum {
    /// `None` for zero members: a cluster without a control plane has no quorum at all.
    pub fn new(members: u32) -> Option<Self> {
        (members > 0).then_some(Quorum { members })
    }

    pub fn members(self) -> u32 {
        self.members
    }

    /// Members that must be up for etcd to accept writes: ⌊n/2⌋ + 1.
    pub fn size(self) -> u32 {
        self.members / 2 + 1
    }

    /// Members that may fail while etcd keeps quorum: n − (⌊n/2⌋ + 1) = ⌊(n−1)/2⌋.
    pub fn tolerated_failures(self) -> u32 {
        self.members - self.size()
    }

    /// Whether etcd still has quorum with `failed` members down.
    pub fn survives(self, failed: u32) -> bool {
        failed <= self.members && self.members - failed >= self.size()
    }

    /// An even member count tolerates no more failures than the odd count below it, and needs
    /// one more member for quorum: it adds cost and a failure without adding safety.
    pub fn is_wasteful(self) -> bool {
        self.members.is_multiple_of(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_from_the_kubeadm_ha_guides() {
        let rows = [(1, 1, 0), (2, 2, 0), (3, 2, 1), (4, 3, 1), (5, 3, 2), (7, 4, 3)];
        for (n, q, f) in rows {
            let quorum = Quorum::new(n).unwrap();
            assert_eq!((quorum.size(), quorum.tolerated_failures()), (q, f), "n={n}");
        }
        assert!(Quorum::new(0).is_none());
    }
}

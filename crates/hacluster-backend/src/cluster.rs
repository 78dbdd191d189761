//! Helpers on the cluster a backend receives.

use crate::{Cluster, NodeSpec};

impl Cluster {
    /// A node's name without the cluster's prefix: `master-1` for `<cluster>-master-1`, as
    /// the user writes it in a config section.
    pub fn short_name<'a>(&self, node: &'a NodeSpec) -> &'a str {
        node.name.strip_prefix(self.name.as_str()).and_then(|n| n.strip_prefix('-')).unwrap_or(&node.name)
    }
}

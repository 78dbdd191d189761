//! How the control plane is spread over failure domains (hypervisor hosts or availability
//! zones), and how many whole domains can fail before etcd loses quorum.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Node, Quorum};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Control planes per failure domain (host or zone). A node whose backend names no domain
    /// (machines that already exist) counts as a domain of its own.
    pub control_planes_per_domain: BTreeMap<String, u32>,
    /// The largest k such that losing *any* k domains keeps etcd quorum.
    pub domain_failures_tolerated: u32,
}

impl Placement {
    pub fn of(control_planes: &[Node], quorum: Quorum) -> Self {
        let mut per: BTreeMap<String, u32> = BTreeMap::new();
        for n in control_planes {
            let d = n.failure_domain.clone().unwrap_or_else(|| n.name.to_string());
            *per.entry(d).or_default() += 1;
        }
        // The worst k failures take out the k most loaded domains.
        let mut counts: Vec<u32> = per.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let mut lost = 0;
        let mut tolerated = 0;
        for c in counts {
            lost += c;
            if !quorum.survives(lost) {
                break;
            }
            tolerated += 1;
        }
        Placement { control_planes_per_domain: per, domain_failures_tolerated: tolerated }
    }
}

//! The backend's state: the ids of what it created, and the nonce of this cluster's life.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use serde::{Deserialize, Serialize};

use crate::{Error, checkpoint};

/// The backend's state: ids of what it created, and the nonce of this cluster's life (part of
/// every RunInstances client token). Tags remain the truth; this is the record the host keeps.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub nonce: String,
    pub vpc: Option<String>,
    #[serde(default)]
    pub subnets: BTreeMap<String, String>,
    pub internet_gateway: Option<String>,
    pub route_table: Option<String>,
    pub sg_control_plane: Option<String>,
    pub sg_worker: Option<String>,
    #[serde(default)]
    pub sg_lb: Option<String>,
    pub key_pair: Option<String>,
    #[serde(default)]
    pub instances: BTreeMap<String, String>,
    pub target_group: Option<String>,
    pub load_balancer: Option<String>,
    pub listener: Option<String>,
}

/// Saves the state through the host before the next step.
pub fn save(state: &RefCell<State>) -> Result<(), Error> {
    checkpoint(&*state.borrow())
}

/// A new cluster life's nonce.
pub(crate) fn new_nonce() -> String {
    // RandomState is seeded from wasi:random.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    format!("{:016x}", h.finish())
}

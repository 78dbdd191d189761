//! What this plugin created, kept as its state.

use serde::{Deserialize, Serialize};

use crate::{Error, checkpoint};

/// What this plugin created, by host URI, so `destroy` also finds resources of nodes that
/// have since left the config. Names alone are enough when the state is lost.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub(crate) version: u32,
    /// "kind uri pool name" entries, in creation order.
    pub(crate) created: Vec<Created>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Created {
    pub(crate) kind: String,
    pub(crate) uri: String,
    #[serde(default)]
    pub(crate) pool: String,
    pub(crate) name: String,
}

impl Default for State {
    fn default() -> State {
        State { version: 1, created: Vec::new() }
    }
}

impl State {
    pub(crate) fn record(&mut self, kind: &str, uri: &str, pool: &str, name: &str) -> Result<(), Error> {
        let c = Created { kind: kind.into(), uri: uri.into(), pool: pool.into(), name: name.into() };
        if !self.created.contains(&c) {
            self.created.push(c);
        }
        checkpoint(self)
    }
}

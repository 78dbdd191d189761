//! The backend contract at version 9.0.0, which the host does not speak.

wit_bindgen::generate!({
    world: "backend",
    path: "wit",
});

use exports::hacluster::backend::plugin::Guest;
use hacluster::backend::types::*;

struct Future;

impl Guest for Future {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "wrong-contract".into(),
            version: "9.0.0".into(),
            contract: "9.0.0".into(),
            description: "built for a contract from the future".into(),
            supports: Capabilities::empty(),
        }
    }
    fn validate(_c: Cluster) -> Vec<Diagnostic> {
        Vec::new()
    }
    fn plan(_c: Cluster, _p: Option<Vec<u8>>) -> Result<Vec<Change>, Error> {
        Ok(Vec::new())
    }
    fn apply(_c: Cluster, _p: Option<Vec<u8>>) -> Result<Infrastructure, Error> {
        Err(Error::Internal("never called".into()))
    }
    fn destroy(_c: Cluster, _s: Option<Vec<u8>>) -> Result<(), Error> {
        Ok(())
    }
}

export!(Future);

//! A backend built against contract 0.1.0: it knows nothing of what later 0.1.x releases
//! added. It plans one machine per node, says it brings the endpoint (a cloud load balancer,
//! so that the static example validates for it), and provisions
//! nothing (`apply` refuses).

wit_bindgen::generate!({
    world: "backend",
    path: "wit",
});

use exports::hacluster::backend::plugin::Guest;
use hacluster::backend::types::*;

struct Old;

impl Guest for Old {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "old-contract".into(),
            version: "0.1.0".into(),
            contract: "0.1.0".into(),
            description: "built against contract 0.1.0".into(),
            supports: Capabilities::CLOUD_LB,
        }
    }
    fn validate(_c: Cluster) -> Vec<Diagnostic> {
        Vec::new()
    }
    fn plan(c: Cluster, _p: Option<Vec<u8>>) -> Result<Vec<Change>, Error> {
        Ok(c.nodes
            .iter()
            .map(|n| Change {
                action: ChangeAction::Create,
                kind: "machine".into(),
                name: n.name.clone(),
                detail: String::new(),
            })
            .collect())
    }
    fn apply(_c: Cluster, _p: Option<Vec<u8>>) -> Result<Infrastructure, Error> {
        Err(Error::InvalidInput("this test backend provisions nothing".into()))
    }
    fn destroy(_c: Cluster, _s: Option<Vec<u8>>) -> Result<(), Error> {
        Ok(())
    }
}

export!(Old);

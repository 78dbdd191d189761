//! The operator's key pair.

use std::cell::RefCell;

use aws_sdk_ec2 as ec2;

use crate::aws::{Clients, ec2_tags, err, tag_spec};
use crate::config::Config;
use crate::inventory::Inventory;
use crate::state::{State, save};
use crate::{Cluster, Error, log};

pub(crate) async fn ensure_key_pair(
    c: &Clients,
    cfg: &Config,
    cluster: &Cluster,
    inv: &Inventory,
    state: &RefCell<State>,
) -> Result<String, Error> {
    if let Some(k) = &inv.key_pair {
        state.borrow_mut().key_pair = Some(k.clone());
        return Ok(k.clone());
    }
    let name = format!("{}-key", cfg.cluster);
    c.ec2
        .import_key_pair()
        .key_name(&name)
        .public_key_material(aws_smithy_types::Blob::new(cluster.ssh_public_key.as_bytes()))
        .tag_specifications(tag_spec(
            ec2::types::ResourceType::KeyPair,
            ec2_tags(&cfg.cluster, "key-pair", &name, None),
        ))
        .send()
        .await
        .map_err(|e| err("ImportKeyPair", e))?;
    state.borrow_mut().key_pair = Some(name.clone());
    save(state)?;
    log::info("imported key pair", &[("name", &name)]);
    Ok(name)
}

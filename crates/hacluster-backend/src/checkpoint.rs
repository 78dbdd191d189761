//! Persisting state during `apply` and `destroy`.

use serde::Serialize;

use crate::Error;
use crate::bindings::hacluster::backend::checkpoint as host;

/// Stores `state` durably before returning: after a crash, the next run receives it as its
/// prior state. Call it after every resource you create or remove.
pub fn checkpoint<S: Serialize>(state: &S) -> Result<(), Error> {
    host::save(&encode(state)).map_err(|e| Error::Internal(format!("checkpoint: {e}")))
}

/// The state as the host stores it.
pub(crate) fn encode<S: Serialize>(state: &S) -> Vec<u8> {
    serde_json::to_vec(state).expect("a serde state serializes to JSON")
}

/// The state `apply` returned last time; the default when there is none or it cannot be read.
pub(crate) fn decode<S: serde::de::DeserializeOwned + Default>(bytes: Option<Vec<u8>>) -> S {
    bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

//! The `checkpoint` import: the plugin's state, handed to the session to persist before the
//! plugin goes on (only during apply and destroy).

use super::HostState;
use super::bindings::hacluster::backend as iface;

/// Largest state blob a plugin may checkpoint or return.
pub const MAX_STATE_BYTES: usize = 16 << 20;

/// Where a call's checkpoints go: the session writes them to the state file.
pub type CheckpointFn = Box<dyn FnMut(&[u8]) -> Result<(), String> + Send>;

impl iface::checkpoint::Host for HostState {
    async fn save(&mut self, state: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        if state.len() > MAX_STATE_BYTES {
            return Ok(Err(format!("state of {} bytes is over the {MAX_STATE_BYTES}-byte limit", state.len())));
        }
        let Some(sink) = self.checkpoint.as_mut() else {
            return Ok(Err("checkpoints are only taken during apply and destroy".into()));
        };
        match sink(&state) {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                // The host could not persist: stop the plugin rather than let it create
                // resources nobody would know about.
                self.host_error = Some(format!("could not save a checkpoint: {e}"));
                Err(wasmtime::Error::msg(format!("checkpoint failed: {e}")))
            }
        }
    }
}

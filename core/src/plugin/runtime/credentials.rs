//! The `credentials` import: a provider's credentials, only to a plugin granted them.

use super::HostState;
use super::bindings::hacluster::backend as iface;
use crate::plugin::grants::read_credentials;

impl iface::credentials::Host for HostState {
    async fn get(&mut self, provider: String) -> wasmtime::Result<Result<Vec<(String, String)>, String>> {
        if !self.grants.credentials.contains(&provider) {
            return Ok(Err(format!(
                "the host does not grant `{provider}` credentials to plugin `{}`: only the {provider} backend shipped with hacluster gets them unless you pass `--grant-credentials {provider}`",
                self.plugin
            )));
        }
        Ok(read_credentials(&provider))
    }
}

//! The `progress` import: named steps with counts, bounded in name size and number per call
//! (each step is a progress bar on the terminal).

use super::HostState;
use super::bindings::hacluster::backend as iface;
use crate::events::LogLevel;

/// Progress step names: their size, and how many distinct ones a call may report.
const MAX_STEP_NAME: usize = 120;
const MAX_STEPS: usize = 32;

impl iface::progress::Host for HostState {
    async fn report(&mut self, step: String, done: u64, total: u64) -> wasmtime::Result<()> {
        let step = crate::text::untrusted(&step, MAX_STEP_NAME).replace('\n', " ");
        if !self.steps.contains(&step) {
            if self.steps.len() >= MAX_STEPS {
                if self.steps.len() == MAX_STEPS {
                    self.steps.insert(String::new());
                    self.events.log(
                        &self.plugin,
                        LogLevel::Warn,
                        "too many progress steps; dropping the rest of this call's",
                        &[],
                    );
                }
                return Ok(());
            }
            self.steps.insert(step.clone());
        }
        self.events.progress(&self.plugin, &step, done, total);
        Ok(())
    }
}

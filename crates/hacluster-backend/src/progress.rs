//! Progress of long steps, shown as progress bars.

use crate::bindings::hacluster::backend::progress as host;

/// `done` of `total` units of `step` are done; `total` 0 means unknown.
pub fn report(step: &str, done: u64, total: u64) {
    host::report(step, done, total);
}

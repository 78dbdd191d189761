//! The limits of one call's store: guest CPU time counted in epoch ticks, and memory, instances
//! and tables through a `ResourceLimiter`. Each remembers that it stopped the guest, so the
//! error names the limit rather than the trap it caused. (The wall clock is the call's.)

use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use super::HostState;

/// Epoch tick: the granularity of the CPU limit.
pub(super) const TICK: Duration = Duration::from_millis(10);

/// Counts epoch ticks that land while guest code runs: an approximation of guest CPU time
/// that does not count time the guest waits on the host (HTTP, libvirt).
pub(super) struct CpuMeter {
    ticks: u64,
    budget: u64,
    pub(super) exceeded: bool,
}

impl CpuMeter {
    pub(super) fn new(limit: Duration) -> Self {
        CpuMeter { ticks: 0, budget: (limit.as_millis() / TICK.as_millis()).max(1) as u64, exceeded: false }
    }
}

/// Core instances, linear memories and tables one call's store may create: what the shipped
/// plugins need, many times over (a wasm32-wasip2 component has a handful of each).
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 64;
/// Table elements over all of a store's tables.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// The memory limit of a plugin: over ALL of its store's linear memories (a component may hold
/// several core instances, each with memories of its own), with the count of instances,
/// memories and tables bounded too. Remembers whether it refused growth, so a guest abort
/// after a failed allocation is reported as what it is.
pub(super) struct MemoryLimiter {
    max: usize,
    /// Bytes of linear memory the store holds, and table elements.
    used: usize,
    elements: usize,
    /// Growth allowed and not yet done: given back if it fails after all.
    pending_bytes: usize,
    pending_elements: usize,
    pub(super) denied: bool,
}

impl MemoryLimiter {
    pub(super) fn new(max: usize) -> Self {
        MemoryLimiter { max, used: 0, elements: 0, pending_bytes: 0, pending_elements: 0, denied: false }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        if self.used.saturating_add(more) > self.max || maximum.is_some_and(|m| desired > m) {
            self.denied = true;
            return Ok(false);
        }
        self.used += more;
        self.pending_bytes = more;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= std::mem::take(&mut self.pending_bytes);
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current);
        if self.elements.saturating_add(more) > MAX_TABLE_ELEMENTS || maximum.is_some_and(|m| desired > m) {
            self.denied = true;
            return Ok(false);
        }
        self.elements += more;
        self.pending_elements = more;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.elements -= std::mem::take(&mut self.pending_elements);
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// Puts a store under its limits: the memory limiter, and a CPU budget checked at every tick.
pub(super) fn enforce(store: &mut Store<HostState>) {
    store.limiter(|s| &mut s.memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let cpu = &mut ctx.data_mut().cpu;
        cpu.ticks += 1;
        if cpu.ticks > cpu.budget {
            cpu.exceeded = true;
            Ok(UpdateDeadline::Interrupt)
        } else {
            // Yield so the wall-clock timeout and other tasks get to run.
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

#[cfg(test)]
mod tests {
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Config, Engine, OptLevel};

    use super::*;

    /// Instantiates the component `wat` in a store limited by `MemoryLimiter::new(max)`, with
    /// the engine settings the host uses: whether it was allowed, and whether the limiter
    /// refused memory.
    fn instantiate(wat: &str, max: usize) -> (bool, bool) {
        let mut cfg = Config::new();
        cfg.cranelift_opt_level(OptLevel::None);
        let engine = Engine::new(&cfg).unwrap();
        let component = Component::new(&engine, wat::parse_str(wat).unwrap()).unwrap();
        let mut store = Store::new(&engine, MemoryLimiter::new(max));
        store.limiter(|l| l);
        let linker: Linker<MemoryLimiter> = Linker::new(&engine);
        let ok = linker.instantiate(&mut store, &component).is_ok();
        (ok, store.data().denied)
    }

    /// A component of `instances` core instances of one module with `memories` memories of
    /// `pages` 64 KiB pages each.
    fn component(instances: usize, memories: usize, pages: usize) -> String {
        let mems: String = (0..memories).map(|i| format!("(memory $m{i} {pages})")).collect();
        let insts: String = (0..instances).map(|i| format!("(core instance $i{i} (instantiate $m))")).collect();
        format!("(component (core module $m {mems}) {insts})")
    }

    /// The limit is on all of a store's memory: eight core instances of 60 MiB each are 480
    /// MiB, whatever the limit of one memory says; so are five memories of one module.
    #[test]
    fn the_memory_limit_counts_every_memory_of_the_store() {
        let mib = 1 << 20;
        assert_eq!(instantiate(&component(1, 1, 960), 64 * mib), (true, false), "one 60 MiB memory fits 64 MiB");
        assert_eq!(instantiate(&component(8, 1, 960), 64 * mib), (false, true), "8 x 60 MiB in 64 MiB");
        assert_eq!(instantiate(&component(8, 1, 960), 512 * mib), (true, false), "8 x 60 MiB in 512 MiB");
        assert_eq!(instantiate(&component(1, 5, 320), 64 * mib), (false, true), "5 x 20 MiB memories in 64 MiB");
    }

    /// Counts of instances, memories and tables are bounded too (wasmtime's default is 10,000
    /// of each), and table elements over all tables.
    #[test]
    fn instances_memories_and_tables_are_counted() {
        assert!(!instantiate(&component(MAX_INSTANCES + 1, 0, 0), usize::MAX).0, "instances");
        assert!(instantiate(&component(MAX_INSTANCES, 0, 0), usize::MAX).0);
        assert!(!instantiate(&component(1, MAX_MEMORIES + 1, 0), usize::MAX).0, "memories");
        let tables = |n: usize, size: usize| {
            let t: String = (0..n).map(|i| format!("(table $t{i} {size} funcref)")).collect();
            format!("(component (core module $m {t}) (core instance $i (instantiate $m)))")
        };
        assert!(!instantiate(&tables(MAX_TABLES + 1, 1), usize::MAX).0, "tables");
        assert!(instantiate(&tables(4, MAX_TABLE_ELEMENTS / 4), usize::MAX).0);
        assert_eq!(instantiate(&tables(4, MAX_TABLE_ELEMENTS / 4 + 1), usize::MAX), (false, true), "elements");
    }
}

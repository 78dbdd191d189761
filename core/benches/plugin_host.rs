//! Plugin host figures: cold load (compile), warm load (compiled-component cache),
//! per-call cost of `info()` (fresh store + instance + call each time). Prints figures only.
//!
//!     ./scripts/build-plugins && cargo bench -p hacluster --bench plugin_host

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hacluster::plugin::{PluginHost, Silent, discovery};

fn plugin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HACLUSTER_BUILTIN_PLUGINS") {
        return d.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| "target".into());
    target.join("wasm32-wasip2/release")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "min {:>8.3} ms  median {:>8.3} ms  max {:>8.3} ms  ({} runs)",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        v.len()
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for file in ["hacluster_plugin_static.wasm", "hacluster_plugin_adversary.wasm"] {
        let path = plugin_dir().join(file);
        if !path.is_file() {
            eprintln!("skipping {}: not built (run ./scripts/build-plugins)", path.display());
            continue;
        }
        let size = std::fs::metadata(&path).unwrap().len();
        let found = discovery::from_path(&path);
        let cache = tempfile::tempdir().unwrap();
        rt.block_on(async {
            println!("{file} ({} KiB)", size / 1024);
            let mut cold = Vec::new();
            for _ in 0..3 {
                let _ = std::fs::remove_dir_all(cache.path());
                let host = PluginHost::new(Arc::new(Silent), Default::default(), Some(cache.path().into())).unwrap();
                let t = Instant::now();
                let p = host.load(&found).await.unwrap();
                cold.push(t.elapsed());
                assert!(!p.from_cache());
            }
            println!("  cold load (compile + link + instantiate + info)  {}", stats(cold));
            let mut warm = Vec::new();
            for _ in 0..20 {
                let host = PluginHost::new(Arc::new(Silent), Default::default(), Some(cache.path().into())).unwrap();
                let t = Instant::now();
                let p = host.load(&found).await.unwrap();
                warm.push(t.elapsed());
                assert!(p.from_cache());
            }
            println!("  warm load (cache + link + instantiate + info)    {}", stats(warm));
            let host = PluginHost::new(Arc::new(Silent), Default::default(), Some(cache.path().into())).unwrap();
            let p = host.load(&found).await.unwrap();
            let mut calls = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                std::hint::black_box(p.call_info().await.unwrap());
                calls.push(t.elapsed());
            }
            println!("  info() call (new store + instance + call)        {}", stats(calls));
        });
    }
}

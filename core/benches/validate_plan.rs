//! `validate` + `plan` on a generated 1,000-node config. Prints figures; asserts nothing
//! about time (these machines are shared and noisy).
//!
//!     cargo bench -p hacluster --bench validate_plan

use std::hint::black_box;
use std::time::{Duration, Instant};

use hacluster::config::{self, Options};
use hacluster::plan::Plan;

/// 5 control planes, 3 load balancers with a VIP, 992 workers with data disks, on 10 hosts.
fn generate(nodes: usize) -> String {
    let hosts = 10;
    let mut y = String::from("hosts:\n");
    for h in 0..hosts {
        y += &format!(
            "  - name: host{h}\n    connection:\n      type: remote\n      user: ops\n      ip: 10.0.0.{}\n      ssh:\n        keyfile: ~/.ssh/id_ed25519\n    dataResourcePools:\n      - name: data\n        path: /srv/pools/\n",
            h + 2
        );
    }
    y += "cluster:\n  name: bench\n  network:\n    mode: bridge\n    cidr: 10.64.0.0/16\n    bridge: br0\n  nodes:\n";
    let ip = |i: usize| format!("10.64.{}.{}", i / 250, i % 250 + 2);
    y += "    loadBalancer:\n      vip: 10.64.255.10\n      instances:\n";
    for i in 0..3 {
        y += &format!(
            "        - id: {i}\n          host: host{}\n          ip: {}\n          priority: {}\n",
            i % hosts,
            ip(i),
            200 - i
        );
    }
    y += "    master:\n      instances:\n";
    for i in 0..5 {
        y += &format!("        - id: {i}\n          host: host{}\n          ip: {}\n", i % hosts, ip(10 + i));
    }
    y += "    worker:\n      default:\n        labels:\n          tier: general\n      instances:\n";
    for i in 0..nodes.saturating_sub(8) {
        y += &format!(
            "        - id: {i}\n          host: host{}\n          ip: {}\n          cpu: 4\n          ram: 8\n          dataDisks:\n            - name: rook\n              pool: data\n              size: 100\n",
            i % hosts,
            ip(100 + i)
        );
    }
    y += "kubernetes:\n  version: v1.35.0\n  networkPlugin: calico\n";
    y
}

fn measure(iterations: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f(); // warm up
    (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn report(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    println!(
        "{name:<28} min {:>8.2} ms   median {:>8.2} ms   max {:>8.2} ms   ({} runs)",
        ms(d[0]),
        ms(d[d.len() / 2]),
        ms(d[d.len() - 1]),
        d.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let text = generate(1000);
    let opts = Options { backend: None, today: "2026-11-22".into() };
    let checked = config::check_str("bench.yaml", &text, &opts);
    assert!(checked.is_valid(), "generated config must be valid: {:?}", checked.errors().next());
    let spec = checked.spec.clone().expect("valid");
    println!(
        "config: {} bytes, {} nodes ({} control planes, {} workers, {} load balancers)",
        text.len(),
        spec.nodes().count(),
        spec.control_planes.len(),
        spec.workers.len(),
        spec.load_balancers.len()
    );
    let n = 30;
    report(
        "yaml parse",
        measure(n, || {
            black_box(config::yaml::parse(black_box(&text), config::yaml::Limits::default()).unwrap());
        }),
    );
    report(
        "validate (parse+check)",
        measure(n, || {
            black_box(config::check_str("bench.yaml", black_box(&text), &opts));
        }),
    );
    report(
        "plan",
        measure(n, || {
            black_box(Plan::for_cluster(black_box(&spec)));
        }),
    );
    report(
        "validate + plan",
        measure(n, || {
            let c = config::check_str("bench.yaml", black_box(&text), &opts);
            black_box(Plan::for_cluster(c.spec.as_ref().unwrap()));
        }),
    );
}

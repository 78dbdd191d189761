//! The bootstrap benchmark on REAL components: `hacluster bootstrap` of 3 control planes and 1
//! or 5 workers on a fresh lab, per step, beside a floor measured in the same run: the same
//! files (`plan --out`) and the same kubeadm init and joins, in the same order, by a plain
//! script (tests/bench/floor.sh) on another fresh lab. Prints figures, asserts nothing about
//! time:
//!
//!     cargo test -p hacluster --test e2e bench_real_bootstrap -- --ignored --nocapture
//!
//! `HACLUSTER_BENCH_ROUNDS` (default 1) rounds of the four runs, interleaved so that the
//! machine's load drifts over all of them alike; medians over the rounds.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use crate::support::{Lab, Scratch, repo};

/// One run: its total and each step's seconds, in order.
struct Timing {
    total: f64,
    steps: Vec<(String, f64)>,
}

/// Each lab node's memory in use (MiB), the page cache it could give back excluded (the
/// kubelet's working set): the cgroup the lab made for the node.
fn memory(n: u32) -> BTreeMap<String, f64> {
    let found = Command::new("find")
        .args(["/sys/fs/cgroup/memory", "-maxdepth", "8", "-type", "d", "-name", &format!("hacluster-lab-{n}-*")])
        .output()
        .unwrap();
    let mut out = BTreeMap::new();
    for dir in String::from_utf8_lossy(&found.stdout).lines() {
        let usage: f64 = std::fs::read_to_string(format!("{dir}/memory.usage_in_bytes"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0.0);
        let stat = std::fs::read_to_string(format!("{dir}/memory.stat")).unwrap_or_default();
        let inactive: f64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("total_inactive_file "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        let node = dir.rsplit('/').next().unwrap().trim_start_matches(&format!("hacluster-lab-{n}-")).to_string();
        out.insert(node, (usage - inactive) / 1048576.0);
    }
    out
}

/// `hacluster bootstrap` on a fresh lab (provisioned first: the static backend adopts the
/// machines), its steps from its own log (`step i/n: what`, `step i/n done in x s`).
fn hacluster_once(workers: u32) -> (Timing, BTreeMap<String, f64>) {
    let lab = Lab::up(3, workers);
    let s = Scratch::new();
    let cfg = lab.config.to_str().unwrap().to_string();
    let r = s.run(&["provision", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = Instant::now();
    let r = s.run(&["bootstrap", "-c", &cfg]);
    let total = t.elapsed().as_secs_f64();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let mut names = BTreeMap::new();
    let mut steps = Vec::new();
    for line in r.stderr.lines() {
        let Some(rest) = line.split_once("] info: step ").map(|(_, r)| r) else { continue };
        if let Some((num, secs)) = rest.split_once(" done in ") {
            let secs: f64 = secs.trim_end_matches(" s").parse().unwrap_or(0.0);
            let name = names.get(num).cloned().unwrap_or_else(|| num.to_string());
            steps.push((name, secs));
        } else if let Some((num, what)) = rest.split_once(": ") {
            let short: String = what.split([':', ',']).next().unwrap_or(what).chars().take(28).collect();
            names.insert(num.to_string(), short);
        }
    }
    let mem = memory(lab.n);
    (Timing { total, steps }, mem)
}

/// The floor script on a fresh lab, with `plan --out`'s files for it.
fn floor_once(workers: u32) -> Timing {
    let lab = Lab::up(3, workers);
    let s = Scratch::new();
    let cfg = lab.config.to_str().unwrap().to_string();
    // Provisioned first (the static backend adopts the machines): plan --out then renders
    // their recorded addresses, not placeholders.
    let r = s.run(&["provision", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan = s.path("plan");
    let r = s.run(&["plan", "-c", &cfg, "--out", plan.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut nodes = String::new();
    let mut known = String::new();
    for node in lab.nodes() {
        known += &format!("{} {}\n", node.ip, node.host_key);
        let role = if node.name.ends_with("master-1") {
            "init"
        } else if node.name.contains("-master-") {
            "control-plane"
        } else if node.name.contains("-worker-") {
            "worker"
        } else {
            continue;
        };
        nodes += &format!("{} {} {role}\n", node.name, node.ip);
    }
    let nodes_file = s.write("nodes", &nodes);
    let known_file = s.write("known_hosts", &known);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let mirror =
        text.lines().find_map(|l| l.trim().strip_prefix("packageMirror: ")).expect("the lab's mirror").to_string();
    let t = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("tests/bench/floor.sh"))
        .args([&plan, &lab.operator_key(), &known_file, &nodes_file])
        .arg(mirror)
        .arg(s.path("kubeconfig"))
        .output()
        .unwrap();
    let total = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "floor.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let steps = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("step "))
        .filter_map(|l| l.rsplit_once(' ').map(|(n, v)| (n.to_string(), v.parse().unwrap_or(0.0))))
        .collect();
    Timing { total, steps }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: prints figures, asserts nothing about time"]
fn bench_real_bootstrap() {
    let rounds: usize = std::env::var("HACLUSTER_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let sizes = [1u32, 5];
    let mut ours: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    let mut floor: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for round in 1..=rounds {
        for &w in &sizes {
            let (h, mem) = hacluster_once(w);
            println!("round {round}/{rounds}, 3+{w}: hacluster bootstrap {:.1} s", h.total);
            for (name, secs) in &h.steps {
                println!("    {name:<30} {secs:>6.1} s");
            }
            let mem: Vec<String> = mem.iter().map(|(n, m)| format!("{n} {m:.0}")).collect();
            println!("    memory per node (MiB, working set): {}", mem.join(", "));
            let f = floor_once(w);
            println!("round {round}/{rounds}, 3+{w}: floor (tests/bench/floor.sh) {:.1} s", f.total);
            for (name, secs) in &f.steps {
                println!("    {name:<30} {secs:>6.1} s");
            }
            println!("    ratio hacluster / floor: {:.2}", h.total / f.total);
            ours.entry(w).or_default().push(h.total);
            floor.entry(w).or_default().push(f.total);
        }
    }
    println!("\nbootstrap of 3 control planes on the lab (real components), {rounds} round(s), medians:");
    for &w in &sizes {
        let (h, f) = (median(&ours[&w]), median(&floor[&w]));
        println!("  3+{w}: hacluster {h:.1} s, floor {f:.1} s, ratio {:.2} (goal <= 1.15)", h / f);
    }
    let (h1, h5) = (median(&ours[&1]), median(&ours[&5]));
    let (f1, f5) = (median(&floor[&1]), median(&floor[&5]));
    println!("  worker scaling (3+5)/(3+1): hacluster {:.2} (goal <= 1.3), floor {:.2}", h5 / h1, f5 / f1);
}

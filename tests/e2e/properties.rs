//! Property tests: quorum arithmetic, and "a valid config always yields a plan".

use hacluster::config::{self, Options};
use hacluster::model::Quorum;
use hacluster::plan::{Plan, StepKind};
use proptest::prelude::*;

proptest! {
    #[test]
    fn quorum_is_a_strict_majority(n in 1u32..10_000) {
        let q = Quorum::new(n).unwrap();
        // A majority: more than half, and the smallest such number.
        prop_assert!(2 * q.size() > n);
        prop_assert!(2 * (q.size() - 1) <= n);
        prop_assert_eq!(q.tolerated_failures(), n - q.size());
        prop_assert!(q.survives(q.tolerated_failures()));
        prop_assert!(!q.survives(q.tolerated_failures() + 1));
        if n % 2 == 1 {
            prop_assert_eq!(q.tolerated_failures(), (n - 1) / 2);
        } else {
            // An even count tolerates exactly what the odd count below it does.
            prop_assert_eq!(q.tolerated_failures(), Quorum::new(n - 1).unwrap().tolerated_failures());
            prop_assert!(q.is_wasteful());
        }
    }
}

/// A random but valid cluster: odd control planes, any workers, load balancers and a VIP as
/// the rules require, spread over 1–5 hosts (bridge mode when several), distinct addresses.
#[derive(Debug, Clone)]
struct Shape {
    masters: usize,
    workers: usize,
    lbs: usize,
    hosts: usize,
    with_ips: bool,
    cpu: Option<u8>,
    plugin: &'static str,
    version_minor: u32,
    disks: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::sample::select(vec![1usize, 3, 5, 7]),
        0usize..40,
        0usize..4,
        1usize..6,
        any::<bool>(),
        prop::option::of(1u8..64),
        prop::sample::select(vec!["calico", "cilium", "flannel"]),
        22u32..=37,
        any::<bool>(),
    )
        .prop_map(|(masters, workers, lbs, hosts, with_ips, cpu, plugin, version_minor, disks)| Shape {
            masters,
            workers,
            // More than one control plane needs an endpoint.
            lbs: if masters > 1 { lbs.max(1) } else { lbs },
            hosts,
            with_ips,
            cpu,
            plugin,
            version_minor,
            disks,
        })
}

fn render(s: &Shape) -> String {
    let mut y = String::from("hosts:\n");
    for h in 0..s.hosts {
        y += &format!("  - name: host{h}\n    dataResourcePools: [{{name: data}}]\n");
    }
    let mode = if s.hosts > 1 { "bridge\n    bridge: br0" } else { "nat" };
    y += &format!("cluster:\n  name: prop\n  network:\n    mode: {mode}\n    cidr: 10.20.0.0/16\n  nodes:\n");
    let mut next_ip = 10u32;
    let mut ip = |with: bool| -> String {
        next_ip += 1;
        if with { format!(", ip: 10.20.{}.{}", next_ip / 250, next_ip % 250 + 1) } else { String::new() }
    };
    if s.lbs > 0 {
        y += "    loadBalancer:\n";
        if s.lbs > 1 {
            y += "      vip: 10.20.255.200\n";
        }
        y += "      instances:\n";
        for i in 0..s.lbs {
            // Load balancers always have addresses when there is one endpoint to hold.
            y += &format!("        - {{id: {i}, host: host{}{}}}\n", i % s.hosts, ip(true));
        }
    }
    y += "    master:\n      instances:\n";
    for i in 0..s.masters {
        let cpu = s.cpu.map(|c| format!(", cpu: {}", c.max(2))).unwrap_or_default();
        y += &format!("        - {{id: {i}, host: host{}{}{cpu}}}\n", i % s.hosts, ip(s.with_ips));
    }
    y += "    worker:\n      instances:\n";
    for i in 0..s.workers {
        let disk = if s.disks { ", dataDisks: [{name: d, pool: data, size: 10}]" } else { "" };
        y += &format!("        - {{id: {i}, host: host{}{}{disk}}}\n", i % s.hosts, ip(s.with_ips));
    }
    y += &format!("kubernetes:\n  version: v1.{}.1\n  networkPlugin: {}\n", s.version_minor, s.plugin);
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn valid_config_always_plans(s in shape()) {
        let text = render(&s);
        let checked = config::check_str("prop.yaml", &text, &Options { backend: None, today: "2026-11-22".into() });
        let errors: Vec<_> = checked.errors().map(|d| format!("{}: {}", d.path, d.message)).collect();
        prop_assert!(errors.is_empty(), "{errors:?}\n{text}");
        let spec = checked.spec.expect("valid");
        let plan = Plan::for_cluster(&spec);

        // The plan's structure follows from the shape.
        prop_assert_eq!(plan.control_plane.members as usize, s.masters);
        let inits = plan.steps.iter().filter(|st| st.kind == StepKind::KubeadmInit).count();
        prop_assert_eq!(inits, 1);
        let joins: Vec<_> = plan.steps.iter().filter(|st| st.kind == StepKind::JoinControlPlane).collect();
        prop_assert_eq!(joins.len(), s.masters - 1);
        prop_assert!(joins.iter().all(|j| j.targets.len() == 1 && !j.parallel));
        let worker_steps: Vec<_> = plan.steps.iter().filter(|st| st.kind == StepKind::JoinWorkers).collect();
        prop_assert_eq!(worker_steps.len(), usize::from(s.workers > 0));
        if let Some(w) = worker_steps.first() {
            prop_assert_eq!(w.targets.len(), s.workers);
        }
        let pos = |k: StepKind| plan.steps.iter().position(|st| st.kind == k);
        prop_assert!(pos(StepKind::KubeadmInit) < pos(StepKind::InstallCni));
        if s.masters > 1 {
            prop_assert!(pos(StepKind::InstallCni) < pos(StepKind::JoinControlPlane));
        }
        prop_assert_eq!(plan.nodes.len(), s.masters + s.workers + s.lbs);
        // Placement: round-robin over hosts tolerates as many host losses as quorum allows.
        let per_host_max = s.masters.div_ceil(s.hosts.min(s.masters));
        let survives_one = s.masters - per_host_max > s.masters / 2;
        prop_assert_eq!(plan.placement.domain_failures_tolerated > 0, survives_one);
    }
}

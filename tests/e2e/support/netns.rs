//! Shell and network-namespace helpers for the tests that build namespaces of their own (the
//! balancers' test). Processes are stopped by PID: ours, or those inside namespaces we made.

use std::process::Command;

pub(crate) fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh runs")
}

pub(crate) fn must(cmd: &str) {
    let o = sh(cmd);
    assert!(o.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Deletes namespaces named `prefix…` (and their processes) and the root veth of an earlier
/// run.
pub(crate) fn cleanup_prefix(prefix: &str, root_veth: &str) {
    let list = sh("ip netns list");
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        if ns.starts_with(prefix) {
            kill_ns_processes(ns);
            sh(&format!("ip netns del {ns}"));
        }
    }
    sh(&format!("ip link del {root_veth} 2>/dev/null"));
}

fn kill_ns_processes(ns: &str) {
    let pids = sh(&format!("ip netns pids {ns}"));
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        sh(&format!("kill -9 {pid} 2>/dev/null"));
    }
}

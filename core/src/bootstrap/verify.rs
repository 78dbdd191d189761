//! Checking the HA promise: the API answers through the endpoint, every control plane's
//! API server and etcd member is healthy, and etcd has quorum; and, on request, showing it
//! by stopping one control plane (kubelet and its static pods) while the API keeps answering.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;

use super::ADMIN_CONF;
use crate::events::{Events, LogLevel};
use crate::infra::{Infrastructure, Machine};
use crate::model::ClusterSpec;
use crate::ssh::{Executor, Script, shell_quote};

const MANIFESTS: &str = "/etc/kubernetes/manifests";
const PARKED: &str = "/etc/kubernetes/manifests.hacluster-chaos";
/// Puts the parked manifests back. `mv -T`: should an empty manifests directory have appeared
/// meanwhile, it is replaced (rename), and a non-empty one is an error, never the parked
/// directory moved inside it, where kubelet would not look.
const PUT_BACK: &str = "mv -T /etc/kubernetes/manifests.hacluster-chaos /etc/kubernetes/manifests";

/// Names of the nodes whose `Ready` condition is `True`, from `kubectl get nodes -o json`.
pub fn ready_nodes(json: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return Vec::new() };
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneHealth {
    pub name: String,
    pub apiserver: bool,
    pub etcd: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One etcd member as etcd lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdMember {
    /// Empty for a member that was added and never started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub started: bool,
    pub learner: bool,
}

/// `etcdctl member list -w json`, as etcd reports its membership.
pub fn parse_members(json: &str) -> Option<Vec<EtcdMember>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let list = v["members"].as_array()?;
    Some(
        list.iter()
            .map(|m| {
                let name = m["name"].as_str().unwrap_or_default().to_string();
                let clients = m["clientURLs"].as_array().is_some_and(|c| !c.is_empty());
                EtcdMember {
                    started: !name.is_empty() && clients,
                    name,
                    peer_urls: m["peerURLs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|u| u.as_str().map(str::to_string))
                        .collect(),
                    learner: m["isLearner"].as_bool().unwrap_or(false),
                }
            })
            .collect(),
    )
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub endpoint: String,
    pub endpoint_ok: bool,
    pub control_planes: Vec<ControlPlaneHealth>,
    /// Voting members: from etcd's own list when a healthy member could be asked (a member
    /// added by a failed join counts, and raises the quorum), else the configured count.
    pub etcd_members: u32,
    /// etcd's member list, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_member_list: Option<Vec<EtcdMember>>,
    pub etcd_healthy: u32,
    pub quorum: u32,
    pub tolerated_failures: u32,
    pub quorum_ok: bool,
    pub nodes_ready: Vec<String>,
    pub nodes_total: usize,
}

impl Health {
    pub fn all_ok(&self) -> bool {
        self.endpoint_ok
            && self.quorum_ok
            && self.etcd_member_list.as_ref().is_none_or(|l| l.iter().all(|m| m.started))
            && self.control_planes.iter().all(|c| c.apiserver && c.etcd)
            && self.nodes_ready.len() == self.nodes_total
    }
}

async fn check_cp(exec: &Executor, m: &Machine) -> ControlPlaneHealth {
    let script = "a=$(curl -sk --max-time 3 https://127.0.0.1:6443/readyz 2>/dev/null); e=$(curl -fsS --max-time 3 http://127.0.0.1:2381/health 2>/dev/null); echo \"api=$a\"; echo \"etcd=$e\"";
    match exec.run_unchecked(m, &Script::root("control-plane health", script).timeout(Duration::from_secs(20))).await {
        Ok(out) => ControlPlaneHealth {
            name: m.name.clone(),
            apiserver: out.stdout.lines().any(|l| l.trim() == "api=ok"),
            etcd: out.stdout.lines().any(|l| l.starts_with("etcd=") && l.contains("\"true\"")),
            problem: None,
        },
        Err(e) => {
            ControlPlaneHealth { name: m.name.clone(), apiserver: false, etcd: false, problem: Some(e.to_string()) }
        }
    }
}

/// etcd's member list, asked through the etcd pod of `m` (a control plane whose member is
/// healthy) with the etcd image's own etcdctl.
pub(crate) async fn member_list(exec: &Executor, m: &Machine) -> Option<Vec<EtcdMember>> {
    let script = format!("{} member list -w json", super::etcdctl(&m.name));
    let out = exec
        .run_unchecked(m, &Script::root("etcd member list", script).timeout(Duration::from_secs(20)).quiet())
        .await
        .ok()?;
    if out.status != 0 {
        return None;
    }
    parse_members(&out.stdout)
}

/// `readyz` through the endpoint, asked from `from`.
async fn endpoint_ok(exec: &Executor, from: &Machine, endpoint: &str) -> bool {
    let script = format!("curl -sk --max-time 5 {}", shell_quote(&format!("https://{endpoint}/readyz")));
    matches!(exec.run_unchecked(from, &Script::root("API through the endpoint", script).timeout(Duration::from_secs(20))).await, Ok(o) if o.status == 0 && o.stdout.trim() == "ok")
}

pub async fn health(spec: &ClusterSpec, infra: &Infrastructure, exec: &Executor) -> Health {
    let cps: Vec<&Machine> = spec.control_planes.iter().filter_map(|n| infra.machine(n.name.as_str())).collect();
    let checks = join_all(cps.iter().map(|m| check_cp(exec, m))).await;
    let endpoint = super::kubeadm::endpoint(infra);
    let healthy_cp = checks.iter().find(|c| c.apiserver).and_then(|c| infra.machine(&c.name));
    let asker = healthy_cp.or_else(|| checks.iter().find(|c| c.problem.is_none()).and_then(|c| infra.machine(&c.name)));
    let ep_ok = match asker {
        Some(m) => endpoint_ok(exec, m, &endpoint).await,
        None => false,
    };
    let nodes_ready = match healthy_cp {
        Some(m) => match exec
            .run_unchecked(
                m,
                &Script::root("list nodes", format!("kubectl --kubeconfig {ADMIN_CONF} get nodes -o json")),
            )
            .await
        {
            Ok(o) if o.status == 0 => ready_nodes(&o.stdout),
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    let etcd_healthy = checks.iter().filter(|c| c.etcd).count() as u32;
    let list = match checks.iter().find(|c| c.etcd).and_then(|c| infra.machine(&c.name)) {
        Some(m) => member_list(exec, m).await,
        None => None,
    };
    // Learners do not vote: quorum is counted over voting members only.
    let quorum = list
        .as_ref()
        .and_then(|l| crate::model::Quorum::new(l.iter().filter(|m| !m.learner).count() as u32))
        .unwrap_or(spec.quorum);
    Health {
        endpoint,
        endpoint_ok: ep_ok,
        etcd_members: quorum.members(),
        etcd_member_list: list,
        etcd_healthy,
        quorum: quorum.size(),
        tolerated_failures: quorum.tolerated_failures(),
        quorum_ok: etcd_healthy >= quorum.size(),
        control_planes: checks,
        nodes_ready,
        nodes_total: spec.control_planes.len() + spec.workers.len(),
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chaos {
    pub stopped: String,
    /// The API answered through the endpoint while the control plane was down.
    pub api_answered: bool,
    /// The longest time the endpoint did not answer `/readyz` with `ok`, sampled every
    /// 200 ms from another control plane from before the stop until after the restore.
    pub api_gap_secs: f64,
    /// Samples taken, and how many failed.
    pub api_samples: u32,
    pub api_failures: u32,
    /// The longest gap the API may have: longer fails the check.
    pub api_gap_limit_secs: f64,
    pub etcd_healthy_during: u32,
    pub quorum_kept: bool,
    pub restored: bool,
    pub restore_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error(
        "refusing to stop a control plane: {healthy} of {members} etcd members are healthy and quorum needs {quorum}; stopping one more would lose it"
    )]
    WouldLoseQuorum { healthy: u32, members: u32, quorum: u32 },
    #[error("no control plane is healthy enough to stop")]
    NoVictim,
    #[error(
        "the state records no control plane besides {victim} to watch the endpoint from while {victim} is down (the config has {configured}); run `hacluster provision` or `up` so that the state holds every control plane"
    )]
    NoWitness { victim: String, configured: usize },
    #[error("{0}")]
    Ssh(#[from] crate::ssh::SshError),
}

/// The longest the API may go unanswered through the endpoint while one control plane is
/// down: a balancer notices a dead API server within a few health checks (seconds).
pub const API_GAP_LIMIT_SECS: f64 = 10.0;

const SAMPLES: &str = "/etc/kubernetes/hacluster/chaos-samples";
const SAMPLER_PID: &str = "/etc/kubernetes/hacluster/chaos-sampler.pid";

/// How long a sampler runs at most: a chaos run that died before stopping it (killed, its SSH
/// gone) does not leave it sampling, and its file growing, for ever.
const SAMPLER_LIFE_SECS: u32 = 900;

/// Starts the sampler on a node, detached: one line per sample, `<unix time> ok|fail`. The URL
/// is the inner shell's `$1`, never part of its code.
fn sampler_start(endpoint: &str) -> String {
    format!(
        "set -e\nrm -f {SAMPLES}\nsetsid timeout {SAMPLER_LIFE_SECS} sh -c 'echo $$ > {SAMPLER_PID}; while :; do t=$(date +%s.%N); if [ \"$(curl -sk --max-time 1 \"$1\")\" = ok ]; then echo \"$t ok\"; else echo \"$t fail\"; fi; sleep 0.2; done' chaos-sampler {url} >> {SAMPLES} 2>/dev/null < /dev/null &\n",
        url = shell_quote(&format!("https://{endpoint}/readyz"))
    )
}

/// Stops the sampler and prints its samples.
fn sampler_stop() -> String {
    format!(
        "if [ -f {SAMPLER_PID} ]; then kill \"$(cat {SAMPLER_PID})\" 2>/dev/null || true; fi\ncat {SAMPLES} 2>/dev/null || true\nrm -f {SAMPLES} {SAMPLER_PID}"
    )
}

/// Stops control plane `victim` (its static pods, then its kubelet), checks the others' etcd
/// members while it is down, and starts it again: (healthy members meanwhile, how long it took
/// to come back if it did, when the restore began).
async fn stop_and_restore(
    exec: &Executor,
    events: &dyn Events,
    victim: &Machine,
    victim_name: &str,
    others: &[&Machine],
) -> Result<(u32, Option<Duration>, Instant), ChaosError> {
    // Moving the manifests makes kubelet stop the static pods; kubelet gives the API server
    // its grace period (an API server whose etcd went with it can take all of it), so wait
    // until both have let go of their ports before kubelet itself goes: a kubelet started
    // again later takes a container still shutting down for the running pod (seen: the API
    // server stayed in shutdown for minutes).
    let stop = format!(
        "set -e\nmv {MANIFESTS} {PARKED}\nfor i in $(seq 240); do\n  gone=1\n  for port in 6443 2381; do if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then gone=\"\"; fi; done\n  [ -z \"$gone\" ] || break\n  sleep 0.5\ndone\nsystemctl stop kubelet\n"
    );
    exec.run(victim, &Script::root("stop control plane", stop).timeout(Duration::from_secs(180))).await?;
    let during = join_all(others.iter().map(|m| check_cp(exec, m))).await;
    let etcd_healthy_during = during.iter().filter(|c| c.etcd).count() as u32;
    events.log("verify", LogLevel::Info, &format!("restoring {victim_name}"), &[]);
    let restore = format!("set -e\n{PUT_BACK}\nsystemctl start kubelet\n");
    let restored_at = Instant::now();
    exec.run(victim, &Script::root("restore control plane", restore)).await?;
    let back = wait_for(
        async || {
            let c = check_cp(exec, victim).await;
            c.apiserver && c.etcd
        },
        Duration::from_secs(180),
    )
    .await;
    Ok((etcd_healthy_during, back, restored_at))
}

/// (samples, failed samples, longest time without an `ok`): from the last `ok` before a run of
/// failures to the first `ok` after it (or the end).
pub fn longest_gap(samples: &str) -> (u32, u32, f64) {
    let (mut count, mut failures, mut gap) = (0, 0, 0.0f64);
    let mut last_ok: Option<f64> = None;
    let mut first: Option<f64> = None;
    let mut failing_since: Option<f64> = None;
    let mut end = 0.0;
    for line in samples.lines() {
        let Some((t, what)) = line.split_once(' ') else { continue };
        let Ok(t) = t.parse::<f64>() else { continue };
        count += 1;
        first.get_or_insert(t);
        end = t;
        if what == "ok" {
            if let Some(since) = failing_since.take() {
                gap = gap.max(t - last_ok.unwrap_or(since));
            }
            last_ok = Some(t);
        } else {
            failures += 1;
            failing_since.get_or_insert(t);
        }
    }
    if let Some(since) = failing_since {
        gap = gap.max(end - last_ok.unwrap_or(since));
    }
    (count, failures, gap)
}

async fn wait_for(mut cond: impl AsyncFnMut() -> bool, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Puts back the control planes an interrupted chaos run left stopped, and waits (bounded) for
/// each to be healthy again: that outage was ours, not the cluster's, and a member still
/// starting would make the next chaos round refuse.
pub async fn restore_interrupted(spec: &ClusterSpec, infra: &Infrastructure, exec: &Executor, events: &dyn Events) {
    for m in restore_leftovers(spec, infra, exec).await {
        events.log(
            "verify",
            LogLevel::Info,
            &format!("{} was left stopped by an interrupted chaos run: restored it, waiting for it", m.name),
            &[],
        );
        wait_for(
            async || {
                let c = check_cp(exec, m).await;
                c.apiserver && c.etcd
            },
            Duration::from_secs(180),
        )
        .await;
    }
}

/// Restores the control planes an earlier, interrupted chaos run left stopped; returns them.
async fn restore_leftovers<'m>(spec: &ClusterSpec, infra: &'m Infrastructure, exec: &Executor) -> Vec<&'m Machine> {
    let mut restored = Vec::new();
    for n in &spec.control_planes {
        if let Some(m) = infra.machine(n.name.as_str()) {
            // The manifests back before kubelet starts (it then finds them at once), and a
            // sampler the interrupted run left behind stopped.
            let script = format!(
                "set -e\n{} >/dev/null\nif [ -d {PARKED} ]; then {PUT_BACK}; systemctl start kubelet; echo restored; fi",
                sampler_stop()
            );
            if let Ok(o) = exec.run_unchecked(m, &Script::root("restore after chaos", script)).await
                && o.stdout.trim() == "restored"
            {
                restored.push(m);
            }
        }
    }
    restored
}

/// The control planes of the config other than `victim` that the state records: the first
/// watches the endpoint, all are checked for quorum. The recorded infrastructure may lack the
/// config's control planes (a config edited since `provision`): then an error, not a panic.
fn witnesses<'m>(
    spec: &ClusterSpec,
    infra: &'m Infrastructure,
    victim: &str,
) -> Result<(&'m Machine, Vec<&'m Machine>), ChaosError> {
    let others: Vec<&Machine> = spec
        .control_planes
        .iter()
        .filter(|n| n.name.as_str() != victim)
        .filter_map(|n| infra.machine(n.name.as_str()))
        .collect();
    let first = *others
        .first()
        .ok_or_else(|| ChaosError::NoWitness { victim: victim.into(), configured: spec.control_planes.len() })?;
    Ok((first, others))
}

/// Stops one control plane the way an outage would (its static pods, then kubelet), checks the
/// API through the endpoint and etcd quorum on the others, then brings it back. What an
/// interrupted earlier run left stopped is put back by [`restore_interrupted`] first, before
/// the caller's own health check (`verify --chaos` does).
pub async fn chaos(
    spec: &ClusterSpec,
    infra: &Infrastructure,
    exec: &Executor,
    events: &dyn Events,
) -> Result<Chaos, ChaosError> {
    let before = health(spec, infra, exec).await;
    if before.etcd_healthy.saturating_sub(1) < before.quorum {
        return Err(ChaosError::WouldLoseQuorum {
            healthy: before.etcd_healthy,
            members: before.etcd_members,
            quorum: before.quorum,
        });
    }
    let victim_name = before
        .control_planes
        .iter()
        .rev()
        .find(|c| c.apiserver && c.etcd)
        .map(|c| c.name.clone())
        .ok_or(ChaosError::NoVictim)?;
    let victim = infra.machine(&victim_name).ok_or(ChaosError::NoVictim)?;
    let (asker, others) = witnesses(spec, infra, &victim_name)?;
    let endpoint = super::kubeadm::endpoint(infra);
    events.log(
        "verify",
        LogLevel::Info,
        &format!("stopping control plane {victim_name} (static pods, then kubelet)"),
        &[],
    );
    // The endpoint is sampled all along, from another control plane (no SSH round trip per
    // sample): every 200 ms, /readyz with a 1 s timeout.
    exec.run(asker, &Script::root("start sampling the endpoint", sampler_start(&endpoint))).await?;
    let outcome = stop_and_restore(exec, events, victim, &victim_name, &others).await;
    // Stopped whatever happened to the victim (its SSH may be gone): the sampler ends here.
    let samples = exec.run(asker, &Script::root("stop sampling the endpoint", sampler_stop())).await;
    let (etcd_healthy_during, back, restored_at) = outcome?;
    let (count, failures, gap) = longest_gap(&samples?.stdout);
    Ok(Chaos {
        stopped: victim_name,
        api_answered: count > 0 && gap <= API_GAP_LIMIT_SECS,
        api_gap_secs: gap,
        api_samples: count,
        api_failures: failures,
        api_gap_limit_secs: API_GAP_LIMIT_SECS,
        etcd_healthy_during,
        quorum_kept: etcd_healthy_during >= before.quorum,
        restored: back.is_some(),
        restore_secs: back.map(|b| b.as_secs_f64()).unwrap_or(restored_at.elapsed().as_secs_f64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_control_planes() -> ClusterSpec {
        let text = "hosts: [{name: h}]\ncluster:\n  name: demo\n  network: {mode: nat, cidr: 10.20.0.0/24}\n  nodes:\n    loadBalancer: {instances: [{id: 1, ip: 10.20.0.100}]}\n    master: {instances: [{id: 1}, {id: 2}, {id: 3}]}\n";
        let checked = crate::config::check_str("demo.yaml", text, &crate::config::Options::default());
        checked.spec.unwrap_or_else(|| panic!("{:?}", checked.diagnostics))
    }

    fn recorded(names: &[&str]) -> Infrastructure {
        let machine = |name: &&str| Machine {
            name: name.to_string(),
            role: crate::model::NodeRole::ControlPlane,
            private_address: "10.20.0.10".into(),
            ssh: crate::infra::SshTarget {
                address: "10.20.0.10".into(),
                port: 22,
                user: "k8s".into(),
                jump: None,
                host_public_key: String::new(),
            },
            provider_id: String::new(),
        };
        Infrastructure {
            machines: names.iter().map(machine).collect(),
            endpoint: crate::infra::ApiEndpoint { host: "10.20.0.100".into(), port: 6443 },
        }
    }

    /// The state may lack control planes the config names: the chaos run refuses with a
    /// reason instead of indexing an empty list.
    #[test]
    fn chaos_needs_another_recorded_control_plane_to_watch_from() {
        let spec = three_control_planes();
        let only_victim = recorded(&["demo-master-3"]);
        let e = witnesses(&spec, &only_victim, "demo-master-3").unwrap_err();
        assert!(matches!(e, ChaosError::NoWitness { configured: 3, .. }), "{e}");
        assert!(e.to_string().contains("hacluster provision"), "{e}");
        let all = recorded(&["demo-master-1", "demo-master-2", "demo-master-3"]);
        let (asker, others) = witnesses(&spec, &all, "demo-master-3").unwrap();
        assert_eq!(asker.name, "demo-master-1");
        assert_eq!(others.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["demo-master-1", "demo-master-2"]);
    }

    #[test]
    fn member_list_marks_members_that_never_started() {
        // etcdctl 3.4/3.5 `member list -w json`: an unstarted member has no name and no client URLs.
        let json = r#"{"header":{"cluster_id":1},"members":[
            {"ID":1,"name":"m1","peerURLs":["https://10.0.0.11:2380"],"clientURLs":["https://10.0.0.11:2379"]},
            {"ID":2,"peerURLs":["https://10.0.0.13:2380"]},
            {"ID":3,"name":"m2","peerURLs":["https://10.0.0.12:2380"],"clientURLs":["https://10.0.0.12:2379"],"isLearner":true}]}"#;
        let l = parse_members(json).unwrap();
        let got: Vec<_> = l.iter().map(|m| (m.name.as_str(), m.started, m.learner)).collect();
        assert_eq!(got, [("m1", true, false), ("", false, false), ("m2", true, true)]);
        assert_eq!(l[1].peer_urls, ["https://10.0.0.13:2380"]);
        assert!(parse_members("not json").is_none());
    }

    #[test]
    fn the_longest_gap_runs_from_the_last_answer_to_the_next() {
        let s = "10.0 ok\n10.2 ok\n10.4 fail\n10.6 fail\n11.0 ok\n11.2 fail\n11.4 ok\n";
        let (n, f, g) = longest_gap(s);
        assert_eq!((n, f), (7, 3));
        assert!((g - 0.8).abs() < 1e-9, "{g}");
        assert_eq!(longest_gap("1.0 ok\n2.0 ok\n"), (2, 0, 0.0));
        let (_, _, g) = longest_gap("1.0 ok\n1.5 fail\n3.0 fail\n");
        assert!((g - 2.0).abs() < 1e-9, "failing to the end: {g}");
        assert_eq!(longest_gap(""), (0, 0, 0.0));
    }

    #[test]
    fn ready_nodes_reads_conditions() {
        let j = r#"{"items":[
          {"metadata":{"name":"a"},"status":{"conditions":[{"type":"Ready","status":"True"}]}},
          {"metadata":{"name":"b"},"status":{"conditions":[{"type":"Ready","status":"False"}]}},
          {"metadata":{"name":"c"},"status":{}}]}"#;
        assert_eq!(ready_nodes(j), ["a"]);
        assert!(ready_nodes("not json").is_empty());
    }
}

//! The cluster's certificates: when each of kubeadm's expires, per control plane, and each
//! node's kubelet client certificate; and their renewal, one control plane at a time, each out
//! of the endpoint while its components restart with the new ones.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use crate::bootstrap::{ADMIN_CONF, BootstrapError};
use crate::events::{Events, LogLevel};
use crate::infra::{Infrastructure, Machine};
use crate::model::{ClusterSpec, NodeRole};
use crate::ssh::{Executor, Script};

/// Under this much time left, `status` warns.
pub const WARN_SECS: i64 = 30 * 86400;

/// One certificate (or CA) on a control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expiry {
    pub name: String,
    /// RFC 3339, as kubeadm prints it.
    pub expires: String,
    /// Seconds left (negative: expired).
    pub residual_secs: i64,
    /// A certificate authority, not a leaf.
    pub authority: bool,
    /// Managed outside kubeadm (it cannot renew it).
    pub external: bool,
}

/// `kubeadm certs check-expiration -o json` (output.kubeadm.k8s.io CertificateExpirationInfo).
pub fn parse(json: &str) -> Option<Vec<Expiry>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    if v["kind"] != "CertificateExpirationInfo" {
        return None;
    }
    let mut out = Vec::new();
    for (key, authority) in [("certificates", false), ("certificateAuthorities", true)] {
        for c in v[key].as_array().into_iter().flatten() {
            if c["missing"].as_bool() == Some(true) {
                continue;
            }
            out.push(Expiry {
                name: c["name"].as_str()?.to_string(),
                expires: c["expirationDate"].as_str().unwrap_or_default().to_string(),
                residual_secs: c["residualTime"].as_i64().unwrap_or(0),
                authority,
                external: c["externallyManaged"].as_bool().unwrap_or(false),
            });
        }
    }
    Some(out)
}

/// The certificates of control plane `m`, as its kubeadm reads them.
pub async fn read(exec: &Executor, m: &Machine) -> Result<Vec<Expiry>, BootstrapError> {
    let out = exec
        .run(m, &Script::root("certificate expiry", "kubeadm certs check-expiration -o json 2>/dev/null").quiet())
        .await?;
    parse(&out.stdout).ok_or_else(|| BootstrapError::Step {
        step: "certificate expiry",
        node: m.name.clone(),
        reason: format!(
            "`kubeadm certs check-expiration -o json` printed no CertificateExpirationInfo: {}",
            crate::text::bounded(&crate::text::printable(out.stdout.trim()), 200)
        ),
    })
}

/// The certificates of one node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertificates {
    pub node: String,
    pub role: NodeRole,
    /// kubeadm's (control planes only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubeadm: Vec<Expiry>,
    /// The kubelet's client certificate (which the kubelet rotates itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_client: Option<Expiry>,
    /// Why they could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl NodeCertificates {
    pub fn all(&self) -> impl Iterator<Item = &Expiry> {
        self.kubeadm.iter().chain(&self.kubelet_client)
    }
}

/// Seconds left and the end date (RFC 3339) of the kubelet's client certificate, read on the
/// node by openssl (the file also holds the key: only the certificate's date leaves the node).
const KUBELET_CLIENT: &str = r#"f=/var/lib/kubelet/pki/kubelet-client-current.pem
[ -e "$f" ] || { echo none; exit 0; }
end=$(openssl x509 -noout -enddate -in "$f" | cut -d= -f2)
echo "$(( $(date -d "$end" +%s) - $(date +%s) )) $(date -u -d "$end" +%Y-%m-%dT%H:%M:%SZ)"
"#;

fn kubelet_client(out: &str) -> Option<Expiry> {
    let (left, end) = out.trim().split_once(' ')?;
    Some(Expiry {
        name: "kubelet-client".into(),
        expires: end.to_string(),
        residual_secs: left.parse().ok()?,
        authority: false,
        external: false,
    })
}

/// Every node's certificates (control planes: kubeadm's and the kubelet's; workers: the
/// kubelet's), asked at once.
pub async fn survey(spec: &ClusterSpec, infra: &Infrastructure, exec: &Executor) -> Vec<NodeCertificates> {
    let nodes = spec.control_planes.iter().chain(&spec.workers);
    let asks = nodes.filter_map(|n| infra.machine(n.name.as_str())).map(|m| async move {
        let mut c = NodeCertificates {
            node: m.name.clone(),
            role: m.role,
            kubeadm: Vec::new(),
            kubelet_client: None,
            problem: None,
        };
        if m.role == NodeRole::ControlPlane {
            match read(exec, m).await {
                Ok(list) => c.kubeadm = list,
                Err(e) => c.problem = Some(e.to_string()),
            }
        }
        match exec.run(m, &Script::root("kubelet client certificate", KUBELET_CLIENT).quiet()).await {
            Ok(out) => c.kubelet_client = kubelet_client(&out.stdout),
            Err(e) => c.problem = Some(e.to_string()),
        }
        c
    });
    join_all(asks).await
}

/// Parks a control plane's static pod manifests so that its kubelet stops them, waits for their
/// processes to end, and puts them back: the components start again and read the renewed
/// certificates (kubeadm's docs: not every component reloads them). A run killed in between is
/// finished by the next, which finds the parked files first.
const RESTART_STATIC_PODS: &str = r#"set -eu
parked=/etc/kubernetes/hacluster/renew-parked
mkdir -p "$parked"
for c in kube-apiserver kube-controller-manager kube-scheduler etcd; do
  [ -e /etc/kubernetes/manifests/$c.yaml ] && mv -f /etc/kubernetes/manifests/$c.yaml "$parked/"
done
for i in $(seq 120); do
  pgrep -x 'kube-apiserver|kube-controller-manager|kube-scheduler|etcd' >/dev/null || break
  sleep 0.5
done
for f in "$parked"/*.yaml; do [ -e "$f" ] && mv -f "$f" /etc/kubernetes/manifests/; done
echo restarted
"#;

/// Puts back manifests an interrupted renewal parked.
const UNPARK: &str = r#"parked=/etc/kubernetes/hacluster/renew-parked
n=0
for f in "$parked"/*.yaml; do [ -e "$f" ] && mv -f "$f" /etc/kubernetes/manifests/ && n=$((n+1)); done
echo "$n"
"#;

/// What a renewal did on one control plane.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewed {
    pub node: String,
    /// The soonest expiry before and after.
    pub before: String,
    pub after: String,
}

/// `kubeadm certs renew all` on each control plane in turn, out of the endpoint while its
/// components restart; then the admin kubeconfig is read again (its client certificate was
/// renewed too) and `write_kubeconfig` gets it.
pub async fn renew(
    spec: &ClusterSpec,
    infra: &Infrastructure,
    exec: &Executor,
    events: Arc<dyn Events>,
    balancer: Option<&crate::drain::Balancer<'_>>,
) -> Result<(Vec<Renewed>, String), BootstrapError> {
    let drain = crate::drain::Drain { exec, events: events.as_ref(), balancer };
    let mut done = Vec::new();
    let cps: Vec<&Machine> = spec.control_planes.iter().filter_map(|n| infra.machine(n.name.as_str())).collect();
    for (i, m) in cps.iter().enumerate() {
        events.progress("certs", "renew certificates", i as u64, cps.len() as u64);
        let unparked = exec.run(m, &Script::root("unpark manifests", UNPARK)).await?;
        if unparked.stdout.trim() != "0" {
            events.log(
                "certs",
                LogLevel::Info,
                &format!("{}: put back the manifests an interrupted renewal parked", m.name),
                &[],
            );
            crate::drain::wait_local_ready(exec, m).await?;
        }
        let soonest =
            |l: &[Expiry]| l.iter().filter(|c| !c.authority).map(|c| c.expires.clone()).min().unwrap_or_default();
        let before = soonest(&read(exec, m).await?);
        drain.take_out(m).await?;
        exec.run(
            m,
            &Script::root(
                "kubeadm certs renew all",
                // kubeadm's own words on failure, not on success (a line per certificate).
                "out=$(kubeadm certs renew all 2>&1) || { printf '%s\n' \"$out\" | tail -n 20 >&2; exit 1; }\necho renewed",
            )
                .timeout(Duration::from_secs(300)),
        )
        .await?;
        exec.run(
            m,
            &Script::root("restart the control-plane components", RESTART_STATIC_PODS)
                .timeout(Duration::from_secs(300)),
        )
        .await?;
        drain.put_back(m).await?;
        let after = soonest(&read(exec, m).await?);
        events.log(
            "certs",
            LogLevel::Info,
            &format!("{}: renewed; the soonest expiry was {before}, now {after}", m.name),
            &[],
        );
        done.push(Renewed { node: m.name.clone(), before, after });
    }
    events.progress("certs", "renew certificates", cps.len() as u64, cps.len() as u64);
    let init = cps.first().ok_or_else(|| BootstrapError::NoMachine(spec.init_node().name.to_string()))?;
    let admin = exec.run(init, &Script::root("read admin kubeconfig", format!("cat {ADMIN_CONF}")).quiet()).await?;
    Ok((done, admin.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadms_report_is_read_and_missing_ones_are_left_out() {
        let json = r#"{"kind":"CertificateExpirationInfo","apiVersion":"output.kubeadm.k8s.io/v1alpha3",
          "certificates":[{"name":"apiserver","expirationDate":"2027-12-06T15:00:00Z","residualTime":31535000,"externallyManaged":false,"caName":"ca","missing":false},
                          {"name":"front-proxy-client","expirationDate":"0001-01-01T00:00:00Z","residualTime":0,"externallyManaged":false,"missing":true}],
          "certificateAuthorities":[{"name":"ca","expirationDate":"2036-12-04T15:00:00Z","residualTime":315000000,"externallyManaged":true,"missing":false}]}"#;
        let got = parse(json).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "apiserver");
        assert_eq!(got[0].residual_secs, 31535000);
        assert!(!got[0].authority && !got[0].external);
        assert!(got[1].authority && got[1].external);
        assert_eq!(parse(r#"{"kind":"Other"}"#), None);
        assert_eq!(parse("not json"), None);
    }

    #[test]
    fn the_kubelets_client_certificate_date_is_read() {
        let c = kubelet_client("31535000 2027-12-06T16:11:00Z\n").unwrap();
        assert_eq!((c.residual_secs, c.expires.as_str()), (31535000, "2027-12-06T16:11:00Z"));
        assert!(kubelet_client("-5 2026-12-06T16:11:00Z").unwrap().residual_secs < 0);
        assert_eq!(kubelet_client("none"), None);
    }
}

//! A test mode of the egress hook: make the network misbehave the way cloud APIs do, to show
//! that backends converge anyway. Enabled only by `HACLUSTER_FAULT_INJECTION`, e.g.
//!
//! ```text
//! HACLUSTER_FAULT_INJECTION="throttle=30,delay=40ms,seed=7"
//! HACLUSTER_FAULT_INJECTION="deny=http://127.0.0.1:5000"
//! ```
//!
//! - `throttle=P`: P % of allowed requests get the provider's throttling answer (HTTP 503,
//!   `RequestLimitExceeded` for EC2, `Throttling` for other query APIs) without being sent;
//! - `delay=Nms`: every allowed request waits N ms first (widens windows for crash tests);
//! - `lose=P` or `lose=P:Action`: P % of allowed requests (only those whose form body says
//!   `Action=<Action>`, e.g. `RunInstances`) are sent and answered, but the answer is dropped
//!   and the plugin sees a read timeout — the request that may or may not have happened;
//! - `deny=ORIGIN`: refuse an origin even if the allow-list has it, as if it were not listed;
//! - `seed=S`: the pseudo-random sequence, so runs repeat;
//! - `hv-fail-at=N`: the Nth call that changes something through the `hypervisor` import
//!   fails (as a libvirt error would), once: an apply that stops half-way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::egress::Origin;

pub const ENV: &str = "HACLUSTER_FAULT_INJECTION";

#[derive(Debug, Default)]
pub struct Faults {
    throttle_percent: u64,
    lose_percent: u64,
    lose_action: Option<String>,
    pub delay: Option<Duration>,
    pub deny: Vec<Origin>,
    state: AtomicU64,
    hv_fail_at: Option<u64>,
    hv_changes: AtomicU64,
}

impl Faults {
    pub fn from_env() -> Option<Faults> {
        let spec = std::env::var(ENV).ok().filter(|s| !s.is_empty())?;
        Some(Faults::parse(&spec))
    }

    pub fn parse(spec: &str) -> Faults {
        let mut f = Faults { state: AtomicU64::new(0x9e37_79b9_7f4a_7c15), ..Default::default() };
        for part in spec.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("throttle", v)) => f.throttle_percent = v.trim_end_matches('%').parse().unwrap_or(0).min(100),
                Some(("lose", v)) => {
                    let (p, action) = v.split_once(':').map(|(p, a)| (p, Some(a.to_string()))).unwrap_or((v, None));
                    f.lose_percent = p.trim_end_matches('%').parse().unwrap_or(0).min(100);
                    f.lose_action = action;
                }
                Some(("delay", v)) => f.delay = v.trim_end_matches("ms").parse().ok().map(Duration::from_millis),
                Some(("deny", v)) => f.deny.extend(Origin::parse(v).ok()),
                Some(("seed", v)) => f.state = AtomicU64::new(v.parse::<u64>().unwrap_or(1).max(1)),
                Some(("hv-fail-at", v)) => f.hv_fail_at = v.parse().ok(),
                _ => {}
            }
        }
        f
    }

    /// xorshift64*: cheap, repeatable, good enough to pick "a share of calls".
    fn next(&self) -> u64 {
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn throttle_now(&self) -> bool {
        self.throttle_percent > 0 && self.next() % 100 < self.throttle_percent
    }

    /// Whether any request may have its answer dropped (the body must then be looked at).
    pub fn loses_answers(&self) -> bool {
        self.lose_percent > 0
    }

    /// Whether to drop the answer to a request with this body.
    pub fn lose_now(&self, body: &[u8]) -> bool {
        let matches = match &self.lose_action {
            Some(a) => {
                let want = format!("Action={a}");
                body.split(|b| *b == b'&').any(|kv| kv == want.as_bytes())
            }
            None => true,
        };
        matches && self.next() % 100 < self.lose_percent
    }

    /// Counts a changing hypervisor call; true for the one that is to fail.
    pub fn hv_fail_now(&self) -> bool {
        let n = self.hv_changes.fetch_add(1, Ordering::Relaxed) + 1;
        self.hv_fail_at == Some(n)
    }

    pub fn denies(&self, https: bool, authority: &str) -> bool {
        let policy = super::egress::EgressPolicy { allowed: self.deny.clone() };
        policy.allows(https, authority)
    }
}

/// The throttling answer of an AWS query API. The signing scope in `Authorization` names the
/// service (`.../ec2/aws4_request`), which decides the error code.
pub fn throttle_body(authorization: Option<&str>) -> String {
    let ec2 = authorization.is_none_or(|a| a.contains("/ec2/"));
    if ec2 {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded (hacluster fault injection)</Message></Error></Errors><RequestID>fault-injection</RequestID></Response>".into()
    } else {
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded (hacluster fault injection)</Message></Error><RequestId>fault-injection</RequestId></ErrorResponse>".into()
    }
}

/// Counts of what the egress hook did, for reports and benchmarks.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub sent: AtomicU64,
    pub denied: AtomicU64,
    pub throttled: AtomicU64,
    /// Sent, answered, and the answer dropped (`lose=`).
    pub lost: AtomicU64,
}

impl HttpStats {
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (get(&self.sent), get(&self.denied), get(&self.throttled), get(&self.lost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_throttles_a_share() {
        let f = Faults::parse("throttle=30,delay=25ms,deny=http://127.0.0.1:5000,seed=7");
        assert_eq!(f.delay, Some(Duration::from_millis(25)));
        assert!(f.denies(false, "127.0.0.1:5000"));
        assert!(!f.denies(false, "127.0.0.1:5001"));
        let hits = (0..10_000).filter(|_| f.throttle_now()).count();
        assert!((2_500..3_500).contains(&hits), "{hits}");
        assert!(
            throttle_body(Some("AWS4-HMAC-SHA256 Credential=x/20261122/eu-central-1/ec2/aws4_request"))
                .contains("RequestLimitExceeded")
        );
        assert!(
            throttle_body(Some(
                "AWS4-HMAC-SHA256 Credential=x/20261122/eu-central-1/elasticloadbalancing/aws4_request"
            ))
            .contains("<Code>Throttling")
        );
    }

    #[test]
    fn loses_answers_only_of_the_named_action() {
        let f = Faults::parse("lose=100:RunInstances");
        assert!(f.loses_answers());
        assert!(f.lose_now(b"Action=RunInstances&Version=2016-11-15&MinCount=1"));
        assert!(!f.lose_now(b"Action=DescribeInstances&Version=2016-11-15"));
        assert!(!f.lose_now(b"Action=RunInstancesX&Version=2016-11-15"), "the whole value, not a prefix");
        let f = Faults::parse("lose=50,seed=3");
        let hits = (0..10_000).filter(|_| f.lose_now(b"anything")).count();
        assert!((4_500..5_500).contains(&hits), "{hits}");
        assert!(!Faults::parse("throttle=10").loses_answers());
    }
}

//! Kubernetes labels on nodes: their syntax, and which ones a kubelet may set on its own Node.

/// Whether a kubelet may put label `key` on its own Node (`--node-labels`): anything outside
/// the kubernetes.io and k8s.io namespaces, and inside them only its own well-known labels and
/// the kubelet.kubernetes.io and node.kubernetes.io namespaces (k8s.io/kubelet's
/// `IsKubeletLabel`, which the kubelet checks at start).
pub(super) fn kubelet_may_set(key: &str) -> bool {
    const OWN: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    let Some((ns, _)) = key.split_once('/') else { return true };
    let in_ns = |n: &str, suffix: &str| n == suffix || n.ends_with(&format!(".{suffix}"));
    if !in_ns(ns, "kubernetes.io") && !in_ns(ns, "k8s.io") {
        return true;
    }
    OWN.contains(&key) || in_ns(ns, "kubelet.kubernetes.io") || in_ns(ns, "node.kubernetes.io")
}

/// One part of a label (a key's name or prefix, or a value): at most 63 letters, digits,
/// `-`, `_` and `.`, starting and ending alphanumeric (a value may be empty).
pub(super) fn label_part_ok(s: &str, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::kubelet_may_set;

    #[test]
    fn the_kubelet_sets_only_its_own_kubernetes_io_labels() {
        for ok in
            ["tier", "example.com/pool", "node.kubernetes.io/pool", "x.kubelet.kubernetes.io/a", "kubernetes.io/arch"]
        {
            assert!(kubelet_may_set(ok), "{ok}");
        }
        for bad in [
            "node-role.kubernetes.io/worker",
            "kubernetes.io/role",
            "k8s.io/x",
            "foo.k8s.io/y",
            "example.kubernetes.io/z",
        ] {
            assert!(!kubelet_may_set(bad), "{bad}");
        }
    }
}

//! REAL backups and restores, on the lab (tests/lab/README.md): `hacluster backup` of a cluster
//! made by `hacluster up`, with a namespace, a ConfigMap and a Deployment in it. The archive is
//! checked from outside: encrypted (no plaintext, 0600, never overwritten), opened only with the
//! right age identity, refused when damaged, and its snapshot judged by etcd's own `etcdutl`.
//! Then the old cluster goes, and `hacluster restore` builds it again on a new lab of three
//! control planes with other addresses.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::{Lab, Scratch, eventually, kubectl};

#[test]
#[ignore = "a real cluster takes both cores: scripts/test runs it alone, after the other tests"]
fn real_cluster_backup_checked_and_refused_when_damaged_then_restored_onto_new_machines() {
    let lab = Lab::up(1, 1);
    let n = lab.n;
    let s = Scratch::new();
    let cfg = lab.config.to_str().unwrap().to_string();
    let r = s.run(&["up", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let kc = s.state().join(format!("lab{n}")).join("kubeconfig");
    for args in [
        &["create", "namespace", "backup-test"][..],
        &["-n", "backup-test", "create", "configmap", "hello", "--from-literal=greeting=kept-by-the-backup"],
        &["-n", "backup-test", "create", "deployment", "web", "--image=registry.lab:5000/hacluster/web:1"],
    ] {
        let (ok, out) = kubectl(&kc, args);
        assert!(ok, "kubectl {args:?}: {out}");
    }

    let id = age::x25519::Identity::generate();
    let key = s.path("backup.key");
    std::fs::write(&key, format!("{}\n", age::secrecy::ExposeSecret::expose_secret(&id.to_string()))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let recipient = id.to_public().to_string();
    let out = s.path("lab.backup.age");
    let (out_s, key_s) = (out.to_str().unwrap(), key.to_str().unwrap());

    // Without a recipient nothing is read from any node.
    let r = s.run(&["backup", "-c", &cfg]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no recipient"), "{}", r.stderr);

    let r = s.run(&["backup", "-c", &cfg, "--recipient", &recipient, "--out", out_s, "-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let taken = r.json();
    let m = &taken["manifest"];
    assert_eq!(m["cluster"], format!("lab{n}"));
    assert_eq!(m["takenFrom"], format!("lab{n}-master-1"));
    assert_eq!(m["endpoint"], format!("10.232.{n}.200:6443"));
    assert!(m["etcd"]["revision"].as_i64().unwrap() > 0 && m["etcd"]["totalKey"].as_u64().unwrap() > 0, "{m}");
    let paths: Vec<&str> = m["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    for p in ["etcd/snapshot.db", "pki/ca.key", "pki/sa.key", "pki/etcd/ca.key", "kubeadm/ClusterConfiguration.yaml"] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    let sealed = std::fs::read(&out).unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(sealed.starts_with(b"age-encryption.org/v1"));
    let text = String::from_utf8_lossy(&sealed);
    assert!(!text.contains("/registry/") && !text.contains("PRIVATE KEY"), "plaintext in the archive");
    assert!(!r.stdout.contains("PRIVATE KEY") && !r.stderr.contains("PRIVATE KEY"), "a key in the output");
    // The snapshot does not stay on the node.
    let root = lab.shell(s.dir.path());
    let ip = format!("10.232.{n}.11");
    let o = root.run(&ip, "ls /var/lib/etcd/");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("hacluster-backup"), "the snapshot was left on the node");
    // Never overwritten.
    let r = s.run(&["backup", "-c", &cfg, "--recipient", &recipient, "--out", out_s]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("never overwritten"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), sealed);

    // Opened with the identity: the same manifest, and files that are the cluster's.
    let dir = s.path("extracted");
    let r = s.run(&["backup", "inspect", out_s, "--identity", key_s, "--extract", dir.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(&r.json()["manifest"], m);
    let snapshot = std::fs::read(dir.join("etcd/snapshot.db")).unwrap();
    let has = |needle: &[u8]| snapshot.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"/registry/configmaps/backup-test/hello"), "the ConfigMap is not in the snapshot");
    assert!(has(b"/registry/deployments/backup-test/web"), "the Deployment is not in the snapshot");
    let ca = root.run(&ip, "cat /etc/kubernetes/pki/ca.crt");
    assert_eq!(std::fs::read(dir.join("pki/ca.crt")).unwrap(), ca.stdout, "the cluster's CA");
    assert_eq!(std::fs::metadata(dir.join("pki/ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
    // etcd's own tool, here, agrees with what it said on the node.
    let etcdutl = crate::real_kubeadm::built("etcd-v3.7.0").join("etcdutl");
    let st = std::process::Command::new(etcdutl)
        .args(["snapshot", "status", "-w", "json"])
        .arg(dir.join("etcd/snapshot.db"))
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let status: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!((&status["hash"], &status["revision"]), (&m["etcd"]["hash"], &m["etcd"]["revision"]));

    // Refused, and nothing written: another identity, a changed byte, a cut file.
    let other = age::x25519::Identity::generate();
    let other_key = s.path("other.key");
    std::fs::write(&other_key, format!("{}\n", age::secrecy::ExposeSecret::expose_secret(&other.to_string()))).unwrap();
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let never = s.path("never");
    let refused = |archive: &std::path::Path, key: &std::path::Path, phrase: &str| {
        let r = s.run(&[
            "backup",
            "inspect",
            archive.to_str().unwrap(),
            "--identity",
            key.to_str().unwrap(),
            "--extract",
            never.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(phrase), "{}", r.stderr);
        assert!(!never.exists(), "a refused archive wrote files");
    };
    refused(&out, &other_key, "cannot be decrypted with the identity given");
    let mut flipped = sealed.clone();
    let at = sealed.len() / 2;
    flipped[at] ^= 0x40;
    let damaged = s.path("damaged.age");
    std::fs::write(&damaged, &flipped).unwrap();
    refused(&damaged, &key, "damaged");
    std::fs::write(&damaged, &sealed[..sealed.len() - 100]).unwrap();
    refused(&damaged, &key, "damaged");

    // The cluster is untouched by all of it.
    eventually("verify passes", Duration::from_secs(120), || {
        let v = s.run(&["verify", "-c", &cfg, "-o", "json"]);
        if v.code == 0 { Ok(()) } else { Err(v.stdout) }
    });
    eprintln!(
        "real backup: {} bytes sealed, snapshot revision {} with {} keys",
        sealed.len(),
        m["etcd"]["revision"],
        m["etcd"]["totalKey"]
    );

    // New machines with other addresses (made while the old lab still holds its number), then
    // the old cluster goes: its machines and its state.
    let new = Lab::up(3, 1);
    let (k, new_cfg) = (new.n, new.config.to_str().unwrap().to_string());
    assert_ne!(k, n);
    let old_admin = std::fs::read_to_string(&kc).unwrap();
    let r = s.run(&["down", "-c", &cfg]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    drop(lab);

    // Refused before any machine is touched: another identity, a damaged archive, another minor.
    let restore = |archive: &str, key: &str, config: &str| {
        s.run(&["restore", "-c", config, "--from", archive, "--identity", key])
    };
    let r = restore(out_s, other_key.to_str().unwrap(), &new_cfg);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let r = restore(damaged.to_str().unwrap(), key_s, &new_cfg);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let older = s.write(
        "older.yaml",
        &std::fs::read_to_string(&new.config).unwrap().replace("version: v1.37.2", "version: v1.36.3"),
    );
    let r = restore(out_s, key_s, older.to_str().unwrap());
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("restore at the backup's minor version"), "{}", r.stderr);
    assert!(s.state_of(&format!("lab{k}")).is_none(), "a refused restore left state");

    let t0 = std::time::Instant::now();
    let r = restore(out_s, key_s, &new_cfg);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let restored_in = t0.elapsed().as_secs_f64();
    assert!(s.state_of(&format!("lab{k}")).unwrap().restoring.is_none(), "the state still records the restore");
    assert!(r.stderr.contains("the old cluster's join tokens and Nodes deleted"), "{}", r.stderr);
    let new_kc = s.state().join(format!("lab{k}")).join("kubeconfig");
    let (ok, greeting) =
        kubectl(&new_kc, &["-n", "backup-test", "get", "configmap", "hello", "-o", "jsonpath={.data.greeting}"]);
    assert!(ok && greeting == "kept-by-the-backup", "the ConfigMap: {greeting}");
    let (ok, web) = kubectl(&new_kc, &["-n", "backup-test", "get", "deployment", "web", "-o", "name"]);
    assert!(ok && web.trim() == "deployment.apps/web", "the Deployment: {web}");
    // Three voting members, the new nodes only (the old machines' Nodes are gone), all Ready.
    let st = s.run(&["status", "-c", &new_cfg, "-o", "json"]);
    assert_eq!(st.code, 0, "{}{}", st.stdout, st.stderr);
    let h = &st.json()["health"];
    let members = h["etcdMemberList"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{h}");
    assert!(members.iter().all(|m| m["started"] == true && m["learner"] == false), "{members:?}");
    let (ok, names) = kubectl(&new_kc, &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert!(ok, "{names}");
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort();
    let want: Vec<String> =
        ["master-1", "master-2", "master-3", "worker-1"].iter().map(|x| format!("lab{k}-{x}")).collect();
    assert_eq!(names, want.iter().map(String::as_str).collect::<Vec<_>>());
    eventually("verify passes on the restored cluster", Duration::from_secs(300), || {
        let v = s.run(&["verify", "-c", &new_cfg, "-o", "json"]);
        if v.code == 0 { Ok(()) } else { Err(v.stdout) }
    });
    // The old admin kubeconfig: its client certificate is the same CA's, so it works once its
    // server names the new endpoint.
    let moved = s.write(
        "old-admin.conf",
        &old_admin.replace(&format!("https://10.232.{n}.200:6443"), &format!("https://10.232.{k}.200:6443")),
    );
    let (ok, out) = kubectl(&moved, &["get", "namespace", "backup-test", "-o", "name"]);
    assert!(ok, "the old admin kubeconfig, pointed at the new endpoint: {out}");
    // Once restored, it is a running cluster: a second restore is refused.
    let r = restore(out_s, key_s, &new_cfg);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("runs already"), "{}", r.stderr);
    eprintln!("real restore: 3 control planes and 1 worker restored in {restored_in:.0} s");
}

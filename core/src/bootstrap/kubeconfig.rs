//! The admin kubeconfig: pointed at the API endpoint, written 0600, and optionally merged into
//! `~/.kube/config` as a context of its own.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::yaml;

/// The kubeconfig with every `server:` set to the endpoint.
pub fn with_server(text: &str, host: &str, port: u16) -> String {
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("server:") {
            let indent = &line[..line.len() - trimmed.len()];
            let _ = rest;
            out.push_str(&format!("{indent}server: https://{host}:{port}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The `server` of the first cluster in a kubeconfig.
pub fn server_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim_start().strip_prefix("server:").map(|s| s.trim().trim_matches('"').to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, String),
    #[error("{0} is not a kubeconfig hacluster can read: {1}")]
    Parse(PathBuf, String),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, String),
}

fn parse(path: &Path, text: &str) -> Result<Value, MergeError> {
    match yaml::parse(text, yaml::Limits::default()) {
        Ok(Some(node)) => Ok(crate::config::structural::to_json(&node)),
        Ok(None) => Ok(json!({})),
        Err(e) => Err(MergeError::Parse(path.into(), e.to_string())),
    }
}

fn upsert(list: &mut Value, name: &str, entry: Value) {
    if !list.is_array() {
        *list = json!([]);
    }
    let arr = list.as_array_mut().expect("array");
    arr.retain(|e| e["name"] != name);
    arr.push(entry);
}

/// Adds the cluster to `target` (usually `~/.kube/config`) as context `<cluster>`, keeping
/// everything else; the old file is kept as `<target>.hacluster-backup`. The result is written
/// as JSON, which kubectl reads like YAML.
pub fn merge_into(target: &Path, cluster: &str, ours: &str) -> Result<(), MergeError> {
    let ours_v = parse(Path::new("admin kubeconfig"), ours)?;
    let existing = match std::fs::read_to_string(target) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(MergeError::Read(target.into(), e.to_string())),
    };
    let mut doc = match &existing {
        Some(t) => parse(target, t)?,
        None => json!({"apiVersion": "v1", "kind": "Config", "preferences": {}}),
    };
    let cluster_data = ours_v["clusters"][0]["cluster"].clone();
    let user_data = ours_v["users"][0]["user"].clone();
    let user = format!("{cluster}-admin");
    upsert(&mut doc["clusters"], cluster, json!({"name": cluster, "cluster": cluster_data}));
    upsert(&mut doc["users"], &user, json!({"name": user, "user": user_data}));
    upsert(&mut doc["contexts"], cluster, json!({"name": cluster, "context": {"cluster": cluster, "user": user}}));
    if doc["current-context"].as_str().unwrap_or("").is_empty() {
        doc["current-context"] = json!(cluster);
    }
    if let Some(t) = existing {
        let backup = PathBuf::from(format!("{}.hacluster-backup", target.display()));
        crate::state::write_atomic(&backup, t.as_bytes())
            .map_err(|e| MergeError::Write(backup.clone(), e.to_string()))?;
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| MergeError::Write(dir.into(), e.to_string()))?;
    }
    let text = serde_json::to_string_pretty(&doc).expect("JSON");
    crate::state::write_atomic(target, text.as_bytes()).map_err(|e| MergeError::Write(target.into(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://10.0.0.4:6443\n  name: demo\ncontexts:\n- context:\n    cluster: demo\n    user: kubernetes-admin\n  name: kubernetes-admin@demo\ncurrent-context: kubernetes-admin@demo\nkind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    #[test]
    fn server_is_replaced() {
        let t = with_server(KC, "lb.example", 6443);
        assert_eq!(server_of(&t).unwrap(), "https://lb.example:6443");
        assert!(t.contains("client-key-data: S0VZ"));
    }

    #[test]
    fn merge_keeps_other_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config");
        std::fs::write(&target, "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: other\n  cluster: {server: https://other:6443}\ncontexts:\n- name: other\n  context: {cluster: other, user: u}\nusers:\n- name: u\n  user: {token: t}\n").unwrap();
        merge_into(&target, "demo", &with_server(KC, "lb", 6443)).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
        assert_eq!(v["current-context"], "other");
        assert_eq!(v["contexts"].as_array().unwrap().len(), 2);
        let c = v["clusters"].as_array().unwrap().iter().find(|c| c["name"] == "demo").unwrap();
        assert_eq!(c["cluster"]["server"], "https://lb:6443");
        assert!(dir.path().join("config.hacluster-backup").exists());
    }
}

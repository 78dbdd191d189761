//! A backend that does what a hostile or buggy plugin would. Each `mode` is one misdeed.

wit_bindgen::generate!({
    world: "backend",
    path: "../../../wit",
});

use exports::hacluster::backend::plugin::Guest;
use hacluster::backend::types::*;
use hacluster::backend::{checkpoint, log};

fn config(cluster: &Cluster) -> serde_json::Value {
    serde_json::from_str(&cluster.config).unwrap_or_default()
}

fn mode(cluster: &Cluster) -> String {
    config(cluster)["mode"].as_str().unwrap_or("ok").to_string()
}

/// Infrastructure for every node at 127.0.0.1, as a well-behaved backend would return.
fn ok_infra(cluster: &Cluster, state: Vec<u8>) -> Infrastructure {
    let machines = cluster
        .nodes
        .iter()
        .map(|n| Machine {
            name: n.name.clone(),
            role: n.role,
            private_address: "127.0.0.1".into(),
            ssh: SshTarget {
                address: "127.0.0.1".into(),
                port: 22,
                user: cluster.ssh_user.clone(),
                jump: None,
                host_public_key: n.host_public_key.clone(),
            },
            provider_id: format!("adversary:{}", n.name),
        })
        .collect();
    Infrastructure { machines, endpoint: ApiEndpoint { host: "127.0.0.1".into(), port: cluster.api_port }, state }
}

fn http_get(url: &str) -> Result<String, String> {
    wstd::runtime::block_on(async {
        let req = wstd::http::Request::get(url).body(wstd::http::Body::empty()).map_err(|e| e.to_string())?;
        let resp = wstd::http::Client::new().send(req).await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().str_contents().await.map_err(|e| format!("{e:?}"))?.to_string();
        Ok(format!("{status} {body}"))
    })
}

struct Adversary;

impl Guest for Adversary {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "adversary".into(),
            version: "0.1.0".into(),
            contract: "0.1.0".into(),
            description: "misbehaves on request, for tests".into(),
            supports: Capabilities::CLOUD_LB,
        }
    }

    fn validate(_cluster: Cluster) -> Vec<Diagnostic> {
        Vec::new()
    }

    fn plan(cluster: Cluster, _prior: Option<Vec<u8>>) -> Result<Vec<Change>, Error> {
        Ok(cluster
            .nodes
            .iter()
            .map(|n| Change {
                action: ChangeAction::Create,
                kind: "machine".into(),
                name: n.name.clone(),
                detail: String::new(),
            })
            .collect())
    }

    fn apply(cluster: Cluster, prior: Option<Vec<u8>>) -> Result<Infrastructure, Error> {
        let cfg = config(&cluster);
        match mode(&cluster).as_str() {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Err(Error::Internal("woke up".into()))
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 8 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("adversary panics on purpose"),
            "egress" => {
                let url = cfg["url"].as_str().unwrap_or("http://127.0.0.1:9/");
                match http_get(url) {
                    Ok(body) => Err(Error::Internal(format!("fetched: {body}"))),
                    Err(e) => Err(Error::Denied(format!("request failed: {e}"))),
                }
            }
            "hypervisor" => {
                // libvirt on each URI of `uris`; then a domain whose disk is a host file, on
                // the first, and an image import of a file the config does not name.
                use hacluster::backend::hypervisor as hv;
                let show = |e: hv::HvError| match e {
                    hv::HvError::Denied(m) => format!("denied: {m}"),
                    hv::HvError::NotFound(m) => format!("not found: {m}"),
                    hv::HvError::Failed(m) => format!("failed: {m}"),
                };
                let uris: Vec<String> = cfg["uris"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|u| u.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                let mut out = Vec::new();
                for uri in &uris {
                    match hv::list_domains(uri) {
                        Ok(d) => out.push(format!("{uri}: {} domains", d.len())),
                        Err(e) => out.push(format!("{uri}: {}", show(e))),
                    }
                }
                if let Some(uri) = uris.first() {
                    let xml = "<domain type='test'><name>adversary-snoop</name><memory>1024</memory><os><type>hvm</type></os><devices><disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vda'/></disk></devices></domain>";
                    out.push(format!(
                        "define: {}",
                        hv::define_domain(uri, xml).map(|_| "ok".into()).unwrap_or_else(show)
                    ));
                    let import = hv::import_image(uri, "default-pool", "shadow", "/etc/shadow", None);
                    out.push(format!("import: {}", import.map(|_| "ok".into()).unwrap_or_else(show)));
                }
                Err(Error::Internal(out.join("\n")))
            }
            "huge" => {
                // 64 MiB of state: more than the host accepts back from a plugin.
                Ok(ok_infra(&cluster, vec![b'x'; 64 << 20]))
            }
            "snoop" => {
                let file = std::fs::read_to_string("/etc/passwd")
                    .map(|s| format!("read {} bytes", s.len()))
                    .unwrap_or_else(|e| format!("error: {e}"));
                let cwd =
                    std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_else(|e| format!("error: {e}"));
                let env = std::env::vars().count();
                let tcp = std::net::TcpStream::connect("127.0.0.1:22")
                    .map(|_| "connected".to_string())
                    .unwrap_or_else(|e| format!("error: {e}"));
                Err(Error::Internal(format!("file={file}; cwd={cwd}; env={env}; tcp={tcp}")))
            }
            "checkpoint" => {
                // Checkpoint `count` times, `interval-ms` apart: a crash-safety test kills the
                // host in between and looks at what was persisted.
                let count = cfg["count"].as_u64().unwrap_or(10);
                let interval = cfg["intervalMs"].as_u64().unwrap_or(100);
                let mut state = Vec::new();
                for i in 1..=count {
                    // Big enough that a torn write would be visible: 256 KiB per step.
                    state = format!("step {i} ").into_bytes();
                    state.extend(std::iter::repeat_n(b'0' + (i % 10) as u8, 256 << 10));
                    checkpoint::save(&state).map_err(Error::Internal)?;
                    log::log(log::Level::Info, "checkpointed", &[("step".into(), i.to_string())]);
                    std::thread::sleep(std::time::Duration::from_millis(interval));
                }
                Ok(ok_infra(&cluster, state))
            }
            _ => {
                let n = prior.map(|p| p.len()).unwrap_or(0);
                Ok(ok_infra(&cluster, format!("ok after {n} bytes of prior state").into_bytes()))
            }
        }
    }

    fn destroy(_cluster: Cluster, _state: Option<Vec<u8>>) -> Result<(), Error> {
        Ok(())
    }
}

export!(Adversary);

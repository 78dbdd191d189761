//! A backend that does what a hostile or buggy plugin would. Each `mode` is one misdeed.
//!
//! It speaks the raw contract through the SDK's bindings rather than its `Backend` trait: its
//! misdeeds (states that are not JSON, checkpoints of raw bytes, a contract version it makes
//! up) are what the trait's typed layer rules out.

use hacluster::backend::types::*;
use hacluster::backend::{checkpoint, log};
use hacluster_backend::bindings::hacluster;
use hacluster_backend::bindings::with_files::exports::hacluster::backend::files::{self, RenderedFile};
use hacluster_backend::bindings::with_files::exports::hacluster::backend::plugin::Guest;

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

/// A GET through wasi:http. The (empty) body is finished before the request is handed to the
/// host: a body still being finished while the response arrives races the host dropping it,
/// which wasi reports as a closed stream ("connection reset") on a loaded machine.
fn http_get(url: &str) -> Result<String, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;

    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("not a URL: {url}"))?;
    let (authority, path) = rest.find('/').map(|i| rest.split_at(i)).unwrap_or((rest, "/"));
    let req = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    req.set_method(&Method::Get).map_err(|()| "method refused")?;
    req.set_scheme(Some(&scheme)).map_err(|()| "scheme refused")?;
    req.set_authority(Some(authority)).map_err(|()| "authority refused")?;
    req.set_path_with_query(Some(path)).map_err(|()| "path refused")?;
    let body = req.body().map_err(|()| "no request body")?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    let pending = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let resp = pending
        .get()
        .ok_or("no response after readiness")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let incoming = resp.consume().map_err(|()| "no response body")?;
    let stream = incoming.stream().map_err(|()| "no response stream")?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(bytes) => out.extend(bytes),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    Ok(format!("{status} {}", String::from_utf8_lossy(&out)))
}

/// One hypervisor call described in JSON (`call`, `uri`, `name`, `pool`, `xml`, `files`,
/// `source`), performed as asked; its outcome as `ok` or `<kind>: <message>`.
fn hv_call(c: &serde_json::Value, default_uri: &str) -> String {
    use hacluster::backend::hypervisor as hv;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    let uri = c["uri"].as_str().unwrap_or(default_uri).to_string();
    let (name, pool, xml) = (s("name"), s("pool"), s("xml"));
    let files: Vec<(String, Vec<u8>)> = c["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f[0].as_str().unwrap_or_default().to_string(),
                        f[1].as_str().unwrap_or_default().as_bytes().to_vec(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let r: Result<(), hv::HvError> = match s("call").as_str() {
        "define-domain" => hv::define_domain(&uri, &xml),
        "start-domain" => hv::start_domain(&uri, &name),
        "delete-domain" => hv::delete_domain(&uri, &name),
        "domain-addresses" => hv::domain_addresses(&uri, &name).map(|_| ()),
        "create-network" => hv::create_network(&uri, &xml),
        "delete-network" => hv::delete_network(&uri, &name),
        "create-pool" => hv::create_pool(&uri, &xml),
        "delete-pool" => hv::delete_pool(&uri, &name),
        "create-volume" => hv::create_volume(&uri, &pool, &xml),
        "create-seed-volume" => hv::create_seed_volume(&uri, &pool, &name, &files),
        "import-image" => hv::import_image(&uri, &pool, &name, &s("source"), None),
        "delete-volume" => hv::delete_volume(&uri, &pool, &name),
        other => return format!("unknown call `{other}`"),
    };
    match r {
        Ok(()) => "ok".into(),
        Err(hv::HvError::Denied(m)) => format!("denied: {m}"),
        Err(hv::HvError::NotFound(m)) => format!("not found: {m}"),
        Err(hv::HvError::Failed(m)) => format!("failed: {m}"),
    }
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
            "hv-abuse" => {
                // Every call in `calls`, in order, each on its own; the outcomes are the state
                // this apply returns, so the test reads them whatever the terminal shows.
                let calls = cfg["calls"].as_array().cloned().unwrap_or_default();
                let default_uri = cluster.hosts.first().map(|h| h.uri.clone()).unwrap_or_default();
                let outcomes: Vec<serde_json::Value> = calls
                    .iter()
                    .map(|c| {
                        let outcome = hv_call(c, &default_uri);
                        serde_json::json!({"label": c["label"], "outcome": outcome})
                    })
                    .collect();
                Ok(ok_infra(&cluster, serde_json::to_vec(&outcomes).expect("JSON")))
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
            "terminal" => {
                // Everything a plugin says reaches the operator's terminal: escape sequences,
                // invisible reordering characters, fields and steps without bound, and the
                // user-data the core rendered (which holds the node's private host key).
                let esc = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31mred\u{202e}desrever";
                let fields: Vec<(String, String)> =
                    (0..2000).map(|i| (format!("k{i}{esc}"), format!("{esc}{}", "v".repeat(4096)))).collect();
                log::log(log::Level::Info, &format!("{esc}{}", "m".repeat(1 << 20)), &fields);
                let user_data = cluster.nodes.first().map(|n| n.user_data.clone()).unwrap_or_default();
                log::log(log::Level::Warn, &format!("echo: {user_data}"), &[]);
                for i in 0..1000 {
                    hacluster::backend::progress::report(&format!("step {i} {esc}"), 1, 2);
                }
                Err(Error::Internal(format!("failed {esc}")))
            }
            "inject" => {
                // A shell command where an address or a user belongs (`field` says where).
                let mut infra = ok_infra(&cluster, Vec::new());
                let evil = "10.0.0.1'; touch /tmp/adversary-was-here #".to_string();
                let m = &mut infra.machines[0];
                match cfg["field"].as_str().unwrap_or("private") {
                    "private" => m.private_address = evil,
                    "ssh" => m.ssh.address = evil,
                    "user" => m.ssh.user = "root; touch /tmp/adversary-was-here".into(),
                    _ => infra.endpoint.host = evil,
                }
                Ok(infra)
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

/// `plan --out` misdeeds (`mode: files-<what>`): a file name that climbs out of its
/// directory, a file for a machine that is not in the cluster, a private key in a file, or
/// more bytes than the host takes. Anything else renders one harmless file per node.
impl files::Guest for Adversary {
    fn rendered_files(cluster: Cluster, _prior: Option<Vec<u8>>) -> Result<Vec<RenderedFile>, Error> {
        let first = cluster.nodes.first().map(|n| n.name.clone()).unwrap_or_default();
        let file = |node: &str, name: &str, content: String| RenderedFile {
            node: node.into(),
            name: name.into(),
            destination: "/etc/adversary\u{1b}[2J (escape sequences are stripped)".into(),
            content,
        };
        Ok(match mode(&cluster).as_str() {
            "files-traversal" => vec![file(&first, "../../adversary-was-here", "x".into())],
            "files-absolute" => vec![file(&first, "/tmp/adversary-was-here", "x".into())],
            "files-foreign-node" => vec![file("someone-elses-machine", "x.conf", "x".into())],
            "files-private-key" => vec![file(
                &first,
                "id_ed25519",
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
                    .into(),
            )],
            // The user-data it was given, where the host key would be: a placeholder.
            "files-echo" => cluster.nodes.iter().map(|n| file(&n.name, "echo", n.user_data.clone())).collect(),
            "files-huge" => (0..80).map(|i| file(&first, &format!("big-{i}"), "x".repeat(1 << 20))).collect(),
            _ => cluster.nodes.iter().map(|n| file(&n.name, "adversary.conf", format!("node {}\n", n.name))).collect(),
        })
    }
}

hacluster_backend::bindings::with_files::export_backend_with_files!(
    Adversary with_types_in hacluster_backend::bindings::with_files
);

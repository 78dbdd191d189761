//! The libvirt backend against libvirt's own `test:///default` driver: the real plugin, the
//! real host (the `virt` bindings over libvirt's C library), libvirt's in-memory driver in
//! place of a hypervisor. That driver keeps its objects only inside one process, so these
//! tests drive the library in-process (as the CLI does) and read libvirt back through the same
//! connection. Both seed topologies: seed 000 (3 masters, 3 workers, 1 LB, NAT network) and
//! seed 002 (5 hosts, 2 LBs with a VIP, data disks in a data pool, an existing bridge).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hacluster::config::Options;
use hacluster::plugin::hypervisor::Hypervisor;
use hacluster::plugin::hypervisor::policy::{HostGrant, Policy};
use hacluster::plugin::{Limits, PluginHost, Silent};
use hacluster::session::{self, BackendSel};

use crate::support::{Scratch, libvirt_plugin, needs, plugin, shared_cache, test_driver_config};

const TEST_URI: &str = "test:///default";

/// What libvirt holds, read through the host's own connection.
#[derive(Debug, PartialEq)]
struct Inventory {
    /// name → XML
    domains: BTreeMap<String, String>,
    /// name → uuid
    uuids: BTreeMap<String, String>,
    networks: BTreeMap<String, String>,
    pools: BTreeMap<String, String>,
    /// (pool, volume) → capacity in bytes
    volumes: BTreeMap<(String, String), u64>,
}

async fn inventory() -> Inventory {
    inventory_at(TEST_URI).await
}

/// Everything on `uri`, read through the host's own connection (the host lets anyone read).
async fn inventory_at(uri: &str) -> Inventory {
    let hv = reader(uri);
    let mut inv = Inventory {
        domains: BTreeMap::new(),
        uuids: BTreeMap::new(),
        networks: BTreeMap::new(),
        pools: BTreeMap::new(),
        volumes: BTreeMap::new(),
    };
    for d in hv.list_domains(uri).await.unwrap() {
        inv.uuids.insert(d.name.clone(), d.uuid);
        inv.domains.insert(d.name, d.xml);
    }
    for n in hv.list_networks(uri).await.unwrap() {
        inv.networks.insert(n.name, n.xml);
    }
    for p in hv.list_pools(uri).await.unwrap() {
        for v in hv.list_volumes(uri, p.name.clone()).await.unwrap() {
            inv.volumes.insert((p.name.clone(), v.name), v.capacity_bytes);
        }
        inv.pools.insert(p.name, p.xml);
    }
    inv
}

/// A host handle that may only read (lists) on `uri`.
fn reader(uri: &str) -> Hypervisor {
    Hypervisor::new(Policy::read_only(vec![uri.to_string()]))
}

impl Inventory {
    /// Only what belongs to `cluster` (the test driver has its own `test` domain, `default`
    /// network and `default-pool`, which must survive).
    fn of(&self, cluster: &str) -> Inventory {
        // Domains are `<cluster>-…`, pools and networks `<cluster>.<host>.…`.
        let mine = |n: &String| n.starts_with(&format!("{cluster}-"));
        let ours = |n: &String| n.starts_with(&format!("{cluster}."));
        Inventory {
            domains: self.domains.iter().filter(|(k, _)| mine(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            uuids: self.uuids.iter().filter(|(k, _)| mine(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            networks: self.networks.iter().filter(|(k, _)| ours(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            pools: self.pools.iter().filter(|(k, _)| ours(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            volumes: self.volumes.iter().filter(|((p, _), _)| ours(p)).map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.networks.is_empty() && self.pools.is_empty() && self.volumes.is_empty()
    }
}

fn xml_doc(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).unwrap()
}

/// A domain's shape: (vcpus, memory KiB, [(pool, volume, target dev, device)], [(type, source, mac)]).
#[allow(clippy::type_complexity)]
fn domain_shape(xml: &str) -> (u32, u64, Vec<(String, String, String, String)>, Vec<(String, String, String)>) {
    let doc = xml_doc(xml);
    let text = |tag: &str| doc.descendants().find(|n| n.has_tag_name(tag)).and_then(|n| n.text()).unwrap().to_string();
    let vcpu: u32 = text("vcpu").parse().unwrap();
    let mem = doc.descendants().find(|n| n.has_tag_name("memory")).unwrap();
    assert_eq!(mem.attribute("unit"), Some("KiB"));
    let memory: u64 = mem.text().unwrap().parse().unwrap();
    let disks = doc
        .descendants()
        .filter(|n| n.has_tag_name("disk"))
        .map(|d| {
            let src = d.children().find(|c| c.has_tag_name("source")).unwrap();
            let tgt = d.children().find(|c| c.has_tag_name("target")).unwrap();
            (
                src.attribute("pool").unwrap_or("").to_string(),
                src.attribute("volume").unwrap_or("").to_string(),
                tgt.attribute("dev").unwrap().to_string(),
                d.attribute("device").unwrap().to_string(),
            )
        })
        .collect();
    let nics = doc
        .descendants()
        .filter(|n| n.has_tag_name("interface"))
        .map(|i| {
            let src = i.children().find(|c| c.has_tag_name("source")).unwrap();
            let mac = i.children().find(|c| c.has_tag_name("mac")).unwrap();
            (
                i.attribute("type").unwrap().to_string(),
                src.attribute("network").or(src.attribute("bridge")).unwrap().to_string(),
                mac.attribute("address").unwrap().to_string(),
            )
        })
        .collect();
    (vcpu, memory, disks, nics)
}

struct Env {
    host: PluginHost,
    rt: tokio::runtime::Runtime,
}

fn env() -> Env {
    let host = PluginHost::new(Arc::new(Silent), Limits::default(), Some(shared_cache())).unwrap();
    Env { host, rt: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap() }
}

impl Env {
    fn provision(&self, cfg: &Path, state: &Path) -> hacluster::infra::Infrastructure {
        self.rt.block_on(async {
            let opened = session::open(&self.host, cfg, &BackendSel::Path(libvirt_plugin()), true, &Options::default())
                .await
                .unwrap();
            assert!(opened.checked.is_valid(), "{:?}", opened.checked.diagnostics);
            let plugin = opened.plugin.as_ref().unwrap();
            session::provision(plugin, opened.spec().unwrap(), state).await.unwrap().infrastructure
        })
    }

    fn plan(&self, cfg: &Path, state: &Path) -> Vec<hacluster::infra::Change> {
        self.rt.block_on(async {
            let opened = session::open(&self.host, cfg, &BackendSel::Path(libvirt_plugin()), true, &Options::default())
                .await
                .unwrap();
            session::plan_changes(opened.plugin.as_ref().unwrap(), opened.spec().unwrap(), state).await.unwrap()
        })
    }

    fn destroy(&self, cfg: &Path, state: &Path) {
        self.rt.block_on(async {
            let opened = session::open(&self.host, cfg, &BackendSel::Path(libvirt_plugin()), true, &Options::default())
                .await
                .unwrap();
            session::destroy(opened.plugin.as_ref().unwrap(), opened.spec().unwrap(), state).await.unwrap();
        })
    }

    fn inventory(&self, cluster: &str) -> Inventory {
        self.rt.block_on(inventory()).of(cluster)
    }
}

const GIB: u64 = 1 << 30;

#[test]
fn libvirt_test_driver_seed_000_multi_master_nat() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = test_driver_config(&s, "multi-master.yaml");
    let env = env();
    let c = "local-k8s-cluster";
    assert!(env.inventory(c).is_empty(), "left over from an earlier run: {:?}", env.inventory(c));

    let plan = env.plan(&cfg, &s.state());
    assert!(plan.iter().all(|p| p.action == hacluster::infra::ChangeAction::Create), "{plan:?}");
    // 1 pool, 1 network, 1 base image, and per node disk + seed + domain.
    assert_eq!(plan.len(), 3 + 7 * 3, "{plan:?}");

    let infra = env.provision(&cfg, &s.state());
    let inv = env.inventory(c);

    // One main pool in its own directory under the host's mainResourcePoolPath.
    assert_eq!(inv.pools.keys().collect::<Vec<_>>(), [&format!("{c}.localhost.main")]);
    let pool = xml_doc(&inv.pools[&format!("{c}.localhost.main")]);
    let path = pool.descendants().find(|n| n.has_tag_name("path")).unwrap().text().unwrap();
    assert_eq!(path, format!("/var/lib/libvirt/images/{c}.localhost.main"));

    // The NAT network of seed 000 with the gateway at .1.
    assert_eq!(inv.networks.keys().collect::<Vec<_>>(), [&format!("{c}.localhost.net")]);
    let net = xml_doc(&inv.networks[&format!("{c}.localhost.net")]);
    let fwd = net.descendants().find(|n| n.has_tag_name("forward")).unwrap();
    assert_eq!(fwd.attribute("mode"), Some("nat"));
    let ip = net.descendants().find(|n| n.has_tag_name("ip")).unwrap();
    assert_eq!((ip.attribute("address"), ip.attribute("netmask")), (Some("192.168.113.1"), Some("255.255.255.0")));
    let bridge = net.descendants().find(|n| n.has_tag_name("bridge")).unwrap().attribute("name").unwrap();
    assert!(bridge.starts_with("hac") && bridge.len() <= 15, "{bridge}");

    // Volumes: the base image, a 32 GiB disk (Kubitect's default size) and a seed per node.
    let names = ["lb-1", "master-1", "master-2", "master-3", "worker-1", "worker-2", "worker-3"];
    let pool_name = format!("{c}.localhost.main");
    let mut want: Vec<String> = vec![format!("{c}-base.qcow2")];
    for n in names {
        want.push(format!("{c}-{n}.qcow2"));
        want.push(format!("{c}-{n}-seed.iso"));
    }
    want.sort();
    let got: Vec<String> = inv.volumes.keys().map(|(_, v)| v.clone()).collect();
    assert_eq!(got, want);
    for n in names {
        assert_eq!(inv.volumes[&(pool_name.clone(), format!("{c}-{n}.qcow2"))], 32 * GIB, "{n}");
    }

    // Domains: default 2 vCPU / 4 GiB, the OS disk, the seed as CD-ROM, one NIC on the network.
    assert_eq!(inv.domains.len(), 7);
    for n in names {
        let name = format!("{c}-{n}");
        let (vcpu, mem, disks, nics) = domain_shape(&inv.domains[&name]);
        assert_eq!((vcpu, mem), (2, 4 * 1024 * 1024), "{name}");
        assert_eq!(
            disks,
            vec![
                (pool_name.clone(), format!("{name}.qcow2"), "vda".into(), "disk".into()),
                (pool_name.clone(), format!("{name}-seed.iso"), "sda".into(), "cdrom".into()),
            ],
            "{name}"
        );
        assert_eq!(nics.len(), 1);
        assert_eq!(nics[0].0, "network");
        assert_eq!(nics[0].1, format!("{c}.localhost.net"));
        assert!(inv.domains[&name].contains(&format!(">{c}</hac:cluster>")), "cluster mark in metadata");
    }
    // Distinct MACs.
    let macs: std::collections::BTreeSet<String> =
        inv.domains.values().map(|x| domain_shape(x).3[0].2.clone()).collect();
    assert_eq!(macs.len(), 7);

    // The machines and the endpoint: seed 000 has one LB and no VIP, so the LB's address.
    assert_eq!(infra.endpoint.host, "192.168.113.100");
    assert_eq!(infra.endpoint.port, 6443);
    assert_eq!(infra.machines.len(), 7);
    let m1 = infra.machines.iter().find(|m| m.name == format!("{c}-master-1")).unwrap();
    assert_eq!(m1.ssh.address, "192.168.113.10");
    assert_eq!(m1.ssh.user, "k8s");
    assert_eq!(m1.provider_id, inv.uuids[&m1.name]);
    assert!(m1.ssh.host_public_key.starts_with("ssh-ed25519 "));

    // The seeds the host made, kept (0600) in the state directory.
    let seeds = s.state().join(c).join("seeds");
    let lb_user = std::fs::read_to_string(seeds.join(format!("{c}-lb-1-seed/user-data"))).unwrap();
    assert!(lb_user.starts_with("#cloud-config\n"));
    let lb: serde_json::Value = serde_json::from_str(&lb_user["#cloud-config\n".len()..]).unwrap();
    let haproxy =
        lb["write_files"].as_array().unwrap().iter().find(|f| f["path"] == "/etc/haproxy/haproxy.cfg").unwrap();
    let haproxy = haproxy["content"].as_str().unwrap();
    for ip in ["192.168.113.10", "192.168.113.11", "192.168.113.12"] {
        assert!(haproxy.contains(&format!("{ip}:6443")), "{haproxy}");
    }
    assert!(haproxy.contains("option redispatch") && haproxy.contains("option httpchk GET /readyz"));
    assert!(!lb_user.contains("keepalived.conf"), "no VIP, no keepalived");
    let ssh_keys = &lb["ssh_keys"];
    assert!(ssh_keys["ed25519_public"].as_str().unwrap().starts_with("ssh-ed25519 "), "{ssh_keys}");
    let netcfg = std::fs::read_to_string(seeds.join(format!("{c}-master-2-seed/network-config"))).unwrap();
    let netcfg: serde_json::Value = serde_json::from_str(&netcfg).unwrap();
    assert_eq!(netcfg["ethernets"]["eth0"]["addresses"][0], "192.168.113.11/24");
    assert_eq!(netcfg["ethernets"]["eth0"]["match"]["macaddress"].as_str().unwrap(), {
        let (_, _, _, nics) = domain_shape(&inv.domains[&format!("{c}-master-2")]);
        nics[0].2.clone()
    });
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(seeds.join(format!("{c}-lb-1-seed/user-data"))).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "seed files hold private host keys");

    // Re-apply: nothing new, the same domains (same UUIDs).
    let plan = env.plan(&cfg, &s.state());
    assert!(plan.iter().all(|p| p.action == hacluster::infra::ChangeAction::Keep), "{plan:?}");
    let again = env.provision(&cfg, &s.state());
    assert_eq!(env.inventory(c), inv);
    assert_eq!(again.machines, infra.machines);

    // Destroy: nothing of the cluster is left; the driver's own objects are.
    env.destroy(&cfg, &s.state());
    assert!(env.inventory(c).is_empty(), "{:?}", env.inventory(c));
    let all = env.rt.block_on(inventory());
    assert!(
        all.domains.contains_key("test")
            && all.networks.contains_key("default")
            && all.pools.contains_key("default-pool")
    );
    assert!(!seeds.exists(), "seed copies go with the state");
}

#[test]
fn libvirt_test_driver_seed_002_five_hosts_vip_data_disks_and_lost_state() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = test_driver_config(&s, "ha.yaml");
    let env = env();
    let c = "kubitect-ha";
    assert!(env.inventory(c).is_empty());
    let infra = env.provision(&cfg, &s.state());
    let inv = env.inventory(c);

    // Bridge mode: the existing br0 is used, no network is created.
    assert!(inv.networks.is_empty(), "{:?}", inv.networks.keys());
    // A main pool on each of the 5 hosts, a data pool on hosts 3-5 (where the workers are).
    let mut want_pools: Vec<String> = (1..=5).map(|h| format!("{c}.host{h}.main")).collect();
    want_pools.extend((3..=5).map(|h| format!("{c}.host{h}.data-pool")));
    want_pools.sort();
    assert_eq!(inv.pools.keys().cloned().collect::<Vec<_>>(), want_pools);
    let dp = xml_doc(&inv.pools[&format!("{c}.host4.data-pool")]);
    assert_eq!(
        dp.descendants().find(|n| n.has_tag_name("path")).unwrap().text().unwrap(),
        format!("/mnt/libvirt/pools/{c}.host4.data-pool")
    );

    // Placement as the config says: LBs on hosts 1-2, masters and workers on 3-5.
    let placed = |node: &str, host: &str| {
        let (_, _, disks, nics) = domain_shape(&inv.domains[&format!("{c}-{node}")]);
        assert_eq!(disks[0].0, format!("{c}.{host}.main"), "{node} on {host}");
        assert_eq!((nics[0].0.as_str(), nics[0].1.as_str()), ("bridge", "br0"));
        disks
    };
    placed("lb-1", "host1");
    placed("lb-2", "host2");
    for (i, h) in [(1, 3), (2, 4), (3, 5)] {
        placed(&format!("master-{i}"), &format!("host{h}"));
        let disks = placed(&format!("worker-{i}"), &format!("host{h}"));
        // The rook data disk: 512 GiB in the host's data pool, attached as the second disk.
        assert_eq!(
            disks[1],
            (
                format!("{c}.host{h}.data-pool"),
                format!("{c}-worker-{i}-rook.qcow2"),
                "vdb".to_string(),
                "disk".to_string()
            )
        );
        assert_eq!(inv.volumes[&(format!("{c}.host{h}.data-pool"), format!("{c}-worker-{i}-rook.qcow2"))], 512 * GIB);
    }
    assert_eq!(inv.domains.len(), 8);

    // The VIP is the endpoint; keepalived on both LBs with their priorities and unicast peers.
    assert_eq!(infra.endpoint.host, "10.10.13.200");
    let seeds = s.state().join(c).join("seeds");
    for (lb, me, peer) in [("lb-1", "10.10.13.201", "10.10.13.202"), ("lb-2", "10.10.13.202", "10.10.13.201")] {
        let ud = std::fs::read_to_string(seeds.join(format!("{c}-{lb}-seed/user-data"))).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&ud["#cloud-config\n".len()..]).unwrap();
        let ka = doc["write_files"].as_array().unwrap().iter().find(|f| f["path"] == "/etc/keepalived/keepalived.conf");
        let ka = ka.unwrap()["content"].as_str().unwrap();
        assert!(ka.contains("virtual_ipaddress {\n        10.10.13.200/20 dev eth0"), "{ka}");
        assert!(ka.contains(&format!("unicast_src_ip {me}")) && ka.contains(&format!("        {peer}\n")), "{ka}");
        assert!(ka.contains("virtual_router_id "), "{ka}");
    }

    // Re-apply creates nothing.
    let plan = env.plan(&cfg, &s.state());
    assert!(plan.iter().all(|p| p.action == hacluster::infra::ChangeAction::Keep), "{plan:?}");
    env.provision(&cfg, &s.state());
    assert_eq!(env.inventory(c), inv);

    // State lost: destroy finds everything by name.
    std::fs::remove_dir_all(s.state()).unwrap();
    env.destroy(&cfg, &s.state());
    assert!(env.inventory(c).is_empty(), "{:?}", env.inventory(c));
}

#[test]
fn libvirt_failed_apply_is_resumed_by_the_next_and_removed_by_destroy() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = test_driver_config(&s, "multi-master.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("local-k8s-cluster", "failing-k8s");
    std::fs::write(&cfg, &text).unwrap();
    let c = "failing-k8s";
    // The 13th change fails: pool, network, base image, then master-1 and master-2 (disk,
    // seed, define, start each), then master-3's disk; its seed fails.
    let broken = Env { host: env().host.with_faults("hv-fail-at=13"), ..env() };
    let err = broken.rt.block_on(async {
        let opened = session::open(&broken.host, &cfg, &BackendSel::Path(libvirt_plugin()), true, &Options::default())
            .await
            .unwrap();
        session::provision(opened.plugin.as_ref().unwrap(), opened.spec().unwrap(), &s.state()).await.err().unwrap()
    });
    assert!(err.to_string().contains("injected fault"), "{err}");
    let partial = broken.inventory(c);
    assert_eq!(partial.domains.keys().cloned().collect::<Vec<_>>(), [format!("{c}-master-1"), format!("{c}-master-2")]);
    assert!(partial.volumes.contains_key(&(format!("{c}.localhost.main"), format!("{c}-master-3.qcow2"))));
    assert!(!partial.volumes.contains_key(&(format!("{c}.localhost.main"), format!("{c}-master-3-seed.iso"))));
    // The state recorded every create before the failure.
    let state = hacluster::state::StateDir::new(&s.state(), c).read().unwrap().expect("state saved");
    let blob: serde_json::Value = serde_json::from_slice(&state.backend_state.expect("backend state saved")).unwrap();
    assert_eq!(blob["created"].as_array().unwrap().len(), 10, "{blob}");

    // The next run creates only what is missing; what exists keeps its identity.
    let env = env();
    env.provision(&cfg, &s.state());
    let done = env.inventory(c);
    assert_eq!(done.domains.len(), 7);
    for (name, uuid) in &partial.uuids {
        assert_eq!(done.uuids.get(name), Some(uuid), "{name} kept");
    }

    // A failure in the middle of destroy leaves the rest for the next destroy.
    let broken = Env { host: env.host.with_faults("hv-fail-at=3"), ..env };
    let err = broken.rt.block_on(async {
        let opened = session::open(&broken.host, &cfg, &BackendSel::Path(libvirt_plugin()), true, &Options::default())
            .await
            .unwrap();
        session::destroy(opened.plugin.as_ref().unwrap(), opened.spec().unwrap(), &s.state()).await.err().unwrap()
    });
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert!(!broken.inventory(c).is_empty());
    assert!(s.state().join(c).join("state.json").exists(), "state stays until destroy succeeds");
    let env = self::env();
    env.destroy(&cfg, &s.state());
    assert!(env.inventory(c).is_empty(), "{:?}", env.inventory(c));
}

#[test]
fn libvirt_grown_config_creates_only_the_new_nodes_shrunk_removes_the_dropped_and_destroy_finds_them() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = test_driver_config(&s, "multi-master.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("local-k8s-cluster", "resume-k8s");
    let small = text
        .replace("        - id: 2\n          ip: 192.168.113.21\n        - id: 3\n          ip: 192.168.113.22\n", "");
    assert_ne!(small, text);
    std::fs::write(&cfg, &small).unwrap();
    let env = env();
    let c = "resume-k8s";
    env.provision(&cfg, &s.state());
    let first = env.inventory(c);
    assert_eq!(first.domains.len(), 5);
    std::fs::write(&cfg, &text).unwrap();
    let plan = env.plan(&cfg, &s.state());
    let created: Vec<&str> =
        plan.iter().filter(|p| p.action == hacluster::infra::ChangeAction::Create).map(|p| p.name.as_str()).collect();
    assert_eq!(
        created,
        [
            "resume-k8s-worker-2.qcow2",
            "resume-k8s-worker-2-seed.iso",
            "resume-k8s-worker-2",
            "resume-k8s-worker-3.qcow2",
            "resume-k8s-worker-3-seed.iso",
            "resume-k8s-worker-3"
        ]
    );
    env.provision(&cfg, &s.state());
    let second = env.inventory(c);
    assert_eq!(second.domains.len(), 7);
    for (name, uuid) in &first.uuids {
        assert_eq!(second.uuids.get(name), Some(uuid), "{name} kept");
    }
    // The config shrinks again (a cluster that never ran: nothing to take out of Kubernetes
    // first): the machines of the nodes it no longer names go, their disks and seeds with them,
    // and every other machine stays as it was.
    std::fs::write(&cfg, &small).unwrap();
    let deleted: Vec<String> = env
        .plan(&cfg, &s.state())
        .into_iter()
        .filter(|p| p.action == hacluster::infra::ChangeAction::Delete)
        .map(|p| p.name)
        .collect();
    assert_eq!(deleted, ["resume-k8s-worker-2", "resume-k8s-worker-3"]);
    env.provision(&cfg, &s.state());
    let third = env.inventory(c);
    assert_eq!(third.domains.len(), 5, "{:?}", third.domains.keys());
    assert_eq!(third.uuids, first.uuids, "the machines that stay are the same ones");
    let left: Vec<&String> =
        third.volumes.keys().map(|(_, v)| v).filter(|v| v.contains("worker-2") || v.contains("worker-3")).collect();
    assert!(left.is_empty(), "volumes of removed nodes left: {left:?}");
    assert_eq!(third.volumes.len(), first.volumes.len(), "{:?}", third.volumes.keys());
    // Destroy still finds what a config that lost a node names no more (by the cluster mark in
    // the domains' metadata; their volumes are in the cluster's own pool).
    std::fs::write(&cfg, &text).unwrap();
    env.provision(&cfg, &s.state());
    std::fs::write(&cfg, &small).unwrap();
    env.destroy(&cfg, &s.state());
    assert!(env.inventory(c).is_empty(), "{:?}", env.inventory(c));
}

#[test]
fn hypervisor_import_refuses_what_the_config_does_not_name() {
    needs!(Plugins);
    // The adversary plugin asks libvirt for the config's URI (allowed), for qemu:///system
    // (not in the config), to define a domain whose disk is /etc/shadow, and to import
    // /etc/shadow as an image.
    let s = Scratch::new();
    let cfg = s.write(
        "hv.yaml",
        &format!(
            "hosts:\n  - name: lab\n    connection: {{type: local, uri: \"{TEST_URI}\"}}\ncluster:\n  name: adv\n  network: {{mode: isolated, cidr: 10.231.90.0/24}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    master: {{instances: [{{id: 1, ip: 10.231.90.10}}]}}\nkubernetes: {{version: v1.35.0}}\nbackends:\n  adversary:\n    mode: hypervisor\n    uris: [\"{TEST_URI}\", \"qemu:///system\"]\n"
        ),
    );
    let wasm = plugin("hacluster_plugin_adversary.wasm");
    let r = s.run(&["provision", "-c", cfg.to_str().unwrap(), "--plugin", wasm.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    // The test driver starts with one domain, `test`.
    assert!(r.stderr.contains("test:///default: 1 domains"), "{}", r.stderr);
    assert!(
        r.stderr.contains("qemu:///system: denied: `qemu:///system` is not one of the hypervisor hosts in the config (test:///default)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("define: denied: domain XML refused: <disk>: type='file' is not allowed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("import: denied: image `/etc/shadow` is not one the config names"), "{}", r.stderr);
}

/// `plan` with the backend inferred (Kubitect's default, libvirt) still shows the topology when
/// the hypervisor cannot be reached, and says why the changes are missing; naming the backend
/// makes the same failure an error. (`test:///` on a missing file fails at once, no daemon.)
#[test]
fn plan_without_a_reachable_hypervisor_shows_the_topology_unless_the_backend_was_named() {
    needs!(Plugins);
    let s = Scratch::new();
    let cfg = s.write(
        "unreachable.yaml",
        "hosts:\n  - name: lab\n    connection: {type: local, uri: \"test:///nonexistent/hacluster-missing.xml\"}\ncluster:\n  name: far\n  network: {mode: isolated, cidr: 10.231.92.0/24}\n  nodeTemplate: {ssh: {privateKeyPath: OPKEY}}\n  nodes:\n    master: {instances: [{id: 1, ip: 10.231.92.10}]}\nkubernetes: {version: v1.35.0}\n",
    );
    let cfg = cfg.to_str().unwrap();

    let r = s.run(&["plan", "-c", cfg]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("far-master-1"), "the topology is shown: {}", r.stdout);
    assert!(r.stdout.contains("Infrastructure changes: not shown, the backend could not look"), "{}", r.stdout);
    assert!(r.stdout.contains("hacluster-missing.xml"), "the reason names the URI: {}", r.stdout);

    let j = s.run(&["plan", "-c", cfg, "-o", "json"]);
    assert_eq!(j.code, 0, "{}", j.stderr);
    let v = j.json();
    assert!(v["changes"].is_null(), "{v}");
    assert!(v["changesUnavailable"].as_str().unwrap().contains("hacluster-missing.xml"), "{v}");
    assert!(v["plan"].is_object(), "{v}");

    let r = s.run(&["plan", "-c", cfg, "--backend", "libvirt"]);
    assert_eq!(r.code, 3, "an explicit backend that cannot look is an error: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("hacluster-missing.xml"), "{}", r.stderr);
}

/// A hypervisor host that never answers: an address in a network namespace of the test's own,
/// whose replies go nowhere (a blackhole route back), so a connection to it waits as one to an
/// unreachable remote host would. Removed when dropped.
struct SilentHost {
    ns: String,
    veth: String,
}

impl SilentHost {
    const ADDRESS: &'static str = "10.234.13.2";

    fn new() -> SilentHost {
        let id = std::process::id() % 100_000;
        let (ns, veth) = (format!("hac-silent-{id}"), format!("hsil{id}"));
        let script = format!(
            "set -e\nip netns add {ns}\nip link add {veth} type veth peer name {veth}p\nip link set {veth}p netns {ns}\nip addr add 10.234.13.1/30 dev {veth}\nip link set {veth} up\nip -n {ns} addr add {}/30 dev {veth}p\nip -n {ns} link set {veth}p up\nip -n {ns} route add blackhole 10.234.13.1/32\n",
            Self::ADDRESS
        );
        let host = SilentHost { ns, veth };
        crate::support::netns::must(&script);
        host
    }
}

impl Drop for SilentHost {
    fn drop(&mut self) {
        crate::support::netns::sh(&format!(
            "ip link del {} 2>/dev/null; ip netns del {} 2>/dev/null",
            self.veth, self.ns
        ));
    }
}

/// A remote libvirt host that cannot be reached: `plan`, `up` and `down` each say which host
/// they are connecting to, give up after the connect limit with an error naming the host and
/// the limit, and end (before the fix, `plan` printed nothing for minutes).
#[test]
fn an_unreachable_hypervisor_fails_naming_the_host_and_the_limit() {
    needs!(Plugins, Root);
    let _host = SilentHost::new();
    let s = Scratch::new();
    let cfg = s.write(
        "silent.yaml",
        &format!(
            "hosts:\n  - name: faraway\n    connection: {{type: remote, user: k8s, ip: {}, ssh: {{keyfile: OPKEY}}}}\ncluster:\n  name: silent\n  network: {{mode: isolated, cidr: 10.231.94.0/24}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    master: {{instances: [{{id: 1, ip: 10.231.94.10}}]}}\nkubernetes: {{version: v1.35.0}}\n",
            SilentHost::ADDRESS
        ),
    );
    let cfg = cfg.to_str().unwrap();
    for command in ["plan", "up", "down"] {
        let t = std::time::Instant::now();
        let r = s.run(&[command, "-c", cfg, "--backend", "libvirt", "--hypervisor-connect-secs", "3", "-o", "json"]);
        let took = t.elapsed();
        assert_eq!(r.code, 3, "{command}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(
                "\"step\":\"connect to libvirt on host `faraway` (qemu+ssh://k8s@10.234.13.2:22/system?keyfile="
            ),
            "{command}: the host being contacted is said: {}",
            r.stderr
        );
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(
            all.contains("libvirt on host `faraway`") && all.contains("did not answer within 3 s"),
            "{command}: {all}"
        );
        // Not a timing assertion on the limit: a hang would take minutes (ssh's own timeout).
        assert!(took < std::time::Duration::from_secs(60), "{command} took {took:?}");
    }
}

/// Serves `files` (path → bytes) over HTTP on a free 127.0.0.1 port until dropped; counts the
/// requests it answered.
struct FileServer {
    port: u16,
    served: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FileServer {
    fn start(files: Vec<(&'static str, Vec<u8>)>) -> FileServer {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (n, halt) = (served.clone(), stop.clone());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let _ = match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => c
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .and_then(|_| c.write_all(body)),
                    None => c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                };
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
        FileServer { port, served, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The host downloads a configured base image, checks its SHA-256 while it streams, and keeps
/// nothing that does not match; over plain http it wants the hash in the config, since a
/// SHA256SUMS on the same unauthenticated channel proves nothing. (libvirt's test driver as the
/// pool; the download and the check are the host's own.)
#[test]
fn base_image_from_a_url_is_checked_against_its_sha256() {
    use sha2::Digest;
    let image: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let sha: String = sha2::Sha256::digest(&image).iter().map(|b| format!("{b:02x}")).collect();
    let server = FileServer::start(vec![("/images/base.qcow2", image.clone())]);
    let url = server.url("/images/base.qcow2");
    // Cluster `imgurl` on host `lab`: its base image goes into its own main pool.
    let hv = Hypervisor::new(Policy {
        cluster: "imgurl".into(),
        uris: vec![TEST_URI.into()],
        images: vec![url.clone()],
        hosts: vec![HostGrant {
            name: "lab".into(),
            uri: TEST_URI.into(),
            pools: vec![("main".into(), "/var/lib/libvirt/images".into())],
        }],
        ..Policy::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let pool = "imgurl.lab.main".to_string();
    let vol = "imgurl-base.qcow2".to_string();
    rt.block_on(hv.create_pool(
        TEST_URI,
        format!(
            "<pool type='dir'><name>{pool}</name><target><path>/var/lib/libvirt/images/{pool}</path></target></pool>"
        ),
    ))
    .unwrap();
    let leftovers = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with(&format!("hacluster-image-{}-", std::process::id()))
                    && !e.file_type().unwrap().is_symlink()
            })
            .count()
    };
    // Links where an earlier host put its downloads (`hacluster-image-<pid>-<n>`, names anyone
    // could guess), to a file the download must never write through.
    let canary = std::env::temp_dir().join(format!("hacluster-canary-{}", std::process::id()));
    std::fs::write(&canary, "canary").unwrap();
    let links: Vec<PathBuf> = (0..200)
        .map(|n| std::env::temp_dir().join(format!("hacluster-image-{}-{n}", std::process::id())))
        .filter(|l| std::os::unix::fs::symlink(&canary, l).is_ok())
        .collect();
    let volumes = |rt: &tokio::runtime::Runtime| -> Vec<String> {
        rt.block_on(hv.list_volumes(TEST_URI, pool.clone())).unwrap().into_iter().map(|v| v.name).collect()
    };

    // A wrong hash: refused after the download, which is discarded; no volume.
    let wrong = "0".repeat(64);
    let e = rt
        .block_on(hv.import_image(TEST_URI, pool.clone(), vol.clone(), url.clone(), Some(wrong.clone())))
        .unwrap_err();
    assert!(e.to_string().contains(&format!("has SHA-256 {sha}, expected {wrong}; the download was discarded")), "{e}");
    assert_eq!(leftovers(), 0);
    assert!(!volumes(&rt).contains(&vol));

    // No hash over plain http: refused before anything is fetched.
    let before = server.served.load(std::sync::atomic::Ordering::Relaxed);
    let e = rt.block_on(hv.import_image(TEST_URI, pool.clone(), vol.clone(), url.clone(), None)).unwrap_err();
    assert!(e.to_string().contains("plain http") && e.to_string().contains("image.sha256"), "{e}");
    assert_eq!(server.served.load(std::sync::atomic::Ordering::Relaxed), before, "nothing fetched");

    // Over the size limit: refused while streaming, nothing kept.
    let small = Hypervisor { max_image_bytes: Some(100_000), ..Hypervisor::new((*hv.policy).clone()) };
    let e = rt
        .block_on(small.import_image(TEST_URI, pool.clone(), vol.clone(), url.clone(), Some(sha.clone())))
        .unwrap_err();
    assert!(e.to_string().contains("over the limit of 100000 bytes"), "{e}");
    assert!(!volumes(&rt).contains(&vol));

    // The right hash: the volume exists, and the temporary download is gone; nothing went
    // through the links.
    rt.block_on(hv.import_image(TEST_URI, pool.clone(), vol.clone(), url.clone(), Some(sha.clone()))).unwrap();
    assert!(volumes(&rt).contains(&vol));
    assert_eq!(leftovers(), 0);
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary", "the download wrote through a link");
    for l in &links {
        let _ = std::fs::remove_file(l);
    }
    let _ = std::fs::remove_file(&canary);
    rt.block_on(hv.delete_volume(TEST_URI, pool.clone(), vol.clone())).unwrap();

    // A URL the config does not name is refused, whatever its hash.
    let other = server.url("/images/other.qcow2");
    let e = rt.block_on(hv.import_image(TEST_URI, pool.clone(), vol, other, Some(sha))).unwrap_err();
    assert!(e.to_string().contains("is not one the config names"), "{e}");
    rt.block_on(hv.delete_pool(TEST_URI, pool)).unwrap();
}

/// The libvirt plugin's own checks of its section, reported with the line like the core's.
#[test]
fn libvirt_backend_checks_its_section() {
    needs!(Plugins);
    let s = Scratch::new();
    let text = "hosts:\n  - name: lab\n    connection: {type: local}\ncluster:\n  name: lv\n  network: {mode: isolated, cidr: 10.231.93.0/24}\n  nodeTemplate: {ssh: {privateKeyPath: OPKEY}}\n  nodes:\n    master: {instances: [{id: 1, ip: 10.231.93.10}]}\nkubernetes: {version: v1.35.0}\nbackends:\n  libvirt:\n    domainType: xen\n    image:\n      url: http://mirror.example/debian.qcow2\n      sha256: nothex\n";
    let cfg = s.write("lv.yaml", text);
    let r = s.run(&["validate", "-c", cfg.to_str().unwrap(), "--backend", "libvirt", "-o", "json"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    let errs = v["errors"].as_array().unwrap();
    let find = |path: &str| errs.iter().find(|e| e["path"] == path).unwrap_or_else(|| panic!("{path} in {errs:?}"));
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;
    let dt = find("backends.libvirt.domainType");
    assert!(dt["message"].as_str().unwrap().contains("`xen`"), "{dt}");
    assert_eq!(dt["line"], line_of("domainType"));
    assert_eq!(find("backends.libvirt.image.sha256")["line"], line_of("sha256"));

    // Plain http with no hash: the hash is required (a SHA256SUMS beside it proves nothing).
    let text = text.replace("      sha256: nothex\n", "").replace("xen", "qemu");
    let cfg = s.write("lv2.yaml", &text);
    let r = s.run(&["validate", "-c", cfg.to_str().unwrap(), "--backend", "libvirt", "-o", "json"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    let url =
        v["errors"].as_array().unwrap().iter().find(|e| e["path"] == "backends.libvirt.image.url").unwrap().clone();
    assert!(url["message"].as_str().unwrap().contains("plain http"), "{url}");
    assert!(url["help"].as_str().unwrap().contains("image.sha256"), "{url}");
    assert_eq!(url["line"], text.lines().position(|l| l.contains("url:")).unwrap() as u64 + 1);
}

/// Two hypervisor hosts on two libvirt URIs (two separate instances of libvirt's test driver):
/// every node is created on its own host's URI and nowhere else, each host gets its own pool,
/// and `down` empties both.
#[test]
fn nodes_land_on_their_own_hosts_uri_and_down_empties_every_host() {
    needs!(Plugins);
    let s = Scratch::new();
    let second = s.path("hv-b.xml");
    std::fs::write(&second, "<node>\n</node>\n").unwrap();
    let uri_b = format!("test://{}", second.display());
    let cfg = s.write(
        "two.yaml",
        &format!(
            "hosts:\n  - name: a\n    default: true\n    connection: {{type: local, uri: \"{TEST_URI}\"}}\n  - name: b\n    connection: {{type: local, uri: \"{uri_b}\"}}\ncluster:\n  name: two\n  network: {{mode: bridge, cidr: 10.231.94.0/24, bridge: br0}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    loadBalancer:\n      instances: [{{id: 1, host: b, ip: 10.231.94.5}}]\n    master:\n      instances: [{{id: 1, host: a, ip: 10.231.94.11}}, {{id: 2, host: b, ip: 10.231.94.12}}, {{id: 3, host: a, ip: 10.231.94.13}}]\nkubernetes: {{version: v1.35.0}}\nbackends:\n  libvirt:\n    domainType: test\n"
        ),
    );
    let env = env();
    let state = s.state();
    env.provision(&cfg, &state);
    let on = |uri: &str| -> (Vec<String>, Vec<String>) {
        let hv = reader(uri);
        env.rt.block_on(async {
            let mut doms: Vec<String> = hv
                .list_domains(uri)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.name)
                .filter(|n| n.starts_with("two-"))
                .collect();
            let mut pools: Vec<String> = hv
                .list_pools(uri)
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.name)
                .filter(|n| n.starts_with("two."))
                .collect();
            doms.sort();
            pools.sort();
            (doms, pools)
        })
    };
    let (doms_a, pools_a) = on(TEST_URI);
    let (doms_b, pools_b) = on(&uri_b);
    assert_eq!(doms_a, ["two-master-1", "two-master-3"]);
    assert_eq!(doms_b, ["two-lb-1", "two-master-2"]);
    assert_eq!(pools_a, ["two.a.main"]);
    assert_eq!(pools_b, ["two.b.main"]);
    env.destroy(&cfg, &state);
    assert_eq!(on(TEST_URI), (vec![], vec![]));
    assert_eq!(on(&uri_b), (vec![], vec![]));
}

/// DHCP nodes get fixed leases from the top quarter of the network, never an address a static
/// node, the VIP or the gateway has there; more DHCP nodes than the range holds is a config error.
#[test]
fn dhcp_leases_avoid_static_addresses_and_the_vip() {
    needs!(Plugins);
    let s = Scratch::new();
    let text = |cidr: &str, net: &str| {
        format!(
            "hosts:\n  - name: lab\n    connection: {{type: local, uri: \"{TEST_URI}\"}}\ncluster:\n  name: dh\n  network: {{mode: isolated, cidr: {cidr}}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    loadBalancer:\n      vip: {net}.200\n      instances: [{{id: 1, ip: {net}.201}}, {{id: 2, ip: {net}.202}}]\n    master:\n      instances: [{{id: 1}}, {{id: 2}}, {{id: 3}}]\n    worker:\n      instances: [{{id: 1}}]\nkubernetes: {{version: v1.35.0}}\nbackends:\n  libvirt: {{domainType: test}}\n"
        )
    };
    // The gateway (the host's address) in the top quarter too, on the very slot dh-master-1's
    // name hashes to: no lease may take it.
    let cfg = s.write(
        "dh.yaml",
        &text("10.231.95.0/24", "10.231.95")
            .replace("cidr: 10.231.95.0/24}", "cidr: 10.231.95.0/24, gateway: 10.231.95.222}"),
    );
    let env = env();
    env.provision(&cfg, &s.state());
    let inv = env.inventory("dh");
    let xml = inv.networks.get("dh.lab.net").expect("the cluster's network").clone();
    let doc = xml_doc(&xml);
    let leases: Vec<u32> = doc
        .descendants()
        .filter(|n| n.has_tag_name("host"))
        .map(|h| h.attribute("ip").unwrap().rsplit('.').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(leases.len(), 4, "{xml}");
    assert!(xml.contains("address='10.231.95.222'") && xml.contains("name='dh-master-1'"), "{xml}");
    assert!(leases.iter().all(|l| (192..=254).contains(l) && ![200, 201, 202, 222].contains(l)), "{leases:?}");
    let mut distinct = leases.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{leases:?}");
    env.destroy(&cfg, &s.state());

    // A /26 keeps 15 addresses for DHCP; VIP and balancers take 3 of them here: 4 fit, 13 would not.
    let small = s.write(
        "dh-small.yaml",
        &text("10.231.96.0/26", "10.231.96").replace(".200", ".50").replace(".201", ".51").replace(".202", ".52"),
    );
    let r = s.run(&["validate", "-c", small.to_str().unwrap(), "--backend", "libvirt", "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let many = s.write(
        "dh-many.yaml",
        &std::fs::read_to_string(&small).unwrap().replace(
            "      instances: [{id: 1}]\n",
            &format!(
                "      instances: [{}]\n",
                (1..=13).map(|i| format!("{{id: {i}}}")).collect::<Vec<_>>().join(", ")
            ),
        ),
    );
    let r = s.run(&["validate", "-c", many.to_str().unwrap(), "--backend", "libvirt", "-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let e = r.json()["errors"].as_array().unwrap().iter().find(|e| e["path"] == "cluster.network.cidr").cloned();
    assert!(
        e.as_ref().is_some_and(|e| e["message"].as_str().unwrap().contains("16 nodes without `ip`")),
        "{}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// A hostile plugin against the hypervisor capability. Each test runs on a private instance of
// libvirt's test driver (`test:///<file>`: its own objects, seeded from the file, kept for the
// life of this process), so an inventory before and after sees only what the test did.

/// The driver's own kind of objects (as `test:///default` has them: a running `test` domain,
/// the `default` NAT network, `default-pool` with a volume), plus `extra` (more `<domain>`s).
fn private_driver(s: &Scratch, name: &str, extra: &str) -> String {
    let path = s.path(&format!("{name}.xml"));
    let node = format!(
        "<node>
  <domain type='test'><name>test</name><memory>1048576</memory><os><type>hvm</type></os></domain>
  <network><name>default</name><bridge name='virbr0'/><forward/><ip address='192.168.122.1' netmask='255.255.255.0'/></network>
  <pool type='dir'><name>default-pool</name><target><path>/default-pool</path></target>
    <volume><name>victim.img</name><capacity>1000</capacity></volume>
  </pool>
{extra}</node>
"
    );
    std::fs::write(&path, node).unwrap();
    format!("test://{}", path.display())
}

/// A libvirt-plugin cluster `name` on `uri` (host `host`, an isolated network).
fn lv_config(s: &Scratch, name: &str, host: &str, uri: &str, net: u8) -> PathBuf {
    s.write(
        &format!("{name}.yaml"),
        &format!(
            "hosts:\n  - name: {host}\n    connection: {{type: local, uri: \"{uri}\"}}\ncluster:\n  name: {name}\n  network: {{mode: isolated, cidr: 10.231.{net}.0/24}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    master: {{instances: [{{id: 1, ip: 10.231.{net}.10}}]}}\n    worker: {{instances: [{{id: 1, ip: 10.231.{net}.20}}]}}\nkubernetes: {{version: v1.35.0}}\nbackends:\n  libvirt: {{domainType: test}}\n"
        ),
    )
}

/// Cluster `adv` on `uri` run by the adversary plugin, which makes `calls` (a JSON list) one by
/// one; the outcome of each, by label.
fn hv_abuse(env: &Env, s: &Scratch, uri: &str, calls: &serde_json::Value) -> BTreeMap<String, String> {
    let cfg = s.write(
        "adv.yaml",
        &format!(
            "hosts:\n  - name: lab\n    connection: {{type: local, uri: \"{uri}\"}}\n    dataResourcePools: [{{name: data, path: /srv/pools}}]\ncluster:\n  name: adv\n  network: {{mode: isolated, cidr: 10.231.97.0/24}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    master: {{instances: [{{id: 1, ip: 10.231.97.10}}, {{id: 2, ip: 10.231.97.11}}, {{id: 3, ip: 10.231.97.12}}]}}\nkubernetes: {{version: v1.35.0}}\nbackends:\n  adversary:\n    mode: hv-abuse\n    calls: {calls}\n"
        ),
    );
    let adversary = plugin("hacluster_plugin_adversary.wasm");
    env.rt.block_on(async {
        let opened =
            session::open(&env.host, &cfg, &BackendSel::Path(adversary), true, &Options::default()).await.unwrap();
        assert!(opened.checked.is_valid(), "{:?}", opened.checked.diagnostics);
        session::provision(opened.plugin.as_ref().unwrap(), opened.spec().unwrap(), &s.state()).await.unwrap();
    });
    let state = hacluster::state::StateDir::new(&s.state(), "adv").read().unwrap().expect("state saved");
    let outcomes: Vec<serde_json::Value> = serde_json::from_slice(&state.backend_state.unwrap()).unwrap();
    outcomes
        .into_iter()
        .map(|o| (o["label"].as_str().unwrap().to_string(), o["outcome"].as_str().unwrap().to_string()))
        .collect()
}

/// libvirt's names for the bridge of a network (as the plugin derives them: FNV-1a).
fn bridge_of(network: &str) -> String {
    let h = network.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("hac{:08x}", h as u32)
}

/// A domain of `adv` as the plugin would render it, with `extra` inside `<devices>`.
fn adv_domain(name: &str, os_extra: &str, extra: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><metadata><hac:cluster xmlns:hac='https://hacluster.dev/xmlns/1'>adv</hac:cluster></metadata><memory unit='GiB'>1</memory><vcpu>1</vcpu><os><type arch='i686'>hvm</type>{os_extra}</os><devices>{extra}</devices></domain>"
    )
}

/// Every hypervisor call a hostile plugin could abuse, each refused by the host, and nothing
/// outside the cluster's own objects changed: not the driver's own `test` domain, `default`
/// network or `default-pool`, not another cluster's (`vic`) domains, pools, volumes and network,
/// not a pre-existing domain that merely has a node's name (`adv-master-1`, unmarked).
#[test]
fn hostile_hypervisor_calls_are_denied_and_change_nothing_outside_the_cluster() {
    needs!(Plugins);
    let s = Scratch::new();
    let unmarked =
        "<domain type='test'><name>adv-master-1</name><memory>1048576</memory><os><type>hvm</type></os></domain>\n";
    let uri = private_driver(&s, "hv-abuse", unmarked);
    let env = env();
    let vic = lv_config(&s, "vic", "lab", &uri, 98);
    let vic_state = s.path("vic-state");
    env.provision(&vic, &vic_state);
    let before = env.rt.block_on(inventory_at(&uri));
    let vic_uuid = before.uuids["vic-master-1"].clone();
    assert!(before.pools.contains_key("vic.lab.main") && before.networks.contains_key("vic.lab.net"), "{before:?}");

    let own_pool = "<pool type='dir'><name>adv.lab.main</name><target><path>/var/lib/libvirt/images/adv.lab.main</path></target></pool>";
    let good_volume = "<volume><name>adv-master-2.qcow2</name><capacity unit='GiB'>1</capacity><allocation>0</allocation><target><format type='qcow2'/></target></volume>";
    let net = |inner: &str| {
        format!(
            "<network><name>adv.lab.net</name>{inner}<bridge name='{}' stp='on' delay='0'/><ip address='10.231.97.1' netmask='255.255.255.0'></ip></network>",
            bridge_of("adv.lab.net")
        )
    };
    let dev = |extra: &str| adv_domain("adv-master-2", "", extra);
    let seed = |name: &str, files: serde_json::Value| serde_json::json!({"call": "create-seed-volume", "pool": "adv.lab.main", "name": name, "files": files});
    let meta = serde_json::json!([["meta-data", "instance-id: x\n"]]);
    // (label, call, phrase the refusal names); `ok` rows show the policy is not deny-all.
    let table: Vec<(&str, serde_json::Value, &str)> = vec![
        ("own pool", serde_json::json!({"call": "create-pool", "xml": own_pool}), "ok"),
        (
            "pool at /etc",
            serde_json::json!({"call": "create-pool", "xml": "<pool type='dir'><name>adv.lab.data</name><target><path>/etc</path></target></pool>"}),
            "/etc",
        ),
        (
            "pool of another cluster",
            serde_json::json!({"call": "create-pool", "xml": "<pool type='dir'><name>vic.lab.data</name><target><path>/srv/pools/vic.lab.data</path></target></pool>"}),
            "vic.lab.data",
        ),
        (
            "disk pool on a device",
            serde_json::json!({"call": "create-pool", "xml": "<pool type='disk'><name>adv.lab.data</name><source><device path='/dev/sda'/></source><target><path>/srv/pools/adv.lab.data</path></target></pool>"}),
            "type='disk'",
        ),
        (
            "volume backed by /dev/sda",
            serde_json::json!({"call": "create-volume", "pool": "adv.lab.main", "xml": "<volume><name>adv-master-2.qcow2</name><capacity unit='GiB'>1</capacity><target><format type='qcow2'/></target><backingStore><path>/dev/sda</path><format type='qcow2'/></backingStore></volume>"}),
            "/dev/sda",
        ),
        (
            "raw backing store",
            serde_json::json!({"call": "create-volume", "pool": "adv.lab.main", "xml": "<volume><name>adv-master-2.qcow2</name><capacity unit='GiB'>1</capacity><target><format type='qcow2'/></target><backingStore><path>/var/lib/libvirt/images/adv.lab.main/adv-base.qcow2</path><format type='raw'/></backingStore></volume>"}),
            "type='raw'",
        ),
        (
            "volume at a host path",
            serde_json::json!({"call": "create-volume", "pool": "adv.lab.main", "xml": "<volume><name>adv-master-2.qcow2</name><capacity unit='GiB'>1</capacity><target><path>/etc/passwd</path><format type='qcow2'/></target></volume>"}),
            "<path>",
        ),
        (
            "volume in the driver's pool",
            serde_json::json!({"call": "create-volume", "pool": "default-pool", "xml": good_volume}),
            "default-pool",
        ),
        (
            "volume in another cluster's pool",
            serde_json::json!({"call": "create-volume", "pool": "vic.lab.main", "xml": good_volume}),
            "vic.lab.main",
        ),
        (
            "volume not named after a node",
            serde_json::json!({"call": "create-volume", "pool": "adv.lab.main", "xml": good_volume.replace("adv-master-2.qcow2", "loot.qcow2")}),
            "loot.qcow2",
        ),
        (
            "forward on an isolated network",
            serde_json::json!({"call": "create-network", "xml": net("<forward mode='nat'/>")}),
            "<forward>",
        ),
        (
            "network onto a host bridge",
            serde_json::json!({"call": "create-network", "xml": "<network><name>adv.lab.net</name><forward mode='bridge'/><bridge name='virbr0'/></network>"}),
            "<forward>",
        ),
        (
            "network with a DNS forwarder",
            serde_json::json!({"call": "create-network", "xml": net("<dns><forwarder addr='203.0.113.1'/></dns>")}),
            "<dns>",
        ),
        (
            "network named default",
            serde_json::json!({"call": "create-network", "xml": net("").replace("adv.lab.net", "default")}),
            "`default`",
        ),
        (
            "emulator",
            serde_json::json!({"call": "define-domain", "xml": dev("<emulator>/tmp/evil</emulator>")}),
            "<emulator>",
        ),
        (
            "no confinement",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-2", "", "").replace("</devices>", "</devices><seclabel type='none'/>")}),
            "<seclabel>",
        ),
        (
            "static DAC label",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-2", "", "").replace("</devices>", "</devices><seclabel type='static' model='dac'><label>0:0</label></seclabel>")}),
            "<seclabel>",
        ),
        (
            "serial to a file",
            serde_json::json!({"call": "define-domain", "xml": dev("<serial type='file'><source path='/etc/cron.d/x'/></serial>")}),
            "type='file'",
        ),
        (
            "serial with a log file",
            serde_json::json!({"call": "define-domain", "xml": dev("<serial type='pty'><log file='/etc/x'/></serial>")}),
            "<log>",
        ),
        (
            "console on a host socket",
            serde_json::json!({"call": "define-domain", "xml": dev("<console type='unix'><source mode='bind' path='/tmp/sock'/></console>")}),
            "type='unix'",
        ),
        (
            "parallel port to a file",
            serde_json::json!({"call": "define-domain", "xml": dev("<parallel type='file'><source path='/tmp/x'/></parallel>")}),
            "<parallel>",
        ),
        (
            "host input device",
            serde_json::json!({"call": "define-domain", "xml": dev("<input type='evdev'><source dev='/dev/input/event0'/></input>")}),
            "<input>",
        ),
        (
            "TPM passthrough",
            serde_json::json!({"call": "define-domain", "xml": dev("<tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>")}),
            "<tpm>",
        ),
        (
            "ACPI table from a host file",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-2", "<acpi><table type='slic'>/etc/shadow</table></acpi>", "")}),
            "<acpi>",
        ),
        (
            "kernel the config does not name",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-2", "<kernel>/etc/shadow</kernel>", "")}),
            "/etc/shadow",
        ),
        (
            "disk of another cluster",
            serde_json::json!({"call": "define-domain", "xml": dev("<disk type='volume' device='disk'><source pool='vic.lab.main' volume='vic-master-1.qcow2'/><target dev='vda' bus='virtio'/></disk>")}),
            "vic.lab.main",
        ),
        (
            "nested backing file",
            serde_json::json!({"call": "define-domain", "xml": dev("<disk type='volume' device='disk'><source pool='adv.lab.main' volume='adv-master-2.qcow2'/><backingStore type='file'><format type='raw'/><source file='/etc/shadow'/></backingStore><target dev='vda' bus='virtio'/></disk>")}),
            "<backingStore>",
        ),
        (
            "NIC on the default network",
            serde_json::json!({"call": "define-domain", "xml": dev("<interface type='network'><source network='default'/></interface>")}),
            "default",
        ),
        (
            "NIC on a host bridge",
            serde_json::json!({"call": "define-domain", "xml": dev("<interface type='bridge'><source bridge='virbr0'/></interface>")}),
            "virbr0",
        ),
        (
            "RNG from a host device",
            serde_json::json!({"call": "define-domain", "xml": dev("<rng model='virtio'><backend model='random'>/dev/sda</backend></rng>")}),
            "/dev/sda",
        ),
        (
            "VNC on every address",
            serde_json::json!({"call": "define-domain", "xml": dev("<graphics type='vnc' listen='0.0.0.0'/>")}),
            "<graphics>",
        ),
        (
            "hostdev",
            serde_json::json!({"call": "define-domain", "xml": dev("<hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/><product id='0x2'/></source></hostdev>")}),
            "<hostdev>",
        ),
        (
            "QEMU override",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-2", "", "").replace("</domain>", "<qemu:override xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:device alias='x'/></qemu:override></domain>")}),
            "override",
        ),
        (
            "QEMU arguments",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-2", "", "").replace("</domain>", "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:arg value='-x'/></qemu:commandline></domain>")}),
            "commandline",
        ),
        (
            "a victim's UUID",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-2", "", "").replace("<metadata>", &format!("<uuid>{vic_uuid}</uuid><metadata>"))}),
            "<uuid>",
        ),
        (
            "a victim's name",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("vic-master-1", "", "")}),
            "vic-master-1",
        ),
        (
            "the driver's domain",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("test", "", "")}),
            "`test`",
        ),
        (
            "no ownership mark",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-3", "", "").replace("<metadata><hac:cluster xmlns:hac='https://hacluster.dev/xmlns/1'>adv</hac:cluster></metadata>", "")}),
            "mark",
        ),
        (
            "over an unmarked domain",
            serde_json::json!({"call": "define-domain", "xml": adv_domain("adv-master-1", "", "")}),
            "mark",
        ),
        ("start the driver's domain", serde_json::json!({"call": "start-domain", "name": "test"}), "`test`"),
        ("start an unmarked domain", serde_json::json!({"call": "start-domain", "name": "adv-master-1"}), "mark"),
        ("delete the driver's domain", serde_json::json!({"call": "delete-domain", "name": "test"}), "`test`"),
        (
            "delete a victim's domain",
            serde_json::json!({"call": "delete-domain", "name": "vic-master-1"}),
            "vic-master-1",
        ),
        ("delete an unmarked domain", serde_json::json!({"call": "delete-domain", "name": "adv-master-1"}), "mark"),
        ("delete the default network", serde_json::json!({"call": "delete-network", "name": "default"}), "`default`"),
        (
            "delete a victim's network",
            serde_json::json!({"call": "delete-network", "name": "vic.lab.net"}),
            "vic.lab.net",
        ),
        (
            "delete the driver's pool",
            serde_json::json!({"call": "delete-pool", "name": "default-pool"}),
            "default-pool",
        ),
        ("delete a victim's pool", serde_json::json!({"call": "delete-pool", "name": "vic.lab.main"}), "vic.lab.main"),
        (
            "delete a volume of the driver",
            serde_json::json!({"call": "delete-volume", "pool": "default-pool", "name": "victim.img"}),
            "default-pool",
        ),
        (
            "delete a victim's volume",
            serde_json::json!({"call": "delete-volume", "pool": "vic.lab.main", "name": "vic-master-1.qcow2"}),
            "vic.lab.main",
        ),
        ("seed of another cluster's node", seed("vic-master-1-seed.iso", meta.clone()), "vic-master-1-seed.iso"),
        (
            "seed with an option for a name",
            seed("adv-master-2-seed.iso", serde_json::json!([["-path-list", "x"], ["list", "/etc/shadow\n"]])),
            "-path-list",
        ),
        (
            "seed file outside the seed",
            seed("adv-master-2-seed.iso", serde_json::json!([["../../kubeconfig", "x"]])),
            "../../kubeconfig",
        ),
        (
            "import a host file",
            serde_json::json!({"call": "import-image", "pool": "adv.lab.main", "name": "adv-base.qcow2", "source": "/etc/shadow"}),
            "/etc/shadow",
        ),
    ];
    let calls: Vec<serde_json::Value> = table
        .iter()
        .map(|(label, call, _)| {
            let mut c = call.clone();
            c["label"] = serde_json::json!(label);
            c["uri"] = serde_json::json!(uri);
            c
        })
        .collect();
    let outcomes = hv_abuse(&env, &s, &uri, &serde_json::Value::Array(calls));
    let mut wrong = Vec::new();
    for (label, _, phrase) in &table {
        let got = &outcomes[*label];
        let fine = if *phrase == "ok" { got == "ok" } else { got.starts_with("denied: ") && got.contains(phrase) };
        if !fine {
            wrong.push(format!(
                "{label}: want {}, got {got}",
                if *phrase == "ok" { "ok".into() } else { format!("denied naming {phrase:?}") }
            ));
        }
    }
    assert!(wrong.is_empty(), "{} of {} calls:\n{}", wrong.len(), table.len(), wrong.join("\n"));

    // Nothing changed but the cluster's own pool.
    let mut after = env.rt.block_on(inventory_at(&uri));
    assert!(after.pools.remove("adv.lab.main").is_some(), "the allowed call happened");
    assert_eq!(after, before);
}

/// A seed volume's name becomes a directory under `<state>/<cluster>/seeds`; names that would
/// climb out of it (`...iso` is `..` once `.iso` is cut) are refused, and nothing lands in the
/// state directory (a planted kubeconfig could carry an `exec` credential plugin).
#[test]
fn seed_volume_names_cannot_climb_out_of_the_seed_directory() {
    needs!(Plugins);
    let s = Scratch::new();
    let uri = private_driver(&s, "seed-names", "");
    let env = env();
    let files = serde_json::json!([["kubeconfig", "planted"], ["known_hosts", "planted"]]);
    let calls: Vec<serde_json::Value> = ["...iso", "..iso", ".iso", "adv-master-1-seed/../../x.iso"]
        .iter()
        .map(|n| {
            serde_json::json!({"label": n, "call": "create-seed-volume", "uri": uri, "pool": "adv.lab.main", "name": n, "files": files})
        })
        .collect();
    let outcomes = hv_abuse(&env, &s, &uri, &serde_json::Value::Array(calls));
    let dir = s.state().join("adv");
    assert!(!dir.join("kubeconfig").exists(), "a kubeconfig was planted in the state directory: {outcomes:?}");
    for (name, got) in &outcomes {
        assert!(got.starts_with("denied: ") && got.contains(name.as_str()), "{name}: {got}");
    }
    let known = std::fs::read_to_string(dir.join("known_hosts")).unwrap_or_default();
    assert!(!known.contains("planted"), "{known}");
    let mut files_written = Vec::new();
    let mut stack = vec![s.state()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files_written.push(e.path().strip_prefix(s.state()).unwrap().display().to_string());
            }
        }
    }
    files_written.sort();
    assert_eq!(files_written, ["adv/known_hosts", "adv/state.json", "adv/state.lock"], "only the host's own files");
}

/// Names cannot collide across clusters: cluster `a` on host `b-lab` and cluster `a-b` on host
/// `lab` both had the pool `a-b-lab-main` and the network `a-b-lab-net` under the old names,
/// so `down` of one destroyed the other's disks. Now each `down` removes only its own.
#[test]
fn down_of_one_cluster_leaves_a_cluster_with_a_similar_name_intact() {
    needs!(Plugins);
    let s = Scratch::new();
    let uri = private_driver(&s, "collide", "");
    let env = env();
    let ab = lv_config(&s, "a-b", "lab", &uri, 101);
    env.provision(&ab, &s.path("ab-state"));
    let with_ab = env.rt.block_on(inventory_at(&uri));
    let a = lv_config(&s, "a", "b-lab", &uri, 102);
    env.provision(&a, &s.path("a-state"));
    assert!(env.rt.block_on(inventory_at(&uri)).domains.contains_key("a-master-1"));
    env.destroy(&a, &s.path("a-state"));
    assert_eq!(env.rt.block_on(inventory_at(&uri)), with_ab, "down of `a` took something of `a-b`");
    env.destroy(&ab, &s.path("ab-state"));
}

/// A domain that merely has a node's name (made by someone else before the cluster existed) is
/// not the cluster's: `up` refuses to adopt it, `down` leaves it; both go by the mark.
#[test]
fn an_unmarked_domain_that_has_a_nodes_name_is_neither_adopted_nor_removed() {
    needs!(Plugins);
    let s = Scratch::new();
    let squatter =
        "<domain type='test'><name>pre-master-1</name><memory>1048576</memory><os><type>hvm</type></os></domain>\n";
    let uri = private_driver(&s, "squatter", squatter);
    let env = env();
    let cfg = lv_config(&s, "pre", "lab", &uri, 103);
    let before = env.rt.block_on(inventory_at(&uri));
    let err = env.rt.block_on(async {
        let opened = session::open(&env.host, &cfg, &BackendSel::Path(libvirt_plugin()), true, &Options::default())
            .await
            .unwrap();
        session::provision(opened.plugin.as_ref().unwrap(), opened.spec().unwrap(), &s.state()).await.err().unwrap()
    });
    assert!(err.to_string().contains("pre-master-1 exists on lab but is not this cluster's"), "{err}");
    assert_eq!(env.rt.block_on(inventory_at(&uri)).domains, before.domains, "the squatter is untouched");
    env.destroy(&cfg, &s.state());
    assert_eq!(env.rt.block_on(inventory_at(&uri)), before);
}

/// The XML the plugin renders for real VMs (`domainType: qemu` with direct kernel boot, a
/// console and an RNG, as the real-VM test runs it; `kvm` with the host's CPU; NAT, isolated
/// and bridge networks; DHCP reservations; data disks) passes the host's policy: libvirt's test
/// driver takes domains of any type, so the whole of `up`'s infrastructure and `down` run here
/// on those renderings.
#[test]
fn the_plugins_renderings_for_real_vms_pass_the_hosts_policy() {
    needs!(Plugins);
    let s = Scratch::new();
    let uri = private_driver(&s, "real-renderings", "");
    for f in ["debian.qcow2", "vmlinuz", "initrd.img"] {
        std::fs::write(s.path(f), b"not really an image").unwrap();
    }
    let env = env();
    let before = env.rt.block_on(inventory_at(&uri));
    let image = |extra: &str| format!("    image: {{path: {}{extra}}}\n", s.path("debian.qcow2").display());
    let direct_boot =
        image(&format!(", kernel: {}, initrd: {}", s.path("vmlinuz").display(), s.path("initrd.img").display()));
    let cases = [
        ("rq", "qemu", "isolated, cidr: 10.231.104.0/24", direct_boot.as_str()),
        ("rk", "kvm", "nat, cidr: 10.231.105.0/24", &image("")),
        ("rb", "kvm", "bridge, cidr: 10.231.106.0/24, bridge: br0", &image("")),
    ];
    for (name, domain_type, network, image) in cases {
        let net = &network[network.find("10.").unwrap()..network.find(".0/24").unwrap()];
        let cfg = s.write(
            &format!("{name}.yaml"),
            &format!(
                "hosts:\n  - name: lab\n    connection: {{type: local, uri: \"{uri}\"}}\n    dataResourcePools: [{{name: data, path: /srv/pools/}}]\ncluster:\n  name: {name}\n  network: {{mode: {network}}}\n  nodeTemplate: {{ssh: {{privateKeyPath: OPKEY}}}}\n  nodes:\n    loadBalancer:\n      instances: [{{id: 1, ip: {net}.100, cpu: 1, ram: 1}}]\n    master:\n      instances: [{{id: 1, cpu: 1, ram: 1}}]\n    worker:\n      instances: [{{id: 1, ip: {net}.20, dataDisks: [{{name: rook, pool: data, size: 8}}, {{name: scratch, size: 2}}]}}]\nkubernetes: {{version: v1.35.0}}\nbackends:\n  libvirt:\n    domainType: {domain_type}\n{image}"
            ),
        );
        let state = s.path(&format!("{name}-state"));
        let infra = env.provision(&cfg, &state);
        assert_eq!(infra.machines.len(), 3, "{name}");
        let inv = env.rt.block_on(inventory_at(&uri));
        let dom = &inv.domains[&format!("{name}-worker-1")];
        assert!(dom.contains(&format!("type='{domain_type}'")), "{dom}");
        assert!(inv.volumes.contains_key(&(format!("{name}.lab.data"), format!("{name}-worker-1-rook.qcow2"))));
        if domain_type == "qemu" {
            assert!(dom.contains("<kernel>") && dom.contains("<rng model='virtio'>"), "{dom}");
        }
        env.destroy(&cfg, &state);
        assert_eq!(env.rt.block_on(inventory_at(&uri)), before, "{name}: down leaves what was there before");
    }
}

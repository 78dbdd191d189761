//! libvirt XML for networks, pools, volumes and domains. Every value is escaped.

use crate::config::Config;
use crate::names;
use crate::{Cluster, Network, NetworkMode, NodeSpec};

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;").replace('"', "&quot;")
}

/// `a.b.c.d/len` → (address, netmask, prefix).
pub fn cidr_parts(cidr: &str) -> (String, String, u32) {
    let (addr, len) = cidr.split_once('/').unwrap_or((cidr, "24"));
    let len: u32 = len.parse().unwrap_or(24);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let m = mask.to_be_bytes();
    (addr.to_string(), format!("{}.{}.{}.{}", m[0], m[1], m[2], m[3]), len)
}

fn ip_u32(s: &str) -> Option<u32> {
    let o: Vec<u8> = s.split('.').map(|x| x.parse().ok()).collect::<Option<Vec<u8>>>()?;
    (o.len() == 4).then(|| u32::from_be_bytes([o[0], o[1], o[2], o[3]]))
}

fn ip_str(v: u32) -> String {
    let b = v.to_be_bytes();
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

/// The mode as the config spells it.
pub fn mode_name(mode: NetworkMode) -> &'static str {
    match mode {
        NetworkMode::Nat => "nat",
        NetworkMode::Route => "route",
        NetworkMode::Bridge => "bridge",
        NetworkMode::Isolated => "isolated",
    }
}

/// Addresses no DHCP reservation may take: every static node address, the VIP and the
/// gateway (the host's own address on the network, which may sit in the top quarter).
pub fn taken_addresses(cluster: &Cluster) -> Vec<u32> {
    let vip = match &cluster.endpoint {
        crate::EndpointKind::Vip(v) => Some(v.address.as_str()),
        _ => None,
    };
    let gateway = cluster.network.as_ref().map(|n| n.gateway.as_str());
    let all: std::collections::BTreeSet<u32> = cluster
        .nodes
        .iter()
        .filter_map(|n| n.address.as_deref())
        .chain(vip)
        .chain(gateway)
        .filter_map(ip_u32)
        .collect();
    all.into_iter().collect()
}

/// The DHCP range of a network: the top quarter, below the broadcast address.
pub fn dhcp_range(net: &Network) -> Option<(u32, u32)> {
    let (base, _, len) = cidr_parts(&net.cidr);
    let b = ip_u32(&base)?;
    let size = 1u64 << (32 - len.min(32));
    let (start, end) = (b as u64 + size - size / 4, (b as u64 + size).checked_sub(2)?);
    // A /30 or smaller has no quarter to spare.
    (start <= end && end <= u32::MAX as u64).then_some((start as u32, end as u32))
}

/// A libvirt network for one host: NAT, routed or isolated (no `<forward>`: no way out). Nodes
/// without a static address get DHCP from the top quarter of the range.
pub fn network(name: &str, net: &Network, nodes: &[&NodeSpec], taken: &[u32]) -> String {
    let forward = match net.mode {
        NetworkMode::Nat => "  <forward mode='nat'/>\n",
        NetworkMode::Route => "  <forward mode='route'/>\n",
        _ => "",
    };
    let (_, mask, _) = cidr_parts(&net.cidr);
    let mut dhcp = String::new();
    if nodes.iter().any(|n| n.address.is_none())
        && let Some((start, end)) = dhcp_range(net)
    {
        dhcp.push_str(&format!("    <dhcp>\n      <range start='{}' end='{}'/>\n", ip_str(start), ip_str(end)));
        for (n, ip) in dhcp_reservations(nodes, start, end, taken) {
            dhcp.push_str(&format!(
                "      <host mac='{}' name='{}' ip='{}'/>\n",
                esc(&mac_of(n)),
                esc(&n.name),
                ip_str(ip)
            ));
        }
        dhcp.push_str("    </dhcp>\n");
    }
    format!(
        "<network>\n  <name>{}</name>\n{forward}  <bridge name='{}' stp='on' delay='0'/>\n  <ip address='{}' netmask='{mask}'>\n{dhcp}  </ip>\n</network>\n",
        esc(name),
        names::bridge(name),
        esc(&net.gateway)
    )
}

/// A fixed lease for each node without a static address (libvirt requires an address in a
/// `<host>` entry): a slot of the DHCP range picked from a hash of the node's name, the next
/// free one on a collision, never an address in `in_use` (static nodes, the VIP). `validate`
/// makes sure the range has room for all of them.
fn dhcp_reservations<'a>(nodes: &[&'a NodeSpec], start: u32, end: u32, in_use: &[u32]) -> Vec<(&'a NodeSpec, u32)> {
    let slots = (end - start + 1) as u64;
    let mut dynamic: Vec<&NodeSpec> = nodes.iter().copied().filter(|n| n.address.is_none()).collect();
    dynamic.sort_by(|a, b| a.name.cmp(&b.name));
    let mut taken: std::collections::BTreeSet<u64> =
        in_use.iter().filter(|a| (start..=end).contains(*a)).map(|a| (a - start) as u64).collect();
    let free = slots as usize - taken.len();
    let mut out = Vec::new();
    for n in dynamic.into_iter().take(free) {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let h = n.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        let mut slot = h % slots;
        while !taken.insert(slot) {
            slot = (slot + 1) % slots;
        }
        out.push((n, start + slot as u32));
    }
    out
}

pub fn pool(name: &str, path: &str) -> String {
    format!(
        "<pool type='dir'>\n  <name>{}</name>\n  <target>\n    <path>{}</path>\n  </target>\n</pool>\n",
        esc(name),
        esc(path)
    )
}

pub fn volume(name: &str, gib: u64, backing: Option<&str>) -> String {
    let backing = backing
        .map(|p| {
            format!("  <backingStore>\n    <path>{}</path>\n    <format type='qcow2'/>\n  </backingStore>\n", esc(p))
        })
        .unwrap_or_default();
    format!(
        "<volume>\n  <name>{}</name>\n  <capacity unit='GiB'>{gib}</capacity>\n  <allocation>0</allocation>\n  <target>\n    <format type='qcow2'/>\n  </target>\n{backing}</volume>\n",
        esc(name)
    )
}

pub fn mac_of(n: &NodeSpec) -> String {
    n.mac.clone().unwrap_or_else(|| names::mac(&n.name))
}

/// A domain: sizes, the OS disk, data disks, the seed as a CD-ROM, one NIC, a serial console.
/// Marked with the cluster in its metadata, so `destroy` recognises its own.
pub fn domain(cfg: &Config, cluster: &Cluster, node: &NodeSpec, host: &str, uses_bridge: bool) -> String {
    let test = cfg.test_driver();
    let main_pool = names::pool(&cfg.cluster, host, "main");
    let arch = if test { "i686" } else { "x86_64" };
    let mut os = format!("    <type arch='{arch}'>hvm</type>\n");
    if !test {
        if let Some(k) = &cfg.image.kernel {
            os.push_str(&format!("    <kernel>{}</kernel>\n", esc(k)));
            if let Some(i) = &cfg.image.initrd {
                os.push_str(&format!("    <initrd>{}</initrd>\n", esc(i)));
            }
            let cmdline =
                cfg.image.cmdline.clone().unwrap_or_else(|| "root=/dev/vda rw console=ttyS0 net.ifnames=0".into());
            os.push_str(&format!("    <cmdline>{}</cmdline>\n", esc(&cmdline)));
        } else {
            os.push_str("    <boot dev='hd'/>\n");
        }
    }
    let cpu = match (cfg.domain_type.as_str(), test) {
        (_, true) => String::new(),
        ("kvm", _) => "  <cpu mode='host-passthrough'/>\n".into(),
        _ => String::new(),
    };
    let mut disks = format!(
        "    <disk type='volume' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source pool='{}' volume='{}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n",
        esc(&main_pool),
        esc(&names::disk(node))
    );
    for (i, d) in node.data_disks.iter().enumerate() {
        let pool = names::pool(&cfg.cluster, host, &d.pool);
        let dev = format!("vd{}", (b'b' + i as u8) as char);
        disks.push_str(&format!(
            "    <disk type='volume' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source pool='{}' volume='{}'/>\n      <target dev='{dev}' bus='virtio'/>\n      <serial>{}</serial>\n    </disk>\n",
            esc(&pool),
            esc(&names::data_disk(node, &d.name)),
            esc(&d.name)
        ));
    }
    disks.push_str(&format!(
        "    <disk type='volume' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      <source pool='{}' volume='{}'/>\n      <target dev='sda' bus='sata'/>\n      <readonly/>\n    </disk>\n",
        esc(&main_pool),
        esc(&names::seed(node))
    ));
    let nic = if uses_bridge {
        format!(
            "    <interface type='bridge'>\n      <source bridge='{}'/>\n",
            esc(cluster.network.as_ref().and_then(|n| n.bridge.as_deref()).unwrap_or("br0"))
        )
    } else {
        format!(
            "    <interface type='network'>\n      <source network='{}'/>\n",
            esc(&names::network(&cfg.cluster, host))
        )
    };
    let nic =
        format!("{nic}      <mac address='{}'/>\n      <model type='virtio'/>\n    </interface>\n", esc(&mac_of(node)));
    let console = if test {
        String::new()
    } else {
        "    <serial type='pty'><target port='0'/></serial>\n    <console type='pty'><target type='serial' port='0'/></console>\n    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\n".into()
    };
    let tcg = if cfg.domain_type == "qemu" {
        // FINDINGS: a bounded translation cache keeps a TCG guest near 0.65 GB of host RAM.
        "  <features>\n    <acpi/>\n    <tcg>\n      <tb-cache unit='MiB'>128</tb-cache>\n    </tcg>\n  </features>\n"
    } else {
        ""
    };
    format!(
        "<domain type='{dt}'>\n  <name>{name}</name>\n  <metadata>\n    <hac:cluster xmlns:hac='https://hacluster.dev/xmlns/1'>{cluster}</hac:cluster>\n  </metadata>\n  <memory unit='GiB'>{ram}</memory>\n  <vcpu>{cpu_n}</vcpu>\n{cpu}  <os>\n{os}  </os>\n{tcg}  <devices>\n{disks}{nic}{console}  </devices>\n</domain>\n",
        dt = esc(&cfg.domain_type),
        name = esc(&node.name),
        cluster = esc(&cfg.cluster),
        ram = node.resources.ram_gib,
        cpu_n = node.resources.cpu,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(cidr: &str) -> Network {
        Network { mode: NetworkMode::Isolated, cidr: cidr.into(), gateway: String::new(), bridge: None }
    }

    #[test]
    fn dhcp_takes_the_top_quarter_below_broadcast_and_nothing_of_tiny_networks() {
        let ip = |s: &str| ip_u32(s).unwrap();
        assert_eq!(dhcp_range(&net("10.1.2.0/24")), Some((ip("10.1.2.192"), ip("10.1.2.254"))));
        assert_eq!(dhcp_range(&net("10.1.2.0/26")), Some((ip("10.1.2.48"), ip("10.1.2.62"))));
        assert_eq!(dhcp_range(&net("10.1.2.0/29")), Some((ip("10.1.2.6"), ip("10.1.2.6"))));
        assert_eq!(dhcp_range(&net("10.1.2.0/30")), None);
        assert_eq!(dhcp_range(&net("10.1.2.0/32")), None);
        // The last network of the address space does not overflow.
        assert_eq!(dhcp_range(&net("255.255.255.0/24")), Some((ip("255.255.255.192"), ip("255.255.255.254"))));
    }
}

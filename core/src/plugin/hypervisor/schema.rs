//! The XML a plugin may hand to libvirt, as allow-lists: for each object kind, the elements,
//! attributes and text that hacluster's own libvirt plugin renders (plugins/libvirt/src/xml.rs)
//! and nothing else. Anything not listed is refused before libvirt sees the document; the
//! values that name things (pools, volumes, networks, paths) are checked against the cluster
//! afterwards, in `policy.rs`.

use roxmltree::{Document, Node, NodeType};

use super::HvError;

pub use hacluster_config::paths::is_plain_path;

/// The namespace of the cluster's ownership mark in a domain's `<metadata>`.
pub const MARK_NS: &str = "https://hacluster.dev/xmlns/1";

/// What an attribute value or an element's text may be.
#[derive(Debug, Clone, Copy)]
pub enum Val {
    OneOf(&'static [&'static str]),
    /// Decimal digits (sizes, counts, ports).
    Uint,
    /// A unicast or locally administered MAC address.
    Mac,
    Ipv4,
    /// A libvirt object name as hacluster makes them: letters, digits, `.`, `_`, `-`.
    Name,
    /// An absolute path of plain characters, without `.` or `..` components.
    Path,
    /// A guest device name: `vda`…`vdz`, `sda`…`sdz`.
    Dev,
    /// Printable text without control characters (a guest kernel command line).
    Text,
}

/// One element: its name (and namespace), attributes, text and children.
#[derive(Debug)]
pub struct Elem {
    pub name: &'static str,
    pub ns: Option<&'static str>,
    pub attrs: &'static [(&'static str, Val)],
    /// Attributes that must be present: where libvirt's default would be something else
    /// (`<disk>` without `type` is a host file, `<forward>` without `mode` is NAT).
    pub required: &'static [&'static str],
    /// `None`: no text (whitespace only).
    pub text: Option<Val>,
    pub children: &'static [Elem],
    /// May appear more than once (disks, NICs, DHCP hosts). Elements that may not are refused
    /// when repeated, so no reader can pick a different one than the check did.
    pub many: bool,
}

const fn el(name: &'static str) -> Elem {
    Elem { name, ns: None, attrs: &[], required: &[], text: None, children: &[], many: false }
}

const fn text(name: &'static str, v: Val) -> Elem {
    Elem { text: Some(v), ..el(name) }
}

const fn with_attrs(name: &'static str, attrs: &'static [(&'static str, Val)]) -> Elem {
    Elem { attrs, ..el(name) }
}

const fn parent(name: &'static str, children: &'static [Elem]) -> Elem {
    Elem { children, ..el(name) }
}

/// `<pool type='dir'>`: a name and the directory it lives in.
pub static POOL: Elem = Elem {
    attrs: &[("type", Val::OneOf(&["dir"]))],
    required: &["type"],
    children: &[text("name", Val::Name), parent("target", &[text("path", Val::Path)])],
    ..el("pool")
};

/// A qcow2 volume, optionally a copy-on-write layer over the base image.
pub static VOLUME: Elem = Elem {
    children: &[
        text("name", Val::Name),
        Elem { attrs: &[("unit", Val::OneOf(&["GiB"]))], ..text("capacity", Val::Uint) },
        text("allocation", Val::Uint),
        parent("target", &[with_attrs("format", &[("type", Val::OneOf(&["qcow2"]))])]),
        parent("backingStore", &[text("path", Val::Path), with_attrs("format", &[("type", Val::OneOf(&["qcow2"]))])]),
    ],
    ..el("volume")
};

/// A NAT, routed or isolated network with a bridge of its own and DHCP reservations.
pub static NETWORK: Elem = Elem {
    children: &[
        text("name", Val::Name),
        Elem { required: &["mode"], ..with_attrs("forward", &[("mode", Val::OneOf(&["nat", "route"]))]) },
        with_attrs("bridge", &[("name", Val::Name), ("stp", Val::OneOf(&["on", "off"])), ("delay", Val::Uint)]),
        Elem {
            attrs: &[("address", Val::Ipv4), ("netmask", Val::Ipv4)],
            children: &[parent(
                "dhcp",
                &[
                    with_attrs("range", &[("start", Val::Ipv4), ("end", Val::Ipv4)]),
                    Elem {
                        many: true,
                        ..with_attrs("host", &[("mac", Val::Mac), ("name", Val::Name), ("ip", Val::Ipv4)])
                    },
                ],
            )],
            ..el("ip")
        },
    ],
    ..el("network")
};

/// A VM: sizes, direct kernel boot or the disk, volumes from pools, NICs on a network or
/// bridge, a pty console and a virtio RNG fed from /dev/urandom, and the cluster's mark.
pub static DOMAIN: Elem = Elem {
    attrs: &[("type", Val::OneOf(&["kvm", "qemu", "test"]))],
    required: &["type"],
    children: &[
        text("name", Val::Name),
        parent("metadata", &[Elem { ns: Some(MARK_NS), ..text("cluster", Val::Name) }]),
        Elem { attrs: &[("unit", Val::OneOf(&["KiB", "MiB", "GiB"]))], ..text("memory", Val::Uint) },
        text("vcpu", Val::Uint),
        with_attrs("cpu", &[("mode", Val::OneOf(&["host-passthrough"]))]),
        parent(
            "os",
            &[
                Elem { attrs: &[("arch", Val::OneOf(&["x86_64", "i686"]))], ..text("type", Val::OneOf(&["hvm"])) },
                text("kernel", Val::Path),
                text("initrd", Val::Path),
                text("cmdline", Val::Text),
                with_attrs("boot", &[("dev", Val::OneOf(&["hd"]))]),
            ],
        ),
        parent(
            "features",
            &[
                el("acpi"),
                parent("tcg", &[Elem { attrs: &[("unit", Val::OneOf(&["MiB"]))], ..text("tb-cache", Val::Uint) }]),
            ],
        ),
        parent(
            "devices",
            &[
                Elem {
                    attrs: &[("type", Val::OneOf(&["volume"])), ("device", Val::OneOf(&["disk", "cdrom"]))],
                    required: &["type", "device"],
                    children: &[
                        with_attrs(
                            "driver",
                            &[("name", Val::OneOf(&["qemu"])), ("type", Val::OneOf(&["qcow2", "raw"]))],
                        ),
                        with_attrs("source", &[("pool", Val::Name), ("volume", Val::Name)]),
                        with_attrs("target", &[("dev", Val::Dev), ("bus", Val::OneOf(&["virtio", "sata"]))]),
                        text("serial", Val::Name),
                        el("readonly"),
                    ],
                    many: true,
                    ..el("disk")
                },
                Elem {
                    attrs: &[("type", Val::OneOf(&["network", "bridge"]))],
                    required: &["type"],
                    children: &[
                        with_attrs("source", &[("network", Val::Name), ("bridge", Val::Name)]),
                        with_attrs("mac", &[("address", Val::Mac)]),
                        with_attrs("model", &[("type", Val::OneOf(&["virtio"]))]),
                    ],
                    many: true,
                    ..el("interface")
                },
                Elem {
                    attrs: &[("type", Val::OneOf(&["pty"]))],
                    required: &["type"],
                    children: &[with_attrs("target", &[("port", Val::Uint)])],
                    ..el("serial")
                },
                Elem {
                    attrs: &[("type", Val::OneOf(&["pty"]))],
                    required: &["type"],
                    children: &[with_attrs("target", &[("type", Val::OneOf(&["serial"])), ("port", Val::Uint)])],
                    ..el("console")
                },
                Elem {
                    attrs: &[("model", Val::OneOf(&["virtio"]))],
                    required: &["model"],
                    children: &[Elem {
                        attrs: &[("model", Val::OneOf(&["random"]))],
                        required: &["model"],
                        ..text("backend", Val::OneOf(&["/dev/urandom"]))
                    }],
                    ..el("rng")
                },
            ],
        ),
    ],
    ..el("domain")
};

/// Parses `xml` and checks it against `spec`; the document, for the checks of its values.
pub fn parse<'a>(xml: &'a str, spec: &Elem) -> Result<Document<'a>, HvError> {
    let kind = spec.name;
    // roxmltree refuses DTDs (so no entity expansion) unless asked.
    let doc = Document::parse(xml).map_err(|e| HvError::Failed(format!("{kind} XML does not parse: {e}")))?;
    let root = doc.root_element();
    if !is(root, spec) {
        return Err(refused(kind, format!("the document is {}, not <{kind}>", show(root))));
    }
    check(root, spec).map_err(|why| refused(kind, why))?;
    Ok(doc)
}

fn refused(kind: &str, why: String) -> HvError {
    HvError::Denied(format!("{kind} XML refused: {why}"))
}

fn is(node: Node, spec: &Elem) -> bool {
    node.tag_name().name() == spec.name && node.tag_name().namespace() == spec.ns
}

/// An element as a message shows it: `<name>`, with its namespace when it has one.
fn show(node: Node) -> String {
    match node.tag_name().namespace() {
        Some(ns) => format!("<{}> (namespace {ns})", node.tag_name().name()),
        None => format!("<{}>", node.tag_name().name()),
    }
}

fn names(list: impl Iterator<Item = &'static str>) -> String {
    let v: Vec<&str> = list.collect();
    if v.is_empty() { "none".into() } else { v.join(", ") }
}

fn check(node: Node, spec: &Elem) -> Result<(), String> {
    let here = show(node);
    for a in node.attributes() {
        let rule = spec.attrs.iter().find(|(n, _)| a.namespace().is_none() && *n == a.name());
        let Some((_, rule)) = rule else {
            return Err(format!(
                "{here} may not have attribute `{}` (allowed: {})",
                a.name(),
                names(spec.attrs.iter().map(|(n, _)| *n))
            ));
        };
        value(rule, a.value())
            .map_err(|allowed| format!("{here}: {}='{}' is not allowed ({allowed})", a.name(), a.value()))?;
    }
    if let Some(missing) = spec.required.iter().find(|r| node.attribute(**r).is_none()) {
        return Err(format!("{here} needs attribute `{missing}`"));
    }
    let text: String = node.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect();
    match spec.text {
        None if !text.trim().is_empty() => return Err(format!("{here} may not hold text (`{}`)", text.trim())),
        None => {}
        Some(rule) => value(&rule, text.trim())
            .map_err(|allowed| format!("{here}: text `{}` is not allowed ({allowed})", text.trim()))?,
    }
    let mut seen: Vec<&str> = Vec::new();
    for child in node.children() {
        match child.node_type() {
            NodeType::Text | NodeType::Comment => continue,
            NodeType::Element => {}
            _ => return Err(format!("{here} holds a processing instruction")),
        }
        let Some(cs) = spec.children.iter().find(|c| is(child, c)) else {
            return Err(format!(
                "{} is not allowed in {here} (allowed: {})",
                show(child),
                names(spec.children.iter().map(|c| c.name))
            ));
        };
        if !cs.many && seen.contains(&cs.name) {
            return Err(format!("{} appears twice in {here}", show(child)));
        }
        seen.push(cs.name);
        check(child, cs)?;
    }
    Ok(())
}

/// Whether `v` passes `rule`; what would, when it does not.
fn value(rule: &Val, v: &str) -> Result<(), String> {
    let ok = match rule {
        Val::OneOf(list) => list.contains(&v),
        Val::Uint => !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()),
        Val::Mac => crate::model::MacAddr::parse(v).is_some_and(|m| !m.is_multicast()),
        Val::Ipv4 => v.parse::<std::net::Ipv4Addr>().is_ok(),
        Val::Name => {
            !v.is_empty()
                && v.len() <= 200
                && !v.starts_with('.')
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        Val::Path => is_plain_path(v),
        Val::Dev => {
            let b = v.as_bytes();
            b.len() == 3 && matches!(&b[..2], b"vd" | b"sd") && b[2].is_ascii_lowercase()
        }
        Val::Text => v.len() <= 4096 && !v.chars().any(char::is_control),
    };
    if ok {
        return Ok(());
    }
    Err(match rule {
        Val::OneOf(list) => format!("allowed: {}", list.join(", ")),
        Val::Uint => "a whole number".into(),
        Val::Mac => "a unicast MAC address".into(),
        Val::Ipv4 => "an IPv4 address".into(),
        Val::Name => "letters, digits, `.`, `_` and `-`".into(),
        Val::Path => "an absolute path of letters, digits, `/`, `.`, `_`, `+` and `-`".into(),
        Val::Dev => "vdX or sdX".into(),
        Val::Text => "printable text up to 4096 bytes".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_elements_attributes_text_and_repeats_are_refused() {
        for (xml, says) in [
            ("<pool type='dir'><name>p</name><source/></pool>", "<source> is not allowed in <pool>"),
            ("<pool type='dir' x='1'><name>p</name></pool>", "may not have attribute `x`"),
            ("<pool type='fs'><name>p</name></pool>", "type='fs' is not allowed (allowed: dir)"),
            ("<pool type='dir'>text<name>p</name></pool>", "may not hold text"),
            ("<pool type='dir'><name>p</name><name>q</name></pool>", "<name> appears twice in <pool>"),
            ("<pool type='dir'><name>../p</name></pool>", "text `../p` is not allowed"),
            ("<pool type='dir'><?pi x?><name>p</name></pool>", "processing instruction"),
            ("<pool><name>p</name></pool>", "<pool> needs attribute `type`"),
            ("<volume/>", "the document is <volume>, not <pool>"),
            ("<pool xmlns='urn:x' type='dir'/>", "not <pool>"),
        ] {
            let e = parse(xml, &POOL).unwrap_err();
            assert!(matches!(&e, HvError::Denied(m) if m.contains(says)), "{xml}: {e}");
        }
        let dtd = "<!DOCTYPE pool [<!ENTITY x 'y'>]><pool type='dir'><name>&x;</name></pool>";
        assert!(matches!(parse(dtd, &POOL), Err(HvError::Failed(_))), "no DTDs, so no entities");
        assert!(
            parse("<pool type='dir'><!-- c --><name>p</name><target><path>/p</path></target></pool>", &POOL).is_ok()
        );
    }

    #[test]
    fn namespaced_elements_and_attributes_are_refused_except_the_mark() {
        let mark =
            format!("<domain type='test'><metadata><c:cluster xmlns:c='{MARK_NS}'>c</c:cluster></metadata></domain>");
        assert!(parse(&mark, &DOMAIN).is_ok());
        let other = "<domain type='test'><metadata><c:cluster xmlns:c='urn:other'>c</c:cluster></metadata></domain>";
        assert!(matches!(parse(other, &DOMAIN), Err(HvError::Denied(m)) if m.contains("namespace urn:other")));
        let attr = "<domain xmlns:q='urn:q' q:type='x' type='test'/>";
        assert!(matches!(parse(attr, &DOMAIN), Err(HvError::Denied(m)) if m.contains("attribute `type`")));
    }
}

//! `backends.<name>` sections of third-party backends: handed to their plugin unchanged, except
//! the one key the host reads itself, `egress` (the origins the plugin may reach).

use super::Ctx;
use super::urls::{http_url, shown};
use crate::config::diagnostic::FieldPath;
use crate::config::raw::RawConfig;

pub fn check(cx: &mut Ctx, raw: &RawConfig) {
    for (name, section) in &raw.backends.other {
        if let Some(list) = section.get("egress") {
            egress(cx, FieldPath::root().key("backends").key(name.clone()).key("egress"), list);
        }
    }
}

/// Every origin must be an http(s) URL by the config's one URL rule: the host turns each into
/// an entry of the plugin's egress allow-list.
fn egress(cx: &mut Ctx, path: FieldPath, list: &serde_json::Value) {
    const HELP: &str = "list the origins the backend needs as `https://host[:port]` (letters, digits and `-._~:/` only, without credentials, query or fragment); its plugin reaches nothing else";
    let Some(items) = list.as_array() else {
        cx.error("egress-list", path, "`egress` is not a list", HELP);
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let why = match item.as_str() {
            Some(url) => match http_url(url) {
                Ok(_) => continue,
                Err(why) => format!("`{}` is not an http(s) URL: {why}", shown(url)),
            },
            None => format!("`{}` is not a URL", shown(&item.to_string())),
        };
        cx.error("egress-url", path.index(i), why, HELP);
    }
}

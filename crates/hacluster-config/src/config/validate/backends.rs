//! `backends.<name>` sections of third-party backends: handed to their plugin unchanged, except
//! the keys the host reads itself: `egress` (the origins the plugin may reach) and
//! `image.url` (the base image the host downloads for a hypervisor backend).

use super::Ctx;
use super::urls::{http_url, shown};
use crate::config::diagnostic::FieldPath;
use crate::config::raw::RawConfig;

pub fn check(cx: &mut Ctx, raw: &RawConfig) {
    for (name, section) in &raw.backends.other {
        let base = FieldPath::root().key("backends").key(name.clone());
        if let Some(list) = section.get("egress") {
            egress(cx, base.key("egress"), list);
        }
        // The host downloads an image URL of any backend's section itself (the hypervisor
        // grant): it is held to the one URL rule like every other URL of the config.
        if let Some(url) = section.get("image").and_then(|i| i.get("url")).and_then(|u| u.as_str())
            && let Err(why) = http_url(url)
        {
            cx.error(
                "image-url",
                base.key("image").key("url"),
                format!("`{}` is not an http(s) URL: {why}", shown(url)),
                "give the image's http(s) URL (letters, digits and `-._~:/` in the path, without credentials, query or fragment), or `image.path`",
            );
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

//! The one rule for URLs in the config (package and registry mirrors, egress origins, the AWS
//! endpoint): what reaches apt's sources list, containerd, a shell or the egress allow-list is
//! parsed by the `url` crate and held to an allow-list, never matched by prefix.

use std::net::Ipv6Addr;

use url::{Host, Url};

/// Why a text is not an http(s) URL hacluster accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("it contains {what} (character {at})")]
    Character { what: String, at: usize },
    #[error("it is not a URL ({0})")]
    Parse(url::ParseError),
    #[error("its scheme is `{0}`; only http:// and https:// are allowed")]
    Scheme(String),
    #[error("it does not start with `{0}://`")]
    Form(String),
    #[error("it carries credentials (`user@`)")]
    Credentials,
    #[error("the host `{0}` is neither a DNS name nor an IP address")]
    Host(String),
    #[error("the address `{0}` is not written as four decimal numbers")]
    Ipv4Form(String),
    #[error("it has a query (`?…`)")]
    Query,
    #[error("it has a fragment (`#…`)")]
    Fragment,
    #[error("plain http goes only to this machine (127.0.0.0/8, ::1 or localhost), and `{0}` is another host")]
    PlainHttpOffHost(String),
}

/// `https://host[:port][/path]` or `http://…`: a DNS name or an IP address as host, no
/// credentials, query or fragment, and nothing but letters, digits and `-.:[]` in the host and
/// port (brackets for IPv6), `-._~:/` in the path. The text is checked as written, before the
/// parser's normalisation (which drops tabs and newlines and percent-encodes spaces) could
/// hide anything. No quote, space, `$`, `;`, `%` or `\` reaches a shell or a sources.list line
/// through a URL.
pub fn http_url(text: &str) -> Result<Url, UrlError> {
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(UrlError::Character { what: describe(c), at: at + 1 });
    }
    let u = Url::parse(text).map_err(UrlError::Parse)?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(u.scheme().into()));
    }
    // The parser reads `http:host` and `http:\\host` as `http://host`; the config may not.
    if !text.get(..u.scheme().len() + 3).is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}://", u.scheme()))) {
        return Err(UrlError::Form(u.scheme().into()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(UrlError::Credentials);
    }
    check_host(text, &u)?;
    if u.query().is_some() {
        return Err(UrlError::Query);
    }
    if u.fragment().is_some() {
        return Err(UrlError::Fragment);
    }
    if let Some((at, c)) = first_unsafe(text) {
        return Err(UrlError::Character { what: describe(c), at: at + 1 });
    }
    Ok(u)
}

/// The first character (of ASCII text) outside the allow-list of its part: the scheme and its
/// `://`, the authority, the path.
fn first_unsafe(text: &str) -> Option<(usize, char)> {
    let authority = text.find("://").map_or(0, |i| i + 3);
    let path = text[authority..].find('/').map_or(text.len(), |i| authority + i);
    text.char_indices().find(|&(i, c)| {
        let punctuation = match i {
            i if i < authority => "://",
            i if i < path => "-.:[]",
            _ => "-._~:/",
        };
        !(c.is_ascii_alphanumeric() || punctuation.contains(c))
    })
}

/// An endpoint that receives signed requests (the AWS endpoint): https, or plain http only to
/// this machine (a loopback IPv4 address, `::1`, or exactly `localhost`), for a local test
/// server.
pub fn credentialed_endpoint(text: &str) -> Result<Url, UrlError> {
    let u = http_url(text)?;
    if u.scheme() == "http" && !is_loopback(&u) {
        return Err(UrlError::PlainHttpOffHost(u.host_str().unwrap_or_default().into()));
    }
    Ok(u)
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => a == Ipv6Addr::LOCALHOST,
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// A DNS name of letters, digits and inner hyphens, or an IP address as written (the parser
/// would read `127.1` or `0x7f.1` as 127.0.0.1, which is not what a reader of the file sees).
fn check_host(text: &str, u: &Url) -> Result<(), UrlError> {
    match u.host() {
        Some(Host::Domain(d)) if d.len() <= 253 && d.split('.').all(is_dns_label) => Ok(()),
        Some(Host::Domain(d)) => Err(UrlError::Host(d.into())),
        Some(Host::Ipv4(a)) => {
            let written = text.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
            let host = written.split([':', '/']).next().unwrap_or_default();
            if host == a.to_string() { Ok(()) } else { Err(UrlError::Ipv4Form(host.into())) }
        }
        Some(Host::Ipv6(_)) => Ok(()),
        None => Err(UrlError::Host(String::new())),
    }
}

/// A DNS label: letters, digits and inner hyphens, at most 63 characters.
pub fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\n' => "a line break".into(),
        '\t' => "a tab".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c if !c.is_ascii() => format!("`{c}`, which is not ASCII"),
        c => format!("`{c}`"),
    }
}

/// A value for a message: escaped (a line break shows as `\n`, an escape sequence cannot reach
/// the terminal) and cut to a readable length.
pub fn shown(text: &str) -> String {
    let escaped: String =
        text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect();
    match escaped.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &escaped[..i]),
        None => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_and_endpoints_that_are_urls() {
        for ok in [
            "https://mirror.example.com",
            "http://mirror.example.com/kubernetes/",
            "https://registry.example.com:5000/a_b/c-d/e.f~g",
            "https://mirror.example.com/core:/stable:",
            "http://192.168.1.10:8080",
            "http://[::1]:4566",
            "HTTPS://Mirror.Example.COM",
        ] {
            assert!(http_url(ok).is_ok(), "{ok}: {:?}", http_url(ok));
        }
    }

    #[test]
    fn injections_and_look_alikes_are_refused_with_the_reason() {
        let why = |t: &str| http_url(t).unwrap_err();
        assert!(matches!(why("http://a/\ndeb [trusted=yes] http://evil/ /"), UrlError::Character { at: 10, .. }));
        assert_eq!(why("http://a/b c").to_string(), "it contains a space (character 11)");
        assert_eq!(why("http://a/it's").to_string(), "it contains `'` (character 12)");
        assert!(matches!(why("http://a/$(id)"), UrlError::Character { .. }));
        assert!(matches!(why("http://a$(id)b/"), UrlError::Host(_) | UrlError::Character { .. }));
        assert!(matches!(why("http://a'b/"), UrlError::Host(_) | UrlError::Character { .. }));
        assert_eq!(why("https://me:pw@mirror.example.com"), UrlError::Credentials);
        assert_eq!(why("https://mirror.example.com/?a=b"), UrlError::Query);
        assert_eq!(why("https://mirror.example.com/#x"), UrlError::Fragment);
        assert_eq!(why("ftp://mirror.example.com"), UrlError::Scheme("ftp".into()));
        assert_eq!(why("http:mirror.example.com"), UrlError::Form("http".into()));
        assert!(matches!(why("http:\\\\mirror.example.com"), UrlError::Form(_) | UrlError::Character { .. }));
        assert_eq!(why("http://127.1:5000"), UrlError::Ipv4Form("127.1".into()));
        assert!(matches!(why("http://a_b.example.com"), UrlError::Host(_)));
        assert!(matches!(why("http://example.com./"), UrlError::Host(_)));
        assert!(matches!(why("http://bücher.example"), UrlError::Character { .. }));
        assert!(matches!(why("mirror.example.com"), UrlError::Parse(_)));
        assert_eq!(why("http://a/[x]").to_string(), "it contains `[` (character 10)");
        assert_eq!(why("http://a/b;c").to_string(), "it contains `;` (character 11)");
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "https://ec2.eu-central-1.amazonaws.com",
            "http://127.0.0.1:5000",
            "http://127.8.9.10:5000",
            "http://localhost:4566",
            "http://[::1]:4566",
        ] {
            assert!(credentialed_endpoint(ok).is_ok(), "{ok}");
        }
        for evil in [
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://localhostx",
            "http://[::2]:4566",
            "http://aws.example.com",
        ] {
            assert!(matches!(credentialed_endpoint(evil), Err(UrlError::PlainHttpOffHost(_))), "{evil}");
        }
    }

    #[test]
    fn shown_values_are_escaped_and_short() {
        assert_eq!(shown("it's a\nb\u{1b}[2J"), "it's a\\nb\\u{1b}[2J");
        assert_eq!(shown(&"x".repeat(500)).chars().count(), 121);
    }
}

//! The host's own HTTP(S) client, for what the host downloads itself (base images and their
//! checksums): the client the plugins' `wasi:http` requests go through (wasmtime-wasi-http's
//! hyper with rustls and the webpki roots), with a redirect policy that never leaves https.

use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::RequestOptions;

/// A GET with the HTTP client the plugins' requests go through (hyper; rustls with the
/// webpki roots), for the host's own downloads (base images). Follows up to 5 redirects;
/// the body goes to `sink` as it arrives.
pub(crate) async fn get(url: &str, sink: &mut (dyn FnMut(&[u8]) -> Result<(), String> + Send)) -> Result<(), String> {
    let options = RequestOptions {
        connect_timeout: Some(Duration::from_secs(30)),
        first_byte_timeout: Some(Duration::from_secs(120)),
        between_bytes_timeout: Some(Duration::from_secs(120)),
    };
    let mut url = url.to_string();
    for _ in 0..6 {
        let body = http_body_util::Empty::<bytes::Bytes>::new()
            .map_err(|never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} });
        let req = http::Request::get(url.as_str())
            .header(http::header::USER_AGENT, concat!("hacluster/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .map_err(|e| format!("{url}: {e}"))?;
        let (resp, worker) =
            wasmtime_wasi_http::default_send_request(req, Some(options)).await.map_err(|e| e.to_string())?;
        let worker = tokio::spawn(worker);
        let status = resp.status();
        if status.is_redirection() {
            let next = resp.headers().get(http::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
            worker.abort();
            let Some(next) = next else { return Err(format!("{url}: redirect ({status}) without a location")) };
            url = redirect_target(&url, &next)?;
            continue;
        }
        if !status.is_success() {
            worker.abort();
            return Err(format!("{url}: HTTP {status}"));
        }
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Ok(data) = frame.into_data() {
                sink(&data)?;
            }
        }
        return Ok(());
    }
    Err(format!("{url}: too many redirects"))
}

/// Where a redirect from `from` to `location` (absolute or relative) leads: http or https
/// only, and never from https down to http — an image, or the checksum that vouches for it,
/// would then travel where anyone on the path can change it.
fn redirect_target(from: &str, location: &str) -> Result<String, String> {
    let base = url::Url::parse(from).map_err(|e| format!("{from}: {e}"))?;
    let next = base.join(location).map_err(|e| format!("{from}: redirect to `{location}`: {e}"))?;
    match (base.scheme(), next.scheme()) {
        ("https", "https") | ("http", "http" | "https") => Ok(next.into()),
        ("https", "http") => Err(format!("{from}: redirected to {next}, from https to plain http: refused")),
        (_, other) => Err(format!("{from}: redirected to a `{other}` URL: refused")),
    }
}

#[cfg(test)]
mod redirect_tests {
    use super::redirect_target;

    #[test]
    fn redirects_never_leave_https() {
        let from = "https://images.example/noble/img.qcow2";
        assert_eq!(redirect_target(from, "https://mirror.example/img").unwrap(), "https://mirror.example/img");
        assert_eq!(redirect_target(from, "/other/img").unwrap(), "https://images.example/other/img");
        assert!(redirect_target(from, "http://mirror.example/img").unwrap_err().contains("from https to plain http"));
        assert!(redirect_target(from, "file:///etc/shadow").unwrap_err().contains("`file` URL"));
        assert_eq!(redirect_target("http://a.example/x", "https://b.example/y").unwrap(), "https://b.example/y");
    }
}

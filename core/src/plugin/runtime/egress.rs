//! The `wasi:http` hook: allow-listed origins go out (TLS by the host), the rest are refused
//! after the body has been read, so the guest sees a clean `HttpRequestDenied`; a bounded
//! number of requests under way at once. Fault injection, a test mode, sits in front of the
//! send (`egress/faults.rs`).

mod faults;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::plugin::egress::EgressPolicy;
use crate::plugin::faults::{Faults, HttpStats};

/// What the host reads (and drops) of a refused request's body before it answers.
const MAX_REFUSED_BODY: usize = 64 << 20;
/// Requests of one call under way at once.
const MAX_IN_FLIGHT: usize = 32;

/// The future that drives a response's body to its end.
type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;
/// What `WasiHttpHooks::send_request` returns: the response and the future that drives it.
type SendFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send>;

pub(super) struct Egress {
    policy: EgressPolicy,
    denied: Arc<Mutex<Vec<String>>>,
    faults: Option<Arc<Faults>>,
    stats: Arc<HttpStats>,
    /// Requests of this store under way (until their response body is done).
    in_flight: Arc<AtomicUsize>,
}

/// One request under way, counted in `Egress::in_flight` for as long as it lives.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads a request body to its end (or to a bound), keeping none of it.
async fn drain(mut body: WasiBody) {
    let mut read = 0usize;
    while read <= MAX_REFUSED_BODY {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

impl Egress {
    pub(super) fn new(policy: EgressPolicy, faults: Option<Arc<Faults>>, stats: Arc<HttpStats>) -> Self {
        Egress { policy, denied: Default::default(), faults, stats, in_flight: Arc::new(AtomicUsize::new(0)) }
    }

    /// Origins refused so far (the plugin sees only "denied").
    pub(super) fn denied(&self) -> Vec<String> {
        self.denied.lock().map(|d| d.clone()).unwrap_or_default()
    }

    fn refuse(&self, uri: &http::Uri, request: http::Request<WasiBody>) -> SendFuture {
        // Recorded now: the future below may be dropped with the store.
        let origin = match uri.authority() {
            Some(a) => format!("{}://{}", uri.scheme_str().unwrap_or("?"), a),
            None => uri.to_string(),
        };
        self.denied.lock().expect("denied list lock").push(origin);
        self.stats.denied.fetch_add(1, Ordering::Relaxed);
        Box::new(async move {
            // Drain the body first (denying mid-upload shows the guest a reset connection),
            // frame by frame: nothing of it is kept, and no more than a bound is read.
            drain(request.into_body()).await;
            Err(wasmtime_wasi_http::Error::HttpRequestDenied)
        })
    }
}

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let uri = request.uri().clone();
        let https = uri.scheme_str() == Some("https");
        let allowed = matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|a| self.policy.allows(https, a.as_str()));
        let test_denied =
            self.faults.as_ref().is_some_and(|f| uri.authority().is_some_and(|a| f.denies(https, a.as_str())));
        if !allowed || test_denied {
            return self.refuse(&uri, request);
        }
        // A bound on connections at once: the host makes them, the plugin only asks.
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Box::new(async move {
                drain(request.into_body()).await;
                Err(wasmtime_wasi_http::Error::ConnectionLimitReached)
            });
        }
        let in_flight = InFlight(self.in_flight.clone());
        let stats = self.stats.clone();
        let injected = self.faults.clone().map(|f| faults::Injected::new(f, stats.clone()));
        Box::new(async move {
            let request = match injected {
                Some(injected) => match injected.before_send(request, options).await {
                    faults::Intercepted::Send(request) => request,
                    faults::Intercepted::Answered(answer) => return answer,
                },
                None => request,
            };
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            // Counted until the response body is done, not only its head.
            let io = async move {
                let _in_flight = in_flight;
                io.await
            };
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

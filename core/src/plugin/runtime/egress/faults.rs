//! Fault injection in front of the send (`plugin::faults` says what each fault is): a request
//! the allow-list let through may wait, be answered "throttled" without being sent, or be sent
//! with its answer lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use super::IoFuture;
use crate::plugin::faults::{Faults, HttpStats, throttle_body};

/// The faults of one request. Whether it is throttled is decided when the request is made,
/// in the order requests are made, so a seed repeats its run.
pub(super) struct Injected {
    faults: Arc<Faults>,
    stats: Arc<HttpStats>,
    throttle: bool,
    delay: Option<Duration>,
}

/// What became of a request: to be sent, or already answered.
pub(super) enum Intercepted {
    Send(http::Request<WasiBody>),
    Answered(wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>),
}

impl Injected {
    pub(super) fn new(faults: Arc<Faults>, stats: Arc<HttpStats>) -> Self {
        let throttle = faults.throttle_now();
        let delay = faults.delay;
        Injected { faults, stats, throttle, delay }
    }

    pub(super) async fn before_send(
        self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Intercepted {
        let Injected { faults, stats, throttle, delay } = self;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if throttle {
            stats.throttled.fetch_add(1, Ordering::Relaxed);
            let auth =
                request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
            let _ = http_body_util::Limited::new(request.into_body(), 64 << 20).collect().await;
            let body = http_body_util::Full::new(bytes::Bytes::from(throttle_body(auth.as_deref())))
                .map_err(|never| match never {})
                .boxed_unsync();
            let resp = http::Response::builder()
                .status(503)
                .header("content-type", "text/xml")
                .body(body)
                .expect("static response");
            let done: IoFuture = Box::new(async { Ok(()) });
            return Intercepted::Answered(Ok((resp, done)));
        }
        if !faults.loses_answers() {
            return Intercepted::Send(request);
        }
        // The body decides (`lose=P:Action`): read it, then send it as it was.
        let (parts, body) = request.into_parts();
        let bytes =
            http_body_util::Limited::new(body, 64 << 20).collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let lose = faults.lose_now(&bytes);
        let body = http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync();
        let request = http::Request::from_parts(parts, body);
        if !lose {
            return Intercepted::Send(request);
        }
        stats.sent.fetch_add(1, Ordering::Relaxed);
        stats.lost.fetch_add(1, Ordering::Relaxed);
        Intercepted::Answered(
            async {
                let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                // The server did all of it; only its answer never arrives.
                let _ = tokio::join!(io, res.into_body().collect());
                Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)
            }
            .await,
        )
    }
}

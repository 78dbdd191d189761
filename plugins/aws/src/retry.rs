//! Waiting and retrying: polls with backoff, and which failed launches are worth another try.

use std::time::Duration;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::Error;
use crate::aws::pause;

/// Polls with backoff (1 s, growing to 10 s) until `done` or the deadline.
pub(crate) async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        if check().await? {
            return Ok(());
        }
        if start.elapsed() > deadline {
            return Err(Error::Transient(format!("timed out after {}s waiting for {what}", deadline.as_secs())));
        }
        pause(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(10));
    }
}

/// Attempts at one instance's launch, as many as the SDK makes for other calls.
pub(crate) const LAUNCH_ATTEMPTS: u32 = 8;

/// Throttling, a server error, or no answer at all: worth another try (after looking).
pub(crate) fn worth_retrying<E: ProvideErrorMetadata>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    use aws_smithy_runtime_api::client::result::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            s.raw().status().is_server_error()
                || matches!(
                    s.err().code(),
                    Some(
                        "RequestLimitExceeded" | "Throttling" | "ServiceUnavailable" | "InternalError" | "Unavailable"
                    )
                )
        }
        other => answer_lost(other),
    }
}

/// A request that was (perhaps) sent and got no answer: the connection failed or timed out.
/// Not a refusal by the host, which is final.
pub(crate) fn answer_lost<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    use aws_smithy_runtime_api::client::result::SdkError;
    match e {
        SdkError::DispatchFailure(d) => d.as_connector_error().is_none_or(|c| {
            !aws_smithy_types::error::display::DisplayErrorContext(c).to_string().contains("HttpRequestDenied")
        }),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        _ => false,
    }
}

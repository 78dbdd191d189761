//! SDK clients over wasi:http, with credentials from the host, and AWS errors turned into the
//! contract's error variants (keeping the API's error code and message, never credentials).

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_ec2 as ec2;
use aws_sdk_elasticloadbalancingv2 as elb;
use aws_smithy_async::rt::sleep::SharedAsyncSleep;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;

use crate::config::Config;
use crate::{Error, credentials};

pub const TAG_CLUSTER: &str = "hacluster:cluster";
pub const TAG_ROLE: &str = "hacluster:role";
pub const TAG_NODE: &str = "hacluster:node";

pub struct Clients {
    pub ec2: ec2::Client,
    pub elb: elb::Client,
}

impl Clients {
    pub fn new(cfg: &Config) -> Result<Clients, Error> {
        let creds = credentials::get("aws").map_err(Error::Denied)?;
        let get = |k: &str| creds.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let id = get("access-key-id").ok_or_else(|| Error::Denied("the host gave no AWS access key id".into()))?;
        let secret = get("secret-access-key").ok_or_else(|| Error::Denied("the host gave no AWS secret key".into()))?;
        let credentials = Credentials::new(id, secret, get("session-token"), None, "hacluster-host");
        // Throttling is retried with the SDK's standard exponential backoff; a few more
        // attempts than the default ride out a busy account.
        let retry = RetryConfig::standard().with_max_attempts(8).with_initial_backoff(Duration::from_millis(200));
        let http = aws_smithy_wasm::wasi::WasiHttpClientBuilder::new().build();
        let sleep = SharedAsyncSleep::new(aws_smithy_wasm::wasi::WasiSleep);
        let region = ec2::config::Region::new(cfg.region.clone());

        let mut e = ec2::Config::builder()
            .retry_classifier(DeniedIsFinal)
            .behavior_version_latest()
            .region(region.clone())
            .credentials_provider(credentials.clone())
            .http_client(http.clone())
            .sleep_impl(sleep.clone())
            .retry_config(retry.clone());
        let mut l = elb::Config::builder()
            .retry_classifier(DeniedIsFinal)
            .behavior_version_latest()
            .region(elb::config::Region::new(cfg.region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .sleep_impl(sleep)
            .retry_config(retry);
        if let Some(url) = &cfg.endpoint {
            e = e.endpoint_url(url);
            l = l.endpoint_url(url);
        }
        Ok(Clients { ec2: ec2::Client::from_conf(e.build()), elb: elb::Client::from_conf(l.build()) })
    }
}

/// A request the host refused (not on the egress allow-list) fails the same way every time:
/// retrying it only delays the error. The wasi:http client reports it as a connector error of
/// kind "other", which the SDK's default classifiers would retry.
#[derive(Debug)]
struct DeniedIsFinal;

impl ClassifyRetry for DeniedIsFinal {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(e)) = ctx.output_or_error() else { return RetryAction::NoActionIndicated };
        match e.as_connector_error() {
            Some(c) if DisplayErrorContext(c).to_string().contains("HttpRequestDenied") => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "requests the host refused are final"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Maps an SDK error to the contract: the operation, the AWS error code and message.
pub fn err<E>(
    op: &str,
    e: aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let (code, message) = match &e {
        SdkError::ServiceError(s) => {
            (s.err().code().unwrap_or("Unknown").to_string(), s.err().message().unwrap_or_default().to_string())
        }
        SdkError::TimeoutError(_) => ("Timeout".into(), "the request timed out".into()),
        SdkError::DispatchFailure(d) => (
            "DispatchFailure".into(),
            d.as_connector_error()
                .map(|c| DisplayErrorContext(c).to_string())
                .unwrap_or_else(|| "the request was not sent".into()),
        ),
        other => ("SdkError".into(), DisplayErrorContext(other).to_string()),
    };
    let text = format!("{op}: {code}: {message}");
    match code.as_str() {
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "RequestThrottled"
        | "ServiceUnavailable"
        | "InternalError"
        | "Unavailable"
        | "Timeout" => Error::Transient(text),
        "AuthFailure"
        | "UnauthorizedOperation"
        | "AccessDenied"
        | "AccessDeniedException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "OptInRequired" => Error::Denied(text),
        "DispatchFailure" if message.contains("HttpRequestDenied") => Error::Denied(text),
        "DispatchFailure" => Error::Transient(text),
        c if c.ends_with(".NotFound") || c.ends_with("NotFound") => Error::NotFound(text),
        c if c.ends_with(".Duplicate") || c.contains("AlreadyExists") || c == "DependencyViolation" => {
            Error::Conflict(text)
        }
        c if c.starts_with("Invalid") || c.starts_with("Missing") || c == "ValidationError" => {
            Error::InvalidInput(text)
        }
        _ => Error::Internal(text),
    }
}

/// The AWS error code of an SDK error, for expected failures (e.g. a duplicate rule).
pub fn code<E: ProvideErrorMetadata>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<String> {
    e.as_service_error().and_then(|s| s.code()).map(str::to_string)
}

pub fn ec2_tags(cluster: &str, role: &str, name: &str, node: Option<&str>) -> Vec<ec2::types::Tag> {
    let mut t = vec![
        ec2::types::Tag::builder().key(TAG_CLUSTER).value(cluster).build(),
        ec2::types::Tag::builder().key(TAG_ROLE).value(role).build(),
        ec2::types::Tag::builder().key("Name").value(name).build(),
    ];
    if let Some(n) = node {
        t.push(ec2::types::Tag::builder().key(TAG_NODE).value(n).build());
    }
    t
}

pub fn tag_spec(rt: ec2::types::ResourceType, tags: Vec<ec2::types::Tag>) -> ec2::types::TagSpecification {
    ec2::types::TagSpecification::builder().resource_type(rt).set_tags(Some(tags)).build()
}

pub fn elb_tags(cluster: &str, role: &str) -> Vec<elb::types::Tag> {
    [(TAG_CLUSTER, cluster), (TAG_ROLE, role)]
        .into_iter()
        .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build())
        .collect()
}

pub fn cluster_filter(cluster: &str) -> ec2::types::Filter {
    ec2::types::Filter::builder().name(format!("tag:{TAG_CLUSTER}")).values(cluster).build()
}

pub fn tag_value(tags: &[ec2::types::Tag], key: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string)
}

/// Sleeps inside the component (wasi clocks), for polling.
pub async fn pause(d: Duration) {
    wstd::task::sleep(wstd::time::Duration::from(d)).await;
}

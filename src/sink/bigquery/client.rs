//! HTTP to the BigQuery REST API: one request, retried with backoff when
//! the failure is transient, and the error it ends with.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tracing::warn;

use super::auth::auth_message;

/// Timeout of one JSON API request (`jobs.query` waits up to `QUERY_WAIT_MS`
/// of it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Slowest upload throughput tolerated before an upload counts as stuck.
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 256 * 1024;

/// A failed HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", status.map(|s| format!("HTTP {s}{}: ", reason.as_deref().map(|r| format!(" {r}")).unwrap_or_default())).unwrap_or_default())]
pub struct ApiError {
    /// The HTTP status; None when no response came.
    pub status: Option<u16>,
    /// BigQuery's `error.errors[0].reason`, such as `notFound`.
    pub reason: Option<String>,
    /// BigQuery's message, or the transport error.
    pub message: String,
    /// Whether a retry may help.
    pub transient: bool,
}

impl ApiError {
    fn fatal(message: impl Into<String>) -> Self {
        Self {
            status: None,
            reason: None,
            message: message.into(),
            transient: false,
        }
    }

    pub(super) fn is_status(&self, status: StatusCode) -> bool {
        self.status == Some(status.as_u16())
    }
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    /// Attempts in all, the first included.
    attempts: u32,
    /// The pause after the first failure; it doubles after each.
    first_delay: Duration,
}

pub(super) const RETRIES: Backoff = Backoff {
    attempts: 5,
    first_delay: Duration::from_millis(200),
};

/// Runs `attempt` until it succeeds, fails for good, or runs out of tries.
pub(super) async fn retry<T, F, Fut>(
    backoff: Backoff,
    what: &str,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut delay = backoff.first_delay;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.transient && tries < backoff.attempts => {
                warn!(what, attempt = tries, error = %e, retry_in_ms = delay.as_millis() as u64, "transient BigQuery failure, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// The API root of an endpoint, without a trailing `/` or `/bigquery/v2`.
pub(super) fn api_root(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    e.strip_suffix("/bigquery/v2").unwrap_or(e).to_owned()
}

/// HTTP to the BigQuery REST API, with a token per request.
#[derive(Clone)]
pub(super) struct Api {
    pub(super) http: reqwest::Client,
    pub(super) auth: Arc<dyn Authenticator>,
    /// `https://bigquery.googleapis.com` or the emulator's base URL.
    pub(super) root: String,
    /// `{root}/bigquery/v2/projects/{project}`.
    pub(super) project_url: String,
    /// `{root}/upload/bigquery/v2/projects/{project}/jobs`.
    pub(super) upload_url: String,
}

impl Api {
    async fn token(&self) -> Result<String, ApiError> {
        self.auth.access_token().await.map_err(|e| ApiError {
            status: None,
            reason: None,
            message: format!("cannot get a token: {}", auth_message(&e)),
            transient: matches!(
                e,
                BQError::RequestError(_)
                    | BQError::YupAuthError(gcp_bigquery_client::yup_oauth2::Error::HttpError(_))
            ),
        })
    }

    /// One JSON request, retried when the failure is transient. A success
    /// without a body (`tables.delete`) is `null`.
    pub(super) async fn json(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        retry(RETRIES, url, || async {
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(self.token().await?)
                .timeout(REQUEST_TIMEOUT);
            if let Some(b) = body {
                req = req.json(b);
            }
            read_json(req.send().await.map_err(transport)?).await
        })
        .await
    }

    /// `jobs.insert` of a job whose data is already in a bucket. Not
    /// retried here: a retry needs a new job id.
    pub(super) async fn insert_job(&self, job: &Value) -> Result<Value, ApiError> {
        let resp = self
            .http
            .post(format!("{}/jobs", self.project_url))
            .bearer_auth(self.token().await?)
            .timeout(REQUEST_TIMEOUT)
            .json(job)
            .send()
            .await
            .map_err(transport)?;
        read_json(resp).await
    }

    /// A resumable upload: the job resource opens a session, then one `PUT`
    /// streams the file. Returns the job. Not retried here: a retry needs a
    /// new job id.
    pub(super) async fn upload(
        &self,
        job: &Value,
        file: &Path,
        size: u64,
    ) -> Result<Value, ApiError> {
        let token = self.token().await?;
        let session = self
            .http
            .post(format!("{}?uploadType=resumable", self.upload_url))
            .bearer_auth(&token)
            .header("X-Upload-Content-Type", "application/octet-stream")
            .header("X-Upload-Content-Length", size)
            .timeout(REQUEST_TIMEOUT)
            .json(job)
            .send()
            .await
            .map_err(transport)?;
        if !session.status().is_success() {
            return Err(read_json(session)
                .await
                .err()
                .unwrap_or_else(|| ApiError::fatal("upload session refused")));
        }
        let location = session
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::fatal("the upload session has no `Location` header"))?
            .to_owned();
        let data = tokio::fs::File::open(file)
            .await
            .map_err(|e| ApiError::fatal(format!("cannot open `{}`: {e}", file.display())))?;
        let resp = self
            .http
            .put(location)
            .bearer_auth(&token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .timeout(REQUEST_TIMEOUT + Duration::from_secs(size / MIN_UPLOAD_BYTES_PER_SEC))
            .body(reqwest::Body::from(data))
            .send()
            .await
            .map_err(transport)?;
        read_json(resp).await
    }
}

/// The body of a successful response, or the error BigQuery described.
async fn read_json(resp: reqwest::Response) -> Result<Value, ApiError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(transport)?;
    if status.is_success() {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::fatal(format!("invalid JSON in a {status} response: {e}")));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reason = body["error"]["errors"][0]["reason"]
        .as_str()
        .map(str::to_owned);
    let message = match body["error"]["message"].as_str() {
        Some(m) => m.to_owned(),
        None => {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text.chars().take(500).collect()
            }
        }
    };
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && matches!(reason.as_deref(), Some("rateLimitExceeded")));
    Err(ApiError {
        status: Some(status.as_u16()),
        reason,
        message,
        transient,
    })
}

/// A request that got no response. Everything but a malformed request is
/// worth a retry (refused, reset, timed out).
fn transport(e: reqwest::Error) -> ApiError {
    let transient = !e.is_builder() && !e.is_decode();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    ApiError {
        status: None,
        reason: None,
        message,
        transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn endpoints_lose_their_api_path() {
        assert_eq!(api_root("http://127.0.0.1:9050/"), "http://127.0.0.1:9050");
        assert_eq!(
            api_root("http://127.0.0.1:9050/bigquery/v2"),
            "http://127.0.0.1:9050"
        );
    }

    #[test]
    fn api_errors_read_like_bigquery_says_them() {
        let e = ApiError {
            status: Some(404),
            reason: Some("notFound".into()),
            message: "table t is not found".into(),
            transient: false,
        };
        assert_eq!(e.to_string(), "HTTP 404 notFound: table t is not found");
        assert_eq!(
            ApiError::fatal("connection refused").to_string(),
            "connection refused"
        );
    }

    /// Under paused time, with the sink's own backoff: 5 attempts, waits
    /// of 0.2, 0.4, 0.8 and 1.6 s between them.
    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_a_bounded_number_of_times() {
        let fast = RETRIES;
        let started = tokio::time::Instant::now();
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(fast, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError {
                status: Some(503),
                reason: None,
                message: "busy".into(),
                transient: true,
            })
        })
        .await;
        assert_eq!(
            (r.unwrap_err().status, calls.load(Ordering::SeqCst)),
            (Some(503), 5)
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(200 + 400 + 800 + 1600)
        );

        let started = tokio::time::Instant::now();
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = retry(fast, "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ApiError {
                status: Some(400),
                reason: None,
                message: "bad".into(),
                transient: false,
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "a permanent failure waits for nothing"
        );

        calls.store(0, Ordering::SeqCst);
        let r = retry(fast, "test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(ApiError {
                    status: None,
                    reason: None,
                    message: "reset".into(),
                    transient: true,
                }),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }
}

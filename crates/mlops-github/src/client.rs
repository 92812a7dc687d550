//! The GitHub REST client: octocrab for transport and authentication, with our own retry policy
//! (5xx, 429 and secondary rate limits, honouring `Retry-After`, bounded), pagination through
//! `Link` headers that never leaves the configured API host, and errors that carry GitHub's
//! message and the permissions it says the call needs. The token is held by octocrab as a
//! secret and never formatted into any message.

use crate::Field;
use std::time::Duration;

use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde_json::Value;

/// What the client needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GITHUB_API_URL`: `https://api.github.com`, or a GitHub Enterprise Server's `/api/v3`.
    pub api_url: String,
    /// Attempts per call (the first included).
    pub attempts: u32,
    /// The first backoff; doubled per attempt, with jitter.
    pub backoff: Duration,
    /// The longest single wait a `Retry-After` may ask for before the call fails instead.
    pub max_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_url: "https://api.github.com".to_owned(),
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// A failed call.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub method: &'static str,
    pub path: String,
    /// The HTTP status, when GitHub answered.
    pub status: Option<u16>,
    /// GitHub's `message` (or the transport error).
    pub message: String,
    /// `X-Accepted-GitHub-Permissions`: what a fine-grained or installation token needs.
    pub accepted_permissions: Option<String>,
    /// GitHub's `errors` details of a 422, joined.
    pub details: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(
                f,
                "GitHub answered {s} to {} {}: {}",
                self.method, self.path, self.message
            )?,
            None => write!(f, "{} {} failed: {}", self.method, self.path, self.message)?,
        }
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        if let Some(p) = &self.accepted_permissions {
            write!(f, "; the token needs the permission(s) {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// `X-OAuth-Scopes` (classic tokens only).
    pub scopes: Option<String>,
    next: Option<String>,
}

/// A GitHub API client.
#[derive(Debug, Clone)]
pub struct GitHub {
    octo: Octocrab,
    config: Config,
    /// The API URL's path prefix (`/api/v3` on GitHub Enterprise Server), for `Link` URLs.
    origin: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Patch,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Patch => "PATCH",
        }
    }
}

/// What to do after an answer.
enum Next {
    Done,
    /// Try again after this long (and say why).
    Wait(Duration, String),
    /// Give up: the wait asked for is longer than allowed.
    TooLong(Duration),
}

impl GitHub {
    /// A client for `config.api_url` with `token`.
    pub fn new(token: &str, config: Config) -> Result<GitHub, String> {
        let api = config.api_url.trim_end_matches('/').to_owned();
        let octo = Octocrab::builder()
            .base_uri(api.as_str())
            .map_err(|_| format!("GITHUB_API_URL `{api}` is not a URL"))?
            .personal_token(token.to_owned())
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| format!("cannot set up the GitHub client: {e}"))?;
        Ok(GitHub {
            octo,
            origin: api,
            config,
        })
    }

    pub fn api_url(&self) -> &str {
        &self.origin
    }

    async fn once(
        &self,
        verb: Verb,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<(u16, http::HeaderMap, Value), Transport> {
        let response = match verb {
            Verb::Get => self.octo._get(uri).await,
            Verb::Post => self.octo._post(uri, body).await,
            Verb::Patch => self.octo._patch(uri, body).await,
        }
        .map_err(|e| Transport {
            message: transport_message(&e),
            unsent: never_sent(&e),
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Transport {
                message: transport_message(&e),
                unsent: false,
            })?
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes).chars().take(300).collect())
            })
        };
        Ok((status, headers, value))
    }

    fn next_step(
        &self,
        verb: Verb,
        attempt: u32,
        status: u16,
        headers: &http::HeaderMap,
        body: &Value,
    ) -> Next {
        let message = body
            .at("message")
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let header = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let secondary = status == 403 && message.contains("secondary rate limit");
        let primary =
            matches!(status, 403 | 429) && header("x-ratelimit-remaining").as_deref() == Some("0");
        // A POST is not idempotent (a second one opens a second pull request or comment): it is
        // retried only when GitHub said it did not process it (a rate limit), never after a
        // server error, which may come after the work was done.
        let limited = status == 429 || secondary || primary;
        let server_error = matches!(status, 500 | 502 | 503 | 504);
        let retryable = limited || (server_error && verb != Verb::Post);
        if !retryable || attempt >= self.config.attempts {
            return Next::Done;
        }
        let asked = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .or_else(|| {
                if !primary {
                    return None;
                }
                let reset = header("x-ratelimit-reset")?.parse::<u64>().ok()?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                Some(Duration::from_secs(reset.saturating_sub(now) + 1))
            });
        let why = if secondary {
            "a secondary rate limit".to_owned()
        } else if primary {
            "the rate limit".to_owned()
        } else {
            format!("HTTP {status}")
        };
        match asked {
            Some(d) if d > self.config.max_wait => Next::TooLong(d),
            Some(d) => Next::Wait(d, why),
            // A secondary limit without Retry-After: GitHub's documentation asks for at least a
            // minute.
            None if secondary => {
                let minute = Duration::from_secs(60);
                if minute > self.config.max_wait {
                    Next::TooLong(minute)
                } else {
                    Next::Wait(minute, why)
                }
            }
            None => Next::Wait(self.backoff(attempt), why),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .config
            .backoff
            .saturating_mul(1 << attempt.min(6).saturating_sub(1));
        // Jitter from the clock's low bits: up to a quarter of the wait.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
    }

    async fn call(&self, verb: Verb, path: &str, body: Option<&Value>) -> Result<Reply, ApiError> {
        let shown = strip_query(path);
        let failure = |status: Option<u16>, message: String| ApiError {
            method: verb.name(),
            path: shown.clone(),
            status,
            message,
            accepted_permissions: None,
            details: String::new(),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (status, headers, value) = match self.once(verb, path, body).await {
                Ok(answer) => answer,
                Err(t) if attempt < self.config.attempts && (verb != Verb::Post || t.unsent) => {
                    let wait = self.backoff(attempt);
                    eprintln!(
                        "github: {} {shown}: {}; retrying in {:.1} s",
                        verb.name(),
                        mlops_actions::neutral(&t.message, false),
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(t) if verb == Verb::Post && !t.unsent => {
                    return Err(failure(
                        None,
                        format!(
                            "{} (not retried: GitHub may have done it; running the command again \
                             finds what was done)",
                            t.message
                        ),
                    ));
                }
                Err(t) => return Err(failure(None, t.message)),
            };
            if (200..300).contains(&status) {
                let header = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                return Ok(Reply {
                    status,
                    body: value,
                    scopes: header("x-oauth-scopes"),
                    next: header("link").and_then(|l| next_link(&l)),
                });
            }
            match self.next_step(verb, attempt, status, &headers, &value) {
                Next::Wait(d, why) => {
                    eprintln!(
                        "github: {} {shown}: {}; retrying in {:.1} s (attempt {} of {})",
                        verb.name(),
                        mlops_actions::neutral(&why, false),
                        d.as_secs_f64(),
                        attempt + 1,
                        self.config.attempts
                    );
                    tokio::time::sleep(d).await;
                }
                Next::TooLong(d) => {
                    return Err(failure(
                        Some(status),
                        format!(
                            "GitHub asks to wait {} s before retrying, more than the {} s allowed",
                            d.as_secs(),
                            self.config.max_wait.as_secs()
                        ),
                    ));
                }
                Next::Done => {
                    let message = value
                        .at("message")
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    let details = value
                        .at("errors")
                        .as_array()
                        .map(|errors| {
                            errors
                                .iter()
                                .map(|e| {
                                    e.at("message")
                                        .as_str()
                                        .map_or_else(|| e.to_string(), str::to_owned)
                                })
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                        .unwrap_or_default();
                    return Err(ApiError {
                        accepted_permissions: headers
                            .get("x-accepted-github-permissions")
                            .and_then(|v| v.to_str().ok())
                            .filter(|v| !v.is_empty())
                            .map(str::to_owned),
                        details,
                        ..failure(Some(status), message)
                    });
                }
            }
        }
    }

    pub async fn get(&self, path: &str) -> Result<Reply, ApiError> {
        self.call(Verb::Get, path, None).await
    }

    /// A GET whose 404 means "there is none".
    pub async fn get_optional(&self, path: &str) -> Result<Option<Value>, ApiError> {
        match self.call(Verb::Get, path, None).await {
            Ok(r) => Ok(Some(r.body)),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call(Verb::Post, path, Some(body))
            .await
            .map(|r| r.body)
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call(Verb::Patch, path, Some(body))
            .await
            .map(|r| r.body)
    }

    /// Every item of a list, 100 per page, following `Link: rel="next"` (at most `max_pages`).
    pub async fn list(&self, path: &str, max_pages: usize) -> Result<Vec<Value>, ApiError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut uri = format!("{path}{sep}per_page=100");
        let mut out = Vec::new();
        for _ in 0..max_pages {
            let reply = self.call(Verb::Get, &uri, None).await?;
            match reply.body {
                Value::Array(items) => out.extend(items),
                other => out.push(other),
            }
            let Some(next) = reply.next else {
                return Ok(out);
            };
            // The next page must be on the API we were given: never send the token elsewhere.
            let Some(rest) = next.strip_prefix(self.origin.as_str()) else {
                return Err(ApiError {
                    method: "GET",
                    path: strip_query(path),
                    status: None,
                    message: "the next page's link points outside the GitHub API URL".into(),
                    accepted_permissions: None,
                    details: String::new(),
                });
            };
            uri = rest.to_owned();
        }
        Err(ApiError {
            method: "GET",
            path: strip_query(path),
            status: None,
            message: format!("more than {max_pages} pages"),
            accepted_permissions: None,
            details: String::new(),
        })
    }
}

fn strip_query(path: &str) -> String {
    path.split('?').next().unwrap_or(path).to_owned()
}

/// A request that got no answer.
struct Transport {
    message: String,
    /// The connection was never made, so GitHub cannot have seen the request.
    unsent: bool,
}

/// Whether `e` is a failure to connect (the request never left).
fn never_sent(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

fn transport_message(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    if text.is_empty() {
        "connection failed".into()
    } else {
        text
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_found() {
        let l = "<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=5>; rel=\"last\"";
        assert_eq!(
            next_link(l).as_deref(),
            Some("https://api.github.com/x?page=2")
        );
        assert_eq!(
            next_link("<https://api.github.com/x?page=1>; rel=\"first\""),
            None
        );
    }

    #[test]
    fn errors_name_the_call_and_the_permissions_needed() {
        let e = ApiError {
            method: "GET",
            path: "/orgs/o/teams/t/members".into(),
            status: Some(403),
            message: "Resource not accessible by integration".into(),
            accepted_permissions: Some("members=read".into()),
            details: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "GitHub answered 403 to GET /orgs/o/teams/t/members: Resource not accessible by integration; the token needs the permission(s) members=read"
        );
    }
}

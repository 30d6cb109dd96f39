//! Runs smoke checks against a base URL: the one runner previews and
//! production releases share. Each check is an HTTP request whose answer
//! must have a status and may have to contain or match a string.
//!
//! Behind a private preview's access rules, the requests carry the bypass
//! header. Its value is read from Secrets Manager for each run and held as
//! a [`SecretString`]; it is masked in every body excerpt and never logged.

use crate::aws::secrets::Secrets;
use crate::config::Check;
use crate::domain::checks::{self, Outcome};
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

/// How many checks of one run are in flight at once.
const CONCURRENCY: usize = 4;

/// How long one run's checks may take in all.
const DEADLINE: Duration = Duration::from_secs(120);

/// The most bytes of a body read: enough for a match, bounded for memory.
const BODY_BYTES: usize = 256 * 1024;

/// What stands in for a masked secret.
const MASK: &str = "***";

/// A header that lets the checks past a private preview's access rules.
pub struct Bypass {
    header: HeaderName,
    value: Arc<SecretString>,
}

impl std::fmt::Debug for Bypass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bypass({}: {MASK})", self.header)
    }
}

impl Bypass {
    /// Reads the value of the secret `arn` now, to send in `header`. `Err`
    /// says why in words that name the secret, never its value.
    pub async fn read(secrets: &Secrets, header: &str, arn: &str) -> Result<Bypass, String> {
        let why = |what: &str| format!("the bypass secret {arn} {what}");
        let header = HeaderName::try_from(header)
            .map_err(|_| why(&format!("cannot be sent: {header:?} is not a header name")))?;
        let value = secrets
            .value(arn)
            .await
            .map_err(|e| why(&format!("could not be read: {e}")))?;
        let text = value.expose_secret();
        if text.is_empty() {
            return Err(why("is empty"));
        }
        if HeaderValue::from_str(text).is_err() {
            return Err(why(
                "is not a valid header value (visible ASCII and spaces only)",
            ));
        }
        Ok(Bypass {
            header,
            value: Arc::new(value),
        })
    }

    fn header_value(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(self.value.expose_secret())
            .expect("checked when the value was read");
        value.set_sensitive(true);
        value
    }
}

/// `text` with every occurrence of `secret` masked.
fn mask(text: &str, secret: Option<&SecretString>) -> String {
    match secret {
        Some(secret) => text.replace(secret.expose_secret(), MASK),
        None => text.to_owned(),
    }
}

/// Where a run's checks go and what they carry.
#[derive(Debug)]
pub struct Target<'a> {
    /// The origin each check's path is appended to: a preview's or a
    /// release's URL.
    pub base: &'a str,
    /// Sent with every request when the target is private.
    pub bypass: Option<&'a Bypass>,
}

/// Every check of `checks` failed for the same reason, none run: what a
/// run concludes when it cannot start (its bypass secret unreadable).
pub fn all_failed(checks: &[Check], why: &str) -> Vec<Outcome> {
    checks
        .iter()
        .map(|c| failed(c, Duration::ZERO, why))
        .collect()
}

/// An HTTP client for a preview or a release: with `bypass`, it sends the
/// header on every request and stops at a redirect to another origin (the
/// header is not one reqwest drops there), so the caller sees the
/// redirect; without, it follows up to 3 redirects.
pub fn client(bypass: Option<&Bypass>) -> reqwest::ClientBuilder {
    let redirects = if bypass.is_some() {
        reqwest::redirect::Policy::custom(|attempt| {
            let first = attempt.previous().first().map(reqwest::Url::origin);
            if attempt.previous().len() > 3 {
                attempt.error("more than 3 redirects")
            } else if first.is_some_and(|o| o != attempt.url().origin()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        })
    } else {
        reqwest::redirect::Policy::limited(3)
    };
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(bypass) = bypass {
        headers.insert(bypass.header.clone(), bypass.header_value());
    }
    reqwest::Client::builder()
        .redirect(redirects)
        .default_headers(headers)
}

/// Runs `checks` against `target`, a few at a time, within the deadline; a
/// check the deadline cut short fails as timed out.
pub async fn run_all(target: &Target<'_>, checks: &[Check]) -> Vec<Outcome> {
    let client = match client(target.bypass).build() {
        Ok(client) => client,
        Err(err) => {
            return all_failed(checks, &format!("no HTTP client: {err}"));
        }
    };
    let base = target.base;
    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut running = tokio::task::JoinSet::new();
    for (index, check) in checks.iter().enumerate() {
        let (client, gate, check) = (client.clone(), gate.clone(), check.clone());
        let secret = target.bypass.map(|b| b.value.clone());
        let target = format!("{}{}", base.trim_end_matches('/'), check.path);
        running.spawn(async move {
            let _turn = gate.acquire_owned().await;
            (
                index,
                one(&client, &target, &check, secret.as_deref()).await,
            )
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; checks.len()];
    let all = async {
        while let Some(joined) = running.join_next().await {
            if let Ok((index, outcome)) = joined {
                outcomes[index] = Some(outcome);
            }
        }
    };
    let _ = tokio::time::timeout(DEADLINE, all).await;
    running.abort_all();
    let why = format!(
        "not finished within the run's {}s deadline",
        DEADLINE.as_secs()
    );
    outcomes
        .into_iter()
        .zip(checks)
        .map(|(o, c)| o.unwrap_or_else(|| failed(c, DEADLINE, &why)))
        .collect()
}

pub fn failed(check: &Check, took: Duration, why: &str) -> Outcome {
    Outcome {
        name: check.name.clone(),
        took,
        status: None,
        excerpt: String::new(),
        failure: Some(why.to_owned()),
        logs: Vec::new(),
    }
}

/// One check: its request, its answer, and what was wrong with it. The
/// answer's body is shown with `secret` masked: a preview can echo the
/// headers it got.
async fn one(
    client: &reqwest::Client,
    target: &str,
    check: &Check,
    secret: Option<&SecretString>,
) -> Outcome {
    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(check.timeout(), async {
        let mut response = client
            .request(check.method().as_reqwest(), target)
            .send()
            .await?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < BODY_BYTES {
            match response.chunk().await? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(BODY_BYTES);
        Ok::<_, reqwest::Error>((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await;
    let took = started.elapsed();
    let (status, body) = match answer {
        Err(_) => {
            let why = format!("no answer within {}s", check.timeout().as_secs_f64());
            return failed(check, took, &why);
        }
        Ok(Err(err)) => {
            // The error's chain, without the URL (a private preview's name
            // is not a secret, but the table has it once already).
            let why = format!("request failed: {}", err.without_url());
            return failed(check, took, &why);
        }
        Ok(Ok(answer)) => answer,
    };
    let mismatch = || {
        if let Some(wanted) = check.body_contains.as_ref().filter(|w| !body.contains(*w)) {
            return Some(format!("the body does not contain {wanted:?}"));
        }
        let pattern = check
            .body_matches
            .as_ref()
            .filter(|p| !p.0.is_match(&body))?;
        Some(format!("the body does not match /{}/", pattern.0.as_str()))
    };
    let failure = if status != check.expect_status() {
        Some(format!(
            "expected status {}, got {status}",
            check.expect_status()
        ))
    } else {
        mismatch()
    };
    Outcome {
        name: check.name.clone(),
        took,
        status: Some(status),
        excerpt: checks::cut(&mask(&body, secret), checks::EXCERPT_CHARS),
        failure,
        logs: Vec::new(),
    }
}

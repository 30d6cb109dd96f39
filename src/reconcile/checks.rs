//! Runs smoke checks against a base URL: the one runner previews and
//! production releases share. Each check is an HTTP request whose answer
//! must have a status and may have to contain or match a string.

use crate::config::Check;
use crate::domain::checks::{self, Outcome};
use std::sync::Arc;
use std::time::Duration;

/// How many checks of one run are in flight at once.
const CONCURRENCY: usize = 4;

/// How long one run's checks may take in all.
const DEADLINE: Duration = Duration::from_secs(120);

/// The most bytes of a body read: enough for a match, bounded for memory.
const BODY_BYTES: usize = 256 * 1024;

/// Runs `checks` against `base`, a few at a time, within the deadline; a
/// check the deadline cut short fails as timed out.
pub async fn run_all(base: &str, checks: &[Check]) -> Vec<Outcome> {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            let why = format!("no HTTP client: {err}");
            return checks
                .iter()
                .map(|c| failed(c, Duration::ZERO, &why))
                .collect();
        }
    };
    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut running = tokio::task::JoinSet::new();
    for (index, check) in checks.iter().enumerate() {
        let (client, gate, check) = (client.clone(), gate.clone(), check.clone());
        let target = format!("{}{}", base.trim_end_matches('/'), check.path);
        running.spawn(async move {
            let _turn = gate.acquire_owned().await;
            (index, one(&client, &target, &check).await)
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

fn failed(check: &Check, took: Duration, why: &str) -> Outcome {
    Outcome {
        name: check.name.clone(),
        took,
        status: None,
        excerpt: String::new(),
        failure: Some(why.to_owned()),
    }
}

/// One check: its request, its answer, and what was wrong with it.
async fn one(client: &reqwest::Client, target: &str, check: &Check) -> Outcome {
    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(check.timeout, async {
        let mut response = client
            .request(check.method.as_reqwest(), target)
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
            let why = format!("no answer within {}s", check.timeout.as_secs_f64());
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
    let failure = if status != check.expect_status {
        Some(format!(
            "expected status {}, got {status}",
            check.expect_status
        ))
    } else {
        mismatch()
    };
    Outcome {
        name: check.name.clone(),
        took,
        status: Some(status),
        excerpt: checks::cut(&body, checks::EXCERPT_CHARS),
        failure,
    }
}

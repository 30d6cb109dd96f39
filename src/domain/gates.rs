//! What stands before each shift of a production release, as pure code:
//! the signed body a gate hook (`production.gates`) is sent, what its
//! answer means, and how a refusal is said on the Deployment and the PR.
//!
//! A gate's answer is someone else's text: only a short excerpt of it is
//! ever shown, escaped as the checks' table escapes a body.

use super::checks::{self, Outcome};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeMap;

/// The header carrying the body's signature, as GitHub signs webhooks.
pub const SIGNATURE_HEADER: &str = "X-Pullstack-Signature-256";

/// The most characters of a gate's answer shown.
pub const EXCERPT_CHARS: usize = 60;

/// What a gate hook is sent before a shift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookBody<'a> {
    /// The release's stack.
    pub release: &'a str,
    /// Which shift of the release this is, from 1.
    pub step: usize,
    /// The release's share of traffic after the shift.
    pub percent: u8,
    /// Every stack's weight after the shift, out of 100.
    pub weights: &'a BTreeMap<String, u8>,
    /// `owner/name`.
    pub repository: &'a str,
    /// The released commit.
    pub sha: &'a str,
}

/// The signature header's value for `body` signed with `key`:
/// `sha256=` and the hex HMAC-SHA256.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the gates said about a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Go on.
    Pass,
    /// Wait and ask again; why, as shown.
    Hold(String),
    /// Roll back; why, as shown.
    Fail(String),
}

/// What gate `host` answering `reply` (its status and body, or why no
/// answer came) means.
pub fn answer(host: &str, reply: Result<(u16, String), String>) -> Answer {
    match reply {
        Ok((status, _)) if (200..300).contains(&status) => Answer::Pass,
        Ok((status, body)) => {
            let excerpt = checks::escape(&checks::cut(body.trim(), EXCERPT_CHARS));
            let mut why = format!("held by gate {host}: HTTP {status}");
            if !excerpt.is_empty() {
                why.push_str(&format!(" {excerpt}"));
            }
            Answer::Hold(why)
        }
        Err(why) => Answer::Fail(format!("gate {host} {why}")),
    }
}

/// Why checks that did not all pass failed: the first failed check's name
/// and why (the config's words and the runner's, no answer's body), and
/// how many more failed. `None` when all passed.
pub fn checks_failed(outcomes: &[Outcome]) -> Option<String> {
    let mut failed = outcomes.iter().filter(|o| !o.passed());
    let first = failed.next()?;
    let why = first.failure.as_deref().unwrap_or_default();
    let mut text = format!(
        "check {} failed: {}",
        checks::cut(&first.name, 40),
        checks::cut(why, 60)
    );
    let more = failed.count();
    if more > 0 {
        text.push_str(&format!(" (and {more} more)"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_signature_is_githubs_shape() {
        // RFC 4231's second test case.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn two_hundreds_pass_other_statuses_hold_no_answer_fails() {
        assert_eq!(answer("g", Ok((204, String::new()))), Answer::Pass);
        assert_eq!(
            answer("g.example.com", Ok((503, "not yet\n".into()))),
            Answer::Hold("held by gate g.example.com: HTTP 503 not yet".into())
        );
        assert_eq!(
            answer("g", Ok((302, String::new()))),
            Answer::Hold("held by gate g: HTTP 302".into())
        );
        assert_eq!(
            answer("g", Err("did not answer within 10s".into())),
            Answer::Fail("gate g did not answer within 10s".into())
        );
    }

    // Attack: a gate (or whoever answers for its host) returns a huge body
    // built to inject Markdown, HTML and mentions where the hold is shown.
    #[test]
    fn a_hostile_answer_is_cut_and_inert() {
        let body = format!(
            "@octocat <img src=x> [a](http://evil) {}",
            "x".repeat(10_000)
        );
        let Answer::Hold(why) = answer("g", Ok((500, body))) else {
            panic!("a hold")
        };
        assert!(why.len() < 400, "{}", why.len());
        for bad in ["@octocat", "<img", "[a]("] {
            assert!(!why.contains(bad), "{bad} in {why}");
        }
    }

    #[test]
    fn a_failed_check_is_named_with_why() {
        let outcome = |name: &str, failure: Option<&str>| Outcome {
            name: name.into(),
            took: Duration::ZERO,
            status: Some(500),
            excerpt: String::new(),
            failure: failure.map(Into::into),
            logs: Vec::new(),
        };
        assert_eq!(checks_failed(&[outcome("home", None)]), None);
        assert_eq!(
            checks_failed(&[
                outcome("home", None),
                outcome("api", Some("expected status 200, got 500")),
                outcome("login", Some("no answer within 1s")),
            ])
            .as_deref(),
            Some("check api failed: expected status 200, got 500 (and 1 more)")
        );
    }
}

//! Where an environment's logs are: the stream names the template's
//! `awslogs` configuration gives its tasks, and the CloudWatch console's
//! address for them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The container every environment's task definition runs (the template's
/// `ContainerDefinitions[0].Name`).
pub const CONTAINER: &str = "app";

/// How many log lines a failure shows.
pub const FAILURE_LINES: usize = 50;

/// The stream a task writes to: `awslogs-stream-prefix` (the environment's
/// slug), the container, the task's id.
pub fn stream(prefix: &str, task_id: &str) -> String {
    format!("{prefix}/{CONTAINER}/{task_id}")
}

/// The prefix every stream of an environment starts with.
pub fn stream_prefix(slug: &str) -> String {
    format!("{slug}/")
}

/// The CloudWatch console's page for `group`'s streams that start with
/// `prefix`, in `region`.
///
/// The console reads its state from the fragment: a name in it is
/// percent-encoded twice, then each `%` written as `$` (`/` is `$252F`);
/// the query's own `?` and `=` are encoded once (`$3F`, `$3D`).
pub fn console_url(region: &str, group: &str, prefix: &str) -> String {
    let host = match region {
        r if r.starts_with("cn-") => format!("console.amazonaws.cn/cloudwatch/home?region={r}"),
        r if r.starts_with("us-gov-") => {
            format!("console.amazonaws-us-gov.com/cloudwatch/home?region={r}")
        }
        r => format!("{r}.console.aws.amazon.com/cloudwatch/home?region={r}"),
    };
    format!(
        "https://{host}#logsV2:log-groups/log-group/{}/log-events$3FlogStreamNameFilter$3D{}",
        console_escape(group),
        console_escape(prefix),
    )
}

/// Everything but letters, digits, `-`, `_` and `.` is escaped.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

fn console_escape(text: &str) -> String {
    let once = utf8_percent_encode(text, ESCAPED).to_string();
    let twice = utf8_percent_encode(&once, ESCAPED).to_string();
    twice.replace('%', "$")
}

/// `line` with the credentials it may carry masked, before it is shown on
/// a PR that anyone may read: the password of a URL
/// (`postgres://app:hunter2@db` → `postgres://app:***@db`) and AWS access
/// key ids. pullstack never holds the secrets' values, so it cannot look
/// for them; these are the shapes apps print most.
pub fn redact(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    mask_access_keys(&out)
}

/// AWS access key ids (`AKIA…`, `ASIA…` and 16 more upper-case letters or
/// digits) replaced by their first four characters and `***`.
fn mask_access_keys(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let key_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    while i < bytes.len() {
        let starts = text[i..].starts_with("AKIA") || text[i..].starts_with("ASIA");
        let bounded = i == 0 || !key_char(bytes[i - 1]);
        if starts && bounded && i + 20 <= bytes.len() {
            let ends = i + 20 == bytes.len() || !key_char(bytes[i + 20]);
            if bytes[i..i + 20].iter().all(|b| key_char(*b)) && ends {
                out.push_str(&text[i..i + 4]);
                out.push_str("***");
                i += 20;
                continue;
            }
        }
        let c = text[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The last `n` of `lines`.
pub fn tail(lines: &[String], n: usize) -> &[String] {
    &lines[lines.len().saturating_sub(n)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_follow_the_awslogs_naming() {
        assert_eq!(stream("pr-7", "0f1e2d"), "pr-7/app/0f1e2d");
        assert!(stream("pr-7", "x").starts_with(&stream_prefix("pr-7")));
    }

    #[test]
    fn the_template_runs_the_named_container() {
        let doc: serde_json::Value = serde_yaml::from_str(super::super::template::PREVIEW).unwrap();
        let name =
            &doc["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Name"];
        assert_eq!(name, CONTAINER);
    }

    #[test]
    fn console_url_is_region_aware_and_escaped() {
        let url = console_url("eu-west-1", "/ecs/shop", "pr-7/");
        assert_eq!(
            url,
            "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1\
             #logsV2:log-groups/log-group/$252Fecs$252Fshop/log-events\
             $3FlogStreamNameFilter$3Dpr-7$252F"
        );
        assert!(console_url("cn-north-1", "g", "p").starts_with("https://console.amazonaws.cn/"));
        assert!(
            console_url("us-gov-west-1", "g", "p")
                .starts_with("https://console.amazonaws-us-gov.com/")
        );
    }

    /// Attack: a migration that prints its connection string (or an AWS
    /// key) would put the password on a PR comment anyone can read.
    #[test]
    fn credentials_in_log_lines_are_masked() {
        assert_eq!(
            redact("connecting to postgres://app:hunter2@db.internal:5432/app ok"),
            "connecting to postgres://app:***@db.internal:5432/app ok"
        );
        assert_eq!(
            redact("DATABASE_URL='mysql://root:p@ss:w0rd@db' x"),
            "DATABASE_URL='mysql://root:***@db' x"
        );
        assert_eq!(
            redact("GET https://example.com/health 200"),
            "GET https://example.com/health 200"
        );
        assert_eq!(redact("redis://cache@host"), "redis://cache@host");
        assert_eq!(
            redact("key AKIAIOSFODNN7EXAMPLE used; ASIAXXXXXXXXXXXXXXXX"),
            "key AKIA*** used; ASIA***"
        );
        assert_eq!(redact("AKIASHORT"), "AKIASHORT");
        assert_eq!(redact("émoji ✓ AKIA"), "émoji ✓ AKIA");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let lines: Vec<String> = (0..60).map(|i| i.to_string()).collect();
        assert_eq!(tail(&lines, 50).len(), 50);
        assert_eq!(tail(&lines, 50)[0], "10");
        assert_eq!(tail(&lines[..3], 50).len(), 3);
    }
}

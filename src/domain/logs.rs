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

    #[test]
    fn tail_keeps_the_last_lines() {
        let lines: Vec<String> = (0..60).map(|i| i.to_string()).collect();
        assert_eq!(tail(&lines, 50).len(), 50);
        assert_eq!(tail(&lines, 50)[0], "10");
        assert_eq!(tail(&lines[..3], 50).len(), 3);
    }
}

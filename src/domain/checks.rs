//! Smoke checks' results and the Check Run summary that shows them.
//!
//! A body excerpt comes from the preview, which runs the PR's code: it is
//! hostile text. It goes into a table cell as HTML entities, so it cannot
//! close the cell, start Markdown, or mention anyone.

use std::fmt::Write;
use std::time::Duration;

/// The most characters of a body shown in the table.
pub const EXCERPT_CHARS: usize = 120;

/// How one check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    pub took: Duration,
    /// The HTTP status got, if an answer came.
    pub status: Option<u16>,
    /// The start of the answer's body.
    pub excerpt: String,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
    /// The last log lines of a task check that failed, already redacted;
    /// shown under the table.
    pub logs: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// The Check Run's title and summary for `outcomes`, run against `url`.
pub fn summary(url: &str, outcomes: &[Outcome]) -> (String, String) {
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    let title = match failed {
        0 => format!("{} of {} checks passed", outcomes.len(), outcomes.len()),
        n => format!("{n} of {} checks failed", outcomes.len()),
    };
    let mut text = format!("Checked {}.\n\n", escape(url));
    text.push_str("| Check | Result | Duration | Status | Body |\n|---|---|---|---|---|\n");
    for o in outcomes {
        let result = match &o.failure {
            None => "passed".to_owned(),
            Some(why) => format!("**failed**: {}", escape(why)),
        };
        let status = o.status.map_or("none".to_owned(), |s| s.to_string());
        let excerpt = escape(&cut(&o.excerpt, EXCERPT_CHARS));
        let _ = writeln!(
            text,
            "| {} | {result} | {} ms | {status} | <code>{excerpt}</code> |",
            escape(&o.name),
            o.took.as_millis()
        );
    }
    for o in outcomes.iter().filter(|o| !o.logs.is_empty()) {
        let _ = write!(
            text,
            "\n<details><summary>{}: its last {} log lines</summary>\n\n<pre>",
            escape(&o.name),
            o.logs.len()
        );
        for line in &o.logs {
            let _ = writeln!(text, "{}", escape(&cut(line, LOG_LINE_CHARS)));
        }
        text.push_str("</pre>\n</details>\n");
    }
    (title, text)
}

/// The most characters of one log line shown under the table.
pub const LOG_LINE_CHARS: usize = 300;

/// The first `max` characters of `text`, on one line, marked when cut.
pub fn cut(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut kept: String = flat.chars().take(max).collect();
    kept.push('…');
    kept
}

/// `text` as inert table-cell content: every character Markdown or HTML
/// could read as syntax, and `@` (a mention), as an HTML entity.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '<' | '>' | '&' | '#' | '@'
            | '!' | '~' | ':' | '"' | '\'' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, excerpt: &str, failure: Option<&str>) -> Outcome {
        Outcome {
            name: name.into(),
            took: Duration::from_millis(12),
            status: Some(200),
            excerpt: excerpt.into(),
            failure: failure.map(Into::into),
            logs: Vec::new(),
        }
    }

    #[test]
    fn the_table_has_a_row_per_check() {
        let (title, text) = summary(
            "http://pr-1.example.com",
            &[
                outcome("home", "<html>hi", None),
                outcome("api", "nope", Some("expected status 204, got 200")),
            ],
        );
        assert_eq!(title, "1 of 2 checks failed");
        assert!(
            text.contains("| home | passed | 12 ms | 200 | <code>&#60;html&#62;hi</code> |"),
            "{text}"
        );
        assert!(
            text.contains("| api | **failed**: expected status 204, got 200 | 12 ms | 200 |"),
            "{text}"
        );
    }

    // Attack: a preview answers with a body built to break out of the table
    // cell, inject Markdown or HTML, and mention (notify) people.
    #[test]
    fn a_hostile_body_stays_inert() {
        let body = "x | </code> <img src=x> [a](http://evil) @octocat\n| ## row |";
        let (_, text) = summary("http://u", &[outcome("home", body, None)]);
        let row = text.lines().last().unwrap();
        assert_eq!(row.matches('|').count(), 6, "{row}");
        assert_eq!(row.matches("</code>").count(), 1, "{row}");
        for bad in ["<img", "[a]", "@octocat", "## "] {
            assert!(!row.contains(bad), "{bad} in {row}");
        }
        assert!(row.contains("&#64;octocat"), "{row}");
    }

    // Attack: a task check's command prints lines built to close the log
    // block, inject HTML or Markdown, and mention people.
    #[test]
    fn a_task_checks_log_lines_go_under_the_table_inert() {
        let mut failed = outcome("e2e", "", Some("exited with code 1"));
        failed.logs = vec![
            "step 1 ok".into(),
            "</pre></details> <img src=x> @octocat".into(),
        ];
        let (_, text) = summary("http://u", &[outcome("home", "hi", None), failed]);
        let details = &text[text.find("<details>").expect("a details block")..];
        assert!(
            details.starts_with("<details><summary>e2e: its last 2 log lines</summary>"),
            "{details}"
        );
        assert!(details.contains("<pre>step 1 ok\n"), "{details}");
        assert_eq!(details.matches("</pre>").count(), 1, "{details}");
        for bad in ["<img", "@octocat"] {
            assert!(!details.contains(bad), "{bad} in {details}");
        }
        assert_eq!(text.matches("<details>").count(), 1, "only for logs");
    }

    #[test]
    fn a_long_body_is_cut() {
        let long = "a".repeat(10_000);
        let (_, text) = summary("http://u", &[outcome("home", &long, None)]);
        assert!(text.len() < 1_000, "{}", text.len());
        assert!(text.contains(&format!("{}…", "a".repeat(EXCERPT_CHARS))));
    }
}

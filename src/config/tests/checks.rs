//! Smoke checks: HTTP and task checks.

use super::*;
use std::time::Duration;

#[test]
fn checks_take_defaults_and_refuse_what_cannot_run() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  checks:\n    - name: home\n      path: /\n    - name: api\n      path: /api/health\n      method: HEAD\n      expect_status: 204\n      body_contains: ok\n      timeout: 3s\n";
    let config = parse(text).unwrap();
    let checks = &config.preview.checks;
    assert_eq!(checks.len(), 2);
    assert_eq!(
        (
            checks[0].method(),
            checks[0].expect_status(),
            checks[0].timeout()
        ),
        (
            crate::config::Method::Get,
            200,
            std::time::Duration::from_secs(10)
        )
    );
    assert!(checks[0].body_contains.is_none() && checks[0].body_matches.is_none());
    assert_eq!(
        (
            checks[1].method(),
            checks[1].expect_status(),
            checks[1].timeout()
        ),
        (
            crate::config::Method::Head,
            204,
            std::time::Duration::from_secs(3)
        )
    );
    assert_eq!(config.preview.checks_name, "pullstack/checks");

    let base = "app: demo\nrepository: octo/app\npreview:\n  checks:\n    - name: home\n";
    let err = |rest: &str| parse(&format!("{base}{rest}")).unwrap_err().to_string();
    let bad_regex = err("      path: /\n      body_matches: \"a(\"\n");
    assert!(
        bad_regex.starts_with("pullstack.yaml:5:")
            && bad_regex.contains("not a regular expression"),
        "{bad_regex}"
    );
    let typo = err("      path: /\n      expect: 200\n");
    assert!(
        typo.starts_with("pullstack.yaml:7:") && typo.contains("expect"),
        "{typo}"
    );
    let method = err("      path: /\n      method: FETCH\n");
    assert!(method.starts_with("pullstack.yaml:7:"), "{method}");
    let relative = err("      path: health\n");
    assert!(
        relative.starts_with("pullstack.yaml:4:3: preview.checks: path \"health\""),
        "{relative}"
    );
    let both = err("      path: /\n      body_contains: a\n      body_matches: a\n");
    assert!(both.contains("keep one"), "{both}");
    let slow = err("      path: /\n      timeout: 1h\n");
    assert!(slow.contains("between 1s and 5m"), "{slow}");
}

#[test]
fn a_task_check_is_strict_and_for_previews_only() {
    let base = "app: demo\nrepository: octo/app\npreview:\n  checks:\n    - name: e2e\n";
    let config = parse(&format!(
        "{base}      task:\n        command: [npm, test]\n"
    ))
    .unwrap();
    let task = config.preview.checks[0].task.as_ref().unwrap();
    assert_eq!(task.command, ["npm", "test"]);
    assert_eq!(task.timeout, Duration::from_secs(600));
    assert!(task.image.is_none());

    let err = |rest: &str| parse(&format!("{base}{rest}")).unwrap_err().to_string();
    let e = err("      task:\n        command: [npm, test]\n      method: POST\n");
    assert!(
        e.starts_with("pullstack.yaml:4:3: preview.checks: check \"e2e\": method is for HTTP"),
        "{e}"
    );
    for field in [
        "path: /",
        "expect_status: 200",
        "body_contains: ok",
        "timeout: 1s",
    ] {
        let e = err(&format!(
            "      task:\n        command: [x]\n      {field}\n"
        ));
        let name = field.split(':').next().unwrap();
        assert!(e.contains(&format!("{name} is for HTTP checks")), "{e}");
    }
    let e = err("      task:\n        command: [x]\n        image: busybox\n");
    assert!(e.contains("task.image is not supported"), "{e}");
    let e = err("      task:\n        command: []\n");
    assert!(e.contains("task.command must name a program"), "{e}");
    let e = err("      task:\n        command: [x]\n        timeout: 2h\n");
    assert!(e.contains("between 1s and 1h"), "{e}");
    let e = err("      task:\n        command: [x]\n        cmd: [y]\n");
    assert!(
        e.starts_with("pullstack.yaml:8:9:") && e.contains("cmd"),
        "{e}"
    );

    let production = format!("app: demo\nrepository: octo/app\n{PRODUCTION}  env: {{}}\n");
    let e = parse(&format!(
        "{production}  checks:\n    - name: e2e\n      task:\n        command: [x]\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("production.checks: check \"e2e\": a task check runs on previews only"),
        "{e}"
    );
}

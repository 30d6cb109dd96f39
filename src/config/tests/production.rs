//! Production strategy settings and release gates.

use super::*;
use std::time::Duration;

#[test]
fn stickiness_needs_the_load_balancer_and_a_sane_duration() {
    let base = format!("app: demo\nrepository: octo/app\n{PRODUCTION}  env: {{}}\n");
    let config = parse(&format!("{base}  strategy: alb\n  sticky: 1h\n")).unwrap();
    assert_eq!(config.production.strategy, super::Strategy::Alb);
    assert_eq!(config.production.sticky, Some(Duration::from_secs(3600)));
    let err = parse(&format!("{base}  sticky: 1h\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("production.sticky: only `strategy: alb` keeps sessions"),
        "{err}"
    );
    let err = parse(&format!("{base}  strategy: alb\n  sticky: 8d\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("production.sticky: must be from 1s to 7d"),
        "{err}"
    );
    let err = parse(&format!("{base}  strategy: nlb\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("strategy"), "{err}");
}

#[test]
fn production_checks_and_gates_are_validated_where_written() {
    let base = format!("app: demo\nrepository: octo/app\n{PRODUCTION}  env: {{}}\n");
    let config = parse(&format!(
        "{base}  checks:\n    - name: home\n      path: /\n  \
         gates:\n    - https://gate.example.com/ok\n    - http://127.0.0.1:8080/gate\n  \
         gates_timeout: 3s\n"
    ))
    .unwrap();
    let production = &config.production;
    assert_eq!(production.checks[0].name, "home");
    assert_eq!(production.checks_name, "pullstack/production-checks");
    assert_eq!(production.gates.len(), 2);
    assert_eq!(production.gates_timeout, Duration::from_secs(3));
    assert_eq!(
        parse(&base).unwrap().production.gates_timeout,
        Duration::from_secs(10)
    );
    let err = |extra: &str| parse(&format!("{base}{extra}")).unwrap_err().to_string();
    let e = err("  checks:\n    - name: home\n      path: nope\n");
    assert!(e.contains("production.checks: path \"nope\""), "{e}");
    // Attack: a gate over plain http to another machine would carry the
    // release's details, and take its verdict, unprotected on the wire.
    let e = err("  gates:\n    - http://gate.example.com/\n");
    assert!(e.contains("production.gates") && e.contains("https"), "{e}");
    // Credentials in a gate's URL would be logged with it.
    let e = err("  gates:\n    - https://user:hunter2@gate.example.com/\n");
    assert!(e.contains("carries credentials"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = err("  gates_timeout: 0s\n");
    assert!(e.contains("production.gates_timeout"), "{e}");
}

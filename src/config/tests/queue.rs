//! The queue and images sections.

use super::*;
use std::time::Duration;

#[test]
fn the_queue_stays_in_memory_unless_sqs_is_asked_for() {
    let config = parse("app: demo\nrepository: octo/app\n").unwrap();
    assert_eq!(config.queue.backend, Backend::Memory);
    let text = "app: demo\nrepository: octo/app\nqueue:\n  backend: sqs\n  sqs:\n    \
                queue: https://sqs.eu-west-1.amazonaws.com/1/work.fifo\n    table: leases\n    \
                lease_ttl: 1m\n";
    let config = parse(text).unwrap();
    assert_eq!(config.queue.backend, Backend::Sqs);
    assert_eq!(
        config.sqs_queue(),
        "https://sqs.eu-west-1.amazonaws.com/1/work.fifo"
    );
    assert_eq!(config.lease_table(), "leases");
    assert_eq!(config.queue.sqs.lease_ttl, Duration::from_secs(60));
}

#[test]
fn a_queue_setting_that_cannot_work_names_its_line_and_field() {
    let base = "app: demo\nrepository: octo/app\nqueue:\n  backend: sqs\n  sqs:\n";
    for (extra, expected) in [
        (
            "    lease_ttl: 1s\n",
            "pullstack.yaml:6:5: lease_ttl: must be between 2s and 12h",
        ),
        (
            "    receive_wait: 21s\n",
            "pullstack.yaml:6:5: receive_wait: must be at most 20s",
        ),
        (
            "    queue: work\n",
            "pullstack.yaml:6:5: queue.sqs.queue: \"work\" must be a FIFO queue",
        ),
    ] {
        let err = parse(&format!("{base}{extra}")).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
    }
    let err = parse("app: demo\nrepository: octo/app\nqueue:\n  backend: kafka\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pullstack.yaml:4:12") && err.contains("memory"),
        "{err}"
    );
}

#[test]
fn images_section_takes_durations_and_rejects_a_zero_window() {
    let config =
        parse("app: demo\nrepository: octo/app\nimages:\n  prune_after: 3d\n  interval: 0s\n")
            .unwrap();
    assert_eq!(config.images.prune_after, Duration::from_secs(3 * 86_400));
    assert!(config.images.interval.is_zero());
    let err = parse("app: demo\nrepository: octo/app\nimages:\n  prune_after: 0s\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: prune_after: must be more than 0s"),
        "{err}"
    );
}

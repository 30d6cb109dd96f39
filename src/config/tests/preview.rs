//! Tasks before traffic and on delete, and the database clone.

use super::*;

#[test]
fn one_off_tasks_take_a_command_and_a_timeout() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  before_traffic:\n    command: [\"./migrate\", \"up\"]\n  on_delete:\n    command: [sh, -c, \"drop schema\"]\n    timeout: 2m\n";
    let config = parse(text).unwrap();
    let before = config.preview.before_traffic.unwrap();
    assert_eq!(before.command, ["./migrate", "up"]);
    assert_eq!(before.timeout, std::time::Duration::from_secs(600));
    let on_delete = config.preview.on_delete.unwrap();
    assert_eq!(on_delete.timeout, std::time::Duration::from_secs(120));
    assert_eq!(
        parse("app: demo\nrepository: octo/app\n")
            .unwrap()
            .preview
            .before_traffic,
        None
    );
}

#[test]
fn one_off_tasks_need_a_program() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  before_traffic:\n    command: []\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: before_traffic: command must name a program"),
        "{err}"
    );
    let text = "app: demo\nrepository: octo/app\npreview:\n  before_traffic:\n    command: [x]\n    timout: 1m\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(err.contains("timout"), "unknown fields are refused: {err}");
}

#[test]
fn a_database_clone_takes_its_defaults() {
    let text =
        "app: demo\nrepository: octo/app\npreview:\n  database:\n    clone_from: staging-db\n";
    let database = parse(text).unwrap().preview.database.unwrap();
    assert_eq!(database.clone_from, "staging-db");
    assert_eq!(database.instance_class, "db.serverless");
    assert!(database.serverless());
    assert_eq!(database.name, None);
    assert_eq!((database.min_acu, database.max_acu), (0.5, 2.0));
    let none = parse("app: demo\nrepository: octo/app\n").unwrap();
    assert_eq!(none.preview.database, None);
}

#[test]
fn a_database_clone_is_checked_field_by_field() {
    let base = "app: demo\nrepository: octo/app\npreview:\n  database:\n";
    let cases = [
        (
            "    clone_from: 1bad\n",
            "pullstack.yaml:5:5: preview.database.clone_from:",
        ),
        (
            "    clone_from: db\n    min_acu: 0.3\n",
            "pullstack.yaml:6:5: preview.database.min_acu:",
        ),
        (
            "    clone_from: db\n    min_acu: 4\n    max_acu: 2\n",
            "pullstack.yaml:7:5: preview.database.max_acu: must be at least min_acu",
        ),
        (
            "    clone_from: db\n    name: \"drop;\"\n",
            "pullstack.yaml:6:5: preview.database.name:",
        ),
        (
            "    clone_from: db\n    instance_class: serverless\n",
            "pullstack.yaml:6:5: preview.database.instance_class:",
        ),
    ];
    for (yaml, expected) in cases {
        let err = parse(&format!("{base}{yaml}")).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{yaml}: {err}");
    }
    let err = parse(&format!("{base}    clone_from: db\n    min_acus: 1\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("min_acus") && err.contains("pullstack.yaml:6"),
        "{err}"
    );
    let err = parse(&format!("{base}    instance_class: db.serverless\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("clone_from"), "clone_from is required: {err}");
    let err =
        parse("app: my--app\nrepository: octo/app\npreview:\n  database:\n    clone_from: db\n")
            .unwrap_err()
            .to_string();
    assert!(err.starts_with("pullstack.yaml:1:1: app:"), "{err}");
}

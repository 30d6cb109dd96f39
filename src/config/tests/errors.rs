//! What a config that cannot be read is told: file, line, column and
//! field, and never a secret.

use super::*;

#[test]
fn unknown_field_names_file_line_column_and_field() {
    let err = parse("app: demo\nrepository: octo/app\npreview:\n  cpus: 512\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:3: preview: unknown field `cpus`"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_field() {
    let err = parse("app: demo\nrepository: octo/app\npreview:\n  port: many\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:4:9: preview.port: invalid type"),
        "{err}"
    );
}

#[test]
fn bad_duration_is_reported() {
    let err = parse("app: demo\nrepository: octo/app\nresync:\n  interval: soon\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pullstack.yaml:4:13: resync.interval"),
        "{err}"
    );
}

#[test]
fn semantic_error_points_at_the_field() {
    let err = parse("repository: octo/app\napp: Demo_App\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("pullstack.yaml:2:1: app: \"Demo_App\""),
        "{err}"
    );
}

#[test]
fn secret_values_are_never_echoed() {
    let text = "app: demo\nrepository: octo/app\npreview:\n  secrets:\n    DB: hunter2-plaintext\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.starts_with("pullstack.yaml:5:5: preview.secrets: DB: must be the ARN"),
        "{err}"
    );
}

//! Authenticating as a GitHub App: the app's JWT buys an installation token
//! (the installation is looked up from the repository), and every API call
//! then uses that token.

use crate::support::World;

/// The test App's private key.
fn app_key() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-app-key.pem"
    ))
    .unwrap()
}

#[tokio::test]
async fn a_github_app_gets_an_installation_token_and_deploys() {
    let mut world = World::new("app", "").await;
    world.app_key = Some(app_key());
    world.start().await;
    let sha = world.open_pr(1).await;
    world.wait_stack_at(1, &sha).await;
    world.wait_comment(1, "Ready").await;

    assert!(world.github.installation_tokens_issued() >= 1);
    let requests = world.github.requests();
    let token_request = requests
        .iter()
        .find(|r| r.path.starts_with("/app/installations/"))
        .unwrap();
    assert!(
        token_request
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Bearer "),
        "JWT for the token"
    );
    let comment_post = requests
        .iter()
        .find(|r| r.path.ends_with("/issues/1/comments") && r.method == "POST")
        .unwrap();
    let auth = comment_post.authorization.as_deref().unwrap();
    assert!(
        auth.contains("ghs_fake_"),
        "installation token used for API calls: {auth}"
    );
}

/// Every request, the token exchange included, carries the media type and
/// API version GitHub asks clients to send.
#[tokio::test]
async fn every_request_sends_githubs_media_type_and_api_version() {
    let mut world = World::new("apphdr", "").await;
    world.app_key = Some(app_key());
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    let requests = world.github.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path.starts_with("/app/installations/"))
    );
    for r in &requests {
        assert_eq!(
            (r.accept.as_deref(), r.api_version.as_deref()),
            (Some("application/vnd.github+json"), Some("2022-11-28")),
            "{} {}",
            r.method,
            r.path
        );
    }
}

//! Serves the GitHub fake (tests/e2e/support/github_fake/) for local demos:
//!
//! ```text
//! cargo run --example github_fake -- --listen 127.0.0.1:9001 --repo octo/app \
//!     --default-branch main --writer alice --maintainer rel-manager
//! ```
//!
//! Point pullstack's GitHub API base URL at it. Control API (no auth):
//! * `POST /_fake/prs` with a FakePr JSON, e.g.
//!   `{"repo":"octo/app","number":1,"head_ref":"feat","head_sha":"<40 hex>","user":"alice"}`
//! * `POST /_fake/merge` with `{"repo":"octo/app","number":1,"merged_by":"rel-manager"}`:
//!   a fast-forward merge (the base branch moves to the PR's head)
//! * `GET /_fake/comments/{owner}/{repo}/{number}`, `GET /_fake/deployments/{owner}/{repo}`,
//!   `GET /_fake/requests`

// The fake from the end-to-end tests, of which this uses a part.
#[path = "../tests/e2e/support/github_fake/mod.rs"]
#[allow(dead_code)]
mod github_fake;

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Fake GitHub REST API for pullstack demos")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Repositories to create (owner/name); repeatable.
    #[arg(long = "repo", default_value = "octo/app")]
    repos: Vec<String>,
    #[arg(long, default_value = "main")]
    default_branch: String,
    /// Logins with the admin role; repeatable.
    #[arg(long = "admin")]
    admins: Vec<String>,
    /// Logins with the maintain role; repeatable.
    #[arg(long = "maintainer")]
    maintainers: Vec<String>,
    /// Logins with the write role; repeatable.
    #[arg(long = "writer")]
    writers: Vec<String>,
    /// Logins with the read role; repeatable.
    #[arg(long = "reader")]
    readers: Vec<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let fake = github_fake::GitHubFake::start_on(args.listen).await;
    let roles = [
        ("admin", &args.admins),
        ("maintain", &args.maintainers),
        ("write", &args.writers),
        ("read", &args.readers),
    ];
    for repo in &args.repos {
        fake.add_repo(repo, &args.default_branch);
        for (role, logins) in roles {
            for login in logins {
                fake.set_permission(repo, login, role);
            }
        }
    }
    println!(
        "GitHub fake listening on {} (repos: {})",
        fake.url(),
        args.repos.join(", ")
    );
    tokio::signal::ctrl_c().await.expect("ctrl-c handler");
    println!("served {} API requests; bye", fake.request_count());
}

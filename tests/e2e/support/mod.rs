//! The end-to-end harness: a running `pullstack serve` wired to moto (a
//! local AWS emulator, through the real AWS SDK) and to a stateful GitHub
//! fake (through octocrab), with a small DSL to drive pull requests by
//! posting signed webhook deliveries.

pub mod ecs;
pub mod edge;
pub mod fault_proxy;
pub mod github_fake;
pub mod mocks;
pub mod payloads;
pub mod production;
pub mod replicas;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_cloudformation::config::{Credentials, Region};
use github_fake::{FakeComment, FakePr, GitHubFake, fake_sha};
use payloads::PrPayload;
use pullstack::aws::Aws;
use pullstack::aws::stacks::Stack;
use pullstack::config::Config;
use pullstack::domain::naming::EnvKey;
use pullstack::github::client::Auth;
use pullstack::http::serve::HttpLimits;
use pullstack::reconcile::Job;
use pullstack::server::{self, Options, Running};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The longest any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

pub const SECRET: &str = "test-webhook-secret";
/// The login the fake answers `GET /user` with: pullstack's own identity.
pub const BOT: &str = "pullstack[bot]";
pub const WRITER: &str = "alice";
pub const READER: &str = "mallory";
pub const MAINTAINER: &str = "rel-manager";
/// Has triage permission: may wake environments, and gets replies.
pub const TRIAGER: &str = "qa-lead";

/// The moto endpoint: `PULLSTACK_TEST_MOTO` (set by scripts/test.sh), or a
/// server started here on port 5055 and left running for the next run.
pub fn moto_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(url) = std::env::var("PULLSTACK_TEST_MOTO") {
                return url;
            }
            let root = env!("CARGO_MANIFEST_DIR");
            let status = std::process::Command::new(Path::new(root).join("scripts/moto.sh"))
                .args(["start", "5055"])
                .status()
                .expect("run scripts/moto.sh (did scripts/setup-tools.sh run?)");
            assert!(
                status.success(),
                "scripts/moto.sh start 5055 failed; run scripts/setup-tools.sh"
            );
            "http://127.0.0.1:5055".to_owned()
        })
        .clone()
}

/// SDK configuration pointed at moto, with fixed test credentials.
pub async fn moto_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        // moto has no change feed: what it holds is polled.
        poll.tick().await;
    }
}

/// One test's world: its own app (shared stack, ECR repository) on the
/// shared moto, its own GitHub fake, and a pullstack server.
pub struct World {
    pub github: GitHubFake,
    pub sdk: SdkConfig,
    pub aws: Aws,
    pub app: String,
    pub repo: String,
    pub config_yaml: String,
    /// Authenticate as a GitHub App with this PEM key instead of a token.
    pub app_key: Option<String>,
    /// The server's clock: real time that a test can move forward.
    pub clock: pullstack::clock::Clock,
    /// Limits on HTTP clients the server starts with.
    pub http_limits: HttpLimits,
    /// Where smoke checks send their requests instead of the previews'
    /// URLs, which do not resolve.
    pub checks_origin: Option<String>,
    /// The key production's gate hooks are signed with.
    pub gate_key: Option<String>,
    server: Option<Running>,
    /// More `pullstack serve` processes sharing the world's SQS queue;
    /// deliveries go round-robin over every server that runs.
    replicas: Vec<Option<Running>>,
    /// The round-robin's next turn.
    turn: std::sync::atomic::AtomicUsize,
    http: reqwest::Client,
    /// Per PR, how many of pullstack's replies [`World::next_comment`] has
    /// handed out.
    consumed: Mutex<HashMap<u64, usize>>,
}

impl World {
    /// A world whose config is the test defaults plus `extra_yaml` sections.
    pub async fn new(prefix: &str, extra_yaml: &str) -> World {
        if std::env::var_os("RUST_LOG").is_some() {
            pullstack::telemetry::init(pullstack::telemetry::LogFormat::Text);
        }
        let app = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let repo = format!("octo/{app}");
        let github = GitHubFake::start().await;
        github.add_repo(&repo, "main");
        github.set_permission(&repo, WRITER, "write");
        github.set_permission(&repo, READER, "read");
        github.set_permission(&repo, MAINTAINER, "maintain");
        github.set_permission(&repo, TRIAGER, "triage");
        let sdk = moto_config().await;
        let aws = Aws::from_config(&sdk);
        // Compressed timings: polls and retries in milliseconds, and GitHub
        // writes paced 10 ms apart instead of GitHub's 80 a minute.
        let defaults = format!(
            "app: {app}\nrepository: {repo}\n\
             preview:\n  ready_check: false\n  env:\n    PR: \"{{pr}}\"\n\
             \x20 limits:\n    check_quotas: false\n\
             queue:\n  poll_initial: 100ms\n  poll_max: 500ms\n  retry_initial: 100ms\n  retry_max: 1s\n\
             resync:\n  interval: 1h\n\
             github:\n  writes_per_minute: 6000\n"
        );
        let config_yaml = merge_yaml(&defaults, extra_yaml);
        let world = World {
            github,
            sdk,
            aws,
            app,
            repo,
            config_yaml,
            app_key: None,
            clock: pullstack::clock::Clock::manual(),
            http_limits: HttpLimits::default(),
            checks_origin: None,
            gate_key: None,
            server: None,
            replicas: Vec::new(),
            turn: std::sync::atomic::AtomicUsize::new(0),
            http: reqwest::Client::builder()
                .timeout(WAIT)
                .build()
                .expect("HTTP client"),
            consumed: Mutex::default(),
        };
        world.bootstrap().await;
        world
    }

    /// Creates the shared stack on moto, as `pullstack bootstrap` does,
    /// and the SQS queue and lease table when the config uses them.
    async fn bootstrap(&self) {
        pullstack::cli::bootstrap::shared_queue(&self.aws, &self.config())
            .await
            .expect("create the SQS queue and the lease table");
        let body: serde_json::Value =
            serde_yaml::from_str(pullstack::domain::template::SHARED).unwrap();
        let body = body.to_string();
        let parameters = BTreeMap::from([("AppName".to_owned(), self.app.clone())]);
        let tags = BTreeMap::new();
        let name = format!("{}-shared", self.app);
        self.aws
            .stacks
            .create(&pullstack::aws::stacks::Deploy {
                name: &name,
                template_body: &body,
                parameters: &parameters,
                tags: &tags,
            })
            .await
            .expect("create the shared stack");
        let stacks = self.aws.stacks.clone();
        eventually("shared stack complete", WAIT, || {
            let stacks = stacks.clone();
            let name = name.clone();
            async move {
                stacks
                    .describe(&name)
                    .await
                    .unwrap()
                    .is_some_and(|s| s.status.as_str() == "CREATE_COMPLETE")
            }
        })
        .await;
    }

    pub fn config(&self) -> Config {
        Config::parse(Path::new("test.yaml"), &self.config_yaml).expect("test config")
    }

    /// Starts (or restarts) the server with the world's AWS clients.
    pub async fn start(&mut self) {
        self.start_with(self.aws.clone()).await;
    }

    /// Starts the server with other AWS clients (e.g. with mocked responses).
    pub async fn start_with(&mut self, aws: Aws) {
        assert!(self.server.is_none(), "server already running");
        // A killed server's last GitHub requests land before the new one
        // looks, as they would have long before a real restart.
        self.github.quiesce().await;
        self.server = Some(self.launch(aws).await);
    }

    /// Starts another server (replica `index`, counting from 1; the first
    /// server is 0) with these AWS clients, or starts replica `index` again.
    pub async fn start_replica(&mut self, index: usize, aws: Aws) {
        assert!(index >= 1, "replica 0 is the first server");
        self.github.quiesce().await;
        let running = self.launch(aws).await;
        if self.replicas.len() < index {
            self.replicas.resize_with(index, || None);
        }
        let slot = &mut self.replicas[index - 1];
        assert!(slot.is_none(), "replica {index} already running");
        *slot = Some(running);
    }

    /// Ends server `index` (0: the first) at once, as `kill -9` would.
    pub fn kill_server(&mut self, index: usize) {
        let server = match index {
            0 => self.server.take(),
            n => self.replicas.get_mut(n - 1).and_then(Option::take),
        };
        if let Some(server) = server {
            server.kill();
        }
    }

    /// The servers running, by index (0: the first).
    pub fn servers(&self) -> Vec<(usize, &Running)> {
        let first = self.server.iter().map(|s| (0, s));
        let others =
            (self.replicas.iter().enumerate()).filter_map(|(n, s)| s.as_ref().map(|s| (n + 1, s)));
        first.chain(others).collect()
    }

    /// The servers that hold the lease on periodic work.
    pub fn lease_holders(&self) -> Vec<usize> {
        (self.servers().into_iter())
            .filter(|(_, server)| *server.lease().borrow())
            .map(|(n, _)| n)
            .collect()
    }

    /// Waits until the shared SQS queue is empty (nothing waiting, nothing
    /// being worked on) and no server has work queued or running, twice in
    /// a row: every delivery so far, and every key it woke, has been done.
    pub async fn settle_shared(&self, limit: Duration) {
        let config = self.config();
        let queue = (self.aws.sqs.open(&config.sqs_queue()).await).expect("open the SQS queue");
        let quiet = || async {
            let depth = queue.depth().await.expect("queue depth");
            let idle = (self.servers().iter()).all(|(_, s)| s.busy() == 0);
            depth.visible + depth.in_flight == 0 && idle
        };
        eventually(
            "the shared queue is empty and every server idle",
            limit,
            || async {
                for (_, server) in self.servers() {
                    assert!(!server.is_finished(), "a server crashed");
                }
                quiet().await && quiet().await
            },
        )
        .await;
    }

    async fn launch(&self, aws: Aws) -> Running {
        server::start(Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            config: self.config(),
            github_api_url: self.github.url(),
            auth: match &self.app_key {
                Some(pem) => Auth::App {
                    app_id: 29_310,
                    key: octocrab::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key"),
                    installation_id: None,
                },
                None => Auth::Token("ghp_test_token".to_owned().into()),
            },
            webhook_secrets: vec![SECRET.to_owned().into()],
            shutdown_grace: Duration::from_secs(2),
            http: self.http_limits.clone(),
            aws: Some(aws),
            clock: self.clock.clone(),
            checks_origin: self.checks_origin.clone(),
            gate_key: self.gate_key.clone().map(Into::into),
        })
        .await
        .expect("start pullstack")
    }

    /// Stops the server gracefully.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Ends the server at once, as a crash would.
    pub fn kill(&mut self) {
        self.kill_server(0);
    }

    /// What the server's `/metrics` says now.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url()))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// AWS requests made so far, by (service, operation), from `/metrics`.
    pub async fn aws_requests(&self) -> BTreeMap<(String, String), u64> {
        let text = self.metrics().await;
        let label = |line: &str, name: &str| {
            let value = line.split(&format!("{name}=\"")).nth(1)?;
            Some(value.split('"').next()?.to_owned())
        };
        text.lines()
            .filter(|l| l.starts_with("pullstack_aws_requests_total{"))
            .filter_map(|l| {
                let count = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
                Some(((label(l, "service")?, label(l, "operation")?), count))
            })
            .collect()
    }

    /// The next server's URL, round-robin over those running.
    fn next_url(&self) -> String {
        let servers = self.servers();
        assert!(!servers.is_empty(), "no server running");
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("http://{}", servers[turn % servers.len()].1.addr)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Where the server listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().expect("server running").addr
    }

    /// Posts a signed delivery; returns the status and the JSON answer.
    pub async fn deliver(&self, event: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
        let headers = payloads::delivery_headers(event, SECRET.as_bytes(), &body);
        self.post(headers, body).await
    }

    /// Posts a delivery with exactly these headers.
    pub async fn post(
        &self,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .post(format!("{}/webhook", self.next_url()))
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("post webhook");
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// Pushes an image for `sha` to the app's ECR repository on moto.
    pub async fn push_image(&self, sha: &str) {
        let layer = format!("{sha}{}", "0".repeat(24));
        self.put_image(sha, &layer).await.expect("put image");
    }

    /// Pushes an image whose one layer has digest `sha256:<layer>` under
    /// `tag`; ECR's refusal, if any, in words.
    pub async fn put_image(&self, tag: &str, layer: &str) -> Result<(), String> {
        let ecr = aws_sdk_ecr::Client::new(&self.sdk);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1000,
                "digest": format!("sha256:{}", "c".repeat(64)),
            },
            "layers": [{
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 2000,
                "digest": format!("sha256:{layer}"),
            }],
        });
        ecr.put_image()
            .repository_name(&self.app)
            .image_tag(tag)
            .image_manifest(manifest.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|err| format!("{}", aws_sdk_ecr::error::DisplayErrorContext(err)))
    }

    pub fn pr(&self, number: u64) -> FakePr {
        self.github
            .pr(&self.repo, number)
            .expect("PR exists in the fake")
    }

    /// Delivers `pull_request` `action` for `pr` as the fake has it.
    pub async fn send_pr(
        &self,
        action: &str,
        pr: &FakePr,
        label: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let body = self.pr_payload(action, pr, label);
        self.deliver("pull_request", body).await
    }

    /// The `pull_request` `action` delivery's body for `pr`.
    pub fn pr_payload(&self, action: &str, pr: &FakePr, label: Option<&str>) -> Vec<u8> {
        let labels: Vec<&str> = pr.labels.iter().map(String::as_str).collect();
        payloads::pull_request(&PrPayload {
            action,
            repo: &self.repo,
            number: pr.number,
            head_sha: &pr.head_sha,
            head_ref: &pr.head_ref,
            head_repo: &pr.head_repo,
            base_ref: &pr.base_ref,
            title: &pr.title,
            merged: pr.merged,
            labels: &labels,
            sender: &pr.user,
            label,
        })
    }

    /// Opens PR `number` with its image already pushed; returns the head sha.
    pub async fn open_pr(&self, number: u64) -> String {
        let sha = fake_sha(&format!("{}-{number}-open", self.app));
        self.push_image(&sha).await;
        self.open_pr_at(number, &sha, &self.repo).await;
        sha
    }

    /// Opens PR `number` at `sha` from `head_repo` (a fork when it differs).
    pub async fn open_pr_at(&self, number: u64, sha: &str, head_repo: &str) {
        let pr = FakePr {
            number,
            title: format!("Change {number}"),
            head_sha: sha.to_owned(),
            head_ref: format!("feature-{number}"),
            head_repo: head_repo.to_owned(),
            user: WRITER.to_owned(),
            ..FakePr::default()
        };
        self.github.upsert_pr(&self.repo, pr.clone());
        let (status, _) = self.send_pr("opened", &pr, None).await;
        assert_eq!(status, 202);
    }

    /// Pushes a new commit (with its image) to PR `number`; returns its sha.
    pub async fn push(&self, number: u64, seed: &str) -> String {
        let sha = fake_sha(&format!("{}-{number}-{seed}", self.app));
        self.push_image(&sha).await;
        self.push_sha(number, &sha).await;
        sha
    }

    /// Moves PR `number` to `sha` and delivers `synchronize`.
    pub async fn push_sha(&self, number: u64, sha: &str) {
        let mut pr = self.pr(number);
        pr.head_sha = sha.to_owned();
        self.github.upsert_pr(&self.repo, pr.clone());
        let (status, _) = self.send_pr("synchronize", &pr, None).await;
        assert_eq!(status, 202);
    }

    /// Closes PR `number` in the fake; delivers `closed` when `deliver`.
    pub async fn close(&self, number: u64, deliver: bool) {
        let mut pr = self.pr(number);
        pr.state = "closed".into();
        self.github.upsert_pr(&self.repo, pr.clone());
        if deliver {
            let (status, _) = self.send_pr("closed", &pr, None).await;
            assert_eq!(status, 202);
        }
    }

    pub async fn reopen(&self, number: u64) {
        let mut pr = self.pr(number);
        pr.state = "open".into();
        self.github.upsert_pr(&self.repo, pr.clone());
        let (status, _) = self.send_pr("reopened", &pr, None).await;
        assert_eq!(status, 202);
    }

    /// Adds `label` to PR `number`, as `sender`.
    pub async fn label(&self, number: u64, label: &str, sender: &str) {
        let head = self.pr(number).head_sha;
        self.label_at(number, label, sender, &head).await;
    }

    /// Adds `label` to PR `number`, as `sender`, with a delivery that says
    /// the head was `sha` when it was added.
    pub async fn label_at(&self, number: u64, label: &str, sender: &str, sha: &str) {
        let mut pr = self.pr(number);
        pr.labels.push(label.to_owned());
        self.github.upsert_pr(&self.repo, pr.clone());
        let sent = FakePr {
            user: sender.to_owned(),
            head_sha: sha.to_owned(),
            ..pr
        };
        let (status, _) = self.send_pr("labeled", &sent, Some(label)).await;
        assert_eq!(status, 202);
    }

    /// `login` comments `body` on PR `number`; returns the comment id.
    pub async fn comment(&self, number: u64, login: &str, body: &str) -> u64 {
        let id = self.github.add_comment(&self.repo, number, login, body);
        self.deliver("issue_comment", self.comment_payload(number, id))
            .await;
        id
    }

    /// The `issue_comment` delivery for comment `id`, as GitHub sends it:
    /// its author, body and time are the fake's.
    pub fn comment_payload(&self, number: u64, id: u64) -> Vec<u8> {
        self.comment_payload_on(&self.repo, number, id)
    }

    /// [`World::comment_payload`] on repository `repo`.
    pub fn comment_payload_on(&self, repo: &str, number: u64, id: u64) -> Vec<u8> {
        let comment = self
            .github
            .comments(repo, number)
            .into_iter()
            .find(|c| c.id == id)
            .expect("the comment exists");
        let payload = payloads::issue_comment(
            repo,
            number,
            id,
            &comment.user,
            "CONTRIBUTOR",
            &comment.body,
            true,
        );
        let mut v: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
        let at = comment
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        v["comment"]["created_at"] = serde_json::json!(at);
        v["comment"]["updated_at"] = serde_json::json!(at);
        serde_json::to_vec(&v).expect("JSON")
    }

    /// pullstack's own comments on PR `number`.
    pub fn bot_comments(&self, number: u64) -> Vec<FakeComment> {
        self.github
            .comments(&self.repo, number)
            .into_iter()
            .filter(|c| c.user == BOT)
            .collect()
    }

    /// pullstack's sticky comment for PR `number`.
    pub fn sticky(&self, number: u64) -> Option<FakeComment> {
        self.bot_comments(number).into_iter().find(|c| {
            c.body
                .starts_with(&format!("<!-- pullstack:state {{\"env\":\"pr-{number}\""))
        })
    }

    pub fn stack_name(&self, number: u64) -> String {
        format!("{}-pr-{number}", self.app)
    }

    pub async fn stack(&self, number: u64) -> Option<Stack> {
        self.aws
            .stacks
            .describe(&self.stack_name(number))
            .await
            .expect("describe stack")
    }

    /// Fails the test if the server stopped on its own.
    pub fn assert_alive(&self) {
        if let Some(server) = &self.server {
            assert!(!server.is_finished(), "the server crashed");
        }
    }

    /// Waits until the server's queue has nothing queued or running: every
    /// delivery so far has been handled. Polls waiting for a deadline may
    /// remain.
    pub async fn settle(&self) {
        self.settle_within(WAIT).await;
    }

    /// [`World::settle`], for work that may take up to `limit`.
    pub async fn settle_within(&self, limit: Duration) {
        let server = self.server.as_ref().expect("server running");
        tokio::time::timeout(limit, server.idle())
            .await
            .expect("the queue settles");
        self.assert_alive();
    }

    /// Runs a resync now and waits until everything it woke has run.
    pub async fn resync(&self) {
        self.resync_within(WAIT).await;
    }

    /// [`World::resync`], for work that may take up to `limit`.
    pub async fn resync_within(&self, limit: Duration) {
        let server = self.server.as_ref().expect("server running");
        server.queue().push(Job::Resync, None);
        self.settle_within(limit).await;
    }

    /// Waits until the server has finished `n` reads of the account quotas
    /// (they are read in the background).
    pub async fn quota_reads(&self, n: u64) {
        let server = self.server.as_ref().expect("server running");
        let mut reads = server.quota_reads();
        tokio::time::timeout(WAIT, reads.wait_for(|read| *read >= n))
            .await
            .expect("the quotas are read")
            .expect("the server is running");
    }

    /// Moves the server's clock forward, as if `by` had passed.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// pullstack's next reply on PR `number` (its comments other than the
    /// sticky one), in order, waiting for it to be posted. Each reply is
    /// handed out once, so an unexpected extra one is seen by
    /// [`World::assert_no_more_comments`].
    pub async fn next_comment(&self, number: u64) -> FakeComment {
        let index = *self.consumed.lock().unwrap().get(&number).unwrap_or(&0);
        let what = format!("reply number {} on PR #{number}", index + 1);
        eventually(&what, WAIT, || async {
            self.assert_alive();
            self.replies(number).len() > index
        })
        .await;
        *self.consumed.lock().unwrap().entry(number).or_default() += 1;
        self.replies(number).swap_remove(index)
    }

    /// Fails if PR `number` has replies [`World::next_comment`] did not
    /// hand out, once the queue has settled.
    pub async fn assert_no_more_comments(&self, number: u64) {
        self.settle().await;
        let index = *self.consumed.lock().unwrap().get(&number).unwrap_or(&0);
        let extra: Vec<String> = self.replies(number)[index..]
            .iter()
            .map(|c| c.body.clone())
            .collect();
        assert!(
            extra.is_empty(),
            "unexpected replies on PR #{number}: {extra:#?}"
        );
    }

    fn replies(&self, number: u64) -> Vec<FakeComment> {
        let sticky = self.sticky(number).map(|c| c.id);
        let mut replies = self.bot_comments(number);
        replies.retain(|c| Some(c.id) != sticky);
        replies
    }

    /// Waits until the sticky comment of PR `number` contains `text`.
    pub async fn wait_comment(&self, number: u64, text: &str) -> FakeComment {
        let what = format!("PR #{number}'s comment to say {text:?}");
        let mut answered = self.github.answered();
        let start = Instant::now();
        // Looks again as soon as the fake answers a request, so the moment a
        // write lands is seen (benches time it), and at least every 50 ms,
        // so a server that died is noticed.
        while !self.sticky(number).is_some_and(|c| c.body.contains(text)) {
            self.assert_alive();
            assert!(
                start.elapsed() < WAIT,
                "timed out after {WAIT:?} waiting for: {what}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(50), answered.changed()).await;
        }
        self.sticky(number).unwrap()
    }

    /// Waits until the stack of PR `number` is stable at `sha`.
    pub async fn wait_stack_at(&self, number: u64, sha: &str) -> Stack {
        self.wait_named_stack_at(&self.stack_name(number), sha)
            .await
    }

    /// Waits until stack `name` is stable at `sha`.
    pub async fn wait_named_stack_at(&self, name: &str, sha: &str) -> Stack {
        let describe = || async {
            self.aws
                .stacks
                .describe(name)
                .await
                .expect("describe stack")
        };
        let what = format!("stack {name} complete at {sha}");
        eventually(&what, WAIT, || async {
            self.assert_alive();
            describe().await.is_some_and(|s| {
                s.tag("pullstack:commit") == Some(sha) && s.status.as_str().ends_with("_COMPLETE")
            })
        })
        .await;
        describe().await.unwrap()
    }

    /// Pushes a new commit (with its image) to `branch`, creating it if
    /// needed, and delivers the `push`; returns the sha.
    pub async fn push_branch(&self, branch: &str, seed: &str) -> String {
        let sha = fake_sha(&format!("{}-{branch}-{seed}", self.app));
        self.push_image(&sha).await;
        let before = self
            .github
            .branch(&self.repo, branch)
            .unwrap_or_else(|| "0".repeat(40));
        self.github.add_branch(&self.repo, branch, &sha);
        let git_ref = format!("refs/heads/{branch}");
        let created = before == "0".repeat(40);
        let body = payloads::push(&self.repo, &git_ref, &before, &sha, created, false, false);
        let (status, _) = self.deliver("push", body).await;
        assert_eq!(status, 202, "push to {branch}");
        sha
    }

    /// Deletes `branch` in the fake; delivers `delete` when `deliver`.
    pub async fn delete_branch(&self, branch: &str, deliver: bool) {
        self.github.remove_branch(&self.repo, branch);
        if deliver {
            let (status, _) = self
                .deliver("delete", payloads::delete_branch(&self.repo, branch))
                .await;
            assert_eq!(status, 202, "delete {branch}");
        }
    }

    pub fn branch_stack_name(&self, branch: &str) -> String {
        EnvKey::Branch(branch.to_owned()).stack_name(&self.app)
    }

    pub async fn branch_stack(&self, branch: &str) -> Option<Stack> {
        self.aws
            .stacks
            .describe(&self.branch_stack_name(branch))
            .await
            .expect("describe stack")
    }

    pub async fn wait_stack_gone(&self, number: u64) {
        self.wait_named_stack_gone(&self.stack_name(number)).await;
    }

    pub async fn wait_named_stack_gone(&self, name: &str) {
        let what = format!("stack {name} gone");
        eventually(&what, WAIT, || async {
            self.assert_alive();
            self.aws
                .stacks
                .describe(name)
                .await
                .expect("describe stack")
                .is_none()
        })
        .await;
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for index in 0..=self.replicas.len() {
            self.kill_server(index);
        }
    }
}

/// `extra` laid over `base`: mappings merge key by key, anything else is
/// replaced, so a test states only the settings it cares about.
pub fn merge_yaml(base: &str, extra: &str) -> String {
    fn merge(base: &mut serde_yaml::Value, extra: serde_yaml::Value) {
        match (base, extra) {
            (serde_yaml::Value::Mapping(base), serde_yaml::Value::Mapping(extra)) => {
                for (key, value) in extra {
                    match base.get_mut(&key) {
                        Some(slot) => merge(slot, value),
                        None => {
                            base.insert(key, value);
                        }
                    }
                }
            }
            (slot, value) => *slot = value,
        }
    }
    let mut merged: serde_yaml::Value = serde_yaml::from_str(base).expect("base test config");
    if !extra.trim().is_empty() {
        let extra: serde_yaml::Value = serde_yaml::from_str(extra).expect("extra test config");
        merge(&mut merged, extra);
    }
    serde_yaml::to_string(&merged).expect("test config")
}

/// What every server in this process logs, at debug level for pullstack
/// and info for its dependencies, once [`capture_logs`] was called.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing the logs of the whole process, for good: the
/// subscriber is global because a thread's own one misses events that
/// other tests' threads registered first. A test looks in them for a value
/// of its own (a random secret), which no other test logs.
pub fn capture_logs() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,pullstack=debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // With RUST_LOG set, a world installed the stderr subscriber first:
        // this one then cannot be, and captures nothing.
        tracing::subscriber::set_global_default(subscriber)
            .expect("no global subscriber yet (unset RUST_LOG)");
        logs
    })
    .clone()
}

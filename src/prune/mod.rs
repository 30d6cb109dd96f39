//! ECR image clean-up. Repositories opt in with the tag
//! `pullstack:prune=true`; in those, images nothing uses and nobody has
//! pushed or pulled for `images.prune_after` are deleted.
//!
//! "In use" is read from three places, so one blind spot does not cost a
//! live image: the `Image` parameter of every stack pullstack manages
//! (production and previews), every ACTIVE ECS task definition, and every
//! running ECS task (with the digest ECS resolved its tag to). Any failure to
//! read them stops the run before anything is deleted. The decisions
//! themselves are made in [`plan`].

pub mod plan;
pub mod reference;

use crate::aws::Aws;
use crate::aws::registry::ImageDetail;
use crate::aws::stacks::tag;
use crate::config::ImagesConfig;
use anyhow::Context;
use plan::{Decision, Image, Reason, Use, Verdict};
use reference::ImageRef;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One run's settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How long an unreferenced image is kept after its last push or pull.
    pub window: Duration,
    /// Decide, but delete nothing.
    pub dry_run: bool,
}

/// What happened to one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    Deleted,
    WouldDelete,
    /// Deleted by someone else between listing and deleting.
    AlreadyGone,
    /// BatchDeleteImage refused it: the code and reason ECR gave.
    Failed(String),
}

/// One image's decision and what came of it.
#[derive(Clone, Debug)]
pub struct ImageOutcome {
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub outcome: Outcome,
    pub reason: Reason,
}

impl fmt::Display for ImageOutcome {
    /// `would delete  demo@sha256:… [v1]: unreferenced; pushed 3d ago, …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.outcome {
            Outcome::Kept => "keep".to_owned(),
            Outcome::Deleted => "deleted".to_owned(),
            Outcome::WouldDelete => "would delete".to_owned(),
            Outcome::AlreadyGone => "already gone".to_owned(),
            Outcome::Failed(why) => format!("FAILED to delete ({why})"),
        };
        let tags = if self.tags.is_empty() {
            "untagged".to_owned()
        } else {
            self.tags.join(", ")
        };
        write!(
            f,
            "{what:<12}  {}@{} [{tags}]: {}",
            self.repository, self.digest, self.reason
        )
    }
}

/// A repository the run could not finish.
#[derive(Clone, Debug)]
pub struct RepositoryError {
    pub repository: String,
    pub error: String,
}

/// Everything one run decided and did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub dry_run: bool,
    /// The opted-in repositories, by name.
    pub repositories: Vec<String>,
    pub images: Vec<ImageOutcome>,
    pub errors: Vec<RepositoryError>,
}

impl Report {
    fn count(&self, outcome: impl Fn(&Outcome) -> bool) -> usize {
        self.images.iter().filter(|i| outcome(&i.outcome)).count()
    }

    /// Whether anything went wrong: a repository not read, or an image not deleted.
    pub fn failed(&self) -> bool {
        !self.errors.is_empty() || self.count(|o| matches!(o, Outcome::Failed(_))) > 0
    }

    /// One line for the end of a run.
    pub fn summary(&self) -> String {
        let repositories = self.repositories.len();
        let kept = self.count(|o| *o == Outcome::Kept);
        let mut line = if self.dry_run {
            let would = self.count(|o| *o == Outcome::WouldDelete);
            format!(
                "dry run: would delete {would} and keep {kept} image(s) in {repositories} opted-in repositor{}",
                if repositories == 1 { "y" } else { "ies" }
            )
        } else {
            let deleted = self.count(|o| *o == Outcome::Deleted);
            format!(
                "deleted {deleted} and kept {kept} image(s) in {repositories} opted-in repositor{}",
                if repositories == 1 { "y" } else { "ies" }
            )
        };
        let gone = self.count(|o| *o == Outcome::AlreadyGone);
        if gone > 0 {
            line.push_str(&format!("; {gone} already gone"));
        }
        let failed = self.count(|o| matches!(o, Outcome::Failed(_)));
        if failed > 0 {
            line.push_str(&format!("; {failed} could not be deleted"));
        }
        if !self.errors.is_empty() {
            line.push_str(&format!(
                "; {} repositor{} not read",
                self.errors.len(),
                if self.errors.len() == 1 { "y" } else { "ies" }
            ));
        }
        line
    }

    /// Logs the run: every deletion (or failure) with its reason, kept
    /// images at debug level, and a summary.
    pub fn log(&self) {
        for image in &self.images {
            let tags = image.tags.join(",");
            let reason = image.reason.to_string();
            let (repository, digest) = (&image.repository, &image.digest);
            match &image.outcome {
                Outcome::Deleted => {
                    tracing::info!(%repository, %digest, %tags, %reason, "image deleted");
                }
                Outcome::AlreadyGone => {
                    tracing::info!(%repository, %digest, %tags, %reason, "image already gone");
                }
                Outcome::WouldDelete => {
                    tracing::info!(%repository, %digest, %tags, %reason, "image would be deleted");
                }
                Outcome::Failed(error) => {
                    tracing::warn!(%repository, %digest, %tags, %reason, %error, "image not deleted");
                }
                Outcome::Kept => {
                    tracing::debug!(%repository, %digest, %tags, %reason, "image kept");
                }
            }
        }
        for e in &self.errors {
            tracing::warn!(repository = %e.repository, error = %e.error, "repository skipped");
        }
        let summary = self.summary();
        if self.failed() {
            tracing::warn!(%summary, "image prune finished with errors");
        } else {
            tracing::info!(%summary, "image prune finished");
        }
    }
}

/// Runs the clean-up once. An error means nothing was deleted; trouble
/// with one repository is in the report and does not stop the others.
pub async fn prune(aws: &Aws, options: &Options) -> anyhow::Result<Report> {
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let repositories = aws
        .registry
        .opted_in()
        .await
        .context("listing the opted-in ECR repositories")?;
    report.repositories = repositories.clone();
    if repositories.is_empty() {
        return Ok(report);
    }
    // Images first, uses last: the uses are then as fresh as they can be
    // when the deletions start.
    let mut listed = Vec::new();
    for repository in repositories {
        match images(aws, &repository).await {
            Ok(images) => listed.push((repository, images)),
            Err(err) => report.errors.push(RepositoryError {
                repository,
                error: format!("{err:#}"),
            }),
        }
    }
    let uses = uses(aws)
        .await
        .context("reading which images are in use; nothing was deleted")?;
    for (repository, images) in listed {
        let decisions = plan::plan(
            &repository,
            &images,
            &uses,
            chrono::Utc::now(),
            options.window,
        );
        apply(aws, &repository, decisions, options.dry_run, &mut report).await;
    }
    Ok(report)
}

/// Runs the clean-up every `config.interval` until `shutdown`, whenever
/// `held` says this process holds the periodic work (with several replicas,
/// one does). The first run is one interval after start, so restarts do not
/// each cause a run.
pub fn spawn(
    aws: Aws,
    config: ImagesConfig,
    held: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if config.interval.is_zero() {
            return;
        }
        let options = Options {
            window: config.prune_after,
            dry_run: false,
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(config.interval) => {}
            }
            if !*held.borrow() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                result = prune(&aws, &options) => match result {
                    Ok(report) => report.log(),
                    Err(err) => tracing::warn!(error = %format!("{err:#}"), "image prune failed"),
                },
            }
        }
    })
}

/// A repository's images, with what each belongs to.
async fn images(aws: &Aws, repository: &str) -> anyhow::Result<Vec<Image>> {
    let details = aws.registry.images(repository).await?;
    let indexes: Vec<String> = details
        .iter()
        .filter(|d| d.is_index())
        .map(|d| d.digest.clone())
        .collect();
    let mut part_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !indexes.is_empty() {
        for (index, manifests) in aws.registry.index_manifests(repository, &indexes).await? {
            for manifest in manifests {
                part_of.entry(manifest).or_default().push(index.clone());
            }
        }
    }
    Ok(details
        .into_iter()
        .map(
            |ImageDetail {
                 digest,
                 tags,
                 pushed_at,
                 last_pull,
                 subject,
                 ..
             }| {
                let mut belongs = part_of.remove(&digest).unwrap_or_default();
                belongs.extend(subject);
                Image {
                    digest,
                    tags,
                    pushed_at,
                    last_pull,
                    part_of: belongs,
                }
            },
        )
        .collect())
}

/// Every image reference in use, from stacks, task definitions and tasks.
async fn uses(aws: &Aws) -> anyhow::Result<Vec<Use>> {
    let (stacks, definitions, tasks) = tokio::try_join!(
        async { anyhow::Ok(aws.stacks.list_tagged(tag::MANAGED, "true").await?) },
        async { anyhow::Ok(aws.usage.task_definitions().await?) },
        async { anyhow::Ok(aws.usage.running_tasks().await?) },
    )?;
    let mut uses = Vec::new();
    let mut add = |by: String, image: &str, digest: Option<String>| match ImageRef::parse(image) {
        Some(mut image) => {
            if digest.is_some() {
                image.digest = digest;
            }
            uses.push(Use { by, image });
        }
        None => tracing::debug!(%by, %image, "not an image reference; ignored"),
    };
    for stack in &stacks {
        if let Some(image) = stack.parameters.get("Image") {
            add(format!("stack {}", stack.name), image, None);
        }
    }
    for u in definitions.into_iter().chain(tasks) {
        add(u.by, &u.image, u.digest);
    }
    Ok(uses)
}

/// Deletes what the plan says to (unless a dry run) and records every image.
async fn apply(
    aws: &Aws,
    repository: &str,
    decisions: Vec<Decision>,
    dry_run: bool,
    report: &mut Report,
) {
    let doomed: Vec<String> = decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Delete)
        .map(|d| d.digest.clone())
        .collect();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut deleted: Vec<String> = Vec::new();
    let mut already_gone: Vec<String> = Vec::new();
    if !dry_run && !doomed.is_empty() {
        match aws.registry.delete(repository, &doomed).await {
            Ok((gone, failures)) => {
                deleted = gone;
                for f in failures {
                    if f.code == "ImageNotFound" {
                        // Deleted by someone else since it was listed.
                        already_gone.push(f.digest);
                    } else {
                        failed.insert(f.digest, format!("{}: {}", f.code, f.reason));
                    }
                }
            }
            Err(err) => {
                report.errors.push(RepositoryError {
                    repository: repository.to_owned(),
                    error: err.to_string(),
                });
                for digest in &doomed {
                    failed.insert(digest.clone(), "BatchDeleteImage failed".to_owned());
                }
            }
        }
    }
    for decision in decisions {
        let outcome = match decision.verdict {
            Verdict::Keep => Outcome::Kept,
            Verdict::Delete if dry_run => Outcome::WouldDelete,
            Verdict::Delete => match failed.remove(&decision.digest) {
                Some(why) => Outcome::Failed(why),
                None if deleted.contains(&decision.digest) => Outcome::Deleted,
                None if already_gone.contains(&decision.digest) => Outcome::AlreadyGone,
                None => Outcome::Failed("not reported deleted".to_owned()),
            },
        };
        report.images.push(ImageOutcome {
            repository: repository.to_owned(),
            digest: decision.digest,
            tags: decision.tags,
            outcome,
            reason: decision.reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(outcome: Outcome, tags: &[&str]) -> ImageOutcome {
        ImageOutcome {
            repository: "demo".into(),
            digest: "sha256:ab".into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            outcome,
            reason: Reason::InUse(vec!["stack demo-pr-1".into()]),
        }
    }

    #[test]
    fn one_line_per_image_says_what_and_why() {
        assert_eq!(
            outcome(Outcome::Kept, &["v1", "abc"]).to_string(),
            "keep          demo@sha256:ab [v1, abc]: in use by stack demo-pr-1"
        );
        assert_eq!(
            outcome(Outcome::WouldDelete, &[]).to_string(),
            "would delete  demo@sha256:ab [untagged]: in use by stack demo-pr-1"
        );
        assert!(
            outcome(
                Outcome::Failed("ImageReferencedByManifestList: x".into()),
                &[]
            )
            .to_string()
            .starts_with("FAILED to delete (ImageReferencedByManifestList: x)  demo@")
        );
    }

    #[test]
    fn the_summary_counts_and_failures_fail_the_run() {
        let mut report = Report {
            dry_run: false,
            repositories: vec!["demo".into()],
            images: vec![
                outcome(Outcome::Kept, &[]),
                outcome(Outcome::Deleted, &[]),
                outcome(Outcome::AlreadyGone, &[]),
            ],
            errors: Vec::new(),
        };
        assert_eq!(
            report.summary(),
            "deleted 1 and kept 1 image(s) in 1 opted-in repository; 1 already gone"
        );
        assert!(!report.failed());
        report
            .images
            .push(outcome(Outcome::Failed("x".into()), &[]));
        report.errors.push(RepositoryError {
            repository: "other".into(),
            error: "AccessDenied".into(),
        });
        assert!(report.failed());
        assert!(
            report
                .summary()
                .ends_with("; 1 could not be deleted; 1 repository not read"),
            "{}",
            report.summary()
        );
        report.dry_run = true;
        assert!(
            report
                .summary()
                .starts_with("dry run: would delete 0 and keep 1")
        );
    }
}

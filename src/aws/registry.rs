//! ECR for the image clean-up: the repositories that opted in, their
//! images, and deleting images by digest.

use super::error::{Error, ErrorKind, Result};
use aws_sdk_ecr::Client;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::ImageIdentifier;
use chrono::{DateTime, Utc};

/// The repository tag that opts a repository in to the clean-up.
pub const PRUNE_TAG: &str = "pullstack:prune";
/// The value [`PRUNE_TAG`] must have; anything else leaves the repository alone.
pub const PRUNE_TAG_VALUE: &str = "true";

/// BatchDeleteImage and BatchGetImage take at most this many image ids.
const BATCH: usize = 100;

/// Media types of manifests that list other manifests (multi-platform images).
const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
];

/// One image (manifest) in a repository, as DescribeImages reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDetail {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: Option<DateTime<Utc>>,
    /// Not recorded for images never pulled (and not reported by every
    /// ECR implementation).
    pub last_pull: Option<DateTime<Utc>>,
    pub media_type: Option<String>,
    /// For a signature, SBOM or other attached artifact: the image it is about.
    pub subject: Option<String>,
}

impl ImageDetail {
    /// Whether the image is an index whose manifests are other images here.
    pub fn is_index(&self) -> bool {
        self.media_type
            .as_deref()
            .is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m))
    }
}

/// An image BatchDeleteImage did not delete, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteFailure {
    pub digest: String,
    pub code: String,
    pub reason: String,
}

#[derive(Clone)]
pub struct Registry {
    client: Client,
}

impl Registry {
    pub fn new(client: Client) -> Registry {
        Registry { client }
    }

    /// The name of every repository tagged `pullstack:prune=true`. ECR
    /// reports tags per repository only, hence one ListTagsForResource each.
    pub async fn opted_in(&self) -> Result<Vec<String>> {
        let mut repositories = Vec::new();
        let mut pages = self.client.describe_repositories().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("DescribeRepositories", "*", &e))?;
            for repo in page.repositories() {
                let (Some(name), Some(arn)) = (repo.repository_name(), repo.repository_arn())
                else {
                    continue;
                };
                let tags = match self
                    .client
                    .list_tags_for_resource()
                    .resource_arn(arn)
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(err) => match api("ListTagsForResource", name, &err) {
                        // Deleted since it was listed: nothing to clean.
                        err if err.code == "RepositoryNotFoundException" => continue,
                        err => return Err(err),
                    },
                };
                let opted_in = tags
                    .tags()
                    .iter()
                    .any(|t| t.key() == PRUNE_TAG && t.value() == PRUNE_TAG_VALUE);
                if opted_in {
                    repositories.push(name.to_owned());
                }
            }
        }
        Ok(repositories)
    }

    /// Every image in `repository`, across all pages.
    pub async fn images(&self, repository: &str) -> Result<Vec<ImageDetail>> {
        let mut images = Vec::new();
        let mut pages = self
            .client
            .describe_images()
            .repository_name(repository)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("DescribeImages", repository, &e))?;
            images.extend(page.image_details().iter().filter_map(|image| {
                Some(ImageDetail {
                    digest: image.image_digest()?.to_owned(),
                    tags: image.image_tags().to_vec(),
                    pushed_at: image.image_pushed_at().and_then(chrono_time),
                    last_pull: image.last_recorded_pull_time().and_then(chrono_time),
                    media_type: image.image_manifest_media_type().map(str::to_owned),
                    subject: image.subject_manifest_digest().map(str::to_owned),
                })
            }));
        }
        Ok(images)
    }

    /// The digests each index in `indexes` lists, keyed by the index's digest.
    pub async fn index_manifests(
        &self,
        repository: &str,
        indexes: &[String],
    ) -> Result<Vec<(String, Vec<String>)>> {
        let mut listed = Vec::new();
        for chunk in indexes.chunks(BATCH) {
            let out = self
                .client
                .batch_get_image()
                .repository_name(repository)
                .set_image_ids(Some(chunk.iter().map(|d| by_digest(d)).collect()))
                .set_accepted_media_types(Some(
                    INDEX_MEDIA_TYPES.iter().map(|m| (*m).to_owned()).collect(),
                ))
                .send()
                .await
                .map_err(|e| api("BatchGetImage", repository, &e))?;
            if let Some(failure) = out.failures().first() {
                // An index we cannot read might protect images we would
                // otherwise delete: stop rather than guess.
                let code = failure.failure_code().map_or("Unknown", |c| c.as_str());
                let reason = failure.failure_reason().unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::of(code, reason),
                    "ECR",
                    "BatchGetImage",
                    repository,
                    code,
                    reason,
                ));
            }
            for image in out.images() {
                let Some(digest) = image.image_id().and_then(|id| id.image_digest()) else {
                    continue;
                };
                let manifest = image.image_manifest().unwrap_or_default();
                let Some(manifests) = manifest_digests(manifest) else {
                    return Err(Error::new(
                        ErrorKind::Other,
                        "ECR",
                        "BatchGetImage",
                        format!("{repository}@{digest}"),
                        "InvalidManifest",
                        "the image index is not valid JSON",
                    ));
                };
                listed.push((digest.to_owned(), manifests));
            }
        }
        Ok(listed)
    }

    /// Deletes images by digest (with all their tags, which is also how
    /// images go from repositories with immutable tags). Returns the digests
    /// deleted and the per-image failures.
    pub async fn delete(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<(Vec<String>, Vec<DeleteFailure>)> {
        let mut deleted = Vec::new();
        let mut failures = Vec::new();
        for chunk in digests.chunks(BATCH) {
            let out = self
                .client
                .batch_delete_image()
                .repository_name(repository)
                .set_image_ids(Some(chunk.iter().map(|d| by_digest(d)).collect()))
                .send()
                .await
                .map_err(|e| api("BatchDeleteImage", repository, &e))?;
            for id in out.image_ids() {
                if let Some(digest) = id.image_digest()
                    && !deleted.iter().any(|d| d == digest)
                {
                    // One entry per tag removed: count the image once.
                    deleted.push(digest.to_owned());
                }
            }
            failures.extend(out.failures().iter().map(|f| {
                DeleteFailure {
                    digest: f
                        .image_id()
                        .and_then(|id| id.image_digest())
                        .unwrap_or("?")
                        .to_owned(),
                    code: f
                        .failure_code()
                        .map_or("Unknown", |c| c.as_str())
                        .to_owned(),
                    reason: f.failure_reason().unwrap_or_default().to_owned(),
                }
            }));
        }
        // ECR answers for every image, but not every implementation does
        // (moto reports nothing for an untagged image): look again.
        for digest in digests {
            let answered = deleted.contains(digest) || failures.iter().any(|f| &f.digest == digest);
            if answered {
                continue;
            }
            if self.present(repository, digest).await? {
                failures.push(DeleteFailure {
                    digest: digest.clone(),
                    code: "NotDeleted".to_owned(),
                    reason: "still present after BatchDeleteImage".to_owned(),
                });
            } else {
                deleted.push(digest.clone());
            }
        }
        Ok((deleted, failures))
    }

    /// Whether `repository` still holds the image `digest`.
    async fn present(&self, repository: &str, digest: &str) -> Result<bool> {
        match self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(by_digest(digest))
            .send()
            .await
        {
            Ok(out) => Ok(!out.image_details().is_empty()),
            Err(err) => match api("DescribeImages", repository, &err) {
                err if err.code == "ImageNotFoundException" => Ok(false),
                err => Err(err),
            },
        }
    }
}

/// The digests of the manifests an image index lists (none for a plain
/// image manifest), or `None` when the manifest cannot be read.
pub fn manifest_digests(manifest: &str) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        digest: String,
    }
    serde_json::from_str::<Index>(manifest)
        .ok()
        .map(|index| index.manifests.into_iter().map(|m| m.digest).collect())
}

fn by_digest(digest: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_digest(digest).build()
}

fn chrono_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn api<E, R>(operation: &'static str, target: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Error::from_sdk("ECR", operation, target, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_manifests_are_read_from_the_index() {
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[{"digest":"sha256:aa","platform":{"architecture":"amd64"}},
                         {"digest":"sha256:bb","platform":{"architecture":"arm64"}}]}"#;
        assert_eq!(manifest_digests(index).unwrap(), ["sha256:aa", "sha256:bb"]);
        let plain = r#"{"layers":[{"digest":"sha256:cc"}]}"#;
        assert_eq!(manifest_digests(plain), Some(vec![]));
        assert_eq!(manifest_digests("not json"), None);
    }
}

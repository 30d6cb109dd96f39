//! ECS: the container images that active task definitions and running
//! tasks name, so the image clean-up never deletes one in use.

use super::error::{Error, Result};
use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::{DesiredStatus, TaskDefinitionStatus};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// DescribeTaskDefinition calls in flight at once: quick on big accounts,
/// yet well inside ECS's request rate.
const CONCURRENCY: usize = 8;
/// DescribeTasks takes at most this many tasks.
const TASK_BATCH: usize = 100;

/// One container image something uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUse {
    /// Who uses it, for the log: "task definition web:12".
    pub by: String,
    /// The image as written: `repo:tag`, `repo@sha256:…` or both.
    pub image: String,
    /// The digest ECS resolved the image to, for a running task.
    pub digest: Option<String>,
}

#[derive(Clone)]
pub struct Usage {
    client: Client,
}

impl Usage {
    pub fn new(client: Client) -> Usage {
        Usage { client }
    }

    /// The images of every ACTIVE task definition.
    pub async fn task_definitions(&self) -> Result<Vec<ImageUse>> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_task_definitions()
            .status(TaskDefinitionStatus::Active)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("ListTaskDefinitions", "ACTIVE", &e))?;
            arns.extend(page.task_definition_arns().iter().cloned());
        }
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut reads = JoinSet::new();
        for arn in arns {
            let client = self.client.clone();
            let permits = permits.clone();
            reads.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = client
                    .describe_task_definition()
                    .task_definition(&arn)
                    .send()
                    .await;
                (arn, result)
            });
        }
        let mut uses = Vec::new();
        while let Some(joined) = reads.join_next().await {
            let (arn, result) = joined.expect("DescribeTaskDefinition task panicked");
            let out = result.map_err(|e| api("DescribeTaskDefinition", &arn, &e))?;
            let by = format!("task definition {}", arn.rsplit('/').next().unwrap_or(&arn));
            let containers = out
                .task_definition()
                .map(|t| t.container_definitions())
                .unwrap_or_default();
            uses.extend(containers.iter().filter_map(|c| {
                Some(ImageUse {
                    by: by.clone(),
                    image: c.image()?.to_owned(),
                    digest: None,
                })
            }));
        }
        Ok(uses)
    }

    /// The images, and the digests ECS resolved them to, of every task
    /// meant to be running, in every cluster. A service keeps starting
    /// tasks from the digest it resolved at deployment even after its tag
    /// has moved on, so the digest counts as in use too.
    pub async fn running_tasks(&self) -> Result<Vec<ImageUse>> {
        let mut clusters = Vec::new();
        let mut pages = self.client.list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("ListClusters", "*", &e))?;
            clusters.extend(page.cluster_arns().iter().cloned());
        }
        let mut uses = Vec::new();
        for cluster in clusters {
            let mut tasks = Vec::new();
            let mut pages = self
                .client
                .list_tasks()
                .cluster(&cluster)
                .desired_status(DesiredStatus::Running)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| api("ListTasks", &cluster, &e))?;
                tasks.extend(page.task_arns().iter().cloned());
            }
            let cluster_name = cluster.rsplit('/').next().unwrap_or(&cluster);
            for chunk in tasks.chunks(TASK_BATCH) {
                let out = self
                    .client
                    .describe_tasks()
                    .cluster(&cluster)
                    .set_tasks(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| api("DescribeTasks", &cluster, &e))?;
                for task in out.tasks() {
                    let arn = task.task_arn().unwrap_or_default();
                    let id = arn.rsplit('/').next().unwrap_or(arn);
                    let by = format!("task {id} in cluster {cluster_name}");
                    uses.extend(task.containers().iter().filter_map(|c| {
                        Some(ImageUse {
                            by: by.clone(),
                            image: c.image()?.to_owned(),
                            digest: c.image_digest().map(str::to_owned),
                        })
                    }));
                }
            }
        }
        Ok(uses)
    }
}

fn api<E, R>(operation: &'static str, target: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Error::from_sdk("ECS", operation, target, err)
}

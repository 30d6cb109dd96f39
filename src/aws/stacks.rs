//! CloudFormation: the stacks pullstack owns.
//!
//! Only CreateStack, UpdateStack and DeleteStack are used: they behave the
//! same on AWS and on local emulators, while the change-set path does not
//! (an emulator may drop outputs there). Throttling is retried by the SDK's
//! standard retry policy, with jitter.

use super::error::{Error, ErrorKind, Result};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{
    Capability, Parameter, ResourceStatus, Stack as SdkStack, StackStatus, Tag,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Tag keys on every stack pullstack owns.
pub mod tag {
    pub const MANAGED: &str = "pullstack:managed";
    pub const REPO: &str = "pullstack:repo";
    /// The app (`app` in the config) a database clone belongs to.
    pub const APP: &str = "pullstack:app";
    pub const ENV: &str = "pullstack:env";
    pub const PR: &str = "pullstack:pr";
    pub const COMMIT: &str = "pullstack:commit";
    pub const ROLE: &str = "pullstack:role";
    pub const CREATED_AT: &str = "pullstack:created-at";
    /// The last deploy or wake, RFC 3339: when idle time starts counting.
    pub const ACTIVE_AT: &str = "pullstack:active-at";
    /// Set while the environment is scaled to zero for being idle.
    pub const IDLE_SINCE: &str = "pullstack:idle-since";
    /// A digest of the template, parameters and other tags last sent.
    pub const SPEC: &str = "pullstack:spec";
}

/// A stack as pullstack sees it.
#[derive(Clone, Debug)]
pub struct Stack {
    pub name: String,
    pub status: StackStatus,
    pub status_reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// When the current (or last) operation started.
    pub operation_started: Option<DateTime<Utc>>,
}

impl Stack {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// A tag holding an RFC 3339 time (`created-at`, `active-at`…).
    pub fn tag_time(&self, key: &str) -> Option<DateTime<Utc>> {
        let text = self.tag(key)?;
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs.get(key).map(String::as_str)
    }

    pub fn phase(&self) -> Phase {
        Phase::of(&self.status)
    }
}

/// Stack statuses grouped by what pullstack does about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// An operation is running: wait.
    InProgress,
    /// Being deleted: wait.
    Deleting,
    /// Created or updated: usable.
    Stable,
    /// An update failed and was rolled back: usable, at its old version.
    UpdateRolledBack,
    /// A create failed: the stack cannot be updated, only deleted.
    Dead,
    /// An update's rollback itself failed: ContinueUpdateRollback.
    RollbackFailed,
    /// A delete failed: retry it.
    DeleteFailed,
}

impl Phase {
    pub fn of(status: &StackStatus) -> Phase {
        use StackStatus as S;
        match status {
            S::CreateComplete | S::UpdateComplete | S::ImportComplete => Phase::Stable,
            S::UpdateRollbackComplete | S::ImportRollbackComplete => Phase::UpdateRolledBack,
            S::CreateFailed | S::RollbackComplete | S::RollbackFailed => Phase::Dead,
            S::UpdateRollbackFailed => Phase::RollbackFailed,
            S::DeleteFailed => Phase::DeleteFailed,
            S::DeleteInProgress | S::DeleteComplete => Phase::Deleting,
            _ => Phase::InProgress,
        }
    }
}

/// A failure CloudFormation reported for one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceFailure {
    pub logical_id: String,
    pub resource_type: String,
    pub reason: String,
}

/// What a create or update call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    Operation,
    /// "No updates are to be performed": the stack already matches.
    NoChange,
}

/// What to send for a create or update.
pub struct Deploy<'a> {
    pub name: &'a str,
    pub template_body: &'a str,
    pub parameters: &'a BTreeMap<String, String>,
    pub tags: &'a BTreeMap<String, String>,
}

impl Deploy<'_> {
    /// A short digest of everything sent, so an unchanged stack is spotted
    /// without fetching its template.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(self.template_body.as_bytes());
        for (k, v) in self.parameters.iter().chain(self.tags.iter()) {
            hash.update([0]);
            hash.update(k.as_bytes());
            hash.update([0]);
            hash.update(v.as_bytes());
        }
        hex::encode(&hash.finalize()[..8])
    }

    fn tags_with_digest(&self) -> Vec<Tag> {
        let mut all = tags(self.tags);
        all.push(Tag::builder().key(tag::SPEC).value(self.digest()).build());
        all
    }
}

#[derive(Clone)]
pub struct Stacks {
    client: Client,
    /// The service role CloudFormation acts as for every create, update,
    /// delete and rollback; `None` lets it act with pullstack's credentials.
    role_arn: Option<String>,
}

impl Stacks {
    pub fn new(client: Client) -> Stacks {
        Stacks {
            client,
            role_arn: None,
        }
    }

    /// These stacks, changed through the CloudFormation service role
    /// `role_arn` (sent as `RoleARN`), or with the caller's own credentials
    /// when `None`.
    pub fn with_role(self, role_arn: Option<String>) -> Stacks {
        Stacks { role_arn, ..self }
    }

    /// The stack named `name`, or `None` if it does not exist (or is deleted).
    pub async fn describe(&self, name: &str) -> Result<Option<Stack>> {
        match self.client.describe_stacks().stack_name(name).send().await {
            Ok(out) => Ok(out
                .stacks()
                .first()
                .map(convert)
                .filter(|s| s.status != StackStatus::DeleteComplete)),
            Err(err) => match api("DescribeStacks", name, &err) {
                err if err.kind() == ErrorKind::NotFound => Ok(None),
                err => Err(err),
            },
        }
    }

    /// Every live stack carrying `tag_key = tag_value`, across all pages.
    pub async fn list_tagged(&self, tag_key: &str, tag_value: &str) -> Result<Vec<Stack>> {
        let mut stacks = Vec::new();
        let mut pages = self.client.describe_stacks().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("DescribeStacks", "*", &e))?;
            stacks.extend(
                page.stacks()
                    .iter()
                    .map(convert)
                    .filter(|s| s.status != StackStatus::DeleteComplete)
                    .filter(|s| s.tag(tag_key) == Some(tag_value)),
            );
        }
        Ok(stacks)
    }

    /// The names of stacks deleted since `since`, across all pages.
    pub async fn deleted_since(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_stacks()
            .stack_status_filter(StackStatus::DeleteComplete)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("ListStacks", "*", &e))?;
            names.extend(page.stack_summaries().iter().filter_map(|summary| {
                let deleted = summary
                    .deletion_time()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
                // AWS always says when; an emulator may not (moto does
                // not), and then the stack counts as recent.
                let recent = deleted.is_none_or(|deleted| deleted >= since);
                recent.then(|| summary.stack_name().unwrap_or_default().to_owned())
            }));
        }
        Ok(names)
    }

    pub async fn create(&self, deploy: &Deploy<'_>) -> Result<()> {
        self.client
            .create_stack()
            .stack_name(deploy.name)
            .template_body(deploy.template_body)
            .set_parameters(Some(parameters(deploy.parameters)))
            .set_tags(Some(deploy.tags_with_digest()))
            .capabilities(Capability::CapabilityIam)
            .set_role_arn(self.role_arn.clone())
            .send()
            .await
            .map_err(|e| api("CreateStack", deploy.name, &e))?;
        Ok(())
    }

    pub async fn update(&self, deploy: &Deploy<'_>) -> Result<Started> {
        match self
            .client
            .update_stack()
            .stack_name(deploy.name)
            .template_body(deploy.template_body)
            .set_parameters(Some(parameters(deploy.parameters)))
            .set_tags(Some(deploy.tags_with_digest()))
            .capabilities(Capability::CapabilityIam)
            .set_role_arn(self.role_arn.clone())
            .send()
            .await
        {
            Ok(_) => Ok(Started::Operation),
            Err(err)
                if err
                    .message()
                    .is_some_and(|m| m.contains("No updates are to be performed")) =>
            {
                Ok(Started::NoChange)
            }
            Err(err) => Err(api("UpdateStack", deploy.name, &err)),
        }
    }

    /// Whether `stack` already runs exactly `deploy` (same template,
    /// parameters and tags), so an update would change nothing. Told by the
    /// spec digest pullstack tags each stack with, because not every
    /// CloudFormation implementation answers "No updates are to be performed".
    pub fn unchanged(stack: &Stack, deploy: &Deploy<'_>) -> bool {
        stack.tag(tag::SPEC) == Some(deploy.digest().as_str())
    }

    /// Starts deleting a stack; deleting a missing stack is not an error.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.client
            .delete_stack()
            .stack_name(name)
            .set_role_arn(self.role_arn.clone())
            .send()
            .await
            .map_err(|e| api("DeleteStack", name, &e))?;
        Ok(())
    }

    /// Resumes a rollback that failed, so the stack becomes usable again.
    pub async fn continue_rollback(&self, name: &str) -> Result<()> {
        self.client
            .continue_update_rollback()
            .stack_name(name)
            .set_role_arn(self.role_arn.clone())
            .send()
            .await
            .map_err(|e| api("ContinueUpdateRollback", name, &e))?;
        Ok(())
    }

    /// The resources a stack holds, as "type logical-id" lines.
    pub async fn resources(&self, name: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_stack_resources()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| api("DescribeStackResources", name, &e))?;
        Ok(out
            .stack_resources()
            .iter()
            .filter_map(|r| {
                let kind = r.resource_type().filter(|t| !t.is_empty())?;
                let id = r.logical_resource_id().filter(|i| !i.is_empty())?;
                Some(format!("{kind} {id}"))
            })
            .collect())
    }

    /// The physical id of resource `logical` of the stack, once created.
    pub async fn physical_id(&self, name: &str, logical: &str) -> Result<Option<String>> {
        let out = self
            .client
            .describe_stack_resources()
            .stack_name(name)
            .logical_resource_id(logical)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let err = api("DescribeStackResources", name, &e);
                // CloudFormation's answer for a resource not created yet.
                if err.kind() == super::ErrorKind::NotFound
                    || err.kind() == super::ErrorKind::Validation
                {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        Ok(out
            .stack_resources()
            .first()
            .and_then(|r| r.physical_resource_id())
            .filter(|id| !id.is_empty())
            .map(str::to_owned))
    }

    /// The first resource failures of the stack's latest operation, oldest
    /// first: the ones that explain why it failed.
    pub async fn failures(&self, name: &str, limit: usize) -> Result<Vec<ResourceFailure>> {
        let out = self
            .client
            .describe_stack_events()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| api("DescribeStackEvents", name, &e))?;
        // Events come newest first; stop at the start of the latest operation.
        let mut failures = Vec::new();
        for event in out.stack_events() {
            let is_stack = event.logical_resource_id() == Some(name);
            let status = event.resource_status();
            if is_stack
                && matches!(
                    status,
                    Some(ResourceStatus::CreateInProgress | ResourceStatus::UpdateInProgress)
                )
            {
                break;
            }
            let failed = status.is_some_and(|s| s.as_str().ends_with("_FAILED"));
            let reason = event.resource_status_reason().unwrap_or_default();
            if failed && !is_stack && !reason.contains("Resource creation cancelled") {
                failures.push(ResourceFailure {
                    logical_id: event.logical_resource_id().unwrap_or("?").to_owned(),
                    resource_type: event.resource_type().unwrap_or("?").to_owned(),
                    reason: reason.to_owned(),
                });
            }
        }
        failures.reverse();
        failures.truncate(limit);
        Ok(failures)
    }
}

/// One line of a stack's progress.
#[derive(Clone, Debug)]
pub struct StackEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

impl Stacks {
    /// The stack's most recent events (one page), oldest first.
    pub async fn recent_events(&self, name: &str) -> Result<Vec<StackEvent>> {
        let out = self
            .client
            .describe_stack_events()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| api("DescribeStackEvents", name, &e))?;
        let mut events: Vec<StackEvent> = out
            .stack_events()
            .iter()
            .map(|e| StackEvent {
                id: e.event_id().unwrap_or_default().to_owned(),
                at: e
                    .timestamp()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or_default(),
                logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                resource_type: e.resource_type().unwrap_or_default().to_owned(),
                status: e
                    .resource_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                reason: e.resource_status_reason().map(str::to_owned),
            })
            .collect();
        events.reverse();
        Ok(events)
    }
}

fn convert(stack: &SdkStack) -> Stack {
    let outputs = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect();
    let parameters = stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.parameter_value()?.to_owned(),
            ))
        })
        .collect();
    let tags = stack
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect();
    let started = stack.last_updated_time().or(stack.creation_time());
    Stack {
        name: stack.stack_name().unwrap_or_default().to_owned(),
        status: stack
            .stack_status()
            .cloned()
            .unwrap_or(StackStatus::CreateInProgress),
        status_reason: stack.stack_status_reason().map(str::to_owned),
        outputs,
        parameters,
        tags,
        operation_started: started
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
    }
}

fn parameters(map: &BTreeMap<String, String>) -> Vec<Parameter> {
    map.iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect()
}

fn tags(map: &BTreeMap<String, String>) -> Vec<Tag> {
    map.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn api<E, R>(operation: &'static str, stack: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Error::from_sdk("CloudFormation", operation, stack, err)
}

#[cfg(test)]
mod tests;

//! Route53: the weighted alias records that split production traffic, one
//! per production stack (SetIdentifier = stack name), and a TXT record that
//! holds the release log next to them.
//!
//! Every change is one change batch, so weights move together: traffic is
//! never split over a half-applied change. `PriorRequestNotComplete` (a
//! previous batch on the zone still applying) is retried with backoff.

use super::error::{Error, ErrorKind, Result};
use aws_sdk_route53::Client;
use aws_sdk_route53::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use std::time::Duration;

/// One stack's weighted record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weighted {
    /// The stack name.
    pub stack: String,
    pub weight: u8,
    /// The stack's load balancer.
    pub dns_name: String,
    pub zone_id: String,
}

/// What one change batch does.
#[derive(Debug, Default)]
pub struct Batch<'a> {
    pub upsert: Vec<Weighted>,
    pub delete: Vec<Weighted>,
    /// The release log to store, if it changed.
    pub log: Option<&'a str>,
}

#[derive(Clone)]
pub struct Traffic {
    client: Client,
}

const ATTEMPTS: u32 = 6;

impl Traffic {
    pub fn new(client: Client) -> Traffic {
        Traffic { client }
    }

    /// The weighted records on `name`, and the stored release log.
    pub async fn read(&self, zone: &str, name: &str) -> Result<(Vec<Weighted>, Option<String>)> {
        let name = fqdn(name);
        let log_name = log_name(&name);
        let first = self.list(zone, &log_name, RrType::Txt, None).await?;
        let log = first
            .0
            .iter()
            .find(|set| fqdn(set.name()) == log_name && *set.r#type() == RrType::Txt)
            .and_then(decode_log);
        let mut weighted = Vec::new();
        let mut identifier = None;
        loop {
            let (sets, next) = self.list(zone, &name, RrType::A, identifier.take()).await?;
            for set in sets
                .iter()
                .filter(|s| fqdn(s.name()) == name && *s.r#type() == RrType::A)
            {
                if let (Some(id), Some(weight), Some(alias)) =
                    (set.set_identifier(), set.weight(), set.alias_target())
                {
                    weighted.push(Weighted {
                        stack: id.to_owned(),
                        weight: u8::try_from(weight).unwrap_or(u8::MAX),
                        dns_name: alias.dns_name().trim_end_matches('.').to_owned(),
                        zone_id: alias.hosted_zone_id().to_owned(),
                    });
                }
            }
            match next {
                Some(next) => identifier = Some(next),
                None => break,
            }
        }
        weighted.sort_by(|a, b| a.stack.cmp(&b.stack));
        weighted.dedup();
        Ok((weighted, log))
    }

    /// One page of record sets from (name, type, identifier), and the next
    /// identifier if the page stopped inside `name`'s A records.
    async fn list(
        &self,
        zone: &str,
        name: &str,
        kind: RrType,
        identifier: Option<String>,
    ) -> Result<(Vec<ResourceRecordSet>, Option<String>)> {
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(name)
            .start_record_type(kind.clone())
            .set_start_record_identifier(identifier)
            .send()
            .await
            .map_err(|e| error("ListResourceRecordSets", zone, &e))?;
        let next = (out.is_truncated()
            && out.next_record_name().map(fqdn).as_deref() == Some(name)
            && out.next_record_type() == Some(&kind))
        .then(|| out.next_record_identifier().map(str::to_owned))
        .flatten();
        Ok((out.resource_record_sets().to_vec(), next))
    }

    /// Applies one change batch.
    pub async fn apply(&self, zone: &str, name: &str, batch: &Batch<'_>) -> Result<()> {
        let name = fqdn(name);
        let mut changes = Vec::new();
        for (action, records) in [
            (ChangeAction::Delete, &batch.delete),
            (ChangeAction::Upsert, &batch.upsert),
        ] {
            for record in records {
                changes.push(change(action.clone(), weighted_set(&name, record)?));
            }
        }
        if let Some(log) = batch.log {
            changes.push(change(
                ChangeAction::Upsert,
                log_set(&log_name(&name), log)?,
            ));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .comment("pullstack")
            .build()
            .map_err(build_error)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .change_resource_record_sets()
                .hosted_zone_id(zone)
                .change_batch(batch.clone())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err) if err.code() == Some("PriorRequestNotComplete") && attempt < ATTEMPTS => {
                    let delay = crate::reconcile::queue::backoff(
                        attempt,
                        Duration::from_millis(500),
                        Duration::from_secs(10),
                    );
                    tracing::info!(?delay, "Route53 busy with a previous change; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(err) => return Err(error("ChangeResourceRecordSets", zone, &err)),
            }
        }
    }
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Change {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .expect("action and record set are set")
}

fn weighted_set(name: &str, record: &Weighted) -> Result<ResourceRecordSet> {
    let alias = AliasTarget::builder()
        .dns_name(&record.dns_name)
        .hosted_zone_id(&record.zone_id)
        .evaluate_target_health(true)
        .build()
        .map_err(build_error)?;
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .set_identifier(&record.stack)
        .weight(i64::from(record.weight))
        .alias_target(alias)
        .build()
        .map_err(build_error)
}

/// The log is stored hex-encoded in 250-character strings, so its JSON
/// never needs TXT quoting rules and never exceeds a string's 255 bytes.
fn log_set(name: &str, log: &str) -> Result<ResourceRecordSet> {
    let encoded = hex::encode(log.as_bytes());
    let value = encoded
        .as_bytes()
        .chunks(250)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect::<Vec<_>>()
        .join(" ");
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::Txt)
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value(value)
                .build()
                .map_err(build_error)?,
        )
        .build()
        .map_err(build_error)
}

fn decode_log(set: &ResourceRecordSet) -> Option<String> {
    let value = set.resource_records().first()?.value();
    let hex: String = value.chars().filter(char::is_ascii_hexdigit).collect();
    String::from_utf8(hex::decode(hex).ok()?).ok()
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

fn log_name(fqdn: &str) -> String {
    format!("_pullstack-release.{fqdn}")
}

fn error<E, R>(operation: &'static str, zone: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Error::from_sdk("Route53", operation, zone, err)
}

/// A record or batch that could not be built from what it was given.
fn build_error(err: BuildError) -> Error {
    Error::new(
        ErrorKind::Validation,
        "Route53",
        "ChangeResourceRecordSets",
        "",
        "BuildError",
        err.to_string(),
    )
}

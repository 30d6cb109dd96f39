//! Route53: the weighted alias records that split production traffic, one
//! per production stack (SetIdentifier = stack name), and a TXT record that
//! holds the release log next to them.
//!
//! Every change is one change batch, so weights move together: traffic is
//! never split over a half-applied change. `PriorRequestNotComplete` (a
//! previous batch on the zone still applying) and throttling are retried
//! with backoff and jitter.

use super::error::{Error, ErrorKind, Result};
use aws_sdk_route53::Client;
use aws_sdk_route53::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use backon::{ExponentialBuilder, Retryable};
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
    /// Delete the stored release log (it moved elsewhere).
    pub forget_log: bool,
}

#[derive(Clone)]
pub struct Traffic {
    client: Client,
}

/// How a change batch is retried while the zone is busy or throttled. The
/// SDK has already retried each call; this waits out a batch still applying
/// (Route53 takes seconds to tens of seconds): five more tries over 15–30 s.
fn change_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(5)
        .with_jitter()
}

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
        } else if batch.forget_log {
            // A delete names the record exactly as it stands.
            let log_name = log_name(&name);
            let (sets, _) = self.list(zone, &log_name, RrType::Txt, None).await?;
            changes.extend(
                sets.into_iter()
                    .filter(|set| fqdn(set.name()) == log_name && *set.r#type() == RrType::Txt)
                    .map(|set| change(ChangeAction::Delete, set)),
            );
        }
        if changes.is_empty() {
            return Ok(());
        }
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .comment("pullstack")
            .build()
            .map_err(build_error)?;
        let send = || async {
            self.client
                .change_resource_record_sets()
                .hosted_zone_id(zone)
                .change_batch(batch.clone())
                .send()
                .await
                .map_err(|e| error("ChangeResourceRecordSets", zone, &e))
        };
        send.retry(change_backoff())
            .sleep(tokio::time::sleep)
            .when(Error::is_retryable)
            .notify(|err, delay| {
                tracing::info!(?delay, code = %err.code, "Route53 busy with a previous change; retrying");
            })
            .await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_route53::config::retry::RetryConfig;
    use aws_sdk_route53::operation::change_resource_record_sets::{
        ChangeResourceRecordSetsError, ChangeResourceRecordSetsOutput,
    };
    use aws_sdk_route53::types::{ChangeInfo, ChangeStatus};
    use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, mock};
    use aws_smithy_types::error::ErrorMetadata;

    fn failing(code: &'static str) -> ChangeResourceRecordSetsError {
        ChangeResourceRecordSetsError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("from the test")
                .build(),
        )
    }

    fn applied() -> ChangeResourceRecordSetsOutput {
        let info = ChangeInfo::builder()
            .id("C1")
            .status(ChangeStatus::Pending)
            .submitted_at(aws_smithy_types::DateTime::from_secs(0))
            .build()
            .unwrap();
        ChangeResourceRecordSetsOutput::builder()
            .change_info(info)
            .build()
    }

    /// A client whose calls are answered by `rule`, with the SDK's own
    /// retries off so every call the code makes is counted once.
    fn traffic(rule: &aws_smithy_mocks::Rule) -> Traffic {
        let config = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_route53::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(
                MockResponseInterceptor::new()
                    .rule_mode(RuleMode::Sequential)
                    .with_rule(rule),
            )
            .retry_config(RetryConfig::disabled())
            .build();
        Traffic::new(Client::from_conf(config))
    }

    fn batch() -> Batch<'static> {
        Batch {
            log: Some("[]"),
            ..Batch::default()
        }
    }

    #[tokio::test]
    async fn a_busy_zone_is_retried() {
        let rule = mock!(Client::change_resource_record_sets)
            .sequence()
            .error(|| failing("PriorRequestNotComplete"))
            .output(applied)
            .build();
        traffic(&rule)
            .apply("Z1", "app.example.com", &batch())
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn an_invalid_batch_is_not_retried() {
        let rule = mock!(Client::change_resource_record_sets)
            .sequence()
            .error(|| failing("InvalidChangeBatch"))
            .output(applied)
            .build();
        let err = traffic(&rule)
            .apply("Z1", "app.example.com", &batch())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(
            err.to_string(),
            "Route53 ChangeResourceRecordSets Z1: InvalidChangeBatch: from the test"
        );
    }
}

//! The production load balancer's rule (`production.strategy: alb`): its
//! forward action holds the weighted target groups of the release stacks,
//! and its tags hold the release log next to them.
//!
//! Traffic moves with one `ModifyRule`, so every request is weighted at
//! once and a rollback is a single call. The log is written first (tags),
//! then the weights; the log carries the weights it was written for, so a
//! process that stops between the two finishes the move when it reads the
//! rule again (see `reconcile::production`).
//!
//! The log is deflated before it is base64-encoded into tag values: a
//! long-lived installation's log (names repeat) shrinks several times over.

use super::error::{Error, ErrorKind, Result};
use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, Tag,
    TargetGroupStickinessConfig, TargetGroupTuple,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use std::io::{Read, Write};
use std::time::Duration;

/// The tag keys the log is split over: `pullstack:log:0`, `…:1`, ….
const LOG_TAG: &str = "pullstack:log:";
/// A tag value's limit is 256 characters; the first one also carries the
/// number of parts and the format (`n:z:`).
const PART: usize = 240;
/// Marks a deflated log, after the number of parts. Base64 has no `:`, so a
/// log written before compression (`n:` then base64) still reads.
const DEFLATED: &str = "z:";
/// Tags ELBv2 allows on one resource (`aws:` tags do not count).
const TAG_LIMIT: usize = 50;
/// Tags left for others: the four pullstack puts on its stacks, which
/// CloudFormation copies onto the rule (managed, repository, role, spec
/// digest), and room for an operator's own.
const OTHER_TAGS: usize = 10;
/// Parts the log may take: 40 (about 7 KB deflated, several times that of
/// JSON). moto allows 10 tags per resource; the logs its tests write take
/// far fewer parts.
pub const MAX_PARTS: usize = TAG_LIMIT - OTHER_TAGS;

/// What the rules hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// Target group ARN and weight, in the order the rule lists them.
    pub targets: Vec<(String, u8)>,
    /// The stored release log.
    pub log: Option<String>,
    /// The target groups the test route's rule forwards to.
    pub next: Vec<String>,
}

#[derive(Clone)]
pub struct Forward {
    elb: Client,
}

impl Forward {
    pub fn new(elb: Client) -> Forward {
        Forward { elb }
    }

    /// The rule's weighted target groups and the stored log, and what the
    /// test route's rule `next` forwards to: one DescribeRules for both.
    pub async fn read(&self, rule: &str, next: &str) -> Result<Forwarding> {
        let out = self
            .elb
            .describe_rules()
            .rule_arns(rule)
            .rule_arns(next)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ELBv2", "DescribeRules", rule, &e))?;
        let forwarded = |arn: &str| {
            let mut targets = Vec::new();
            let actions = out
                .rules()
                .iter()
                .filter(|r| r.rule_arn() == Some(arn))
                .flat_map(|r| r.actions());
            for action in actions {
                if action.r#type() != Some(&ActionTypeEnum::Forward) {
                    continue;
                }
                match action.forward_config() {
                    Some(config) => {
                        targets.extend(config.target_groups().iter().filter_map(|tg| {
                            let weight = tg.weight().unwrap_or(1).clamp(0, 255);
                            Some((tg.target_group_arn()?.to_owned(), weight as u8))
                        }));
                    }
                    None => {
                        targets.extend(action.target_group_arn().map(|tg| (tg.to_owned(), 100)));
                    }
                }
            }
            targets
        };
        let targets = forwarded(rule);
        let next = forwarded(next).into_iter().map(|(tg, _)| tg).collect();
        let tags = self
            .elb
            .describe_tags()
            .resource_arns(rule)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ELBv2", "DescribeTags", rule, &e))?;
        let parts: Vec<(String, String)> = tags
            .tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect();
        Ok(Forwarding {
            targets,
            log: decode_log(&parts),
            next,
        })
    }

    /// Stores `log` (if given) in the rule's tags, then sets its forward to
    /// `targets` (an empty list answers 503: nothing is released yet).
    pub async fn apply(
        &self,
        rule: &str,
        targets: &[(String, u8)],
        sticky: Option<Duration>,
        log: Option<&str>,
    ) -> Result<()> {
        if let Some(log) = log {
            let tags = encode_log(log)?;
            self.elb
                .add_tags()
                .resource_arns(rule)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| Error::from_sdk("ELBv2", "AddTags", rule, &e))?;
        }
        self.elb
            .modify_rule()
            .rule_arn(rule)
            .actions(action(targets, sticky))
            .send()
            .await
            .map_err(|e| Error::from_sdk("ELBv2", "ModifyRule", rule, &e))?;
        Ok(())
    }

    /// Points the test route's rule at `target`, or answers 404 without one.
    pub async fn point_next(&self, next: &str, target: Option<&str>) -> Result<()> {
        let action = match target {
            Some(target) => action(&[(target.to_owned(), 1)], None),
            None => Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .content_type("text/plain")
                        .message_body("No release candidate right now.")
                        .build(),
                )
                .build(),
        };
        self.elb
            .modify_rule()
            .rule_arn(next)
            .actions(action)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ELBv2", "ModifyRule", next, &e))?;
        Ok(())
    }
}

/// The rule's action: a weighted forward, or 503 when there is no target.
pub fn action(targets: &[(String, u8)], sticky: Option<Duration>) -> Action {
    if targets.is_empty() {
        return Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .content_type("text/plain")
                    .message_body("No production release is serving yet.")
                    .build(),
            )
            .build();
    }
    let stickiness = TargetGroupStickinessConfig::builder()
        .enabled(sticky.is_some())
        .set_duration_seconds(sticky.map(|d| i32::try_from(d.as_secs()).unwrap_or(604_800)))
        .build();
    let config = ForwardActionConfig::builder()
        .set_target_groups(Some(
            targets
                .iter()
                .map(|(arn, weight)| {
                    TargetGroupTuple::builder()
                        .target_group_arn(arn)
                        .weight(i32::from(*weight))
                        .build()
                })
                .collect(),
        ))
        .target_group_stickiness_config(stickiness)
        .build();
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(config)
        .build()
}

/// The log as tags: deflated, then base64 (tag values allow no quotes or
/// braces) in parts, the first prefixed with the number of parts so stale
/// later parts from a longer log are ignored.
pub(crate) fn encode_log(log: &str) -> Result<Vec<Tag>> {
    let mut deflate = DeflateEncoder::new(Vec::new(), Compression::best());
    let deflated = deflate
        .write_all(log.as_bytes())
        .and_then(|()| deflate.finish())
        .expect("deflating into memory cannot fail");
    let size = deflated.len();
    let encoded = STANDARD.encode(deflated);
    let parts: Vec<&[u8]> = encoded.as_bytes().chunks(PART).collect();
    if parts.len() > MAX_PARTS {
        return Err(Error::new(
            ErrorKind::Validation,
            "ELBv2",
            "AddTags",
            "",
            "LogTooLong",
            format!(
                "the release log takes {} bytes ({} deflated), more than {MAX_PARTS} tags hold",
                log.len(),
                size
            ),
        ));
    }
    let count = parts.len();
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(index, part)| {
            let part = String::from_utf8_lossy(part);
            let value = if index == 0 {
                format!("{count}:{DEFLATED}{part}")
            } else {
                part.into_owned()
            };
            Tag::builder()
                .key(format!("{LOG_TAG}{index}"))
                .value(value)
                .build()
        })
        .collect())
}

pub(crate) fn decode_log(tags: &[(String, String)]) -> Option<String> {
    let part = |index: usize| {
        tags.iter()
            .find(|(k, _)| *k == format!("{LOG_TAG}{index}"))
            .map(|(_, v)| v.as_str())
    };
    let (count, first) = part(0)?.split_once(':')?;
    let count: usize = count.parse().ok()?;
    let (deflated, first) = match first.strip_prefix(DEFLATED) {
        Some(rest) => (true, rest),
        None => (false, first),
    };
    let mut encoded = first.to_owned();
    for index in 1..count {
        encoded.push_str(part(index)?);
    }
    let bytes = STANDARD.decode(encoded).ok()?;
    if !deflated {
        return String::from_utf8(bytes).ok();
    }
    let mut log = String::new();
    DeflateDecoder::new(bytes.as_slice())
        .read_to_string(&mut log)
        .ok()?;
    Some(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
        tags.iter()
            .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn a_log_survives_its_tags() {
        let log = format!("{{\"promoted\":[\"{}\"]}}", noise(700));
        let tags = encode_log(&log).unwrap();
        assert!(tags.len() > 1 && tags.len() <= MAX_PARTS);
        assert!(tags.iter().all(|t| t.value().unwrap().len() <= 256));
        assert_eq!(decode_log(&pairs(&tags)).as_deref(), Some(log.as_str()));
    }

    #[test]
    fn a_log_written_before_deflate_still_reads() {
        let log = "{\"release\":\"app-prod-0123abc\"}";
        let old = format!("1:{}", STANDARD.encode(log));
        let tags = [(format!("{LOG_TAG}0"), old)];
        assert_eq!(decode_log(&tags).as_deref(), Some(log));
    }

    #[test]
    fn a_shorter_log_ignores_stale_parts() {
        let long = encode_log(&noise(1200)).unwrap();
        assert!(long.len() > 1);
        let short = encode_log("{}").unwrap();
        let mut merged = pairs(&long);
        for (k, v) in pairs(&short) {
            merged.retain(|(key, _)| *key != k);
            merged.push((k, v));
        }
        assert_eq!(decode_log(&merged).as_deref(), Some("{}"));
    }

    /// Text deflate shrinks by half at most: a hex-encoded hash chain.
    fn noise(len: usize) -> String {
        use sha2::{Digest, Sha256};
        let mut out = String::new();
        let mut block = Sha256::digest(b"seed");
        while out.len() < len {
            out.push_str(&hex::encode(block));
            block = Sha256::digest(block);
        }
        out.truncate(len);
        out
    }

    #[test]
    fn a_log_too_long_for_the_tags_is_refused() {
        let err = encode_log(&noise(PART * MAX_PARTS * 2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
    }

    #[test]
    fn stickiness_rides_on_the_forward() {
        let targets = [("tg-a".to_owned(), 90), ("tg-b".to_owned(), 10)];
        let forward = action(&targets, Some(Duration::from_secs(3600)));
        let config = forward.forward_config().unwrap();
        let stickiness = config.target_group_stickiness_config().unwrap();
        assert_eq!(stickiness.enabled(), Some(true));
        assert_eq!(stickiness.duration_seconds(), Some(3600));
        let weights: Vec<_> = config
            .target_groups()
            .iter()
            .map(|t| t.weight().unwrap())
            .collect();
        assert_eq!(weights, [90, 10]);
        assert_eq!(
            action(&[], None).r#type(),
            Some(&ActionTypeEnum::FixedResponse)
        );
    }
}

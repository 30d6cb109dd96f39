//! The work queue and the periodic resync.

use serde::Deserialize;
use std::time::Duration;

/// The work queue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most environments reconciled at once. Default: 16.
    pub workers: usize,
    /// First retry delay after a failed step; doubles each time, with jitter. Default: 2s.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay. Default: 5m.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// A stack operation is polled at once, then after this delay; the first
    /// poll of an image wait comes after it. Each later poll comes at three
    /// times the age of the last, up to every 2.5s, then after 40% of the
    /// time the operation has run so far, up to `poll_max`: a fast stack is
    /// seen fast, and a slow one is not polled more often. Default: 50ms.
    #[serde(with = "humantime_serde")]
    pub poll_initial: Duration,
    /// Longest delay between polls. Default: 30s.
    #[serde(with = "humantime_serde")]
    pub poll_max: Duration,
    /// Failed passes in a row, on pullstack's side, after which the PR's
    /// comment gets a short notice (cleared by the next good pass). Default: 3.
    pub notice_after: u32,
    /// Where work waits: `memory` (in this process; what a stop loses, the
    /// next resync finds again) or `sqs` (an SQS FIFO queue that several
    /// replicas share, with periodic work under a DynamoDB lease).
    /// Default: memory.
    pub backend: Backend,
    /// The SQS queue and the DynamoDB lease table, used when `backend` is
    /// `sqs`.
    pub sqs: SqsConfig,
}

/// Where work waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In this process.
    #[default]
    Memory,
    /// In an SQS FIFO queue shared by replicas.
    Sqs,
}

/// The durable queue shared by replicas (`queue.backend: sqs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqsConfig {
    /// The SQS FIFO queue, by name or URL (`pullstack bootstrap` creates
    /// it, with a dead-letter queue `<name>-dlq.fifo`). Default:
    /// `<app>-pullstack.fifo`.
    pub queue: Option<String>,
    /// The DynamoDB table the replicas share: the lease on periodic work,
    /// the preview admission slot and line, and the roll call (`pullstack
    /// bootstrap` creates it). Default: `<app>-pullstack`.
    pub table: Option<String>,
    /// How long a replica that stops answering keeps the lease on periodic
    /// work (resync, image prune) and the messages it is working on; then
    /// another replica takes them. Between 2s and 12h. Default: 30s.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How long a receive waits for a message (SQS long polling), at most
    /// 20s. 0s asks without waiting, and again 100ms after an empty answer:
    /// for emulators whose long polls may hand out a message of a group
    /// already in flight (moto does). Default: 20s.
    #[serde(with = "humantime_serde")]
    pub receive_wait: Duration,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue: None,
            table: None,
            lease_ttl: Duration::from_secs(30),
            receive_wait: Duration::from_secs(20),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            workers: 16,
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            poll_initial: Duration::from_millis(50),
            poll_max: Duration::from_secs(30),
            notice_after: 3,
            backend: Backend::Memory,
            sqs: SqsConfig::default(),
        }
    }
}

/// The periodic resync.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResyncConfig {
    /// Time between resyncs; the first runs at start. Default: 5m.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How far back the first resync after a start looks for PR stacks
    /// that were deleted, so a PR closed while pullstack was down, or just
    /// before it stopped, still gets its final comment and its Deployments
    /// closed. Default: 7d.
    #[serde(with = "humantime_serde")]
    pub deleted_within: Duration,
}

impl Default for ResyncConfig {
    fn default() -> Self {
        ResyncConfig {
            interval: Duration::from_secs(300),
            deleted_within: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

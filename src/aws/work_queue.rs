//! SQS FIFO: the durable work queue replicas share (`queue.backend: sqs`).
//!
//! The message group is the job's key, so SQS hands out one message per key
//! at a time across every replica; the deduplication id is derived from the
//! GitHub delivery, so a redelivery within five minutes is dropped by SQS.

use super::error::{Error, ErrorKind, Result};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Receives after which SQS moves a message to the dead-letter queue: a
/// message that kills or stalls every replica that takes it stops there.
pub const MAX_RECEIVES: u32 = 5;

/// The SQS service.
#[derive(Clone)]
pub struct Sqs {
    client: Client,
}

impl Sqs {
    pub fn new(client: Client) -> Sqs {
        Sqs { client }
    }

    /// The queue `name_or_url` names: a URL is taken as written, a name is
    /// looked up.
    pub async fn open(&self, name_or_url: &str) -> Result<WorkQueue> {
        let url = if name_or_url.contains("://") {
            name_or_url.to_owned()
        } else {
            let found = (self.client.get_queue_url())
                .queue_name(name_or_url)
                .send()
                .await
                .map_err(|err| Error::from_sdk("SQS", "GetQueueUrl", name_or_url, &err))?;
            found.queue_url.unwrap_or_default()
        };
        Ok(WorkQueue {
            client: self.client.clone(),
            url,
        })
    }

    /// Creates the FIFO queue `name` (or keeps it as it is) with its
    /// dead-letter queue `<name without .fifo>-dlq.fifo`, which takes a
    /// message after [`MAX_RECEIVES`] receives. Returns both URLs.
    pub async fn create(&self, name: &str, visibility: Duration) -> Result<(String, String)> {
        let dlq_name = format!("{}-dlq.fifo", name.trim_end_matches(".fifo"));
        let dlq = self
            .create_queue(&dlq_name, [(QueueAttributeName::FifoQueue, "true".into())])
            .await?;
        let dlq_arn = (self.client.get_queue_attributes())
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|err| Error::from_sdk("SQS", "GetQueueAttributes", &dlq_name, &err))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": MAX_RECEIVES,
        });
        let queue = self
            .create_queue(
                name,
                [
                    (QueueAttributeName::FifoQueue, "true".into()),
                    (
                        QueueAttributeName::VisibilityTimeout,
                        visibility.as_secs().to_string(),
                    ),
                    (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                ],
            )
            .await?;
        Ok((queue, dlq))
    }

    async fn create_queue(
        &self,
        name: &str,
        attributes: impl IntoIterator<Item = (QueueAttributeName, String)>,
    ) -> Result<String> {
        let mut request = self.client.create_queue().queue_name(name);
        for (key, value) in attributes {
            request = request.attributes(key, value);
        }
        let created = request
            .send()
            .await
            .map_err(|err| Error::from_sdk("SQS", "CreateQueue", name, &err))?;
        Ok(created.queue_url.unwrap_or_default())
    }
}

/// One message taken from the queue.
#[derive(Clone, Debug)]
pub struct Received {
    pub body: String,
    /// What deletes the message or extends its visibility; valid for this
    /// receive only.
    pub receipt: String,
    /// When the message was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// How many times it has been received, this time included.
    pub receives: u32,
}

/// How many messages the queue holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Waiting to be received.
    pub visible: u64,
    /// Received and not deleted yet: being worked on.
    pub in_flight: u64,
}

/// One FIFO queue.
#[derive(Clone)]
pub struct WorkQueue {
    client: Client,
    url: String,
}

impl WorkQueue {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `body` in message group `group`; SQS drops a later message
    /// with the same `dedup` id for five minutes.
    pub async fn send(&self, group: &str, dedup: &str, body: &str) -> Result<()> {
        (self.client.send_message())
            .queue_url(&self.url)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .message_body(body)
            .send()
            .await
            .map_err(|err| Error::from_sdk("SQS", "SendMessage", group, &err))?;
        Ok(())
    }

    /// Sends `(group, dedup, body)` messages, ten to a call.
    pub async fn send_all(&self, messages: &[(String, String, String)]) -> Result<()> {
        for chunk in messages.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(n, (group, dedup, body))| {
                SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_group_id(group)
                    .message_deduplication_id(dedup)
                    .message_body(body)
                    .build()
                    .expect("id and body are set")
            });
            let answer = (self.client.send_message_batch())
                .queue_url(&self.url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|err| Error::from_sdk("SQS", "SendMessage", "", &err))?;
            if let Some(failed) = answer.failed.first() {
                return Err(batch_error("SendMessage", failed));
            }
        }
        Ok(())
    }

    /// Takes up to `max` messages, waiting up to `wait` for the first; each
    /// stays hidden from other receivers for `visibility`.
    pub async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>> {
        let answer = (self.client.receive_message())
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .visibility_timeout(seconds(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|err| Error::from_sdk("SQS", "ReceiveMessage", "", &err))?;
        let received = answer.messages.unwrap_or_default().into_iter();
        Ok(received
            .filter_map(|message| {
                let attributes = message.attributes.unwrap_or_default();
                let number = |name: MessageSystemAttributeName| {
                    attributes.get(&name).and_then(|v| v.parse::<i64>().ok())
                };
                Some(Received {
                    sent_at: number(MessageSystemAttributeName::SentTimestamp)
                        .and_then(DateTime::from_timestamp_millis),
                    receives: number(MessageSystemAttributeName::ApproximateReceiveCount)
                        .map_or(1, |n| n as u32),
                    body: message.body.unwrap_or_default(),
                    receipt: message.receipt_handle?,
                })
            })
            .collect())
    }

    /// Keeps these messages hidden for `visibility` from now.
    pub async fn extend(&self, receipts: &[String], visibility: Duration) -> Result<()> {
        for chunk in receipts.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(n, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds(visibility))
                    .build()
                    .expect("id and receipt are set")
            });
            let answer = (self.client.change_message_visibility_batch())
                .queue_url(&self.url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|err| Error::from_sdk("SQS", "ChangeMessageVisibility", "", &err))?;
            if let Some(failed) = answer.failed.first() {
                return Err(batch_error("ChangeMessageVisibility", failed));
            }
        }
        Ok(())
    }

    /// Deletes these messages: their work is done.
    pub async fn delete(&self, receipts: &[String]) -> Result<()> {
        for chunk in receipts.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(n, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt are set")
            });
            let answer = (self.client.delete_message_batch())
                .queue_url(&self.url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|err| Error::from_sdk("SQS", "DeleteMessage", "", &err))?;
            if let Some(failed) = answer.failed.first() {
                return Err(batch_error("DeleteMessage", failed));
            }
        }
        Ok(())
    }

    /// How many messages wait and how many are being worked on.
    pub async fn depth(&self) -> Result<Depth> {
        let answer = (self.client.get_queue_attributes())
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|err| Error::from_sdk("SQS", "GetQueueAttributes", &self.url, &err))?;
        let attributes = answer.attributes.unwrap_or_default();
        let count = |name| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Depth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}

fn seconds(duration: Duration) -> i32 {
    // SQS counts whole seconds, at most 12 hours.
    duration.as_secs_f64().ceil().min(43_200.0) as i32
}

fn batch_error(
    operation: &'static str,
    failed: &aws_sdk_sqs::types::BatchResultErrorEntry,
) -> Error {
    let code = failed.code();
    let message = failed.message().unwrap_or_default();
    Error::new(
        ErrorKind::of(code, message),
        "SQS",
        operation,
        "",
        code,
        message,
    )
}

//! DynamoDB leases: which replica does the periodic work.
//!
//! A lease is one item: its key `k`, its `holder` and its expiry `exp` (Unix
//! milliseconds, on the caller's clock). A replica takes or renews it with a
//! conditional `PutItem` that succeeds only if the item is missing, expired,
//! or already its own, so two replicas never both hold it.

use super::error::{Error, Result};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use chrono::{DateTime, Utc};

/// The DynamoDB service.
#[derive(Clone)]
pub struct Leases {
    client: Client,
}

/// Who holds a lease, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub holder: String,
    pub until: DateTime<Utc>,
}

impl Leases {
    pub fn new(client: Client) -> Leases {
        Leases { client }
    }

    /// Creates the lease table (on-demand billing), or keeps it if it exists.
    pub async fn create_table(&self, table: &str) -> Result<()> {
        let created = (self.client.create_table())
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("k")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("name and type are set"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("k")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("name and type are set"),
            )
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(Error::from_sdk("DynamoDB", "CreateTable", table, &err)),
        }
    }

    /// Takes or renews lease `key` for `holder` until `until`: true if
    /// `holder` holds it now, false if another replica does.
    pub async fn hold(
        &self,
        table: &str,
        key: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let put = (self.client.put_item())
            .table_name(table)
            .item("k", AttributeValue::S(key.to_owned()))
            .item("holder", AttributeValue::S(holder.to_owned()))
            .item("exp", millis(until))
            .condition_expression("attribute_not_exists(k) OR exp < :now OR holder = :me")
            .expression_attribute_values(":now", millis(now))
            .expression_attribute_values(":me", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(Error::from_sdk("DynamoDB", "PutItem", table, &err)),
        }
    }

    /// Gives lease `key` up, if `holder` still holds it.
    pub async fn release(&self, table: &str, key: &str, holder: &str) -> Result<()> {
        let deleted = (self.client.delete_item())
            .table_name(table)
            .key("k", AttributeValue::S(key.to_owned()))
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(Error::from_sdk("DynamoDB", "DeleteItem", table, &err)),
        }
    }

    /// Who holds lease `key` at `now`, if anyone.
    pub async fn holder(&self, table: &str, key: &str, now: DateTime<Utc>) -> Result<Option<Held>> {
        let item = (self.client.get_item())
            .table_name(table)
            .key("k", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| Error::from_sdk("DynamoDB", "GetItem", table, &err))?
            .item;
        let Some(item) = item else {
            return Ok(None);
        };
        let holder = item.get("holder").and_then(|v| v.as_s().ok()).cloned();
        let until = item
            .get("exp")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis);
        Ok(match (holder, until) {
            (Some(holder), Some(until)) if until > now => Some(Held { holder, until }),
            _ => None,
        })
    }
}

/// The prefix of the items replicas answer the roll call with.
const ROLL: &str = "replica/";

impl Leases {
    /// Answers the roll call: `replica` is alive until `until`.
    pub async fn present(&self, table: &str, replica: &str, until: DateTime<Utc>) -> Result<()> {
        (self.client.put_item())
            .table_name(table)
            .item("k", AttributeValue::S(format!("{ROLL}{replica}")))
            .item("exp", millis(until))
            .send()
            .await
            .map_err(|err| Error::from_sdk("DynamoDB", "PutItem", table, &err))?;
        Ok(())
    }

    /// Leaves the roll call.
    pub async fn absent(&self, table: &str, replica: &str) -> Result<()> {
        (self.client.delete_item())
            .table_name(table)
            .key("k", AttributeValue::S(format!("{ROLL}{replica}")))
            .send()
            .await
            .map_err(|err| Error::from_sdk("DynamoDB", "DeleteItem", table, &err))?;
        Ok(())
    }

    /// How many replicas answered the roll call and are alive at `now`.
    /// The table holds a handful of items, so one scan page reads them all.
    pub async fn present_count(&self, table: &str, now: DateTime<Utc>) -> Result<u32> {
        let scanned = (self.client.scan())
            .table_name(table)
            .consistent_read(true)
            .filter_expression("begins_with(k, :roll) AND exp > :now")
            .expression_attribute_values(":roll", AttributeValue::S(ROLL.to_owned()))
            .expression_attribute_values(":now", millis(now))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .map_err(|err| Error::from_sdk("DynamoDB", "Scan", table, &err))?;
        Ok(scanned.count.max(0).unsigned_abs())
    }
}

/// One environment waiting for a preview slot, as the shared line holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The environment's key.
    pub env: String,
    /// When it started waiting (its pull request's creation).
    pub since: DateTime<Utc>,
    /// When it last asked for a slot.
    pub seen: DateTime<Utc>,
}

/// The item that holds the line, one attribute per waiting environment.
const LINE: &str = "line";

/// The attribute an environment waits under in the line's item.
fn line_attribute(env: &str) -> String {
    format!("w/{env}")
}

impl Leases {
    /// Puts `env` in the shared line (or keeps its place), noting that it
    /// asked at `seen`. One atomic update of one attribute, so replicas
    /// never overwrite each other's entries.
    pub async fn wait_in_line(
        &self,
        table: &str,
        env: &str,
        since: DateTime<Utc>,
        seen: DateTime<Utc>,
    ) -> Result<()> {
        let value = format!("{} {}", since.timestamp_millis(), seen.timestamp_millis());
        (self.client.update_item())
            .table_name(table)
            .key("k", AttributeValue::S(LINE.to_owned()))
            .update_expression("SET #w = :v")
            .expression_attribute_names("#w", line_attribute(env))
            .expression_attribute_values(":v", AttributeValue::S(value))
            .send()
            .await
            .map_err(|err| Error::from_sdk("DynamoDB", "UpdateItem", table, &err))?;
        Ok(())
    }

    /// Takes `env` out of the shared line, if it is there.
    pub async fn leave_line(&self, table: &str, env: &str) -> Result<()> {
        (self.client.update_item())
            .table_name(table)
            .key("k", AttributeValue::S(LINE.to_owned()))
            .update_expression("REMOVE #w")
            .expression_attribute_names("#w", line_attribute(env))
            .send()
            .await
            .map_err(|err| Error::from_sdk("DynamoDB", "UpdateItem", table, &err))?;
        Ok(())
    }

    /// Everyone in the shared line, in no particular order.
    pub async fn line(&self, table: &str) -> Result<Vec<Waiting>> {
        let item = (self.client.get_item())
            .table_name(table)
            .key("k", AttributeValue::S(LINE.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| Error::from_sdk("DynamoDB", "GetItem", table, &err))?
            .item
            .unwrap_or_default();
        Ok(item
            .iter()
            .filter_map(|(name, value)| {
                let env = name.strip_prefix("w/")?;
                let (since, seen) = value.as_s().ok()?.split_once(' ')?;
                let at = |ms: &str| DateTime::from_timestamp_millis(ms.parse().ok()?);
                Some(Waiting {
                    env: env.to_owned(),
                    since: at(since)?,
                    seen: at(seen)?,
                })
            })
            .collect())
    }
}

fn millis(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp_millis().to_string())
}

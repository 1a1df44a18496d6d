//! otpd's store on DynamoDB: one item per address in the `EmailVerification`
//! table, written only by conditional writes on a version number, so every
//! policy decision of `otpd-core` is applied atomically: of concurrent
//! correct verifies exactly one deletes the item and succeeds.
//!
//! The item never holds a code: `record` is the JSON of an
//! [`AddressRecord`] (keyed digests) and `mail_sealed` the newest code under
//! authenticated encryption, for the stream-driven sender. `ttl` lets
//! DynamoDB collect dead items; expiry is still checked on every read.

mod item;
mod table;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use otpd_core::policy::{
    AddressRecord, Change, IssueCommand, IssueOutcome, Transition, VerifyCommand, VerifyOutcome,
};
use otpd_core::store::{IssueStore, NewMail, StoreError, StoreHealth, VerifyStore};
use otpd_core::{error_chain, EmailAddress};

pub use item::{mail_in_new_image, Item};
pub use table::create_table;

/// Rounds of read, decide, conditional write before giving up as contended.
const MAX_ROUNDS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DynamoDB request failed: {0}")]
    Request(String),
    #[error("item for {0} cannot be decoded: {1}")]
    Decode(String, String),
}

impl From<Error> for StoreError {
    fn from(error: Error) -> Self {
        match error {
            Error::Decode(..) => StoreError::Corrupt(Box::new(error)),
            Error::Request(_) => StoreError::Unavailable(Box::new(error)),
        }
    }
}

/// The store; cheap to clone (the SDK client is shared).
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// An address's record with the version it was read at (`None`: no item).
struct Versioned {
    record: Option<AddressRecord>,
    version: Option<u64>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn load(&self, email: &EmailAddress) -> Result<Versioned, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(item::EMAIL, AttributeValue::S(email.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::Request(error_chain(&e)))?;
        match output.item {
            None => Ok(Versioned {
                record: None,
                version: None,
            }),
            Some(found) => {
                let (record, version) =
                    item::decode(&found).map_err(|e| Error::Decode(email.to_string(), e))?;
                Ok(Versioned {
                    record: Some(record),
                    version: Some(version),
                })
            }
        }
    }

    /// Writes `record` if the item is still at `expected`; `false` if not.
    async fn put(
        &self,
        email: &EmailAddress,
        record: &AddressRecord,
        expected: Option<u64>,
        mail: Option<&NewMail>,
    ) -> Result<bool, Error> {
        let json = serde_json::to_string(record)
            .map_err(|e| Error::Decode(email.to_string(), e.to_string()))?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(item::EMAIL, AttributeValue::S(email.to_string()))
            .expression_attribute_names("#record", item::RECORD)
            .expression_attribute_names("#version", item::VERSION)
            .expression_attribute_names("#ttl", item::TTL)
            .expression_attribute_values(":record", AttributeValue::S(json))
            .expression_attribute_values(":next", item::number(expected.unwrap_or(0) + 1))
            .expression_attribute_values(":ttl", item::number(ttl_seconds(record)));
        let mut set = String::from("SET #record = :record, #version = :next, #ttl = :ttl");
        if let Some(mail) = mail {
            set.push_str(", #sealed = :sealed, #issued = :issued, #expires = :expires");
            update = update
                .expression_attribute_names("#sealed", item::MAIL_SEALED)
                .expression_attribute_names("#issued", item::MAIL_ISSUED_AT)
                .expression_attribute_names("#expires", item::MAIL_EXPIRES_AT)
                .expression_attribute_values(
                    ":sealed",
                    AttributeValue::B(mail.sealed.as_bytes().to_vec().into()),
                )
                .expression_attribute_values(":issued", item::number(mail.created_at.as_millis()))
                .expression_attribute_values(
                    ":expires",
                    item::number(mail.code_expires_at.as_millis()),
                );
        }
        update = match expected {
            None => update.condition_expression("attribute_not_exists(email)"),
            Some(version) => update
                .condition_expression("#version = :expected")
                .expression_attribute_values(":expected", item::number(version)),
        };
        landed(update.update_expression(set).send().await)
    }

    /// Deletes the item if it is still at `expected`; `false` if not.
    async fn delete(&self, email: &EmailAddress, expected: u64) -> Result<bool, Error> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(item::EMAIL, AttributeValue::S(email.to_string()))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", item::VERSION)
            .expression_attribute_values(":expected", item::number(expected))
            .send()
            .await;
        landed(result)
    }

    /// Read, decide with `decide`, write conditionally; again if another
    /// writer got there first.
    async fn transact<T>(
        &self,
        email: &EmailAddress,
        mail: Option<&NewMail>,
        decide: impl Fn(Option<AddressRecord>) -> Transition<T>,
    ) -> Result<T, StoreError> {
        for _ in 0..MAX_ROUNDS {
            let current = self.load(email).await?;
            let Transition { outcome, change } = decide(current.record);
            let written = match change {
                Change::Keep => true,
                Change::Put(record) => self.put(email, &record, current.version, mail).await?,
                Change::Delete => match current.version {
                    Some(version) => self.delete(email, version).await?,
                    None => true,
                },
            };
            if written {
                return Ok(outcome);
            }
        }
        Err(StoreError::Contended)
    }
}

/// `true` if a conditional write landed, `false` if its condition failed.
fn landed<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, Error>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(Error::Request(error_chain(&e))),
    }
}

/// DynamoDB TTL wants epoch seconds; the item lives a minute past its use.
fn ttl_seconds(record: &AddressRecord) -> i64 {
    record.expires_at().as_millis() / 1000 + 60
}

#[async_trait]
impl IssueStore for DynamoStore {
    async fn issue(&self, cmd: IssueCommand, mail: NewMail) -> Result<IssueOutcome, StoreError> {
        self.transact(&cmd.email, Some(&mail), |record| cmd.apply(record))
            .await
    }
}

#[async_trait]
impl VerifyStore for DynamoStore {
    async fn verify(&self, cmd: VerifyCommand) -> Result<VerifyOutcome, StoreError> {
        self.transact(&cmd.email, None, |record| cmd.apply(record))
            .await
    }
}

#[async_trait]
impl StoreHealth for DynamoStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| Error::Request(error_chain(&e)))?;
        Ok(())
    }
}

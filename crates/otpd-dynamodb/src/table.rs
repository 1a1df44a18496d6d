//! Creating the table as the Terraform module declares it, for local runs
//! against an emulator and for tests.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::item::{EMAIL, TTL};
use crate::Error;

/// Key `email`, on-demand, stream with new and old images, TTL on `ttl`.
pub async fn create_table(client: &Client, name: &str) -> Result<(), Error> {
    let request = |e: &dyn std::error::Error| Error::Request(otpd_core::error_chain(e));
    let built = |e: aws_sdk_dynamodb::error::BuildError| Error::Request(e.to_string());
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(EMAIL)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(built)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(EMAIL)
                .key_type(KeyType::Hash)
                .build()
                .map_err(built)?,
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(built)?,
        )
        .send()
        .await
        .map_err(|e| request(&e))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(built)?,
        )
        .send()
        .await
        .map_err(|e| request(&e))?;
    Ok(())
}

//! The shared store contract against DynamoDB, served by a local emulator
//! (moto) that this test starts: the same suite the SQLite store passes.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use otpd_dynamodb::DynamoStore;
use otpd_testkit::store_contract_tests;

pub async fn client() -> Client {
    Client::new(&otpd_testkit::moto::sdk_config("us-east-1").await)
}

/// A fresh table as the Terraform module declares it, under a name of its own.
pub async fn table(client: &Client) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("EmailVerification-{}-{n}", std::process::id());
    otpd_dynamodb::create_table(client, &name).await.unwrap();
    name
}

async fn store() -> DynamoStore {
    let client = client().await;
    let table = table(&client).await;
    DynamoStore::new(client, table)
}

store_contract_tests!(store().await);

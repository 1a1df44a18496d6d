//! The serverless flow end to end, against a local AWS emulator (moto) the
//! test starts: GenerateOTP through the API Gateway adapter writes the table;
//! the records are read back from the emulator's DynamoDB Streams API and
//! given to SendOTPEmail's handler; the mail is read from the emulator's SES;
//! VerifyOTP through the adapter checks the code.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use axum::Router;
use otpd_core::delivery::{Delivery, RetryPolicy};
use otpd_core::policy::Rules;
use otpd_core::{CodeKeys, CodeMail, DomainAllowlist, MailError, Mailer, Secret, SystemClock};
use otpd_dynamodb::DynamoStore;
use otpd_lambda::send::{BatchItemFailure, Sender};
use otpd_mail::{Composer, SesMailer, Templates};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
const SENDER_DOMAIN: &str = "serverless.example";

async fn aws() -> aws_config::SdkConfig {
    otpd_testkit::moto::sdk_config("us-east-1").await
}

fn keys() -> CodeKeys {
    CodeKeys::derive(&Secret::parse(&SecretString::from(SECRET)).unwrap())
}

struct World {
    aws: aws_config::SdkConfig,
    table: String,
    generate: Router,
    verify: Router,
    /// Where reading each shard of the stream goes on from.
    iterators: HashMap<String, Option<String>>,
}

impl World {
    async fn new(rules: Rules) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let aws = aws().await;
        let table = format!(
            "EmailVerification-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ddb = aws_sdk_dynamodb::Client::new(&aws);
        otpd_dynamodb::create_table(&ddb, &table).await.unwrap();
        aws_sdk_sesv2::Client::new(&aws)
            .create_email_identity()
            .email_identity(SENDER_DOMAIN)
            .send()
            .await
            .unwrap();
        let store = DynamoStore::new(ddb, table.clone());
        let state = otpd_lambda::state(store, keys(), rules, DomainAllowlist::default());
        Self {
            aws,
            table,
            generate: otpd_lambda::with_source_ip(otpd_http::generate_router(state.clone())),
            verify: otpd_lambda::with_source_ip(otpd_http::verify_router(state)),
            iterators: HashMap::new(),
        }
    }

    fn ses_sender(&self) -> Sender {
        let composer = Composer {
            from: format!("Acme <no-reply@{SENDER_DOMAIN}>").parse().unwrap(),
            product: "Acme".into(),
            templates: Templates::default(),
        };
        let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&self.aws), composer);
        sender(Arc::new(mailer))
    }

    /// The new records of the table's stream, as Lambda receives them.
    async fn stream_event(&mut self) -> Event {
        let ddb = aws_sdk_dynamodb::Client::new(&self.aws);
        let streams = aws_sdk_dynamodbstreams::Client::new(&self.aws);
        let arn = ddb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .unwrap()
            .table
            .and_then(|t| t.latest_stream_arn)
            .unwrap();
        let shards = streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap()
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default();
        let mut records = Vec::new();
        for shard in shards {
            let shard_id = shard.shard_id.unwrap();
            let iterator = match self.iterators.get(&shard_id) {
                Some(Some(it)) => it.clone(),
                Some(None) => continue,
                None => streams
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(&shard_id)
                    .shard_iterator_type(
                        aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon,
                    )
                    .send()
                    .await
                    .unwrap()
                    .shard_iterator
                    .unwrap(),
            };
            let output = streams
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .unwrap();
            for record in output.records.unwrap_or_default() {
                records.push(lambda_record(&record, &arn));
            }
            self.iterators.insert(shard_id, output.next_shard_iterator);
        }
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }
}

/// A DynamoDB Streams record in the shape of a Lambda event record.
fn lambda_record(record: &aws_sdk_dynamodbstreams::types::Record, arn: &str) -> Value {
    let change = record.dynamodb.as_ref().unwrap();
    let image = |i: &Option<HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        i.clone()
            .map(|i| serde_json::to_value(serde_dynamo::Item::from(i)).unwrap())
    };
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().unwrap().as_str(),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": arn,
        "dynamodb": {
            "Keys": image(&change.keys),
            "NewImage": image(&change.new_image),
            "OldImage": image(&change.old_image),
            "SequenceNumber": change.sequence_number,
            "SizeBytes": change.size_bytes.unwrap_or(1),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    })
}

fn sender(mailer: Arc<dyn Mailer>) -> Sender {
    let delivery = Delivery {
        keys: keys(),
        code_length: Rules::default().code_length,
        retry: RetryPolicy::default(),
    };
    Sender::new(delivery, mailer, Arc::new(SystemClock))
}

/// Calls `router` as API Gateway (HTTP API, payload 2.0) would.
async fn call(router: &Router, path: &str, body: Value) -> (u16, Value) {
    let event = json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": { "content-type": "application/json" },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example",
            "domainPrefix": "api",
            "http": { "method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "tests" },
            "requestId": "request",
            "routeKey": format!("POST {path}"),
            "stage": "$default",
            "time": "28/Nov/2026:08:00:00 +0000",
            "timeEpoch": 0
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    });
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Codes SES accepted for `to`, oldest first.
async fn ses_codes(to: &str) -> Vec<String> {
    let url = format!("{}/moto-api/data.json", otpd_testkit::moto::endpoint());
    let sent: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    sent["ses"]["RawMessage"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["raw_data"].as_str())
        .filter(|raw| raw.contains(&format!("To: {to}")))
        .filter_map(|raw| {
            let subject = raw.lines().find(|l| l.starts_with("Subject:"))?;
            subject
                .split_whitespace()
                .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_stream_send_then_verify_once() {
    let mut world = World::new(Rules::default()).await;
    let (status, body) = call(
        &world.generate,
        "/GenerateOTP",
        json!({"email": "Flow@Example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "flow@example.com");

    let event = world.stream_event().await;
    assert!(!event.records.is_empty());
    let response = world.ses_sender().handle(event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let codes = ses_codes("flow@example.com").await;
    assert_eq!(codes.len(), 1);

    let verify = json!({"email": "flow@example.com", "otp": codes[0]});
    assert_eq!(
        call(&world.verify, "/VerifyOTP", verify.clone()).await.0,
        200
    );
    assert_eq!(call(&world.verify, "/VerifyOTP", verify).await.0, 410);
    // The REMOVE of the verify sends nothing.
    let removal = world.stream_event().await;
    assert!(removal.records.iter().any(|r| r.event_name == "REMOVE"));
    assert!(world
        .ses_sender()
        .handle(removal)
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(ses_codes("flow@example.com").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resend_is_mailed_and_a_wrong_guess_is_not() {
    let rules = Rules {
        resend_cooldown: Duration::ZERO,
        ..Rules::default()
    };
    let mut world = World::new(rules).await;
    let to = "resend@example.com";
    call(&world.generate, "/GenerateOTP", json!({"email": to})).await;
    let event = world.stream_event().await;
    world.ses_sender().handle(event).await;
    let first = ses_codes(to).await;
    assert_eq!(first.len(), 1);

    let wrong = if first[0] == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(
        call(
            &world.verify,
            "/VerifyOTP",
            json!({"email": to, "otp": wrong})
        )
        .await
        .0,
        401
    );
    let guess = world.stream_event().await;
    assert!(guess.records.iter().all(|r| r.event_name == "MODIFY"));
    world.ses_sender().handle(guess).await;
    assert_eq!(ses_codes(to).await.len(), 1, "a wrong guess mails nothing");

    assert_eq!(
        call(&world.generate, "/GenerateOTP", json!({"email": to}))
            .await
            .0,
        200
    );
    let resend = world.stream_event().await;
    assert!(resend.records.iter().any(|r| r.event_name == "MODIFY"));
    world.ses_sender().handle(resend).await;
    let codes = ses_codes(to).await;
    assert_eq!(codes.len(), 2, "the resend (a MODIFY) is mailed");
    assert_eq!(
        call(
            &world.verify,
            "/VerifyOTP",
            json!({"email": to, "otp": codes[1]})
        )
        .await
        .0,
        200
    );
}

/// Fails the first send to one address, records every send.
#[derive(Default)]
struct FlakyMailer {
    fail_once_for: String,
    failed: Mutex<bool>,
    sent: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Mailer for FlakyMailer {
    async fn send(&self, mail: &CodeMail) -> Result<(), MailError> {
        let mut failed = self.failed.lock().unwrap();
        if mail.to.as_str() == self.fail_once_for && !*failed {
            *failed = true;
            return Err(MailError::Transient("throttled".into()));
        }
        self.sent.lock().unwrap().push(mail.to.to_string());
        Ok(())
    }

    fn describe(&self) -> String {
        "flaky (tests)".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_send_is_reported_and_the_retry_mails_the_rest_once() {
    let mut world = World::new(Rules::default()).await;
    for to in ["b1@example.com", "b2@example.com", "b3@example.com"] {
        assert_eq!(
            call(&world.generate, "/GenerateOTP", json!({"email": to}))
                .await
                .0,
            200
        );
    }
    let event = world.stream_event().await;
    let mailer = Arc::new(FlakyMailer {
        fail_once_for: "b2@example.com".into(),
        ..FlakyMailer::default()
    });
    let sender = sender(mailer.clone());

    let response = sender.handle(event.clone()).await;
    let failed_at = event
        .records
        .iter()
        .position(|r| {
            r.change
                .new_image
                .get("email")
                .is_some_and(|e| format!("{e:?}").contains("b2@"))
                && r.change.new_image.get("mail_issued_at").is_some()
        })
        .unwrap();
    let sequence = event.records[failed_at]
        .change
        .sequence_number
        .clone()
        .unwrap();
    assert_eq!(
        response.batch_item_failures,
        vec![BatchItemFailure {
            item_identifier: sequence
        }]
    );
    assert_eq!(
        *mailer.sent.lock().unwrap(),
        vec!["b1@example.com"],
        "records after the failure wait"
    );

    // Lambda retries from the reported record on.
    let mut retry = event.clone();
    retry.records = event.records[failed_at..].to_vec();
    assert!(sender.handle(retry).await.batch_item_failures.is_empty());
    assert_eq!(
        *mailer.sent.lock().unwrap(),
        vec!["b1@example.com", "b2@example.com", "b3@example.com"],
        "every code mailed exactly once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_verifies_succeed_once_and_the_table_holds_no_code() {
    let mut world = World::new(Rules::default()).await;
    let to = "race@example.com";
    call(&world.generate, "/GenerateOTP", json!({"email": to})).await;
    let event = world.stream_event().await;
    world.ses_sender().handle(event).await;
    let code = ses_codes(to).await.remove(0);

    let items = aws_sdk_dynamodb::Client::new(&world.aws)
        .scan()
        .table_name(&world.table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1);
    assert!(
        !format!("{items:?}").contains(&code),
        "the code is readable in the table"
    );

    let body = json!({"email": to, "otp": code});
    let calls = (0..50).map(|_| call(&world.verify, "/VerifyOTP", body.clone()));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
}

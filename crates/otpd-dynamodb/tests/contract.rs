//! The shared store contract against DynamoDB, served by a local emulator
//! (moto) that this test starts: the same suite the SQLite store passes.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use otpd_dynamodb::DynamoStore;
use otpd_testkit::store_contract_tests;

/// moto, shared by the tests of this binary. It runs under a shell that
/// kills it when our end of its stdin closes, that is when this process exits.
struct Moto {
    endpoint: String,
    _child: Mutex<(Child, ChildStdin)>,
}

fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let server = std::env::var("MOTO_SERVER").unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../.venv-moto/bin/moto_server")
                .display()
                .to_string()
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let script = format!(
            "\"{server}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; echo started; read _; kill $pid"
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start moto (pip install 'moto[server]'; the test command does)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let stdin = child.stdin.take().unwrap();
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: Mutex::new((child, stdin)),
        }
    })
}

pub async fn client() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto().endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    Client::new(&config)
}

/// A table as the Terraform module declares it, under a name of its own.
pub async fn table(client: &Client) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "EmailVerification-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("email")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("email")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    name
}

async fn store() -> DynamoStore {
    let client = client().await;
    let table = table(&client).await;
    DynamoStore::new(client, table)
}

store_contract_tests!(store().await);

//! What the three Lambda functions share: configuration from the
//! environment, the AWS clients (built once per container), JSON logs and
//! CloudWatch metrics in Embedded Metric Format.
//!
//! The functions never log a code or the code key; SendOTPEmail hands the
//! code to SES and to nothing else.

mod emf;
mod env;
pub mod send;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use otpd_core::policy::Rules;
use otpd_core::{CodeKeys, DomainAllowlist, OtpService, Secret, SystemClock};
use otpd_dynamodb::DynamoStore;
use otpd_http::{AppState, HttpConfig, Stores};
use secrecy::SecretString;

pub use env::LambdaEnv;

/// Logs as JSON lines and metrics as EMF, both to CloudWatch through stdout/stderr.
pub fn init_telemetry(function: &'static str) {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_ansi(false)
        .without_time()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    emf::install(function);
}

/// The AWS SDK's configuration: region, credentials and endpoint from the
/// standard variables (`AWS_ENDPOINT_URL` points at a local emulator).
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The code key: `OTPD_SECRET` when set (local runs), otherwise the SSM
/// SecureString named by `OTPD_SECRET_PARAMETER`, read once per cold start.
pub async fn load_keys(env: &LambdaEnv, aws: &aws_config::SdkConfig) -> anyhow::Result<CodeKeys> {
    let text = match (&env.secret, &env.secret_parameter) {
        (Some(secret), _) => secret.clone(),
        (None, Some(name)) => {
            let output = aws_sdk_ssm::Client::new(aws)
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .with_context(|| format!("could not read the SSM parameter {name}"))?;
            let value = output
                .parameter
                .and_then(|p| p.value)
                .with_context(|| format!("the SSM parameter {name} has no value"))?;
            SecretString::from(value)
        }
        (None, None) => anyhow::bail!("set OTPD_SECRET_PARAMETER (or OTPD_SECRET for local runs)"),
    };
    let secret = Secret::parse(&text).context("the code key is not valid")?;
    Ok(CodeKeys::derive(&secret))
}

/// The router state of GenerateOTP and VerifyOTP, from the environment.
pub async fn app_state() -> anyhow::Result<AppState> {
    let env = LambdaEnv::from_env()?;
    let aws = aws().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), env.table.clone());
    let keys = load_keys(&env, &aws).await?;
    Ok(state(store, keys, env.rules, env.allowlist))
}

/// The router state over a DynamoDB store: the store behind every
/// capability, no outbox (the table's stream is the outbox).
pub fn state(
    store: DynamoStore,
    keys: CodeKeys,
    rules: Rules,
    allowlist: DomainAllowlist,
) -> AppState {
    let store = Arc::new(store);
    let service = OtpService {
        keys,
        rules,
        allowlist,
        clock: Arc::new(SystemClock),
    };
    let stores = Stores {
        issue: store.clone(),
        verify: store.clone(),
        health: store,
        outbox: None,
    };
    // Per-client limits are API Gateway's throttling here: a container sees
    // only a slice of the traffic, so a limit inside it would mean nothing.
    let config = HttpConfig {
        ip_requests_per_minute: 0,
        ..HttpConfig::default()
    };
    AppState::new(service, stores, &config)
}

/// Gives the router the client's address from the API Gateway request
/// context, where `otpd serve` has the socket's.
pub fn with_source_ip(router: Router) -> Router {
    router.layer(middleware::from_fn(source_ip))
}

async fn source_ip(mut request: Request, next: Next) -> Response {
    let ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok()),
        _ => None,
    }
    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 0)));
    next.run(request).await
}

/// Serves `router` as the function's handler.
pub async fn run_http(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(with_source_ip(router)).await
}

//! `otpd serve`: the HTTP server and the outbox worker under one shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use otpd_core::delivery::Delivery;
use otpd_core::{Clock, CodeKeys, Mailer, OtpService};
use otpd_http::{AppState, HttpConfig, Stores, TrustedProxies};
use otpd_mail::{Composer, LogMailer, SesMailer, SmtpMailer};
use otpd_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, MailerUrl, SecretSource, StoreUrl};
use crate::keyfile;
use crate::worker::Worker;

/// A started server; [`Running::stop`] shuts it down gracefully.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    worker: JoinHandle<()>,
    store: SqliteStore,
}

impl Running {
    /// Stops accepting, finishes requests in flight, lets the worker finish
    /// the mail in hand, then folds the WAL into the database file.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let http = self.http.await.context("the HTTP task panicked")?;
        tracing::info!("HTTP server stopped");
        self.worker.await.context("the outbox worker panicked")?;
        match self.store.checkpoint_all().await {
            Ok(()) => tracing::info!("database checkpointed: the .db file holds every write"),
            Err(e) => tracing::warn!(
                error = &e as &dyn std::error::Error,
                "could not fold the WAL into the database; it is replayed at the next start"
            ),
        }
        http.context("the HTTP server failed")
    }
}

pub async fn build_mailer(config: &Config) -> anyhow::Result<Arc<dyn Mailer>> {
    let composer = Composer {
        from: config.mail_from.clone(),
        product: config.product_name.clone(),
        templates: config.templates.clone(),
    };
    Ok(match &config.mailer {
        MailerUrl::Log => Arc::new(LogMailer::new(composer)),
        MailerUrl::Smtp(url) => Arc::new(SmtpMailer::from_url(url, composer)?),
        MailerUrl::Ses => {
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            if aws.region().is_none() {
                anyhow::bail!("OTPD_MAILER=ses needs a region: set AWS_REGION");
            }
            Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(&aws), composer))
        }
    })
}

pub fn load_keys(config: &Config) -> anyhow::Result<CodeKeys> {
    let secret = match &config.secret {
        SecretSource::Given(secret) => return Ok(CodeKeys::derive(secret)),
        SecretSource::KeyFile(path) => keyfile::load_or_create(path)?,
    };
    Ok(CodeKeys::derive(&secret))
}

/// Opens the store, binds nothing (the caller passes `listener`), and starts
/// the HTTP server and the outbox worker.
pub async fn start(
    config: &Config,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
) -> anyhow::Result<Running> {
    let StoreUrl::Sqlite(path, durability) = &config.store;
    let store = SqliteStore::open(path, *durability)
        .with_context(|| format!("could not open the SQLite store at {}", path.display()))?;
    let keys = load_keys(config)?;
    let mailer = build_mailer(config).await?;
    let service = OtpService {
        keys: keys.clone(),
        rules: config.rules,
        allowlist: config.allowlist.clone(),
        clock: clock.clone(),
    };
    let shared = Arc::new(store.clone());
    let stores = Stores {
        issue: shared.clone(),
        verify: shared.clone(),
        health: shared.clone(),
        outbox: Some(shared),
    };
    let http_config = HttpConfig {
        ip_requests_per_minute: config.ip_requests_per_minute,
        trusted_proxies: TrustedProxies(config.trusted_proxies.clone()),
        allowed_origins: config.allowed_origins.clone(),
        product_name: config.product_name.clone(),
    };
    let state = AppState::new(service, stores, &http_config);
    let mail_queued = state.mail_queued();
    let app = otpd_http::app(state, &http_config);
    tokio::spawn(otpd_http::metrics::upkeep(otpd_http::metrics::handle()));

    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let mut http_rx = rx.clone();
    let http = tokio::spawn(otpd_http::serve(listener, app, async move {
        let _ = http_rx.wait_for(|stop| *stop).await;
    }));
    let worker = Worker {
        delivery: Delivery {
            keys,
            code_length: config.rules.code_length,
            retry: config.retry,
        },
        store: store.clone(),
        mailer: mailer.clone(),
        clock,
        mail_queued,
    };
    let worker = tokio::spawn(worker.run(rx));
    tracing::info!(url = %format!("http://{addr}/"), store = %path.display(), mailer = %mailer.describe(), "otpd is serving");
    Ok(Running {
        addr,
        shutdown,
        http,
        worker,
        store,
    })
}

//! What the handlers share.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use otpd_core::store::{IssueStore, Outbox, StoreHealth, VerifyStore};
use otpd_core::OtpService;
use tokio::sync::Notify;

use crate::client_ip::TrustedProxies;
use crate::ip_limit::IpLimit;

/// The store behind each capability; one object may serve them all.
#[derive(Clone)]
pub struct Stores {
    pub issue: Arc<dyn IssueStore>,
    pub verify: Arc<dyn VerifyStore>,
    pub health: Arc<dyn StoreHealth>,
    /// The outbox, where the store keeps one (for `/metrics`).
    pub outbox: Option<Arc<dyn Outbox>>,
}

/// HTTP-level settings.
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    pub ip_requests_per_minute: u32,
    pub trusted_proxies: TrustedProxies,
    /// Origins allowed to call the API from a browser; empty: none.
    pub allowed_origins: Vec<String>,
    pub product_name: String,
}

/// Shared by every request; cloning is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares; opaque outside this crate.
pub struct Shared {
    pub(crate) service: OtpService,
    pub(crate) stores: Stores,
    pub(crate) generate_limit: IpLimit,
    pub(crate) verify_limit: IpLimit,
    pub(crate) trusted_proxies: TrustedProxies,
    /// Woken whenever a mail is queued, so the outbox worker need not poll.
    pub(crate) mail_queued: Arc<Notify>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(service: OtpService, stores: Stores, config: &HttpConfig) -> Self {
        Self(Arc::new(Shared {
            service,
            stores,
            generate_limit: IpLimit::per_minute(config.ip_requests_per_minute),
            verify_limit: IpLimit::per_minute(config.ip_requests_per_minute),
            trusted_proxies: config.trusted_proxies.clone(),
            mail_queued: Arc::new(Notify::new()),
        }))
    }

    /// Notified after each queued mail.
    pub fn mail_queued(&self) -> Arc<Notify> {
        self.0.mail_queued.clone()
    }
}

/// The client's IP, from the connection (or what a Lambda adapter put there)
/// and trusted proxies' `X-Forwarded-For`.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr)
            .unwrap_or_else(|| {
                tracing::warn!(
                    "no peer address on the request; all such requests share one IP budget"
                );
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
            });
        Ok(Self(state.trusted_proxies.client_ip(peer, &parts.headers)))
    }
}

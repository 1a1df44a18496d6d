//! otpd's HTTP API on axum: the two routes of the contract, errors as JSON,
//! per-IP limits, CORS, `/healthz`, `/metrics`, `/openapi.json` and the web
//! page.
//!
//! Handlers never put internals into a response: [`ApiError`] decides status
//! and body, and the cause goes to the log. No code reaches a log either.

mod api;
mod app;
mod client_ip;
mod error;
mod extract;
mod ip_limit;
pub mod metrics;
pub mod openapi;
mod state;
mod web;

pub use api::{GenerateRequest, GenerateResponse, VerifyRequest, VerifyResponse};
pub use app::{app, generate_router, serve, verify_router, with_cors};
pub use client_ip::TrustedProxies;
pub use error::{ApiError, ErrorBody};
pub use extract::MAX_BODY_BYTES;
pub use state::{AppState, HttpConfig, Stores};
pub use web::CONTENT_SECURITY_POLICY;

//! Routers and the server loop.

use std::future::Future;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::extract::MAX_BODY_BYTES;
use crate::state::{AppState, HttpConfig};
use crate::{api, metrics, openapi, web, ApiError};

/// `POST /GenerateOTP` alone (the GenerateOTP Lambda).
pub fn generate_router(state: AppState) -> Router {
    api_layers(
        Router::new()
            .route("/GenerateOTP", post(api::generate))
            .with_state(state),
    )
}

/// `POST /VerifyOTP` alone (the VerifyOTP Lambda).
pub fn verify_router(state: AppState) -> Router {
    api_layers(
        Router::new()
            .route("/VerifyOTP", post(api::verify))
            .with_state(state),
    )
}

/// Everything `otpd serve` answers: both routes, health, metrics, OpenAPI, the page.
pub fn app(state: AppState, config: &HttpConfig) -> Router {
    // Rendered once here, not per request: none of them changes while serving.
    let code_length = state.service.rules.code_length.digits();
    let index = Bytes::from(web::index_html(&config.product_name));
    let script = Bytes::from(web::config_js(&config.product_name, code_length));
    let openapi = Bytes::from(openapi::document(code_length).to_string());
    let page = Router::new()
        .route(
            "/",
            get(move || std::future::ready(web::index(index.clone()))),
        )
        .route(
            "/config.js",
            get(move || std::future::ready(web::config(script.clone()))),
        )
        .route("/app.js", get(web::app_js))
        .route("/style.css", get(web::style_css))
        .route("/favicon.svg", get(web::favicon))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(web::CONTENT_SECURITY_POLICY),
        ));
    let api = Router::new()
        .route("/GenerateOTP", post(api::generate))
        .route("/VerifyOTP", post(api::verify))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route(
            "/openapi.json",
            get(move || {
                let json = [(header::CONTENT_TYPE, "application/json")];
                std::future::ready((json, openapi.clone()).into_response())
            }),
        )
        .with_state(state);
    let router = api_layers(api.merge(page));
    with_cors(router, &config.allowed_origins)
}

/// Layers every router shares: limits, JSON fallbacks, headers, tracing, metrics.
fn api_layers(router: Router) -> Router {
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(common))
}

/// Headers every answer carries unless its handler set them.
const COMMON_HEADERS: [(HeaderName, &str); 4] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
];

/// One middleware for what every request gets (each layer of a router
/// costs a boxed service per request): common headers, the latency metric,
/// and at `debug` a span per request and a line per answer. (tower-http's
/// `TraceLayer` did the last two for a quarter of the server's time per
/// request, even with `debug` off.)
async fn common(request: Request, next: Next) -> Response {
    let timer = metrics::RequestTimer::start(&request);
    let span = tracing::debug_span!("request", method = %request.method(), uri = %request.uri());
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "answered"));
    let headers = response.headers_mut();
    for (name, value) in COMMON_HEADERS {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    timer.finish(response.status());
    response
}

/// CORS for the configured origins only; `*` is never sent, and a request
/// from any other origin gets no `Access-Control-Allow-*` header at all.
pub fn with_cors(router: Router, origins: &[String]) -> Router {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if allowed.is_empty() {
        return router;
    }
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed.clone()))
        .allow_methods([Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600));
    router
        .layer(cors)
        .layer(middleware::from_fn_with_state(allowed, strip_foreign_cors))
}

async fn strip_foreign_cors(
    State(allowed): State<Vec<HeaderValue>>,
    request: Request,
    next: Next,
) -> Response {
    let foreign = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| !allowed.contains(origin));
    let mut response = next.run(request).await;
    if foreign {
        let cors_headers: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors_headers {
            response.headers_mut().remove(name);
        }
    }
    response
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.stores.health.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::warn!(error = &e as &dyn std::error::Error, "health check failed");
            ApiError::Unavailable.into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    if let Some(outbox) = &state.stores.outbox {
        match outbox.stats(state.service.clock.now()).await {
            Ok(stats) => metrics::record_outbox(&stats),
            Err(e) => tracing::warn!(error = &e as &dyn std::error::Error, "outbox stats failed"),
        }
    }
    let handle = metrics::handle();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

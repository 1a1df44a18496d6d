//! Prometheus metrics: names in one place, recorded through the `metrics` facade.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use otpd_core::delivery::{DeadReason, Step};
use otpd_core::policy::{IssueOutcome, NoCode, VerifyOutcome};
use otpd_core::store::OutboxStats;

pub const CODES_ISSUED: &str = "otpd_codes_issued_total";
pub const GENERATE_REFUSED: &str = "otpd_generate_refused_total";
pub const VERIFICATIONS: &str = "otpd_verifications_total";
pub const MAILS: &str = "otpd_mails_total";
pub const OUTBOX_DEPTH: &str = "otpd_outbox_depth";
pub const OUTBOX_OLDEST_AGE: &str = "otpd_outbox_oldest_age_seconds";
pub const REQUEST_DURATION: &str = "otpd_http_request_duration_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process-wide recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), LATENCY_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder was installed first; /metrics stays empty"
                );
            }
            describe();
            handle
        })
        .clone()
}

/// How often histogram samples are folded into their buckets. Until then
/// the recorder keeps every raw sample: without this, memory grows by a few
/// bytes per request between scrapes (and for ever if nobody scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Folds samples into buckets for as long as the server runs. Taking the
/// handle makes the caller install the recorder before anything is recorded.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

fn describe() {
    metrics::describe_counter!(CODES_ISSUED, "Codes issued (each queued one mail).");
    metrics::describe_counter!(
        GENERATE_REFUSED,
        "GenerateOTP requests refused by a per-address limit."
    );
    metrics::describe_counter!(VERIFICATIONS, "Verification attempts by result.");
    metrics::describe_counter!(MAILS, "Mail delivery attempts by result.");
    metrics::describe_gauge!(OUTBOX_DEPTH, "Mails waiting to be delivered.");
    metrics::describe_gauge!(
        OUTBOX_OLDEST_AGE,
        "Age of the oldest waiting mail, seconds."
    );
    metrics::describe_histogram!(REQUEST_DURATION, "HTTP request latency, seconds.");
}

pub fn record_issue(outcome: &IssueOutcome) {
    match outcome {
        IssueOutcome::Issued { .. } => metrics::counter!(CODES_ISSUED).increment(1),
        IssueOutcome::RateLimited { limit, .. } => {
            let limit = match limit {
                otpd_core::policy::Limit::ResendCooldown => "cooldown",
                otpd_core::policy::Limit::HourlyCap => "hourly_cap",
            };
            metrics::counter!(GENERATE_REFUSED, "limit" => limit).increment(1);
        }
    }
}

pub fn record_verify(outcome: &VerifyOutcome) {
    let result = match outcome {
        VerifyOutcome::Verified => "success",
        VerifyOutcome::Wrong { .. } => "wrong",
        VerifyOutcome::NoLiveCode(NoCode::Expired) => "expired",
        VerifyOutcome::NoLiveCode(NoCode::Burned) => "burned",
        VerifyOutcome::NoLiveCode(NoCode::Unknown) => "unknown",
    };
    metrics::counter!(VERIFICATIONS, "result" => result).increment(1);
}

pub fn record_mail(step: &Step) {
    let result = match step {
        Step::Delivered => "sent",
        Step::Retried { .. } => "retry",
        Step::Dead(DeadReason::CodeExpired) => "expired",
        Step::Dead(_) => "dead",
    };
    metrics::counter!(MAILS, "result" => result).increment(1);
}

pub fn record_outbox(stats: &OutboxStats) {
    metrics::gauge!(OUTBOX_DEPTH).set(stats.depth as f64);
    metrics::gauge!(OUTBOX_OLDEST_AGE).set(stats.oldest_age.as_secs_f64());
}

/// Times one request, labelled by route template, method and status.
pub struct RequestTimer {
    route: &'static str,
    method: &'static str,
    started: Instant,
}

impl RequestTimer {
    pub fn start(request: &Request) -> Self {
        Self {
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", |p| route_label(p.as_str())),
            method: method_label(request.method()),
            started: Instant::now(),
        }
    }

    pub fn finish(self, status: StatusCode) {
        metrics::histogram!(
            REQUEST_DURATION,
            "route" => self.route,
            "method" => self.method,
            "status" => status_label(status)
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}

// Labels are static strings: no allocation per request, and a client cannot
// grow the label set with made-up paths, methods or statuses.
fn route_label(path: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/GenerateOTP",
        "/VerifyOTP",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/",
        "/config.js",
        "/app.js",
        "/style.css",
        "/favicon.svg",
    ];
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

fn status_label(status: StatusCode) -> &'static str {
    const STATUSES: &[(u16, &str)] = &[
        (200, "200"),
        (204, "204"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (410, "410"),
        (413, "413"),
        (415, "415"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    STATUSES
        .iter()
        .find(|(code, _)| *code == status.as_u16())
        .map_or("other", |(_, label)| label)
}

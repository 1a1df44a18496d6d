//! Prometheus metrics: names in one place, recorded through the `metrics` facade.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
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
pub const OUTBOX_DAMAGED: &str = "otpd_outbox_damaged";
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
    metrics::describe_gauge!(
        OUTBOX_DAMAGED,
        "Queued mails set aside because the store could not read them back."
    );
    metrics::describe_histogram!(REQUEST_DURATION, "HTTP request latency, seconds.");
}

/// Handles registered on first use and kept: the recorder otherwise hashes
/// the name and labels (and allocates the label list) on every call. The
/// recorder is installed before anything is recorded ([`handle`] when the
/// server starts, the Lambda's own at init).
struct Handles<T, const N: usize>([OnceLock<T>; N]);

impl<T, const N: usize> Handles<T, N> {
    const fn new() -> Self {
        Self([const { OnceLock::new() }; N])
    }

    fn get(&self, index: usize, register: impl FnOnce() -> T) -> &T {
        self.0[index].get_or_init(register)
    }
}

pub fn record_issue(outcome: &IssueOutcome) {
    const LIMITS: [&str; 2] = ["cooldown", "hourly_cap"];
    static ISSUED: OnceLock<Counter> = OnceLock::new();
    static REFUSED: Handles<Counter, { LIMITS.len() }> = Handles::new();
    match outcome {
        IssueOutcome::Issued { .. } => ISSUED.get_or_init(|| metrics::counter!(CODES_ISSUED)),
        IssueOutcome::RateLimited { limit, .. } => {
            let index = match limit {
                otpd_core::policy::Limit::ResendCooldown => 0,
                otpd_core::policy::Limit::HourlyCap => 1,
            };
            REFUSED.get(
                index,
                || metrics::counter!(GENERATE_REFUSED, "limit" => LIMITS[index]),
            )
        }
    }
    .increment(1);
}

pub fn record_verify(outcome: &VerifyOutcome) {
    const RESULTS: [&str; 5] = ["success", "wrong", "expired", "burned", "unknown"];
    static COUNTERS: Handles<Counter, { RESULTS.len() }> = Handles::new();
    let index = match outcome {
        VerifyOutcome::Verified => 0,
        VerifyOutcome::Wrong { .. } => 1,
        VerifyOutcome::NoLiveCode(NoCode::Expired) => 2,
        VerifyOutcome::NoLiveCode(NoCode::Burned) => 3,
        VerifyOutcome::NoLiveCode(NoCode::Unknown) => 4,
    };
    COUNTERS
        .get(
            index,
            || metrics::counter!(VERIFICATIONS, "result" => RESULTS[index]),
        )
        .increment(1);
}

pub fn record_mail(step: &Step) {
    const RESULTS: [&str; 4] = ["sent", "retry", "expired", "dead"];
    static COUNTERS: Handles<Counter, { RESULTS.len() }> = Handles::new();
    let index = match step {
        Step::Delivered => 0,
        Step::Retried { .. } => 1,
        Step::Dead(DeadReason::CodeExpired) => 2,
        Step::Dead(_) => 3,
    };
    COUNTERS
        .get(
            index,
            || metrics::counter!(MAILS, "result" => RESULTS[index]),
        )
        .increment(1);
}

pub fn record_outbox(stats: &OutboxStats) {
    metrics::gauge!(OUTBOX_DEPTH).set(stats.depth as f64);
    metrics::gauge!(OUTBOX_OLDEST_AGE).set(stats.oldest_age.as_secs_f64());
    metrics::gauge!(OUTBOX_DAMAGED).set(stats.damaged as f64);
}

/// Times one request, labelled by route template, method and status.
pub struct RequestTimer {
    route: usize,
    method: usize,
    started: Instant,
}

impl RequestTimer {
    pub fn start(request: &Request) -> Self {
        Self {
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or(UNMATCHED, |p| route_index(p.as_str())),
            method: method_index(request.method()),
            started: Instant::now(),
        }
    }

    pub fn finish(self, status: StatusCode) {
        static HISTOGRAMS: Handles<Histogram, { ROUTES.len() * METHODS.len() * STATUSES.len() }> =
            Handles::new();
        let status = status_index(status);
        let index = (self.route * METHODS.len() + self.method) * STATUSES.len() + status;
        HISTOGRAMS
            .get(index, || {
                metrics::histogram!(
                    REQUEST_DURATION,
                    "route" => ROUTES[self.route],
                    "method" => METHODS[self.method],
                    "status" => STATUSES[status].1
                )
            })
            .record(self.started.elapsed().as_secs_f64());
    }
}

// Labels are static strings from these lists: a client cannot grow the label
// set with made-up paths, methods or statuses. The last entry of each list
// takes whatever the others do not name.
const ROUTES: [&str; 12] = [
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
    "unmatched",
    "other",
];
const UNMATCHED: usize = ROUTES.len() - 2;
const METHODS: [&str; 5] = ["GET", "POST", "OPTIONS", "HEAD", "other"];
const STATUSES: [(u16, &str); 15] = [
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
    (0, "other"),
];

fn route_index(path: &str) -> usize {
    ROUTES[..UNMATCHED]
        .iter()
        .position(|route| *route == path)
        .unwrap_or(ROUTES.len() - 1)
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::OPTIONS => 2,
        Method::HEAD => 3,
        _ => METHODS.len() - 1,
    }
}

fn status_index(status: StatusCode) -> usize {
    STATUSES[..STATUSES.len() - 1]
        .iter()
        .position(|(code, _)| *code == status.as_u16())
        .unwrap_or(STATUSES.len() - 1)
}

//! A `metrics` recorder that writes each counter increment as a CloudWatch
//! Embedded Metric Format line on stdout, so the counters of `otpd-http`
//! (codes issued, verifications and mails by result) become CloudWatch
//! metrics without an agent. Gauges and histograms are not used here.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// The CloudWatch namespace of every otpd metric.
pub const NAMESPACE: &str = "otpd";

pub fn install(function: &'static str) {
    if metrics::set_global_recorder(EmfRecorder { function }).is_err() {
        tracing::warn!("a metrics recorder was already installed");
    }
}

struct EmfRecorder {
    function: &'static str,
}

struct EmfCounter {
    line: Arc<dyn Fn(u64) -> String + Send + Sync>,
}

impl CounterFn for EmfCounter {
    fn increment(&self, value: u64) {
        println!("{}", (self.line)(value));
    }

    fn absolute(&self, value: u64) {
        self.increment(value);
    }
}

/// One EMF document: the metric, its labels as dimensions, and the value.
fn emf_line(function: &str, key: &Key, value: u64) -> String {
    let name = key.name();
    let mut dimensions = vec!["function".to_owned()];
    let mut document = serde_json::json!({ "function": function, name: value });
    for label in key.labels() {
        dimensions.push(label.key().to_owned());
        document[label.key()] = label.value().into();
    }
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    document["_aws"] = serde_json::json!({
        "Timestamp": millis,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": [{ "Name": name, "Unit": "Count" }],
        }],
    });
    document.to_string()
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let (function, key) = (self.function, key.clone());
        Counter::from_arc(Arc::new(EmfCounter {
            line: Arc::new(move |value| emf_line(function, &key, value)),
        }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_becomes_one_emf_document() {
        let key = Key::from_parts(
            "otpd_verifications_total",
            vec![metrics::Label::new("result", "success")],
        );
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("VerifyOTP", &key, 1)).expect("JSON");
        assert_eq!(line["otpd_verifications_total"], 1);
        assert_eq!(line["result"], "success");
        assert_eq!(line["function"], "VerifyOTP");
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "otpd");
        assert_eq!(
            spec["Dimensions"][0],
            serde_json::json!(["function", "result"])
        );
        assert_eq!(spec["Metrics"][0]["Name"], "otpd_verifications_total");
    }
}

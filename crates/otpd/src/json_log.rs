//! `OTPD_LOG_FORMAT=json`: one JSON object per line, with the keys of
//! tracing-subscriber's flattened JSON format (`timestamp`, `level`, the
//! event's fields, `target`, then `span` and `spans` inside a span), written
//! straight into a reused buffer. tracing-subscriber's own format builds the
//! line through serde's map serializer with a heap-allocated timestamp and
//! cost about a tenth of the server's time per request under load.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter; pair it with [`JsonFields`] for the spans' fields.
pub struct JsonLines;

thread_local! {
    static LINE: RefCell<Line> = RefCell::new(Line::default());
    static SECOND: RefCell<Second> = RefCell::new(Second::default());
}

/// The date and time of day of one second, formatted once for all the
/// lines a thread writes in it.
#[derive(Default)]
struct Second {
    unix: Option<u64>,
    text: String,
}

impl Second {
    /// tracing-subscriber's `SystemTime` format: RFC 3339 in UTC with
    /// microseconds, `2026-12-02T07:07:08.123456Z`.
    fn write(&mut self, since_epoch: Duration, out: &mut impl fmt::Write) -> fmt::Result {
        let unix = since_epoch.as_secs();
        if self.unix != Some(unix) {
            let time = i64::try_from(unix)
                .ok()
                .and_then(|unix| time::OffsetDateTime::from_unix_timestamp(unix).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            self.text.clear();
            write!(
                self.text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            )?;
            self.unix = Some(unix);
        }
        write!(out, "{}.{:06}Z", self.text, since_epoch.subsec_micros())
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("{\"timestamp\":\"")?;
        let since_epoch = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        SECOND.with(|second| match second.try_borrow_mut() {
            Ok(mut second) => second.write(since_epoch, &mut writer),
            Err(_) => Second::default().write(since_epoch, &mut writer),
        })?;
        // A field's Debug that logs would format a line inside this one.
        let mut write = |line: &mut Line| {
            line.clear();
            line.event(ctx, event);
            writer.write_str(line.as_str())
        };
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => write(&mut line),
            Err(_) => write(&mut Line::default()),
        })
    }
}

/// The part of a line after the timestamp, and scratch space for fields.
#[derive(Default)]
struct Line {
    out: Vec<u8>,
    scratch: String,
    /// `log.target` of an event from the `log` crate, its real target.
    log_target: Option<String>,
}

impl Line {
    fn clear(&mut self) {
        self.out.clear();
        self.log_target = None;
    }

    fn event<S>(&mut self, ctx: &FmtContext<'_, S, JsonFields>, event: &Event<'_>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        self.out.extend_from_slice(b"\",\"level\":\"");
        self.out.extend_from_slice(meta.level().as_str().as_bytes());
        self.out.push(b'"');
        event.record(self);
        let target = self.log_target.take();
        self.key("target");
        self.json(target.as_deref().unwrap_or(meta.target()));
        let current = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(current) = current {
            self.key("span");
            self.span(&current);
            self.key("spans");
            self.out.push(b'[');
            for (i, span) in current.scope().from_root().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.span(&span);
            }
            self.out.push(b']');
        }
        self.out.extend_from_slice(b"}\n");
    }

    /// `{<the span's fields>,"name":…}`; the fields were formatted by [`JsonFields`]
    /// as a JSON object when the span was entered or recorded.
    fn span<S>(&mut self, span: &tracing_subscriber::registry::SpanRef<'_, S>)
    where
        S: for<'a> LookupSpan<'a>,
    {
        self.out.push(b'{');
        let extensions = span.extensions();
        let fields = extensions
            .get::<FormattedFields<JsonFields>>()
            .and_then(|fields| fields.strip_prefix('{')?.strip_suffix('}'))
            .filter(|inner| !inner.is_empty());
        if let Some(inner) = fields {
            self.out.extend_from_slice(inner.as_bytes());
            self.out.push(b',');
        }
        self.out.extend_from_slice(b"\"name\":");
        self.json(span.name());
        self.out.push(b'}');
    }

    fn key(&mut self, name: &str) {
        self.out.push(b',');
        self.json(name);
        self.out.push(b':');
    }

    /// Writes a field's entry, but none for the `log` crate's metadata fields.
    fn field<T: Serialize + ?Sized>(&mut self, field: &Field, value: &T) {
        let name = field.name();
        if !name.starts_with("log.") {
            self.key(name.strip_prefix("r#").unwrap_or(name));
            self.json(value);
        }
    }

    fn json<T: Serialize + ?Sized>(&mut self, value: &T) {
        // Serializing strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, value);
    }

    fn as_str(&self) -> &str {
        // Only `str`s and serde_json's output were written.
        std::str::from_utf8(&self.out).unwrap_or("\"}\n")
    }
}

impl Visit for Line {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, &value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "log.target" => self.log_target = Some(value.to_owned()),
            _ => self.field(field, value),
        }
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.field(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        // Only a Debug impl that fails stops here; the line keeps what it wrote.
        let _ = fmt::write(&mut scratch, format_args!("{value:?}"));
        self.field(field, scratch.as_str());
        self.scratch = scratch;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use serde_json::{json, Map, Value};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    type Lines = Vec<Map<String, Value>>;

    impl Captured {
        fn lines(&self) -> Lines {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|line| match serde_json::from_str(line) {
                    Ok(Value::Object(object)) => object,
                    other => panic!("not a JSON object: {line} ({other:?})"),
                })
                .collect()
        }
    }

    /// What `emit` logs, through this formatter and through
    /// tracing-subscriber's flattened JSON (the format it stands in for).
    fn both(emit: fn()) -> (Lines, Lines) {
        let ours = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(ours.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let reference = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(reference.clone())
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        (ours.lines(), reference.lines())
    }

    fn without_timestamp(mut lines: Lines) -> Lines {
        for line in &mut lines {
            let timestamp = line.remove("timestamp").unwrap();
            let timestamp = timestamp.as_str().unwrap();
            assert!(
                timestamp.ends_with('Z') && timestamp.len() == "2026-12-02T07:07:08.123456Z".len(),
                "{timestamp}"
            );
        }
        lines
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc_with_microseconds() {
        let mut second = Second::default();
        let mut at = |secs: u64, micros: u64| {
            let mut text = String::new();
            let since_epoch = Duration::from_secs(secs) + Duration::from_micros(micros);
            second.write(since_epoch, &mut text).unwrap();
            text
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_835_481_599, 999_999), "2028-02-29T23:59:59.999999Z");
        // The same second again, then the next one.
        assert_eq!(at(1_835_481_599, 7), "2028-02-29T23:59:59.000007Z");
        assert_eq!(at(1_835_481_600, 120), "2028-03-01T00:00:00.000120Z");
    }

    #[test]
    fn fields_of_every_type_are_written_as_tracing_subscriber_writes_them() {
        let (ours, reference) = both(|| {
            let error = std::io::Error::other("disk \"full\"");
            tracing::warn!(
                small = -3i64,
                big = u64::MAX,
                ratio = 0.25,
                nan = f64::NAN,
                yes = true,
                text = "quote \" backslash \\ newline \n tab \t bell \u{7} é 😀",
                debug = ?("tuple", 1),
                display = %"shown",
                error = &error as &dyn std::error::Error,
                r#type = "raw",
                "message with {} and \"quotes\"",
                "arguments"
            );
            tracing::info!("only a message");
        });
        let ours = without_timestamp(ours);
        assert_eq!(ours, without_timestamp(reference));
        assert_eq!(ours[0]["level"], "WARN");
        assert_eq!(ours[0]["target"], "otpd::json_log::tests");
        assert_eq!(ours[0]["nan"], Value::Null);
        assert_eq!(ours[0]["error"], "disk \"full\"");
        assert_eq!(ours[0]["message"], "message with arguments and \"quotes\"");
        assert!(!ours[1].contains_key("span"));
    }

    #[test]
    fn spans_are_written_from_the_current_one_and_from_the_root() {
        let (ours, reference) = both(|| {
            let request = tracing::debug_span!("request", method = "POST", id = 7);
            let _request = request.enter();
            let store = tracing::debug_span!("store");
            let _store = store.enter();
            tracing::debug!(rows = 2, "committed");
        });
        let ours = without_timestamp(ours);
        assert_eq!(ours, without_timestamp(reference));
        assert_eq!(ours[0]["span"], json!({"name": "store"}));
        assert_eq!(
            ours[0]["spans"],
            json!([{"name": "request", "method": "POST", "id": 7}, {"name": "store"}])
        );
    }

    #[test]
    fn a_field_that_logs_while_it_is_formatted_leaves_the_line_whole() {
        struct Noisy;
        impl fmt::Debug for Noisy {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                tracing::info!("inner");
                f.write_str("noisy")
            }
        }
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!(value = ?Noisy, "outer"));
        let messages: Vec<_> = captured
            .lines()
            .iter()
            .map(|line| line["message"].clone())
            .collect();
        assert!(messages.contains(&json!("outer")), "{messages:?}");
    }
}

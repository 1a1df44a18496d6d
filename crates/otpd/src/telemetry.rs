//! Logs to standard error, as text or JSON; standard output is left to the
//! log mailer.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::json_log::JsonLines;

/// Log lines waiting for stderr at most; bounds the memory a burst can take.
const LOG_BUFFER_LINES: usize = 4096;

/// `RUST_LOG` refines the default `info` level. Lines are written by a
/// background thread, so a request never waits on stderr; none is dropped
/// (a full buffer makes the logger wait instead). Keep the guard until exit:
/// dropping it flushes what is buffered.
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(false)
        // The background thread flushes whenever it has drained the buffer:
        // one write per burst of lines, not one per line.
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("a global subscriber was already installed");
    }
    guard
}

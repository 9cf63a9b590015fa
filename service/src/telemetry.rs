//! Logging: a tracing subscriber writing JSON lines or human-readable text to a sink of the
//! caller's choice (stdout in the binary, a sink or stdout in tests, see `TEST_LOG`).

use std::borrow::Cow;
use std::io::{self, Write};

use contract::{LogFormat, LogLevel};
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Builds the subscriber. The service's own events follow `level`; actix's are capped at
/// warn: its info lines repeat our lifecycle lines, and at debug and trace actix-http
/// describes requests in detail (an `Authorization` header must never reach the logs).
/// actix-http's HTTP/1 dispatcher is silenced: it logs at error whatever ends a connection
/// badly, a client's malformed request included (a line at error for every one a client
/// cares to send). Those errors come back to the connection layer, which counts them and
/// logs them at debug (see `connection::serve`).
/// [`Targets`] decides once per call site, so `tracing::enabled!` on the request path stays
/// a cached check.
pub fn get_subscriber<Sink>(
    level: LogLevel,
    format: LogFormat,
    sink: Sink,
) -> Box<dyn Subscriber + Send + Sync>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let own = level_filter(level);
    let filter = Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), own)
        .with_target(ACTIX_DISPATCHER, LevelFilter::OFF)
        .with_default(own.min(LevelFilter::WARN));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(sink),
            ),
        ),
        LogFormat::Text => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(EscapeControls(sink)),
            ),
        ),
    }
}

/// The target of actix-http's HTTP/1 dispatcher's events.
const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";

/// Installs the subscriber process-wide and routes `log` records (actix-web still emits a
/// few through `log`) into it, capped at warn like the rest of actix.
pub fn init_subscriber(subscriber: Box<dyn Subscriber + Send + Sync>) {
    // A second installation (only possible in tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
    // After the subscriber: installing it resets `log`'s global max level to its own.
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(tracing_log::log::LevelFilter::Warn)
        .init();
}

/// The tracing filter for a contract log level.
pub fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// A text-format sink that escapes control characters (`\n` as the two characters `\n`,
/// others as `\u{..}`), except the newline that ends each event: a value from outside (a pod
/// name, a header) can never split a line or forge one. JSON escapes them already.
#[derive(Debug)]
pub struct EscapeControls<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for EscapeControls<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        EscapingWriter(self.0.make_writer_for(meta))
    }
}

/// The writer of [`EscapeControls`]; tracing writes each event with one `write_all`.
#[derive(Debug)]
pub struct EscapingWriter<W>(W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape_controls(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `buf` with every control character escaped but one final newline.
pub fn escape_controls(buf: &[u8]) -> Cow<'_, [u8]> {
    let (body, newline) = match buf.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (buf, false),
    };
    let text = String::from_utf8_lossy(body);
    if matches!(text, Cow::Borrowed(_)) && !text.chars().any(char::is_control) {
        return Cow::Borrowed(buf);
    }
    let mut out = String::with_capacity(buf.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if newline {
        out.push('\n');
    }
    Cow::Owned(out.into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_the_final_newline_is_kept() {
        assert_eq!(&*escape_controls(b"plain line\n"), b"plain line\n");
        let forged = "pod=a\nINFO forged\r\t\u{7f}\u{85}\u{1b}[31m\n";
        assert_eq!(
            String::from_utf8(escape_controls(forged.as_bytes()).into_owned()).unwrap(),
            r"pod=a\nINFO forged\r\t\u{7f}\u{85}\u{1b}[31m".to_owned() + "\n"
        );
        assert_eq!(
            &*escape_controls("caf\u{e9}\n".as_bytes()),
            "caf\u{e9}\n".as_bytes()
        );
    }
}

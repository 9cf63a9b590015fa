//! Logging: a tracing subscriber writing JSON lines or human-readable text to a sink of the
//! caller's choice (stdout in the binary, a sink or stdout in tests, see `TEST_LOG`).

use contract::{LogFormat, LogLevel};
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Builds the subscriber. The service's own events follow `level`; actix's are capped at
/// warn: its info lines repeat our lifecycle lines, and at debug and trace actix-http
/// describes requests in detail (an `Authorization` header must never reach the logs).
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
                    .with_writer(sink),
            ),
        ),
    }
}

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

//! Configuration: the contract's validated [`Settings`], read from the environment, and the
//! start-up summary logged without the secret.

pub use contract::{ConfigError, Environment, LogFormat, LogLevel, Settings, Workers};

/// Logs what the service will run with, at info. The API key is reported only as configured
/// or not, never by value.
pub fn log_summary(settings: &Settings) {
    tracing::info!(
        environment = settings.environment.as_str(),
        debug = settings.debug,
        host = %settings.host,
        port = settings.port,
        log_format = settings.log_format.as_str(),
        log_level = settings.log_level.as_str(),
        drain_delay_seconds = settings.drain_delay.as_secs(),
        shutdown_timeout_seconds = settings.shutdown_timeout.as_secs(),
        workers = settings.workers.resolve(),
        metrics_enabled = settings.metrics_enabled,
        api_key_configured = if settings.api_key.is_some() { "yes" } else { "no" },
        pod = %settings.pod_name,
        namespace = %settings.pod_namespace,
        node = %settings.node_name,
        "configuration loaded"
    );
}

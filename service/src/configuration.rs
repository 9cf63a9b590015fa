//! Configuration: the contract's validated [`Settings`], read from the environment, and the
//! start-up summary logged without the secret.

pub use contract::{ConfigError, Count, Environment, LogFormat, LogLevel, Settings};

/// Worker threads: `WORKERS`, or one per CPU available to the process (std honours cgroup
/// CPU quotas, so a 500m limit gives one worker).
pub fn workers(settings: &Settings) -> usize {
    match settings.config.workers {
        Count::Fixed(n) => usize::try_from(n).unwrap_or(usize::MAX),
        Count::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// Logs what the service will run with, at info. The API key is reported only as configured
/// or not, never by value.
pub fn log_summary(settings: &Settings) {
    let config = &settings.config;
    tracing::info!(
        environment = config.env.as_str(),
        debug = config.debug,
        host = %config.host,
        port = config.port,
        log_format = settings.log_format.as_str(),
        log_level = settings.log_level.as_str(),
        drain_delay_seconds = config.drain_delay_seconds.as_secs(),
        shutdown_timeout_seconds = config.shutdown_timeout_seconds.as_secs(),
        workers = workers(settings),
        metrics_enabled = config.metrics_enabled,
        api_key_configured = if settings.api_key.is_some() { "yes" } else { "no" },
        pod = %config.pod_name,
        namespace = %config.pod_namespace,
        node = %config.node_name,
        "configuration loaded"
    );
}

//! Parsing and validating the environment into typed settings.
//!
//! [`RawConfig`] is what envy deserializes: every key as optional text, so envy itself never
//! fails on a malformed value. [`Settings::from_raw`] then validates each key and reports the
//! first problem as a [`ConfigError`] that names the variable and the expected form. The value
//! of `API_KEY` is never echoed, in errors or anywhere else.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{ENV_KEYS, defaults};

/// The environment as envy reads it: one optional string per key of [`crate::ENV_KEYS`].
///
/// envy matches variables to fields by lower-casing the variable name (`API_KEY` -> `api_key`).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub env: Option<String>,
    pub debug: Option<String>,
    pub api_key: Option<SecretString>,
    pub api_key_file: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub drain_delay_seconds: Option<String>,
    pub shutdown_timeout_seconds: Option<String>,
    pub workers: Option<String>,
    pub metrics_enabled: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub node_name: Option<String>,
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawConfig")
            .field("env", &self.env)
            .field("debug", &self.debug)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("api_key_file", &self.api_key_file)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl RawConfig {
    /// Reads the process environment. Variables the contract does not name are ignored;
    /// variables that are not valid UTF-8 are ignored too (none of ours can be).
    pub fn from_env() -> Self {
        Self::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads `(NAME, value)` pairs, e.g. a ConfigMap's data merged with a Secret's.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        // Keep only the contract's keys: envy would reject the others because of
        // deny_unknown_fields, which exists so that field_names() below is exhaustive.
        let known = pairs.into_iter().filter_map(|(k, v)| {
            let k = k.into();
            ENV_KEYS
                .iter()
                .any(|key| key.name == k)
                .then(|| (k, v.into()))
        });
        // Every field is an optional string, so deserialization cannot fail on a value.
        envy::from_iter(known).unwrap_or_default()
    }

    /// The field names serde deserializes, i.e. the lower-cased environment keys.
    pub fn field_names() -> &'static [&'static str] {
        struct Fields(&'static [&'static str]);
        struct Probe<'a>(&'a mut Fields);
        impl<'de> serde::Deserializer<'de> for Probe<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(
                self,
                _: V,
            ) -> Result<V::Value, Self::Error> {
                Err(serde::de::Error::custom("field probe"))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0.0 = fields;
                Err(serde::de::Error::custom("field probe"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                enum identifier ignored_any
            }
        }
        let mut fields = Fields(&[]);
        let _ = RawConfig::deserialize(Probe(&mut fields));
        fields.0
    }
}

/// The environment the service runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl Environment {
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    pub const fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    }
}

/// Minimum log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Number of HTTP worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One per CPU available to the process (std honours cgroup CPU quotas).
    Auto,
    Fixed(usize),
}

impl Workers {
    /// The concrete count.
    pub fn resolve(self) -> usize {
        match self {
            Workers::Fixed(n) => n,
            Workers::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The operator token. Debug and Display never print it; compare it with
/// [`ApiKey::matches`], which takes constant time in the token's content.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// True when `candidate` equals the key, compared in constant time.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        // subtle compares every byte (a length mismatch returns early, which only reveals
        // the length, not the content).
        bool::from(self.0.expose_secret().as_bytes().ct_eq(candidate))
    }

    /// The token itself, for the few places that must send it (tests, the deploy script).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Validated configuration of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub debug: bool,
    pub api_key: Option<ApiKey>,
    pub host: IpAddr,
    pub port: u16,
    pub log_format: LogFormat,
    pub log_level: LogLevel,
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    pub workers: Workers,
    pub metrics_enabled: bool,
    pub pod_name: String,
    pub pod_namespace: String,
    pub node_name: String,
}

/// A configuration value that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault.
    pub key: &'static str,
    /// What was wrong, e.g. `"abc" is not valid` or `is required when ENV=production`.
    pub problem: String,
    /// The accepted form (the contract's `expected` text).
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {} {}; expected {}",
            self.key, self.problem, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

fn expected_of(key: &'static str) -> &'static str {
    ENV_KEYS
        .iter()
        .find(|k| k.name == key)
        .map_or("a valid value", |k| k.expected)
}

fn invalid(key: &'static str, value: &str) -> ConfigError {
    ConfigError {
        key,
        problem: format!("is {value:?}, which is not valid"),
        expected: expected_of(key),
    }
}

/// Parses an optional value: absent means `default`; present must parse.
fn parse_or<T>(
    key: &'static str,
    value: Option<&str>,
    default: T,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => parse(v).ok_or_else(|| invalid(key, v)),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn parse_seconds(v: &str, min: u64, max: u64) -> Option<Duration> {
    // Digits only: "+5", " 5" and "5s" are rejected rather than guessed at.
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = v.parse().ok()?;
    (min..=max).contains(&n).then(|| Duration::from_secs(n))
}

impl Settings {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_raw(RawConfig::from_env())
    }

    /// Validates raw values; the first problem found (in [`ENV_KEYS`] order) is returned.
    /// `API_KEY_FILE`, when set, is read from the filesystem.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        Self::from_raw_with(raw, |path| std::fs::read_to_string(path))
    }

    /// [`Settings::from_raw`] with the file reader given: the generator validates the
    /// environment it generates without the Secret being mounted anywhere.
    pub fn from_raw_with(
        raw: RawConfig,
        read_file: impl FnOnce(&str) -> std::io::Result<String>,
    ) -> Result<Self, ConfigError> {
        let environment = parse_or(
            "ENV",
            raw.env.as_deref(),
            Environment::Development,
            |v| match v {
                "development" => Some(Environment::Development),
                "production" => Some(Environment::Production),
                _ => None,
            },
        )?;
        let debug = parse_or("DEBUG", raw.debug.as_deref(), false, parse_bool)?;
        let api_key = match (raw.api_key, raw.api_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    key: "API_KEY_FILE",
                    problem: "is set together with API_KEY".into(),
                    expected: expected_of("API_KEY_FILE"),
                });
            }
            (Some(secret), None) => Some(check_api_key("API_KEY", secret)?),
            (None, Some(path)) => {
                let contents = read_file(&path).map_err(|err| ConfigError {
                    key: "API_KEY_FILE",
                    problem: format!("is {path:?}, which cannot be read ({err})"),
                    expected: expected_of("API_KEY_FILE"),
                })?;
                // One trailing newline is what `echo key > file` leaves; strip it, as
                // kubectl create secret --from-file users expect.
                let token = contents
                    .strip_suffix("\r\n")
                    .or_else(|| contents.strip_suffix('\n'))
                    .unwrap_or(&contents)
                    .to_owned();
                Some(check_api_key("API_KEY_FILE", SecretString::from(token))?)
            }
            (None, None) if environment == Environment::Production => {
                return Err(ConfigError {
                    key: "API_KEY",
                    problem:
                        "is missing (and API_KEY_FILE too), and it is required when ENV=production"
                            .into(),
                    expected: expected_of("API_KEY"),
                });
            }
            (None, None) => None,
        };
        let host = parse_or("HOST", raw.host.as_deref(), defaults_host(), |v| {
            v.parse().ok()
        })?;
        let port = parse_or("PORT", raw.port.as_deref(), crate::HTTP_PORT, |v| {
            if !v.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            v.parse::<u16>().ok().filter(|p| *p != 0)
        })?;
        let default_format = match environment {
            Environment::Production => LogFormat::Json,
            Environment::Development => LogFormat::Text,
        };
        let log_format = parse_or(
            "LOG_FORMAT",
            raw.log_format.as_deref(),
            default_format,
            |v| match v {
                "json" => Some(LogFormat::Json),
                "text" => Some(LogFormat::Text),
                _ => None,
            },
        )?;
        let default_level = if debug {
            LogLevel::Debug
        } else {
            LogLevel::Info
        };
        let log_level = parse_or(
            "LOG_LEVEL",
            raw.log_level.as_deref(),
            default_level,
            |v| match v {
                "trace" => Some(LogLevel::Trace),
                "debug" => Some(LogLevel::Debug),
                "info" => Some(LogLevel::Info),
                "warn" => Some(LogLevel::Warn),
                "error" => Some(LogLevel::Error),
                _ => None,
            },
        )?;
        let drain_delay = parse_or(
            "DRAIN_DELAY_SECONDS",
            raw.drain_delay_seconds.as_deref(),
            Duration::from_secs(defaults::DRAIN_DELAY_SECONDS),
            |v| parse_seconds(v, 0, 300),
        )?;
        let shutdown_timeout = parse_or(
            "SHUTDOWN_TIMEOUT_SECONDS",
            raw.shutdown_timeout_seconds.as_deref(),
            Duration::from_secs(defaults::SHUTDOWN_TIMEOUT_SECONDS),
            |v| parse_seconds(v, 1, 300),
        )?;
        let workers = parse_or("WORKERS", raw.workers.as_deref(), Workers::Auto, |v| {
            if v == "auto" {
                return Some(Workers::Auto);
            }
            if !v.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .map(Workers::Fixed)
        })?;
        let metrics_enabled = parse_or(
            "METRICS_ENABLED",
            raw.metrics_enabled.as_deref(),
            true,
            parse_bool,
        )?;
        let unknown = || "unknown".to_string();
        Ok(Settings {
            environment,
            debug,
            api_key,
            host,
            port,
            log_format,
            log_level,
            drain_delay,
            shutdown_timeout,
            workers,
            metrics_enabled,
            pod_name: raw
                .pod_name
                .filter(|v| !v.is_empty())
                .unwrap_or_else(unknown),
            pod_namespace: raw
                .pod_namespace
                .filter(|v| !v.is_empty())
                .unwrap_or_else(unknown),
            node_name: raw
                .node_name
                .filter(|v| !v.is_empty())
                .unwrap_or_else(unknown),
        })
    }
}

/// Validates a token; `key` is the variable it came from (the value is never echoed).
fn check_api_key(key: &'static str, secret: SecretString) -> Result<ApiKey, ConfigError> {
    let token = secret.expose_secret();
    let problem = if token.is_empty() && key == "API_KEY" {
        "is set but empty"
    } else if token.is_empty() {
        "names a file that holds an empty token"
    } else if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "holds a token with whitespace or control characters (value not shown)"
    } else {
        return Ok(ApiKey(secret));
    };
    Err(ConfigError {
        key,
        problem: problem.into(),
        expected: expected_of(key),
    })
}

fn defaults_host() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_raw(RawConfig::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn empty_environment_gives_development_defaults() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.port, 5600);
        assert_eq!(s.host.to_string(), defaults::HOST);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.log_level, LogLevel::Info);
        assert!(s.api_key.is_none());
        assert!(s.metrics_enabled);
        assert_eq!(s.drain_delay, Duration::from_secs(5));
        assert_eq!(s.pod_name, "unknown");
    }

    #[test]
    fn production_defaults_to_json_logs_and_requires_the_api_key() {
        let err = settings(&[("ENV", "production")]).unwrap_err();
        assert_eq!(err.key, "API_KEY");
        let s = settings(&[("ENV", "production"), ("API_KEY", "k")]).expect("valid");
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn debug_true_raises_the_default_level_and_maybe_is_refused() {
        assert_eq!(
            settings(&[("DEBUG", "true")]).unwrap().log_level,
            LogLevel::Debug
        );
        let err = settings(&[("DEBUG", "maybe")]).unwrap_err();
        assert_eq!(err.key, "DEBUG");
        assert!(err.to_string().contains("\"maybe\""), "{err}");
        assert!(err.to_string().contains("true or false"), "{err}");
    }

    #[test]
    fn malformed_numbers_are_refused_with_the_key_named() {
        for (key, value) in [
            ("PORT", "abc"),
            ("PORT", "0"),
            ("PORT", "65536"),
            ("PORT", "+80"),
            ("DRAIN_DELAY_SECONDS", "5s"),
            ("DRAIN_DELAY_SECONDS", "301"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "0"),
            ("WORKERS", "0"),
            ("WORKERS", "many"),
            ("HOST", "localhost"),
            ("ENV", "staging"),
            ("LOG_FORMAT", "yaml"),
            ("LOG_LEVEL", "verbose"),
            ("METRICS_ENABLED", "yes"),
        ] {
            let err = settings(&[(key, value)]).unwrap_err();
            assert_eq!(err.key, key, "{key}={value}");
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid configuration: {key} "))
            );
        }
    }

    #[test]
    fn api_key_problems_never_echo_the_value() {
        for bad in ["", "with space", "tab\there", "new\nline"] {
            let err = settings(&[("API_KEY", bad)]).unwrap_err();
            assert_eq!(err.key, "API_KEY");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
    }

    #[test]
    fn api_key_never_prints_and_compares_exactly() {
        let s = settings(&[("API_KEY", "canary-1234")]).unwrap();
        let key = s.api_key.as_ref().unwrap();
        assert!(!format!("{key:?} {key} {s:?}").contains("canary-1234"));
        assert!(key.matches(b"canary-1234"));
        assert!(!key.matches(b"canary-123"));
        assert!(!key.matches(b"canary-12345"));
        assert!(!key.matches(b""));
    }

    #[test]
    fn api_key_file_is_read_and_one_trailing_newline_stripped() {
        let raw = RawConfig::from_pairs([("API_KEY_FILE", "/mnt/API_KEY")]);
        let s = Settings::from_raw_with(raw, |path| {
            assert_eq!(path, "/mnt/API_KEY");
            Ok("file-token\n".into())
        })
        .unwrap();
        assert!(s.api_key.unwrap().matches(b"file-token"));
    }

    #[test]
    fn api_key_file_problems_name_the_file_key_and_never_the_token() {
        let unreadable = settings(&[("API_KEY_FILE", "/nonexistent/hello-k8s/API_KEY")]);
        let err = unreadable.unwrap_err();
        assert_eq!(err.key, "API_KEY_FILE");
        assert!(
            err.to_string().contains("/nonexistent/hello-k8s/API_KEY"),
            "{err}"
        );

        let raw = RawConfig::from_pairs([("API_KEY_FILE", "/f")]);
        let err = Settings::from_raw_with(raw, |_| Ok("two words\n".into())).unwrap_err();
        assert_eq!(err.key, "API_KEY_FILE");
        assert!(!err.to_string().contains("two words"), "{err}");

        let both = settings(&[("API_KEY", "k"), ("API_KEY_FILE", "/f")]).unwrap_err();
        assert_eq!(both.key, "API_KEY_FILE");
    }

    #[test]
    fn unknown_variables_are_ignored() {
        assert!(settings(&[("PATH", "/bin"), ("HOME", "/root")]).is_ok());
    }
}

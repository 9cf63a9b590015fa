//! The kinds of value an environment key can hold: how each is parsed from text, written back
//! as text, and described to a human.
//!
//! A kind carries its own range (`Seconds { min: 0, max: 300 }`), so the parser, the error
//! message, the documentation and the generated manifests all read the range from one place.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// How the values of one key are read and written.
pub trait Kind {
    /// The typed value.
    type Value;
    /// The value of `text`, or `None` when the text is not an accepted form.
    fn parse(&self, text: &str) -> Option<Self::Value>;
    /// The text that [`Kind::parse`] turns back into `value`.
    fn render(&self, value: &Self::Value) -> String;
    /// The accepted forms, as error messages and the documentation state them.
    fn accepted(&self) -> String;
    /// True when values are secret: never echoed in errors, logs or documentation.
    fn is_secret(&self) -> bool {
        false
    }
}

/// A closed set of names, one per variant.
pub trait Named: Sized + Copy + 'static {
    /// Every variant, in the order the documentation lists them.
    const ALL: &'static [Self];
    /// The variant's name, as it is written in the environment.
    fn name(self) -> &'static str;
}

/// One of the names of an enumeration (`development`, `production`), matched exactly.
#[derive(Debug, Clone, Copy, Default)]
pub struct Choice<T>(std::marker::PhantomData<T>);

impl<T> Choice<T> {
    pub const fn new() -> Self {
        Choice(std::marker::PhantomData)
    }
}

impl<T: Named> Kind for Choice<T> {
    type Value = T;

    fn parse(&self, text: &str) -> Option<T> {
        T::ALL.iter().copied().find(|v| v.name() == text)
    }

    fn render(&self, value: &T) -> String {
        value.name().to_owned()
    }

    fn accepted(&self) -> String {
        let names: Vec<&str> = T::ALL.iter().map(|v| v.name()).collect();
        match names.as_slice() {
            [a, b] => format!("{a} or {b}"),
            _ => format!("one of: {}", names.join(", ")),
        }
    }
}

/// `true` or `false`, in lower case.
#[derive(Debug, Clone, Copy)]
pub struct Flag;

impl Kind for Flag {
    type Value = bool;

    fn parse(&self, text: &str) -> Option<bool> {
        match text {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    fn render(&self, value: &bool) -> String {
        value.to_string()
    }

    fn accepted(&self) -> String {
        "true or false".into()
    }
}

/// A whole number from `min` to `max`, digits only: `+5`, ` 5` and `5s` are refused rather
/// than guessed at.
fn digits_in(text: &str, min: u64, max: u64) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
}

/// A whole number of seconds within a range.
#[derive(Debug, Clone, Copy)]
pub struct Seconds {
    pub min: u64,
    pub max: u64,
}

impl Kind for Seconds {
    type Value = Duration;

    fn parse(&self, text: &str) -> Option<Duration> {
        digits_in(text, self.min, self.max).map(Duration::from_secs)
    }

    fn render(&self, value: &Duration) -> String {
        value.as_secs().to_string()
    }

    fn accepted(&self) -> String {
        format!(
            "a whole number of seconds from {} to {}",
            self.min, self.max
        )
    }
}

/// A TCP port number.
#[derive(Debug, Clone, Copy)]
pub struct Port;

impl Kind for Port {
    type Value = u16;

    fn parse(&self, text: &str) -> Option<u16> {
        digits_in(text, 1, u64::from(u16::MAX)).and_then(|n| u16::try_from(n).ok())
    }

    fn render(&self, value: &u16) -> String {
        value.to_string()
    }

    fn accepted(&self) -> String {
        "an integer port number from 1 to 65535".into()
    }
}

/// An IPv4 or IPv6 address (no host names: binding must not depend on DNS).
#[derive(Debug, Clone, Copy)]
pub struct Ip;

impl Kind for Ip {
    type Value = IpAddr;

    fn parse(&self, text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    fn render(&self, value: &IpAddr) -> String {
        value.to_string()
    }

    fn accepted(&self) -> String {
        "an IP address to bind, e.g. 0.0.0.0 or 127.0.0.1".into()
    }
}

/// A count the service can size itself (`auto`) or that is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Sized by the service from what it is given (CPUs, memory).
    Auto,
    /// Exactly this many.
    Fixed(u64),
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Auto => f.write_str("auto"),
            Count::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// `auto` or a whole number within a range.
#[derive(Debug, Clone, Copy)]
pub struct AutoOr {
    pub min: u64,
    pub max: u64,
}

impl Kind for AutoOr {
    type Value = Count;

    fn parse(&self, text: &str) -> Option<Count> {
        if text == "auto" {
            return Some(Count::Auto);
        }
        digits_in(text, self.min, self.max).map(Count::Fixed)
    }

    fn render(&self, value: &Count) -> String {
        value.to_string()
    }

    fn accepted(&self) -> String {
        format!("auto or an integer from {} to {}", self.min, self.max)
    }
}

/// A whole number of bytes, at least `min` (what the downward API writes for
/// `resourceFieldRef: limits.memory` with the default divisor).
#[derive(Debug, Clone, Copy)]
pub struct Bytes {
    pub min: u64,
}

impl Kind for Bytes {
    type Value = u64;

    fn parse(&self, text: &str) -> Option<u64> {
        digits_in(text, self.min, u64::MAX)
    }

    fn render(&self, value: &u64) -> String {
        value.to_string()
    }

    fn accepted(&self) -> String {
        format!(
            "a whole number of bytes of at least {}, e.g. 134217728 for 128Mi",
            self.min
        )
    }
}

/// Any text, as the downward API sets it; an empty value reads as `fallback`.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    pub fallback: &'static str,
}

impl Kind for Text {
    type Value = String;

    fn parse(&self, text: &str) -> Option<String> {
        Some(if text.is_empty() {
            self.fallback.to_owned()
        } else {
            text.to_owned()
        })
    }

    fn render(&self, value: &String) -> String {
        value.clone()
    }

    fn accepted(&self) -> String {
        "any text (set by the downward API)".into()
    }
}

/// The largest API key accepted, from a variable or a file.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// A bearer token: non-empty, no whitespace or control characters, at most
/// [`MAX_TOKEN_BYTES`] bytes. Secret: never echoed.
#[derive(Debug, Clone, Copy)]
pub struct Token;

impl Kind for Token {
    type Value = ApiKey;

    fn parse(&self, text: &str) -> Option<ApiKey> {
        let ok = !text.is_empty()
            && text.len() <= MAX_TOKEN_BYTES
            && !text.chars().any(|c| c.is_whitespace() || c.is_control());
        ok.then(|| ApiKey(SecretString::from(text.to_owned())))
    }

    fn render(&self, value: &ApiKey) -> String {
        value.expose().to_owned()
    }

    fn accepted(&self) -> String {
        format!("a non-empty token of at most {MAX_TOKEN_BYTES} bytes without whitespace")
    }

    fn is_secret(&self) -> bool {
        true
    }
}

/// The path of a file the service reads (checked when it is read, see [`crate::files`]).
#[derive(Debug, Clone, Copy)]
pub struct FilePath {
    /// What the file holds, for the accepted-form text.
    pub holding: &'static str,
}

impl Kind for FilePath {
    type Value = PathBuf;

    fn parse(&self, text: &str) -> Option<PathBuf> {
        (!text.is_empty()).then(|| PathBuf::from(text))
    }

    fn render(&self, value: &PathBuf) -> String {
        value.display().to_string()
    }

    fn accepted(&self) -> String {
        format!(
            "the path of a regular file of at most {} bytes holding {}",
            crate::files::MAX_SMALL_FILE_BYTES,
            self.holding
        )
    }
}

/// A kind whose key may be absent: the value is `None` then.
#[derive(Debug, Clone, Copy)]
pub struct Optional<K>(pub K);

impl<K: Kind> Kind for Optional<K> {
    type Value = Option<K::Value>;

    fn parse(&self, text: &str) -> Option<Self::Value> {
        self.0.parse(text).map(Some)
    }

    fn render(&self, value: &Self::Value) -> String {
        value.as_ref().map(|v| self.0.render(v)).unwrap_or_default()
    }

    fn accepted(&self) -> String {
        self.0.accepted()
    }

    fn is_secret(&self) -> bool {
        self.0.is_secret()
    }
}

/// The environment the service runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl Named for Environment {
    const ALL: &'static [Self] = &[Environment::Development, Environment::Production];

    fn name(self) -> &'static str {
        self.as_str()
    }
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

impl Named for LogFormat {
    const ALL: &'static [Self] = &[LogFormat::Json, LogFormat::Text];

    fn name(self) -> &'static str {
        self.as_str()
    }
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

impl Named for LogLevel {
    const ALL: &'static [Self] = &[
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];

    fn name(self) -> &'static str {
        self.as_str()
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_digits_only_and_within_their_range() {
        let s = Seconds { min: 1, max: 300 };
        assert_eq!(s.parse("300"), Some(Duration::from_secs(300)));
        for bad in ["0", "301", "+5", " 5", "5s", "", "1.5", "-1"] {
            assert_eq!(s.parse(bad), None, "{bad:?}");
        }
        assert_eq!(Port.parse("65535"), Some(65535));
        assert_eq!(Port.parse("65536"), None);
        assert_eq!(Port.parse("0"), None);
        let c = AutoOr { min: 1, max: 256 };
        assert_eq!(c.parse("auto"), Some(Count::Auto));
        assert_eq!(c.parse("256"), Some(Count::Fixed(256)));
        assert_eq!(c.parse("Auto"), None);
    }

    #[test]
    fn choices_match_exactly_and_describe_themselves() {
        let k = Choice::<Environment>::new();
        assert_eq!(k.parse("production"), Some(Environment::Production));
        assert_eq!(k.parse("Production"), None);
        assert_eq!(k.accepted(), "development or production");
        assert_eq!(
            Choice::<LogLevel>::new().accepted(),
            "one of: trace, debug, info, warn, error"
        );
    }

    #[test]
    fn tokens_refuse_whitespace_controls_and_oversize_and_never_print() {
        for bad in ["", "two words", "tab\there", "nl\n", "del\u{7f}"] {
            assert!(Token.parse(bad).is_none(), "{bad:?}");
        }
        assert!(Token.parse(&"k".repeat(MAX_TOKEN_BYTES)).is_some());
        assert!(Token.parse(&"k".repeat(MAX_TOKEN_BYTES + 1)).is_none());
        let key = Token.parse("canary-1234").unwrap();
        assert!(!format!("{key:?} {key}").contains("canary"));
        assert!(key.matches(b"canary-1234"));
        assert!(!key.matches(b"canary-123"));
        assert!(!key.matches(b""));
    }
}

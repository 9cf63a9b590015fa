//! Reading the environment into validated [`Settings`], failing closed.
//!
//! A configuration the service cannot read stops it: a variable of the contract whose value
//! is not UTF-8, a variable set twice in the environment (execve allows it), a malformed
//! value, a file that is not a small regular file. Nothing is ever replaced by a default
//! except an absent key. Errors name the variable and the accepted form; the API key's value
//! is never shown.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use crate::declare::Key;
use crate::files::{FileProblem, MAX_SMALL_FILE_BYTES, read_small_file};
use crate::keys::{self, Config, KEYS, RawConfig, spec};
use crate::kinds::{ApiKey, Environment, Kind, LogFormat, LogLevel, Token};

/// A configuration value that is missing, malformed or unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault.
    pub key: &'static str,
    /// What was wrong, e.g. `is "abc", which is not valid`.
    pub problem: String,
    /// The accepted form.
    pub expected: String,
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

/// How much of a bad value an error line shows.
const SHOWN_CHARS: usize = 64;

/// A value as an error line shows it: quoted with escapes (so a newline cannot split the
/// line), cut after [`SHOWN_CHARS`] characters.
fn shown(text: &str) -> String {
    let count = text.chars().count();
    if count <= SHOWN_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(SHOWN_CHARS).collect();
        format!("{head:?}... ({} bytes)", text.len())
    }
}

impl ConfigError {
    fn new(key: &Key, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.name,
            problem: problem.into(),
            expected: key.accepted(),
        }
    }

    /// `text` is not an accepted value of `key` (a secret value is never shown).
    pub(crate) fn invalid(key: &Key, text: &str) -> Self {
        let problem = if key.is_secret() {
            if text.is_empty() {
                "is set but empty".to_owned()
            } else {
                "is set to a value that is not valid (value not shown)".to_owned()
            }
        } else {
            format!("is {}, which is not valid", shown(text))
        };
        ConfigError::new(key, problem)
    }
}

impl RawConfig {
    /// Reads the process environment: the contract's variables only, each at most once and
    /// in UTF-8, or an error.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_os_pairs(std::env::vars_os())
    }

    /// Reads `(NAME, value)` pairs as the process environment holds them.
    pub fn from_os_pairs<I>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (OsString, OsString)>,
    {
        let mut known: BTreeMap<&'static str, String> = BTreeMap::new();
        for (name, value) in pairs {
            // A name that is not UTF-8 cannot be one of ours (they are ASCII).
            let Some(key) = name.to_str().and_then(keys::key) else {
                continue;
            };
            let value = value.into_string().map_err(|raw| {
                let problem = if key.is_secret() {
                    "is not valid UTF-8 (value not shown)".to_owned()
                } else {
                    format!(
                        "is not valid UTF-8 ({} with invalid bytes replaced)",
                        shown(&raw.to_string_lossy())
                    )
                };
                ConfigError::new(key, problem)
            })?;
            insert_once(&mut known, key, value)?;
        }
        Self::from_known(known)
    }

    /// Reads `(NAME, value)` pairs of text, e.g. a ConfigMap's data; names the contract does
    /// not declare are ignored, a name given twice is an error.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut known: BTreeMap<&'static str, String> = BTreeMap::new();
        for (name, value) in pairs {
            if let Some(key) = keys::key(name.as_ref()) {
                insert_once(&mut known, key, value.into())?;
            }
        }
        Self::from_known(known)
    }

    fn from_known(known: BTreeMap<&'static str, String>) -> Result<Self, ConfigError> {
        // Every key is declared and present once, and every field is optional text, so envy
        // cannot fail here; if it ever does, that is an error, not an empty configuration.
        envy::from_iter(known.into_iter().map(|(k, v)| (k.to_owned(), v))).map_err(|err| {
            ConfigError {
                key: KEYS[0].name,
                problem: format!("and the rest of the environment cannot be read ({err})"),
                expected: "each variable of the contract at most once".to_owned(),
            }
        })
    }
}

fn insert_once(
    known: &mut BTreeMap<&'static str, String>,
    key: &'static Key,
    value: String,
) -> Result<(), ConfigError> {
    if known.insert(key.name, value).is_some() {
        return Err(ConfigError {
            key: key.name,
            problem: "is set more than once in the environment, so its value is ambiguous"
                .to_owned(),
            expected: format!("one value: {}", key.accepted()),
        });
    }
    Ok(())
}

/// The validated configuration of the service: every key typed ([`Config`]), and what
/// follows from several keys together.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every key as declared. Its `api_key` is always `None`: the key, from the variable or
    /// the file, is [`Settings::api_key`].
    pub config: Config,
    /// The operator token, from `API_KEY` or the file `API_KEY_FILE` names.
    pub api_key: Option<ApiKey>,
    /// `LOG_FORMAT`, or json in production and text otherwise.
    pub log_format: LogFormat,
    /// `LOG_LEVEL`, or debug when `DEBUG=true` and info otherwise.
    pub log_level: LogLevel,
}

impl Settings {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_raw(RawConfig::from_env()?)
    }

    /// Validates raw values; the first problem found (in declaration order) is returned.
    /// `API_KEY_FILE`, when set, is read from the filesystem (a small regular file only).
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        Self::from_raw_with(raw, |path| read_small_file(path, MAX_SMALL_FILE_BYTES))
    }

    /// [`Settings::from_raw`] with the file reader given: the generator validates the
    /// environment it generates without the Secret being mounted anywhere.
    pub fn from_raw_with(
        raw: RawConfig,
        read_file: impl FnOnce(&Path) -> Result<String, FileProblem>,
    ) -> Result<Self, ConfigError> {
        let mut config = Config::from_raw(&raw)?;
        let api_key = match (config.api_key.take(), config.api_key_file.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    spec::api_key_file(),
                    "is set together with API_KEY",
                ));
            }
            (Some(key), None) => Some(key),
            (None, Some(path)) => Some(key_from_file(path, read_file)?),
            (None, None) if config.env == Environment::Production => {
                return Err(ConfigError::new(
                    spec::api_key(),
                    "is missing (and API_KEY_FILE too), and it is required when ENV=production",
                ));
            }
            (None, None) => None,
        };
        if config.probe_port == config.port {
            return Err(ConfigError::new(
                spec::probe_port(),
                format!(
                    "is {}, the same as PORT: the probe listener needs a port of its own",
                    config.port
                ),
            ));
        }
        let log_format = config.log_format.unwrap_or(match config.env {
            Environment::Production => LogFormat::Json,
            Environment::Development => LogFormat::Text,
        });
        let log_level = config.log_level.unwrap_or(if config.debug {
            LogLevel::Debug
        } else {
            LogLevel::Info
        });
        Ok(Settings {
            config,
            api_key,
            log_format,
            log_level,
        })
    }
}

/// The token in the file at `path`: one trailing newline (what `echo key > file` leaves) is
/// stripped, as `kubectl create secret --from-file` users expect; the token is never shown.
fn key_from_file(
    path: &Path,
    read_file: impl FnOnce(&Path) -> Result<String, FileProblem>,
) -> Result<ApiKey, ConfigError> {
    let key = spec::api_key_file();
    let contents = read_file(path).map_err(|problem| {
        ConfigError::new(
            key,
            format!("is {}, which {problem}", shown(&path.display().to_string())),
        )
    })?;
    let token = contents
        .strip_suffix("\r\n")
        .or_else(|| contents.strip_suffix('\n'))
        .unwrap_or(&contents);
    Token.parse(token).ok_or_else(|| {
        let problem = if token.is_empty() {
            "names a file that holds an empty token"
        } else {
            "names a file whose token is not valid (value not shown)"
        };
        ConfigError {
            key: key.name,
            problem: problem.to_owned(),
            expected: format!("a file holding {}", Token.accepted()),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;
    use std::time::Duration;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_raw(RawConfig::from_pairs(pairs.iter().copied())?)
    }

    #[test]
    fn empty_environment_gives_development_defaults() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.config.env, Environment::Development);
        assert_eq!(s.config.port, 5600);
        assert_eq!(s.config.host.to_string(), "127.0.0.1");
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.log_level, LogLevel::Info);
        assert!(s.api_key.is_none());
        assert!(s.config.metrics_enabled);
        assert_eq!(s.config.drain_delay_seconds, Duration::from_secs(5));
        assert_eq!(s.config.pod_name, "unknown");
    }

    #[test]
    fn production_defaults_to_json_logs_and_requires_the_api_key() {
        let err = settings(&[("ENV", "production")]).unwrap_err();
        assert_eq!(err.key, "API_KEY");
        let s = settings(&[("ENV", "production"), ("API_KEY", "k")]).expect("valid");
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(s.config.api_key.is_none(), "moved into Settings::api_key");
        assert!(s.api_key.unwrap().matches(b"k"));
    }

    #[test]
    fn the_probe_port_must_differ_from_the_http_port() {
        let err = settings(&[("PORT", "8080"), ("PROBE_PORT", "8080")]).unwrap_err();
        assert_eq!(err.key, "PROBE_PORT");
        assert!(err.to_string().contains("the same as PORT"), "{err}");
        let s = settings(&[("PORT", "8080")]).expect("valid");
        assert_eq!(s.config.probe_port, crate::PROBE_PORT);
    }

    #[test]
    fn malformed_values_name_the_key_the_value_and_the_accepted_form() {
        let err = settings(&[("DEBUG", "maybe")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: DEBUG is \"maybe\", which is not valid; expected true or false"
        );
        let err = settings(&[("POD_NAME", "x"), ("PORT", "line\nbreak")]).unwrap_err();
        assert!(err.to_string().contains(r#""line\nbreak""#), "{err}");
        let long = "9".repeat(500);
        let err = settings(&[("PORT", &long)]).unwrap_err().to_string();
        assert!(err.len() < 250 && err.contains("(500 bytes)"), "{err}");
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
    fn a_non_utf8_value_stops_the_service_and_names_the_key() {
        let pairs =
            |name: &str, value: Vec<u8>| vec![(OsString::from(name), OsString::from_vec(value))];
        let err = RawConfig::from_os_pairs(pairs("ENV", b"production\xff".to_vec())).unwrap_err();
        assert_eq!(err.key, "ENV");
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
        let err = RawConfig::from_os_pairs(pairs("API_KEY", b"secret\xff".to_vec())).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        // Names that are not ours are ignored, UTF-8 or not.
        assert!(RawConfig::from_os_pairs(pairs("OTHER", b"\xff".to_vec())).is_ok());
    }

    #[test]
    fn a_key_set_twice_stops_the_service() {
        let env = [
            (OsString::from("ENV"), OsString::from("production")),
            (OsString::from("ENV"), OsString::from("production")),
        ];
        let err = RawConfig::from_os_pairs(env).unwrap_err();
        assert_eq!(err.key, "ENV");
        assert!(err.to_string().contains("more than once"), "{err}");
        assert!(RawConfig::from_pairs([("PORT", "1"), ("PORT", "1")]).is_err());
    }

    #[test]
    fn api_key_file_is_read_and_one_trailing_newline_stripped() {
        let raw = RawConfig::from_pairs([("API_KEY_FILE", "/mnt/API_KEY")]).unwrap();
        let s = Settings::from_raw_with(raw, |path| {
            assert_eq!(path, Path::new("/mnt/API_KEY"));
            Ok("file-token\n".into())
        })
        .unwrap();
        assert!(s.api_key.unwrap().matches(b"file-token"));
    }

    #[test]
    fn api_key_file_problems_name_the_file_key_and_never_the_token() {
        let err = settings(&[("API_KEY_FILE", "/nonexistent/hello-k8s/API_KEY")]).unwrap_err();
        assert_eq!(err.key, "API_KEY_FILE");
        assert!(
            err.to_string().contains("/nonexistent/hello-k8s/API_KEY"),
            "{err}"
        );

        let err = settings(&[("API_KEY_FILE", "/dev/zero")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("is \"/dev/zero\", which is a character device"),
            "{err}"
        );

        let raw = RawConfig::from_pairs([("API_KEY_FILE", "/f")]).unwrap();
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

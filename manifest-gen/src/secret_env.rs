//! Reading the operator's `secret.env` the way kustomize's `secretGenerator.envs` does.
//!
//! kustomize (api/kv/kv.go) reads one `KEY=VALUE` per line: a UTF-8 BOM on the first line is
//! dropped, leading whitespace is trimmed, empty lines and `#` comments are skipped, the value
//! is everything after the first `=` (kept verbatim, quotes included), a line without `=`
//! gives an empty value, and the key must be a valid environment variable name. Errors never
//! show a value.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::render::SecretData;

/// The command that creates a random Secret file at `path`, as the docs and errors print it
/// (the umask keeps the file readable by its owner only).
pub fn create_hint(path: &Path) -> String {
    format!(
        "(umask 077; printf 'API_KEY=%s\\n' \"$(openssl rand -hex 32)\" > {})",
        crate::cmdline::shell_word(&path.display().to_string())
    )
}

/// Reads and parses a secret env file: a regular file of at most
/// [`crate::input::MAX_SECRET_ENV_BYTES`], the bound enforced while reading.
pub fn read(path: &Path) -> Result<SecretData> {
    let text = match crate::input::read("the Secret file", path, crate::input::MAX_SECRET_ENV_BYTES)
    {
        Ok(text) => text,
        Err(err) if err.is_missing() => {
            let hint = format!(
                "the Secret file {} is missing (it is operator-provided and git-ignored); create it with: {}",
                path.display(),
                create_hint(path)
            );
            return Err(anyhow::Error::new(err).context(hint));
        }
        Err(err) => return Err(err.into()),
    };
    parse(text.as_bytes()).with_context(|| format!("in the Secret file {}", path.display()))
}

/// Checks a Secret's data, from the overlay declaration's literals or a secret.env, by the
/// rules of each reader downstream, before any output, never showing a value: each key by the
/// API server's (`IsConfigMapKey`, Secrets share it) and kustomize's
/// ([`crate::overrides::config_map_key`]); each value by kustomize's (no character it refuses,
/// [`crate::overrides::config_map_value`]); the whole within the API server's 1 MiB; and the
/// keys the service reads (`API_KEY`) by the service's own rules, in the overlay's
/// `environment`. `origin` names the input in errors.
pub fn check(data: &SecretData, environment: contract::Environment, origin: &str) -> Result<()> {
    for (key, value) in data {
        crate::overrides::config_map_key(key).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        let text = std::str::from_utf8(value).map_err(|_| {
            anyhow::anyhow!("{origin}: the value of {key} is not UTF-8 (value not shown)")
        })?;
        crate::overrides::config_map_value(text)
            .map_err(|e| anyhow::anyhow!("{origin}: the value of {key}: {e} (value not shown)"))?;
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > crate::overrides::MAX_DATA_BYTES {
        bail!(
            "{origin} holds {size} bytes of keys and values, above the API server's limit of {} bytes (1 MiB)",
            crate::overrides::MAX_DATA_BYTES
        );
    }
    let pairs = data
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()));
    let with_env = pairs.chain([("ENV".to_string(), environment.to_string())]);
    contract::RawConfig::from_pairs(with_env)
        .and_then(contract::Settings::from_raw)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))
}

/// Parses env-file content with kustomize's rules.
pub fn parse(content: &[u8]) -> Result<SecretData> {
    let mut data = SecretData::new();
    // Lines end at '\n' with an optional '\r' before it, as Go's bufio.ScanLines reads them.
    for (index, raw) in content.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw)
            .map_err(|_| anyhow::anyhow!("line {number} is not valid UTF-8"))?;
        let line = if index == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        if !env_var_name(key) {
            bail!(
                "line {number}: the key is not a valid environment variable name (letters, digits, '_', '-', '.', not starting with a digit); value not shown"
            );
        }
        if data
            .insert(key.to_string(), value.as_bytes().to_vec())
            .is_some()
        {
            bail!("line {number}: the key {key} appears twice");
        }
    }
    Ok(data)
}

/// Kubernetes' `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn env_var_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_kustomize() {
        let data = parse(b"\xEF\xBB\xBF# comment\n\n  API_KEY=a=b \"c\"\r\nEMPTY\n").unwrap();
        assert_eq!(data["API_KEY"], b"a=b \"c\"");
        assert_eq!(data["EMPTY"], b"");
        assert_eq!(data.len(), 2);
    }

    #[test]
    fn bad_keys_are_refused_without_showing_the_value() {
        let err = parse(b"1KEY=supersecret\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("supersecret"), "{err}");
        let err = parse(b"A=x\nA=supersecret\n").unwrap_err().to_string();
        assert!(
            err.contains("appears twice") && !err.contains("supersecret"),
            "{err}"
        );
    }

    #[test]
    fn keys_values_and_the_api_key_are_checked_by_their_readers_rules_without_the_value() {
        use contract::Environment::{Development, Production};
        let data = |pairs: &[(&str, &[u8])]| -> SecretData {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect()
        };
        check(&data(&[("API_KEY", b"tok")]), Production, "x").unwrap();
        for (pairs, says) in [
            (
                data(&[("API_KEY", b"tok"), ("a b", b"v")]),
                "the API server's rule",
            ),
            (
                data(&[("API_KEY", b"tok"), ("../../etc/x", b"v")]),
                "the API server's rule",
            ),
            (
                data(&[("API_KEY", b"tok"), ("true", b"v")]),
                "json: unsupported type",
            ),
            (data(&[("API_KEY", b"qzq\x7fqzq")]), "U+007F"),
            (data(&[("API_KEY", b"two words")]), "API_KEY"),
            (data(&[("API_KEY", b"\xff")]), "not UTF-8"),
        ] {
            let err = check(&pairs, Development, "overlay dev: secret.literals").unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains(says) && text.starts_with("overlay dev:"),
                "{text}"
            );
            assert!(
                !text.contains("two words") && !text.contains("qzq"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_missing_file_names_the_path_and_the_command_that_creates_it() {
        let err = read(Path::new("/nonexistent/secret.env")).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("/nonexistent/secret.env"), "{text}");
        assert!(text.contains("openssl rand -hex 32"), "{text}");
    }
}

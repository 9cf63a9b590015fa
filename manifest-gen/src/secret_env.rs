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

/// Reads and parses a secret env file.
pub fn read(path: &Path) -> Result<SecretData> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read the Secret file {} (it is operator-provided and git-ignored); create it with: {}",
            path.display(),
            create_hint(path)
        )
    })?;
    parse(&bytes).with_context(|| format!("in the Secret file {}", path.display()))
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
    fn a_missing_file_names_the_path_and_the_command_that_creates_it() {
        let err = read(Path::new("/nonexistent/secret.env")).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("/nonexistent/secret.env"), "{text}");
        assert!(text.contains("openssl rand -hex 32"), "{text}");
    }
}

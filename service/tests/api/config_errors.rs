use crate::binary::{free_port, listening, run_to_completion};

/// Runs the binary with `env` on a free port that it must never bind; returns stderr.
fn refused(env: &[(&str, &str)], key: &str, expected: &str) {
    let port = free_port().to_string();
    let mut all = vec![("HOST", "127.0.0.1"), ("PORT", port.as_str())];
    all.extend_from_slice(env);
    let (status, stdout, stderr) = run_to_completion(&[], &all);
    assert_eq!(status.code(), Some(2), "{env:?}: stderr {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{env:?}: one line expected, got {stderr:?}");
    assert!(
        lines[0].starts_with(&format!("error: invalid configuration: {key} ")),
        "{env:?}: {stderr}"
    );
    assert!(lines[0].contains(expected), "{env:?}: {stderr}");
    assert!(
        stdout.is_empty(),
        "{env:?}: nothing on stdout, got {stdout}"
    );
    // The process has exited; had it bound the port, nothing would listen now either, so
    // also assert it never logged a listening line (stdout empty above).
    assert!(!listening(port.parse().unwrap()), "{env:?}");
}

#[test]
fn a_non_numeric_port_is_refused_naming_port_and_the_expected_form() {
    let (status, stdout, stderr) = run_to_completion(&[], &[("PORT", "abc")]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(
        stderr,
        "error: invalid configuration: PORT is \"abc\", which is not valid; expected an integer port number from 1 to 65535\n"
    );
    assert!(stdout.is_empty());
}

#[test]
fn debug_maybe_is_refused_and_nothing_listens() {
    refused(&[("DEBUG", "maybe")], "DEBUG", "expected true or false");
}

#[test]
fn an_empty_api_key_is_refused_and_nothing_listens() {
    refused(&[("API_KEY", "")], "API_KEY", "is set but empty");
}

#[test]
fn production_without_an_api_key_is_refused_and_nothing_listens() {
    refused(
        &[("ENV", "production")],
        "API_KEY",
        "required when ENV=production",
    );
}

#[test]
fn other_malformed_values_are_refused_with_their_key_named() {
    for (key, value, expected) in [
        ("ENV", "staging", "development or production"),
        ("LOG_FORMAT", "yaml", "json or text"),
        (
            "LOG_LEVEL",
            "verbose",
            "one of: trace, debug, info, warn, error",
        ),
        ("DRAIN_DELAY_SECONDS", "5s", "a whole number of seconds"),
        ("SHUTDOWN_TIMEOUT_SECONDS", "0", "a whole number of seconds"),
        ("WORKERS", "many", "auto or an integer"),
        ("METRICS_ENABLED", "yes", "true or false"),
        ("HOST", "localhost", "an IP address"),
    ] {
        refused(&[(key, value)], key, expected);
    }
}

#[test]
fn a_port_already_in_use_fails_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, _, stderr) =
        run_to_completion(&[], &[("HOST", "127.0.0.1"), ("PORT", port.as_str())]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: cannot bind 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_api_key_file_is_refused_naming_the_file_and_nothing_listens() {
    refused(
        &[("API_KEY_FILE", "/nonexistent/hello-k8s/API_KEY")],
        "API_KEY_FILE",
        "\"/nonexistent/hello-k8s/API_KEY\", which cannot be read",
    );
}

#[test]
fn an_api_key_file_together_with_api_key_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "file-token\n").unwrap();
    let path = file.path().to_str().unwrap();
    refused(
        &[("API_KEY", "env-token"), ("API_KEY_FILE", path)],
        "API_KEY_FILE",
        "is set together with API_KEY",
    );
}

#[test]
fn an_api_key_file_with_an_empty_token_is_refused_without_echoing_it() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "\n").unwrap();
    let path = file.path().to_str().unwrap();
    refused(
        &[("ENV", "production"), ("API_KEY_FILE", path)],
        "API_KEY_FILE",
        "holds an empty token",
    );
}

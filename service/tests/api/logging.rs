use crate::binary::{Server, agent, send, write_and_read_to_close};

#[test]
fn production_logs_are_json_lines_with_the_lifecycle() {
    let server = Server::start(&[
        ("ENV", "production"),
        ("API_KEY", "log-test-key"),
        ("DRAIN_DELAY_SECONDS", "0"),
    ]);
    let client = agent();
    for _ in 0..5 {
        send(client.get(server.url("/"))).unwrap();
    }
    let (status, stdout, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let mut messages = Vec::new();
    for line in &stdout {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(json["timestamp"].is_string(), "{line}");
        assert!(json["level"].is_string(), "{line}");
        messages.push(json["message"].as_str().unwrap().to_owned());
    }
    // The lifecycle, at info; no line per request at info.
    let all = messages.join("\n");
    for expected in [
        "configuration loaded",
        "listening",
        "ready",
        "draining",
        "stopped",
    ] {
        assert!(all.contains(expected), "{expected} missing from {all}");
    }
    assert!(!messages.iter().any(|m| m == "request"), "{all}");
    let summary = stdout
        .iter()
        .find(|l| l.contains("configuration loaded"))
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert_eq!(summary["api_key_configured"], "yes");
    assert_eq!(summary["environment"], "production");
}

#[test]
fn debug_true_logs_one_line_per_request_as_text_in_development() {
    let server = Server::start(&[("DEBUG", "true"), ("DRAIN_DELAY_SECONDS", "0")]);
    let client = agent();
    for _ in 0..3 {
        send(client.get(server.url("/healthz"))).unwrap();
    }
    let (status, stdout, _) = server.stop();
    assert_eq!(status.code(), Some(0));
    let request_lines = stdout
        .iter()
        .filter(|l| l.contains("DEBUG") && l.contains("request") && l.contains("/healthz"))
        .count();
    assert_eq!(request_lines, 3, "{stdout:#?}");
    assert!(serde_json::from_str::<serde_json::Value>(&stdout[0]).is_err());
}

#[test]
fn control_characters_from_the_environment_cannot_split_a_text_log_line() {
    let server = Server::start(&[
        (
            "POD_NAME",
            "pod-1\n2026-01-01T00:00:00Z  INFO forged: admin logged in",
        ),
        ("NODE_NAME", "node\r\u{1b}[31m"),
        ("DRAIN_DELAY_SECONDS", "0"),
    ]);
    let (status, stdout, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // Every line is one event: it starts with the timestamp tracing writes.
    for line in &stdout {
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit()) && !line.contains("\r"),
            "{line:?}"
        );
    }
    assert!(
        !stdout.iter().any(|l| l.starts_with("2026-01-01")),
        "{stdout:#?}"
    );
    let summary = stdout
        .iter()
        .find(|l| l.contains("configuration loaded"))
        .unwrap();
    assert!(
        summary.contains(r"pod=pod-1\n2026-01-01T00:00:00Z  INFO forged"),
        "{summary}"
    );
    assert!(summary.contains(r"node=node\r\u{1b}[31m"), "{summary}");
}

/// What a client can make the server log: a malformed request is answered 400 and counted,
/// and leaves no line at the default level (actix-http logged each at error), one at debug.
#[test]
fn malformed_requests_are_answered_400_and_counted_without_an_error_line() {
    const MALFORMED: [&str; 3] = [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
    ];
    for level in ["info", "debug"] {
        let server = Server::start(&[("LOG_LEVEL", level), ("DRAIN_DELAY_SECONDS", "0")]);
        for request in MALFORMED {
            let (answer, _) = write_and_read_to_close(server.port, request.as_bytes());
            assert!(answer.starts_with("HTTP/1.1 400 "), "{request:?}: {answer}");
        }
        let metrics = send(agent().get(server.url("/metrics"))).unwrap();
        assert!(
            metrics
                .body
                .contains("\nhello_k8s_connection_errors_total 3\n"),
            "{}",
            metrics.body
        );
        if level == "debug" {
            assert!(
                server.count_lines_within(3, |l| l.contains("connection ended by an error")
                    && l.contains("parse error")),
                "no debug line for each malformed request"
            );
        }
        let (status, stdout, stderr) = server.stop();
        assert_eq!(status.code(), Some(0), "{stderr}");
        let errors: Vec<&String> = stdout
            .iter()
            .filter(|l| l.contains("ERROR") || l.contains("actix_http"))
            .collect();
        assert!(errors.is_empty(), "at {level}: {errors:#?}");
        let ended = stdout
            .iter()
            .filter(|l| l.contains("connection ended by an error"))
            .count();
        assert_eq!(ended, if level == "debug" { 3 } else { 0 }, "{stdout:#?}");
    }
}

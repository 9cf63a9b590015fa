//! The API key must never leave the process: not in a response (body or header), not in
//! /metrics, /info or the HTML page, not in any log line at any level or format.

use crate::binary::{Server, agent, send, send_empty};
use crate::helpers::spawn_app_with;

const CANARY: &str = "canary-9e8d7c6b5a4f3e2d1c0b";

const PATHS: &[&str] = &[
    "/", "/healthz", "/readyz", "/info", "/metrics", "/nope", "/admin",
];
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(CANARY),
        "the API key leaked into {what}: {text}"
    );
}

#[test]
fn the_api_key_appears_in_no_response() {
    let app = spawn_app_with(&[("API_KEY", CANARY)], |_| {});
    let wrong = format!("{CANARY}x");
    let mut responses = Vec::new();
    for path in PATHS {
        responses.push((format!("GET {path}"), app.get(path)));
        responses.push((format!("HEAD {path}"), app.head(path)));
        responses.push((
            format!("GET {path} (html)"),
            app.get_accepting(path, BROWSER_ACCEPT),
        ));
    }
    for token in [None, Some(wrong.as_str()), Some(CANARY)] {
        for path in ["/admin/readiness/off", "/admin/readiness/on"] {
            responses.push((format!("POST {path}"), app.post_with_token(path, token)));
        }
    }
    responses.push(("GET /metrics".to_owned(), app.get("/metrics")));
    responses.push(("GET /info".to_owned(), app.get("/info")));
    for (request, res) in responses {
        let what = format!("{request} {}", res.status);
        for (name, value) in &res.headers {
            assert_clean(&what, &format!("{name}: {value:?}"));
        }
        assert_clean(&what, &res.body);
    }
}

fn exercise_binary(env: &[(&str, &str)]) {
    let mut all = vec![("API_KEY", CANARY), ("DRAIN_DELAY_SECONDS", "0")];
    all.extend_from_slice(env);
    let server = Server::start(&all);
    let client = agent();
    let wrong = format!("{CANARY}x");
    for path in PATHS {
        let res = send(client.get(server.url(path))).unwrap();
        assert_clean(path, &res.body);
        let res = send(
            client
                .get(server.url(path))
                .header("accept", BROWSER_ACCEPT)
                .header("authorization", format!("Bearer {CANARY}")),
        )
        .unwrap();
        assert_clean(path, &res.body);
    }
    for token in [wrong.as_str(), CANARY] {
        for path in ["/admin/readiness/off", "/admin/readiness/on"] {
            let res = send_empty(
                client
                    .post(server.url(path))
                    .header("authorization", format!("Bearer {token}")),
            )
            .unwrap();
            for (name, value) in &res.headers {
                assert_clean(path, &format!("{name}: {value:?}"));
            }
            assert_clean(path, &res.body);
        }
    }
    let (status, stdout, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let stdout = stdout.join("\n");
    // The logs did capture the requests (so the check below is not vacuous).
    assert!(stdout.contains("/admin/readiness/off"), "{stdout}");
    assert_clean("stdout", &stdout);
    assert_clean("stderr", &stderr);
}

#[test]
fn the_api_key_appears_in_no_log_line_at_trace_level_in_json() {
    exercise_binary(&[
        ("LOG_LEVEL", "trace"),
        ("LOG_FORMAT", "json"),
        ("DEBUG", "true"),
    ]);
}

#[test]
fn the_api_key_appears_in_no_log_line_at_trace_level_in_text() {
    exercise_binary(&[
        ("LOG_LEVEL", "trace"),
        ("LOG_FORMAT", "text"),
        ("DEBUG", "true"),
    ]);
}

#[test]
fn the_api_key_appears_in_no_log_line_in_production() {
    exercise_binary(&[("ENV", "production"), ("DEBUG", "true")]);
}

#[test]
fn a_malformed_api_key_is_not_echoed_in_the_error() {
    let bad = format!("{CANARY} with space");
    let (status, stdout, stderr) =
        crate::binary::run_to_completion(&[], &[("API_KEY", bad.as_str())]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("API_KEY"), "{stderr}");
    assert_clean("stderr", &stderr);
    assert_clean("stdout", &stdout);
}

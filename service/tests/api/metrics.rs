use crate::helpers::{spawn_app, spawn_app_with};

fn scrape(app: &crate::helpers::TestApp) -> String {
    let res = app.get("/metrics");
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    res.body
}

#[test]
fn metrics_count_requests_by_route_pattern_method_and_status() {
    let app = spawn_app();
    for _ in 0..3 {
        app.get("/");
    }
    app.head("/healthz");
    app.get("/does/not/exist");
    app.get("/nor/this");
    let text = scrape(&app);
    assert!(
        text.contains(r#"http_requests_total{route="/",method="GET",status="200"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{route="/healthz",method="HEAD",status="200"} 1"#),
        "{text}"
    );
    // Unknown paths share one label, so clients cannot grow the series count.
    assert!(
        text.contains(r#"http_requests_total{route="unmatched",method="GET",status="404"} 2"#),
        "{text}"
    );
    assert!(!text.contains("does/not/exist"), "{text}");
    assert!(
        text.contains(r#"http_request_duration_seconds_count{route="/"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_request_duration_seconds_bucket{le="+Inf",route="/"} 3"#),
        "{text}"
    );
    assert!(text.contains("hello_k8s_ready 1"), "{text}");
    assert!(
        text.contains(&format!(
            r#"hello_k8s_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("process_start_time_seconds "), "{text}");
}

#[test]
fn the_readiness_gauge_follows_the_switch() {
    let app = spawn_app();
    app.post_with_token("/admin/readiness/off", Some(crate::helpers::TEST_API_KEY));
    let text = scrape(&app);
    assert!(text.contains("hello_k8s_ready 0"), "{text}");
}

#[test]
fn with_metrics_disabled_the_endpoint_is_404() {
    let app = spawn_app_with(&[("METRICS_ENABLED", "false")], |_| {});
    app.get("/");
    let res = app.get("/metrics");
    assert_eq!(res.status, 404);
    let body = res.body;
    assert!(!body.contains("http_requests_total"), "{body}");
}

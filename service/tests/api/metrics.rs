use crate::helpers::{spawn_app, spawn_app_with};

async fn scrape(app: &crate::helpers::TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    res.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_method_and_status() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.get("/").await;
    }
    app.head("/healthz").await;
    app.get("/does/not/exist").await;
    app.get("/nor/this").await;
    let text = scrape(&app).await;
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

#[tokio::test]
async fn the_readiness_gauge_follows_the_switch() {
    let app = spawn_app().await;
    app.post_with_token("/admin/readiness/off", Some(crate::helpers::TEST_API_KEY))
        .await;
    let text = scrape(&app).await;
    assert!(text.contains("hello_k8s_ready 0"), "{text}");
}

#[tokio::test]
async fn with_metrics_disabled_the_endpoint_is_404() {
    let app = spawn_app_with(&[("METRICS_ENABLED", "false")], |_| {}).await;
    app.get("/").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 404);
    let body = res.text().await.unwrap();
    assert!(!body.contains("http_requests_total"), "{body}");
}

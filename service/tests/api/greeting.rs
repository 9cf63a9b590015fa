use crate::helpers::{spawn_app, spawn_app_with};

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

#[test]
fn root_answers_exactly_the_origin_greeting_as_plain_text() {
    let app = spawn_app();
    let res = app.get("/");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(res.header("vary"), "accept");
    assert_eq!(res.body, "Hello World from Kubernetes!");
}

#[test]
fn head_on_root_answers_the_headers_without_a_body() {
    let app = spawn_app();
    let res = app.head("/");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-length"), "28");
    assert_eq!(res.body, "");
}

#[test]
fn content_negotiation_gives_html_only_when_html_is_preferred() {
    let app = spawn_app();
    for (accept, html) in [
        (BROWSER_ACCEPT, true),
        ("text/html", true),
        ("text/html, */*", true),
        ("text/plain;q=0.5, text/html", true),
        ("*/*", false),
        ("text/plain", false),
        ("text/*", false),
        ("text/html, text/plain", false),
        ("text/html;q=0.5, text/plain", false),
        ("text/html;q=0.9, */*", false),
        ("text/html;q=0", false),
        ("application/json", false),
    ] {
        let res = app.get_accepting("/", accept);
        assert_eq!(res.status, 200, "{accept}");
        assert_eq!(res.header("vary"), "accept", "{accept}");
        let content_type = res.header("content-type").to_owned();
        let body = res.body;
        if html {
            assert_eq!(content_type, "text/html; charset=utf-8", "{accept}");
            assert!(body.starts_with("<!DOCTYPE html>"), "{accept}: {body}");
            assert!(body.contains("Hello World from Kubernetes!"), "{accept}");
        } else {
            assert_eq!(content_type, "text/plain; charset=utf-8", "{accept}");
            assert_eq!(body, "Hello World from Kubernetes!", "{accept}");
        }
    }
}

#[test]
fn the_html_page_shows_environment_version_pod_and_node_escaped() {
    let app = spawn_app_with(
        &[
            ("POD_NAME", "hello-k8s-7d9f<script>alert(1)</script>"),
            ("NODE_NAME", "node-a&b"),
            ("ENV", "production"),
        ],
        |_| {},
    );
    let body = app.get_accepting("/", BROWSER_ACCEPT).body;
    assert!(body.contains("production"), "{body}");
    assert!(body.contains(env!("CARGO_PKG_VERSION")), "{body}");
    assert!(
        body.contains("hello-k8s-7d9f&#60;script&#62;alert(1)&#60;/script&#62;")
            || body.contains("hello-k8s-7d9f&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(!body.contains("<script>"), "{body}");
    assert!(
        body.contains("node-a&#38;b") || body.contains("node-a&amp;b"),
        "{body}"
    );
}

#[test]
fn unknown_paths_answer_404() {
    let app = spawn_app();
    let res = app.get("/nope");
    assert_eq!(res.status, 404);
    assert_eq!(res.body, "not found");
}

#[test]
fn a_wrong_method_on_a_known_path_answers_405() {
    let app = spawn_app();
    let res = crate::binary::send(app.agent.delete(app.url("/healthz"))).unwrap();
    assert_eq!(res.status, 405);
    assert_eq!(res.headers.get("allow").unwrap(), "GET, HEAD");
    let res = crate::binary::send(app.agent.get(app.url("/admin/readiness/off"))).unwrap();
    assert_eq!(res.status, 405);
    assert_eq!(res.headers.get("allow").unwrap(), "POST");
    // The 405 is observed under the path's own label.
    let metrics = crate::binary::send(app.agent.get(app.url("/metrics")))
        .unwrap()
        .body;
    assert!(
        metrics.contains(r#"route="/healthz",method="DELETE",status="405""#),
        "{metrics}"
    );
}

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use hello_k8s::shutdown::Signal;
use nix::sys::signal::Signal as OsSignal;
use tokio::sync::Notify;

use crate::binary::{Server, blocking_client, listening};
use crate::helpers::spawn_app_with;

/// A test-only route, registered through the test hook (production has no slow endpoint):
/// it signals `entered` once the request is in its handler, then takes 1.5 s.
fn slow_route(entered: Arc<Notify>) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut web::ServiceConfig| {
        let entered = Arc::clone(&entered);
        cfg.route(
            "/test/slow",
            web::get().to(move || {
                let entered = Arc::clone(&entered);
                async move {
                    entered.notify_one();
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    HttpResponse::Ok().body("slow done")
                }
            }),
        );
    }
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_complete_after_accepting_stopped() {
    let entered = Arc::new(Notify::new());
    let app = spawn_app_with(
        &[("DRAIN_DELAY_SECONDS", "0")],
        slow_route(Arc::clone(&entered)),
    )
    .await;
    let slow = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/test/slow");
        async move { client.get(url).send().await }
    });
    entered.notified().await;

    assert!(app.shutdown.begin(Signal::Term));
    let res = slow.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "slow done");
    let healthz = app.url("/healthz");
    app.server.await.unwrap().unwrap();
    assert!(app.client.get(healthz).send().await.is_err());
}

#[tokio::test]
async fn during_the_drain_readyz_is_503_while_the_greeting_still_answers_with_connection_close() {
    let entered = Arc::new(Notify::new());
    let app = spawn_app_with(
        &[("DRAIN_DELAY_SECONDS", "30")],
        slow_route(Arc::clone(&entered)),
    )
    .await;
    let slow = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/test/slow");
        async move { client.get(url).send().await }
    });
    entered.notified().await;
    assert!(app.shutdown.begin(Signal::Term));

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["connection"], "close");
    assert_eq!(res.text().await.unwrap(), "draining");
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["connection"], "close");
    assert_eq!(res.text().await.unwrap(), "Hello World from Kubernetes!");
    let info: serde_json::Value =
        serde_json::from_str(&app.get("/info").await.text().await.unwrap()).unwrap();
    assert_eq!(info["draining"], true);
    assert_eq!(info["ready"], false);

    // The in-flight request completes although shutdown began; a second signal skips the
    // rest of the drain and the server stops.
    let res = slow.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    app.shutdown.begin(Signal::Term);
    app.server.await.unwrap().unwrap();
}

#[test]
fn the_binary_drains_on_sigterm_then_exits_0() {
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "2")]);
    let client = blocking_client();
    server.signal(OsSignal::SIGTERM);
    // Readiness turns at once; the greeting keeps answering during the drain.
    let mut saw_draining = false;
    for _ in 0..100 {
        let res = client.get(server.url("/readyz")).send().unwrap();
        if res.status() == 503 {
            assert_eq!(res.text().unwrap(), "draining");
            saw_draining = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(saw_draining, "/readyz never answered 503 after SIGTERM");
    let res = client.get(server.url("/")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().unwrap(), "Hello World from Kubernetes!");

    let port = server.port;
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    let log = stdout.join("\n");
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!listening(port));
}

#[test]
fn the_binary_stops_on_sigint_without_the_drain_delay() {
    // With a 300 s drain delay, only skipping it lets the process exit within the bounded
    // wait of Server::wait.
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "300")]);
    server.signal(OsSignal::SIGINT);
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    let log = stdout.join("\n");
    assert!(log.contains("SIGINT"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn a_second_sigterm_skips_the_rest_of_the_drain() {
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "300")]);
    let client = blocking_client();
    server.signal(OsSignal::SIGTERM);
    for _ in 0..100 {
        if client.get(server.url("/readyz")).send().unwrap().status() == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    server.signal(OsSignal::SIGTERM);
    let (status, stdout, _) = server.wait();
    assert_eq!(status.code(), Some(0));
    let log = stdout.join("\n");
    assert!(log.contains("second signal"), "{log}");
}

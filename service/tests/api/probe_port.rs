//! The probe listener (`PROBE_PORT`): liveness and readiness on a port of their own, which a
//! full HTTP port cannot delay, and whose liveness still speaks for the workers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::binary::Server;
use crate::helpers::{TEST_API_KEY, spawn_app, spawn_app_with};

/// One request on a fresh connection to 127.0.0.1:`port`, read to the server's close.
fn one_shot(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn the_probe_port_answers_liveness_and_readiness_and_nothing_else() {
    let app = spawn_app().await;
    let client = &app.client;
    let url = |path: &str| format!("{}{path}", app.probe_address);
    let res = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    let res = client.head(url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = client.get(url("/readyz")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "ready");
    for path in ["/", "/metrics", "/info", "/admin/readiness/off"] {
        let res = client.get(url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    // Readiness follows the same state as the HTTP port's: switched off, then on again.
    let off = app
        .post_with_token("/admin/readiness/off", Some(TEST_API_KEY))
        .await;
    assert_eq!(off.status(), 200);
    let res = client.get(url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.text().await.unwrap(), "switched off");
    let res = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200, "liveness does not follow the switch");
}

#[tokio::test]
async fn liveness_fails_on_both_ports_while_a_worker_is_wedged_and_recovers_after() {
    // A route that blocks its worker's thread (what a wedged event loop looks like) for
    // longer than the heartbeat bound.
    let wedge = hello_k8s::heartbeat::STALE_AFTER + Duration::from_secs(2);
    let app = spawn_app_with(&[("WORKERS", "2")], move |cfg| {
        cfg.route(
            "/wedge",
            actix_web::web::get().to(move || async move {
                std::thread::sleep(wedge);
                "unwedged"
            }),
        );
    })
    .await;
    let wedged = tokio::spawn(app.client.get(app.url("/wedge")).send());
    let probe = format!("{}/healthz", app.probe_address);
    let deadline = Instant::now() + wedge;
    let mut failed = None;
    while Instant::now() < deadline {
        let res = app.client.get(&probe).send().await.unwrap();
        if res.status() == 503 {
            failed = Some(res.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = failed.expect("liveness never failed while a worker was wedged");
    assert!(body.contains("silent for"), "{body}");
    // The other worker answers the HTTP port's probes, and says the same.
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(wedged.await.unwrap().unwrap().status(), 200);
    tokio::time::sleep(hello_k8s::heartbeat::BEAT_EVERY * 4).await;
    let res = app.client.get(&probe).send().await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "liveness is back once the worker turns again"
    );
}

#[test]
fn the_probe_port_answers_at_once_while_the_http_port_is_full() {
    // One served slot and the fewest waiting places, all taken.
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "1"),
        ("MEMORY_LIMIT_BYTES", "1"),
        ("WORKERS", "1"),
    ]);
    let mut holders = Vec::new();
    for _ in 0..40 {
        let mut holder = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        holder
            .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
            .unwrap();
        holders.push(holder);
    }
    std::thread::sleep(Duration::from_millis(200));
    for (request, status, body) in [
        ("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", "200 OK", "ok"),
        ("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", "200 OK", "ready"),
        ("GET / HTTP/1.1\r\nHost: t\r\n\r\n", "404 Not Found", ""),
    ] {
        let started = Instant::now();
        let response = one_shot(server.probe_port, request);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{response}"
        );
        assert!(response.ends_with(body), "{response}");
        assert!(started.elapsed() < Duration::from_millis(500), "{response}");
    }
    drop(holders);
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

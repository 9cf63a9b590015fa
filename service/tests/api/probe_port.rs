//! The probe listener (`PROBE_PORT`): liveness and readiness on a port of their own, which a
//! full HTTP port cannot delay and no number of silent or slow connections can starve, and
//! whose liveness still speaks for the workers.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::binary::{Server, connect, send, server_view, wait_for};
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

#[test]
fn the_probe_port_answers_liveness_and_readiness_and_nothing_else() {
    let app = spawn_app();
    let agent = &app.agent;
    let url = |path: &str| format!("{}{path}", app.probe_address);
    let res = send(agent.get(url("/healthz"))).unwrap();
    assert_eq!((res.status, res.body.as_str()), (200, "ok"));
    let res = send(agent.head(url("/readyz"))).unwrap();
    assert_eq!((res.status, res.body.as_str()), (200, ""));
    let res = send(agent.get(url("/readyz"))).unwrap();
    assert_eq!(res.body, "ready");
    for path in ["/", "/metrics", "/info", "/admin/readiness/off"] {
        let res = send(agent.get(url(path))).unwrap();
        assert_eq!(res.status, 404, "{path}");
    }
    // Readiness follows the same state as the HTTP port's: switched off, then on again.
    let off = app.post_with_token("/admin/readiness/off", Some(TEST_API_KEY));
    assert_eq!(off.status, 200);
    let res = send(agent.get(url("/readyz"))).unwrap();
    assert_eq!((res.status, res.body.as_str()), (503, "switched off"));
    let res = send(agent.get(url("/healthz"))).unwrap();
    assert_eq!(res.status, 200, "liveness does not follow the switch");
}

#[test]
fn liveness_fails_on_both_ports_while_a_worker_is_wedged_and_recovers_after() {
    // A route that blocks its worker's thread (what a wedged event loop looks like) for
    // longer than the heartbeat bound.
    let wedge = hello_k8s::connection::heartbeat::STALE_AFTER + Duration::from_secs(2);
    let app = spawn_app_with(&[("WORKERS", "2")], move |cfg| {
        cfg.route(
            "/wedge",
            actix_web::web::get().to(move || async move {
                std::thread::sleep(wedge);
                "unwedged"
            }),
        );
    });
    let wedged = std::thread::spawn({
        // The wedge outlasts the agent's usual 10 s bound.
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(wedge * 2))
                .build(),
        );
        let url = app.url("/wedge");
        move || send(agent.get(url))
    });
    let probe = format!("{}/healthz", app.probe_address);
    let mut failed = String::new();
    wait_for("liveness failing while a worker is wedged", || {
        let res = send(app.agent.get(&probe)).unwrap();
        failed = res.body;
        res.status == 503
    });
    assert!(failed.contains("silent for"), "{failed}");
    // The other worker answers the HTTP port's probes, and says the same.
    let res = app.get("/readyz");
    assert_eq!(res.status, 503);
    assert_eq!(wedged.join().unwrap().unwrap().status, 200);
    wait_for("liveness back once the worker turns again", || {
        send(app.agent.get(&probe)).unwrap().status == 200
    });
}

/// Holds a request head longer than the 1 KiB read while waiting, and unfinished: its
/// connection takes a served slot and keeps it until the head's deadline (5 s).
fn hold_a_served_slot(port: u16) -> TcpStream {
    let mut holder = connect(port);
    let head = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Long: {}", "x".repeat(1100));
    holder.write_all(head.as_bytes()).unwrap();
    holder
}

#[test]
fn the_probe_port_answers_at_once_while_the_http_port_is_full() {
    // One served slot and the fewest waiting places (16), all taken.
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "1"),
        ("MEMORY_LIMIT_BYTES", "1"),
        ("WORKERS", "1"),
    ]);
    let mut holders = vec![hold_a_served_slot(server.port)];
    for _ in 0..40 {
        let mut holder = connect(server.port);
        holder.write_all(b"GET / HT").unwrap();
        holders.push(holder);
    }
    wait_for("the HTTP port's connections accepted or closed", || {
        let (accepted, closed) = server_view(server.port, &holders);
        accepted + closed == holders.len()
    });
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

/// How an attacker's connection to the probe port behaves.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// Connects and sends nothing.
    Silent,
    /// Sends a head a byte at a time, one every 300 ms, never finishing it.
    Slow,
}

/// Keeps `count` connections to `port` open in the manner `hold` until `stop`, opening a new
/// one whenever the server closes one; counts the connections it opened.
fn attacker(port: u16, count: usize, hold: Hold, stop: &AtomicBool, opened: &AtomicUsize) {
    const SLOW_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n";
    let open = || {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_nonblocking(true).ok()?;
        opened.fetch_add(1, Ordering::Relaxed);
        Some((stream, 0usize, Instant::now()))
    };
    let mut held: Vec<(TcpStream, usize, Instant)> = (0..count).filter_map(|_| open()).collect();
    while !stop.load(Ordering::Relaxed) {
        for slot in &mut held {
            let (stream, sent, last) = slot;
            let closed = match stream.read(&mut [0u8; 64]) {
                Ok(_) => true,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
            if closed {
                if let Some(fresh) = open() {
                    *slot = fresh;
                }
                continue;
            }
            if matches!(hold, Hold::Slow) && last.elapsed() >= Duration::from_millis(300) {
                let _ = stream.write(&SLOW_HEAD[*sent % SLOW_HEAD.len()..][..1]);
                *sent += 1;
                *last = Instant::now();
            }
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// Raises this process's soft open-files limit so it can hold `needed` sockets.
pub fn allow_open_files(needed: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= needed,
        "the hard open-files limit is {hard}; this test needs {needed} (raise it with ulimit -Hn)"
    );
    if soft < needed {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
}

#[test]
fn a_fresh_probe_is_answered_within_a_second_whatever_silent_or_slow_connections_hold_the_port() {
    allow_open_files(3_000 + 512);
    let server = Server::start(&[("WORKERS", "1")]);
    for (count, hold) in [
        (hello_k8s::connection::probes::MAX_OPEN, Hold::Silent),
        (hello_k8s::connection::probes::MAX_OPEN, Hold::Slow),
        (3_000, Hold::Silent),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let port = server.probe_port;
        let attack = std::thread::spawn({
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            move || attacker(port, count, hold, &stop, &opened)
        });
        // The attacker holds its connections (and re-opens those the server closes).
        wait_for("the attacker's connections open", || {
            opened.load(Ordering::Relaxed) >= count
        });
        for probe in 0..20 {
            let started = Instant::now();
            let response = one_shot(port, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
            let took = started.elapsed();
            assert!(
                response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("ok"),
                "{count} {hold:?} connections: probe {probe} got {response:?}"
            );
            assert!(
                took < Duration::from_secs(1),
                "{count} {hold:?} connections: probe {probe} answered after {took:?}"
            );
        }
        stop.store(true, Ordering::Relaxed);
        attack.join().unwrap();
        eprintln!(
            "{count} {hold:?} connections ({} opened): 20 fresh probes answered within 1 s",
            opened.load(Ordering::Relaxed)
        );
    }
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

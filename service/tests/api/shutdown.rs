//! The shutdown sequence: readiness 503 at once, serving on through the drain delay with
//! `Connection: close` on every answer, then no new connection and nothing accepted lost:
//! in-flight requests finish, connections already accepted are answered, keep-alive clients
//! at full rate lose no request.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use hello_k8s::shutdown::Signal;
use nix::sys::signal::Signal as OsSignal;

use crate::binary::{Server, agent, connect, exchange, listening, read_response, send};
use crate::helpers::spawn_app_with;

/// A test-only route, registered through the test hook (production has no slow endpoint): it
/// sends on `entered` once the request is in its handler, then takes 1.5 s.
fn slow_route(
    entered: mpsc::Sender<()>,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    let entered = Arc::new(std::sync::Mutex::new(entered));
    move |cfg: &mut web::ServiceConfig| {
        let entered = Arc::clone(&entered);
        cfg.route(
            "/test/slow",
            web::get().to(move || {
                let _ = entered.lock().unwrap().send(());
                async move {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    HttpResponse::Ok().body("slow done")
                }
            }),
        );
    }
}

#[test]
fn shutdown_lets_an_in_flight_request_complete_after_accepting_stopped() {
    let (entered, in_handler) = mpsc::channel();
    let app = spawn_app_with(&[("DRAIN_DELAY_SECONDS", "0")], slow_route(entered));
    let slow = std::thread::spawn({
        let agent = app.agent.clone();
        let url = app.url("/test/slow");
        move || send(agent.get(url))
    });
    in_handler.recv().unwrap();

    assert!(app.shutdown.begin(Signal::Term));
    let res = slow.join().unwrap().unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "slow done");
    let port = app.port;
    app.stopped().unwrap();
    assert!(!listening(port));
}

#[test]
fn during_the_drain_readyz_is_503_while_the_greeting_still_answers_with_connection_close() {
    let (entered, in_handler) = mpsc::channel();
    let app = spawn_app_with(&[("DRAIN_DELAY_SECONDS", "30")], slow_route(entered));
    let slow = std::thread::spawn({
        let agent = app.agent.clone();
        let url = app.url("/test/slow");
        move || send(agent.get(url))
    });
    in_handler.recv().unwrap();
    assert!(app.shutdown.begin(Signal::Term));

    let res = app.get("/readyz");
    assert_eq!(res.status, 503);
    assert_eq!(res.header("connection"), "close");
    assert_eq!(res.body, "draining");
    let res = app.get("/");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("connection"), "close");
    assert_eq!(res.body, "Hello World from Kubernetes!");
    let info: serde_json::Value = serde_json::from_str(&app.get("/info").body).unwrap();
    assert_eq!(info["draining"], true);
    assert_eq!(info["ready"], false);

    // The in-flight request completes although shutdown began; a second signal skips the
    // rest of the drain and the server stops.
    let res = slow.join().unwrap().unwrap();
    assert_eq!(res.status, 200);
    app.shutdown.begin(Signal::Term);
    app.stopped().unwrap();
}

#[test]
fn the_binary_drains_on_sigterm_then_exits_0() {
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "2")]);
    let client = agent();
    server.signal(OsSignal::SIGTERM);
    assert!(server.wait_for_line(|l| l.contains("draining")));
    // Readiness turns at once; the greeting keeps answering during the drain.
    let res = send(client.get(server.url("/readyz"))).unwrap();
    assert_eq!((res.status, res.body.as_str()), (503, "draining"));
    let res = send(client.get(server.url("/"))).unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "Hello World from Kubernetes!");

    let port = server.port;
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    let log = stdout.join("\n");
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
    server.signal(OsSignal::SIGTERM);
    assert!(server.wait_for_line(|l| l.contains("draining")));
    server.signal(OsSignal::SIGTERM);
    let (status, stdout, _) = server.wait();
    assert_eq!(status.code(), Some(0));
    let log = stdout.join("\n");
    assert!(log.contains("second signal"), "{log}");
}

const GET_ROOT: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn connections_accepted_before_the_stop_are_answered_after_it() {
    // A client that connected and has not spoken yet, and a keep-alive client answered
    // before the drain (so never told to close): both may be sending a request right as
    // the server stops accepting. Each is answered, with `Connection: close`.
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "1"), ("WORKERS", "1")]);
    let mut fresh = connect(server.port);
    let mut kept = connect(server.port);
    let first = exchange(&mut kept, GET_ROOT);
    assert!(first.starts_with("HTTP/1.1 200") && !first.contains("connection: close"));
    server.signal(OsSignal::SIGTERM);
    assert!(server.wait_for_line(|l| l.contains("stopping: no longer accepting")));
    for (name, stream) in [("fresh", &mut fresh), ("keep-alive", &mut kept)] {
        let response = exchange(stream, GET_ROOT);
        assert!(
            response.starts_with("HTTP/1.1 200")
                && response.contains("connection: close\r\n")
                && response.ends_with("Hello World from Kubernetes!"),
            "{name}: {response}"
        );
    }
    let (status, _, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// What the clients of one drain saw.
#[derive(Debug, Default)]
struct Tally {
    answered: AtomicUsize,
    told_to_close: AtomicUsize,
    /// Requests written whose answer never came whole (the connection ended or reset first).
    unanswered: AtomicUsize,
    /// Writes that failed on a connection the server had not said it would close.
    write_errors: AtomicUsize,
}

/// One keep-alive client at full rate: requests back to back, a new connection whenever an
/// answer says `Connection: close`, until the server is gone (a connect refused). Nothing is
/// retried: every failed write or read counts.
fn full_rate_client(port: u16, tally: &Tally, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
            return; // the server stopped listening: nothing was sent
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        loop {
            if stream.write_all(GET_ROOT.as_bytes()).is_err() {
                tally.write_errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            match read_response(&mut stream, false) {
                Ok(response) if response.ends_with("Hello World from Kubernetes!") => {
                    tally.answered.fetch_add(1, Ordering::Relaxed);
                    if response.contains("connection: close\r\n") {
                        tally.told_to_close.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                _ => {
                    tally.unanswered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

#[test]
fn ten_sigterms_under_full_rate_keep_alive_load_lose_no_request() {
    for run in 1..=10 {
        let server = Server::start(&[("DRAIN_DELAY_SECONDS", "1"), ("WORKERS", "2")]);
        let port = server.port;
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..16)
            .map(|_| {
                let (tally, stop) = (Arc::clone(&tally), Arc::clone(&stop));
                std::thread::spawn(move || full_rate_client(port, &tally, &stop))
            })
            .collect();
        // Under load before the signal: some answers are in.
        crate::binary::wait_for("answers before the signal", || {
            tally.answered.load(Ordering::Relaxed) >= 100
        });
        server.signal(OsSignal::SIGTERM);
        let (status, _, stderr) = server.wait();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        eprintln!("drain {run}: {tally:?}");
        assert_eq!(status.code(), Some(0), "{stderr}");
        assert_eq!(
            tally.unanswered.load(Ordering::Relaxed),
            0,
            "drain {run}: requests sent and never answered: {tally:?}"
        );
        assert_eq!(
            tally.write_errors.load(Ordering::Relaxed),
            0,
            "drain {run}: {tally:?}"
        );
        assert!(
            tally.told_to_close.load(Ordering::Relaxed) >= 16,
            "drain {run}: the drain told every client to close: {tally:?}"
        );
    }
}

#[test]
fn at_the_end_of_the_drain_new_handshakes_are_refused_and_queued_ones_still_accepted() {
    use hello_k8s::shutdown::{accept_queue_len, refuse_new_handshakes};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let queued: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    assert_eq!(accept_queue_len(&listener), Some(3));
    refuse_new_handshakes(&listener).unwrap();
    // A new connection's SYN is dropped: its connect does not complete.
    let late = TcpStream::connect_timeout(&address, Duration::from_millis(300));
    assert!(
        late.is_err(),
        "a handshake completed after the filter: {late:?}"
    );
    // The queued ones are still accepted, and they work.
    for mut client in queued {
        let (mut server_side, _) = listener.accept().unwrap();
        client.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        std::io::Read::read_exact(&mut server_side, &mut got).unwrap();
        assert_eq!(&got, b"ping");
    }
    assert_eq!(accept_queue_len(&listener), Some(0));
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    // The client's end of stream arrives while its request is in flight: actix-http answers
    // before it closes (`h1_allow_half_closed`, set explicitly; the give-back's end of stream
    // relies on the same rule). A slow route keeps the request in flight.
    let (entered, in_handler) = mpsc::channel();
    let app = spawn_app_with(&[], slow_route(entered));
    let mut stream = connect(app.port);
    stream
        .write_all(b"GET /test/slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    in_handler.recv().unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, reset) = crate::binary::read_to_close(&mut stream);
    let response = String::from_utf8_lossy(&got);
    assert!(!reset, "{response}");
    assert!(
        response.starts_with("HTTP/1.1 200 OK") && response.ends_with("slow done"),
        "{response}"
    );
}

//! The real binary and HTTP/1.1's rules for ending a connection: nothing after a request that
//! closes it is processed, an oversized head is answered 431 at once, slots go to clients
//! rather than to silent sockets, and a too small open-files limit is refused at start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::binary::{BIN, Server, accepted, exchange, free_port};
use crate::helpers::TEST_API_KEY;

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Writes `bytes` in one write and reads until the server closes: what came back, and when.
fn write_and_read_to_close(port: u16, bytes: &[u8]) -> (String, Duration) {
    let mut stream = connect(port);
    let started = Instant::now();
    stream.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

fn readiness(server: &Server) -> String {
    let (response, _) = write_and_read_to_close(
        server.port,
        b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    response
}

fn switch_off() -> String {
    format!(
        "POST /admin/readiness/off HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TEST_API_KEY}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn nothing_after_a_request_that_closes_the_connection_is_processed() {
    let server = Server::start(&[("API_KEY", TEST_API_KEY)]);
    for first in [
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: t\r\nconnection: Keep-Alive, Close\r\n\r\n",
        "GET /healthz HTTP/1.0\r\nHost: t\r\n\r\n",
    ] {
        let (response, took) =
            write_and_read_to_close(server.port, format!("{first}{}", switch_off()).as_bytes());
        assert_eq!(
            response.matches("HTTP/1.").count(),
            1,
            "{first:?}: {response}"
        );
        assert!(response.ends_with("ok"), "{first:?}: {response}");
        assert!(
            took < Duration::from_secs(1),
            "{first:?}: closed after {took:?}"
        );
        assert!(
            readiness(&server).ends_with("ready"),
            "{first:?}: the switch ran"
        );
    }
    // The control: with keep-alive (HTTP/1.0 asking for it), the second request runs.
    let first = "GET /healthz HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n";
    let mut stream = connect(server.port);
    stream
        .write_all(format!("{first}{}", switch_off()).as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while got.matches("HTTP/1.").count() < 2 && Instant::now() < deadline {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(got.matches("HTTP/1.").count(), 2, "{got}");
    assert!(readiness(&server).ends_with("switched off"));
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn an_oversized_head_is_answered_431_at_once_and_closed() {
    let server = Server::start(&[]);
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "x".repeat(17 * 1024)
    );
    let (response, took) = write_and_read_to_close(server.port, head.as_bytes());
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );
    assert!(response.contains("connection: close\r\n"), "{response}");
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    // A head just under the bound is still served.
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "x".repeat(15 * 1024)
    );
    let (response, _) = write_and_read_to_close(server.port, head.as_bytes());
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn silent_connections_hold_no_served_slot_and_are_evicted_for_clients_at_the_total_cap() {
    // Two served slots, 16 waiting places (the smallest memory limit): 18 in all.
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "2"),
        ("MEMORY_LIMIT_BYTES", "1"),
        ("WORKERS", "1"),
    ]);
    let silent: Vec<TcpStream> = (0..18).map(|_| connect(server.port)).collect();
    // Every silent connection accepted, in order, before the first client connects (a fixed
    // sleep let a loaded machine accept the last one after a client: it was then the one over
    // the total cap).
    let started = Instant::now();
    while accepted(server.port, &silent) < silent.len() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server accepted {} of {} silent connections",
            accepted(server.port, &silent),
            silent.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every place is held by a connection that has sent nothing; a client is still served, by
    // taking the place of the oldest silent connection. The five clients stay connected
    // (keep-alive) after their answer, so each keeps the total over the cap until a silent
    // connection goes: five evictions, the oldest first. (A client that closes at once gives
    // its place back before the eviction runs, and then nobody is evicted: an eviction is
    // taken only while it is still needed.)
    let clients: Vec<TcpStream> = (0..5)
        .map(|i| {
            let mut client = connect(server.port);
            let response = exchange(&mut client, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            assert!(
                response.starts_with("HTTP/1.1 200 OK\r\n")
                    && response.ends_with("Hello World from Kubernetes!"),
                "client {i}: {response}"
            );
            client
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut closed = Vec::new();
    for (index, mut stream) in silent.into_iter().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // Closed: end of stream or a reset. A read that times out is a connection still open.
        match stream.read(&mut [0u8; 16]) {
            Ok(0) => closed.push(index),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed.push(index),
            _ => {}
        }
    }
    assert_eq!(
        closed,
        vec![0, 1, 2, 3, 4],
        "the silent connections closed (by age, 0 the oldest); expected the five oldest"
    );
    drop(clients);
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Runs the binary with a soft and hard open-files limit of `limit` (util-linux's `prlimit`
/// sets it between fork and exec; the workspace forbids the `unsafe` a `pre_exec` needs).
fn run_with_open_files(limit: u64) -> std::process::Child {
    Command::new("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg("--")
        .arg(BIN)
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", free_port().to_string())
        .env("PROBE_PORT", free_port().to_string())
        .env("WORKERS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the binary under a chosen open-files limit")
}

#[test]
fn an_open_files_limit_too_small_for_listeners_workers_and_one_connection_exits_2_naming_it() {
    let needed = hello_k8s::admission::open_files_needed(2);
    for limit in [8, 20, needed - 1] {
        let output = run_with_open_files(limit).wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "limit {limit}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "limit {limit}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: the open-files limit (RLIMIT_NOFILE) is {limit}"
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    // At the bound it starts and serves (then is stopped with SIGTERM).
    let mut child = run_with_open_files(needed);
    std::thread::sleep(Duration::from_millis(1500));
    let alive = child.try_wait().unwrap().is_none();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(alive, "exited at {needed} open files: {stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

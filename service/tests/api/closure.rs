//! The real binary and HTTP/1.1's rules for framing and ending a connection, tried as an
//! attacker would: actix-http's parser alone decides where a request ends and whether it
//! closes the connection. Nothing after a request that closes it is processed, however the
//! header is written; no body byte is read as a request; no answer but the real one; an
//! oversized head is answered 431 at once; slots go to clients rather than to silent sockets;
//! a too small open-files limit is refused at start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::binary::{
    BIN, Server, connect, exchange, free_port, read_to_close, write_and_read_to_close,
};
use crate::helpers::TEST_API_KEY;

/// How long a connection may take to close once its last answer is written: the close is
/// immediate, the bound only absorbs a loaded machine.
const CLOSES_WITHIN: Duration = Duration::from_secs(1);

fn readiness(server: &Server) -> String {
    let (response, _) = write_and_read_to_close(
        server.port,
        b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    response
}

/// The authorised request that switches readiness off: if it is ever processed, `/readyz`
/// says so.
fn switch_off() -> String {
    format!(
        "POST /admin/readiness/off HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TEST_API_KEY}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `bytes` in one write and checks what came back: exactly one answer, starting with
/// `status`, saying `connection: close`, followed by the server's clean close (an end of
/// stream, not a reset) within [`CLOSES_WITHIN`]; and the readiness switch never ran.
fn one_answer_then_closed(server: &Server, what: &str, bytes: &[u8], status: &str) {
    let (response, took) = write_and_read_to_close(server.port, bytes);
    assert_eq!(response.matches("HTTP/1.").count(), 1, "{what}: {response}");
    assert!(response.starts_with(status), "{what}: {response}");
    // HTTP/1.0 closes unless it says otherwise; HTTP/1.1 says it.
    assert!(
        response.contains("connection: close\r\n")
            || (response.starts_with("HTTP/1.0") && !response.contains("keep-alive")),
        "{what}: {response}"
    );
    assert!(!response.ends_with("<reset>"), "{what}: {response}");
    assert!(took < CLOSES_WITHIN, "{what}: closed after {took:?}");
    assert!(
        readiness(server).ends_with("ready"),
        "{what}: a request after the closing one was processed"
    );
}

#[test]
fn nothing_after_a_request_that_closes_the_connection_is_processed_however_long_its_header() {
    let server = Server::start(&[("API_KEY", TEST_API_KEY)]);
    let padding = "x".repeat(60);
    let spaces = " ".repeat(70);
    let long = "a, ".repeat(3000);
    for first in [
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_owned(),
        "GET /healthz HTTP/1.1\r\nHost: t\r\nconnection: Keep-Alive, Close\r\n\r\n".to_owned(),
        "GET /healthz HTTP/1.0\r\nHost: t\r\n\r\n".to_owned(),
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: {padding}, close\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection:{spaces}close\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: {long}close\r\n\r\n"),
        format!(
            "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: {padding}\r\nConnection: upgrade\r\nConnection: close\r\n\r\n"
        ),
    ] {
        one_answer_then_closed(
            &server,
            &first[..first.len().min(80)],
            format!("{first}{}", switch_off()).as_bytes(),
            if first.contains(" HTTP/1.0\r\n") {
                "HTTP/1.0 200 OK"
            } else {
                "HTTP/1.1 200 OK"
            },
        );
    }
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_keep_alive_request_however_long_its_header_is_followed_by_the_next() {
    // The control of the test above: with keep-alive (HTTP/1.0 asking for it after 70
    // spaces), the pipelined switch runs and both are answered.
    let server = Server::start(&[("API_KEY", TEST_API_KEY)]);
    let first = format!(
        "GET /healthz HTTP/1.0\r\nHost: t\r\nConnection:{}keep-alive\r\n\r\n",
        " ".repeat(70)
    );
    let mut stream = connect(server.port);
    stream
        .write_all(format!("{first}{}", switch_off()).as_bytes())
        .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while got.matches("HTTP/1.").count() < 2 || !got.ends_with("readiness off") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.starts_with("HTTP/1.0 200 OK"), "{got}");
    assert!(readiness(&server).ends_with("switched off"));
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn no_body_byte_is_read_as_a_request_and_nothing_after_a_body_is_processed() {
    // A request with a body is answered with `Connection: close` (the service reads no body,
    // and no connection is reused behind one); what its body holds, and what follows it, is
    // never processed. Before, a scanner beside actix-http read bodies as heads: a trailer or
    // chunk data saying `Connection: close`, or 40 empty lines, left the next request
    // unanswered until a reset 4-5 s later.
    let server = Server::start(&[("API_KEY", TEST_API_KEY)]);
    let next = switch_off();
    let chunked = "POST /nowhere HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let inner = format!("\r\nConnection: close\r\n\r\n{next}");
    let empty_lines = "\r\n".repeat(40);
    for (what, bytes) in [
        (
            "a trailer saying Connection: close",
            format!("{chunked}3\r\nabc\r\n0\r\nConnection: close\r\n\r\n{next}"),
        ),
        (
            "chunk data holding a closing head and a request",
            format!("{chunked}{:x}\r\n{inner}\r\n0\r\n\r\n{next}", inner.len()),
        ),
        (
            "chunk data of 40 empty lines",
            format!(
                "{chunked}{:x}\r\n{empty_lines}\r\n0\r\n\r\n{next}",
                empty_lines.len()
            ),
        ),
        (
            "a Content-Length body holding a request",
            format!(
                "POST /nowhere HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{next}{next}",
                next.len()
            ),
        ),
    ] {
        one_answer_then_closed(&server, what, bytes.as_bytes(), "HTTP/1.1 404 Not Found");
    }
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_long_body_after_the_answer_gets_no_answer_of_its_own() {
    // Before, more than 16 KiB of body after the answer was taken for an oversized head: a
    // 431 nobody asked for followed the real answer.
    let server = Server::start(&[]);
    let chunk = format!("1000\r\n{}\r\n", "a".repeat(4096));
    let chunked = format!(
        "POST /nowhere HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(25)
    );
    let mut cases = vec![("chunked 25 x 4 KiB".to_owned(), chunked.into_bytes())];
    for length in [40_000, 200_000, 1_000_000] {
        let mut bytes =
            format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n").into_bytes();
        bytes.resize(bytes.len() + length, b'a');
        cases.push((format!("Content-Length {length}"), bytes));
    }
    for (what, bytes) in cases {
        let mut stream = connect(server.port);
        // Written beside the read: the server answers before the body is all sent.
        let writer = std::thread::spawn({
            let mut stream = stream.try_clone().unwrap();
            move || stream.write_all(&bytes)
        });
        let (got, _) = read_to_close(&mut stream);
        let _ = writer.join().unwrap();
        let response = String::from_utf8_lossy(&got);
        assert_eq!(response.matches("HTTP/1.").count(), 1, "{what}: {response}");
        assert!(
            response.starts_with("HTTP/1.1 404") || response.starts_with("HTTP/1.1 405"),
            "{what}: {response}"
        );
        assert!(!response.contains(" 431 "), "{what}: {response}");
        assert!(
            response.contains("connection: close\r\n"),
            "{what}: {response}"
        );
    }
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
    assert!(took < CLOSES_WITHIN, "answered after {took:?}");
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

/// The server's own count of its connections, from `/metrics` on `stream` (kept open).
fn connections(stream: &mut TcpStream, state: &str) -> usize {
    let metrics = exchange(stream, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    let line = format!("hello_k8s_connections{{state=\"{state}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in {metrics}"))
}

#[test]
fn silent_connections_hold_no_served_slot_and_are_evicted_for_clients_at_the_total_cap() {
    // Two served slots, 16 waiting places (the smallest memory limit): 18 in all.
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "2"),
        ("MEMORY_LIMIT_BYTES", "1"),
        ("WORKERS", "1"),
    ]);
    let silent: Vec<TcpStream> = (0..17).map(|_| connect(server.port)).collect();
    // The 18th place: a connection that asks the server how many it holds, and is then the
    // newest silent one (keep-alive). Asked until the server has taken in all 17 before it.
    let mut observer = connect(server.port);
    crate::binary::wait_for("the server holds the 17 silent connections", || {
        connections(&mut observer, "silent") == 17
    });
    assert_eq!(connections(&mut observer, "held"), 18);
    // Every place is held by a connection that has sent nothing; a client is still served, by
    // taking the place of the oldest silent connection. The five clients stay connected
    // (keep-alive) after their answer, so each keeps the total over the cap until a silent
    // connection goes: five evictions, the oldest first.
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
    // The evictions are done once the server has closed five of them (it closes a silent
    // connection once told to, beside the client's exchange).
    crate::binary::wait_for("five silent connections closed by the server", || {
        crate::binary::server_view(server.port, &silent).1 >= 5
    });
    let mut closed = Vec::new();
    for (index, mut stream) in silent.into_iter().enumerate() {
        stream.set_nonblocking(true).unwrap();
        // Closed: end of stream or a reset. A read that would block is a connection still open.
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
    drop(observer);
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Runs the binary with a soft and hard open-files limit of `limit` (util-linux's `prlimit`
/// sets it between fork and exec; the workspace forbids the `unsafe` a `pre_exec` needs).
fn run_with_open_files(limit: u64, port: u16) -> std::process::Child {
    Command::new("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg("--")
        .arg(BIN)
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("PROBE_PORT", free_port().to_string())
        .env("WORKERS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the binary under a chosen open-files limit")
}

#[test]
fn an_open_files_limit_too_small_for_listeners_workers_and_one_connection_exits_2_naming_it() {
    let needed = hello_k8s::connection::admission::open_files_needed(2);
    for limit in [8, 20, needed - 1] {
        let output = run_with_open_files(limit, free_port())
            .wait_with_output()
            .unwrap();
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
    // At the bound it starts and serves a request (then is stopped with SIGTERM).
    let port = free_port();
    let mut child = run_with_open_files(needed, port);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready: every worker is serving") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "exited at {needed} open files before it was ready");
    }
    let mut client = connect(port);
    let response = exchange(&mut client, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    drop(client);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

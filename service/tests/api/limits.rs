//! The real binary under hostile connections: the served cap and what happens over it, the
//! total cap, heads and bodies that never end, pipelined requests whose responses are never
//! read, and what connections cost.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::binary::{
    Server, connect, connections, exchange, release_binary, server_has_read,
    server_has_read_or_closed, try_exchange, wait_for,
};
use crate::helpers::{Holds, spawn_app_with};
use crate::probe_port::allow_open_files;

const GET_ROOT: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// Sends a request head longer than the 1 KiB read while waiting (`filler` bytes of one header
/// after its start, 1,100 or more), unfinished: its connection takes a served slot (and
/// actix-http's buffers), once the server has read every byte (those past the first KiB are
/// read with a slot only), until the head's deadline (5 s).
fn start_holding(port: u16, filler: usize) -> TcpStream {
    let mut holder = connect(port);
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Long: {}",
        "x".repeat(filler)
    );
    holder.write_all(head.as_bytes()).unwrap();
    holder
}

/// True when the server has closed `stream` (end of stream or reset), waiting at most `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
        if started.elapsed() > within {
            return false;
        }
    }
}

/// Opens `count` connections to `port` that each send `GET /test/hold` and returns them once
/// every one is in its handler, holding a served slot (see [`Holds`]).
fn hold_slots(port: u16, count: usize, announced: &mpsc::Receiver<()>) -> Vec<TcpStream> {
    let held: Vec<TcpStream> = (0..count)
        .map(|_| {
            let mut held = connect(port);
            held.write_all(b"GET /test/hold HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            held
        })
        .collect();
    for _ in 0..count {
        announced.recv_timeout(crate::binary::EVENT_WAIT).unwrap();
    }
    held
}

#[test]
fn over_the_served_cap_requests_wait_for_a_slot_or_get_503_with_retry_after() {
    let (holds, announced) = Holds::new();
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "2"), ("WORKERS", "1")], holds.route());
    // Two exchanges in progress hold both served slots.
    let mut held = hold_slots(app.port, 2, &announced);
    for request in [GET_ROOT, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"] {
        let mut shed = connect(app.port);
        let started = Instant::now();
        let response = exchange(&mut shed, request);
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        assert!(response.contains("retry-after: 1\r\n"), "{response}");
        assert!(response.contains("connection: close\r\n"), "{response}");
        assert!(
            started.elapsed() >= hello_k8s::connection::waiting::SLOT_WAIT,
            "shed before the slot wait"
        );
    }

    // A slot freed while a request waits (or just before): it is served.
    let mut waiting = connect(app.port);
    waiting.write_all(GET_ROOT.as_bytes()).unwrap();
    holds.release();
    let released = crate::binary::read_response(&mut held[0], false).unwrap();
    assert!(released.ends_with("released"), "{released}");
    let response = exchange(&mut waiting, "");
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("Hello World from Kubernetes!"),
        "{response}"
    );

    // The shed requests are counted (on the connection that got the slot just freed).
    let metrics = exchange(&mut waiting, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        metrics.contains("hello_k8s_connections_refused_total{reason=\"shed\"} 2\n"),
        "{metrics}"
    );
    holds.release();
}

#[test]
fn over_the_total_cap_connections_that_cannot_take_a_silent_ones_place_are_closed_unanswered() {
    // One served slot; the smallest memory limit gives the minimum of 16 waiting places.
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "1"),
        ("MEMORY_LIMIT_BYTES", "1"),
        ("WORKERS", "1"),
    ]);
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < crate::binary::EVENT_WAIT,
            "never held every place long enough to try the one beyond"
        );
        // Every place held by a connection that is not silent (silent ones would be evicted
        // for a client, see closure.rs): a slot by an unfinished long head, the 16 waiting
        // places by heads sent slowly, which the server waits 2 s for. The server holds one
        // once it has read its bytes.
        let mut held = vec![start_holding(server.port, 1100)];
        held.extend((0..16).map(|_| {
            let mut slow = connect(server.port);
            slow.write_all(b"GET / HT").unwrap();
            slow
        }));
        wait_for("every place held, or one given up", || {
            server_has_read_or_closed(server.port, &held)
        });
        if crate::binary::closed_count(&held) > 0 {
            continue; // a head's 2 s ran out first (a busy machine): hold them again
        }
        // Over the total cap: a request is closed without an answer (no silent connection
        // to take the place of)...
        let mut beyond = connect(server.port);
        beyond.write_all(GET_ROOT.as_bytes()).unwrap();
        let mut got = Vec::new();
        let _ = beyond.read_to_end(&mut got);
        // ...and one that says nothing is closed after the short wait for a head.
        let mut silent = connect(server.port);
        let silent_closed = closed_within(&mut silent, Duration::from_millis(1500));
        if crate::binary::closed_count(&held) > 0 {
            continue; // a place came free during the tries: they prove nothing
        }
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
        assert!(
            silent_closed,
            "a silent connection over the total cap stayed open"
        );
        break;
    }
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn keep_alive_connections_between_requests_hold_no_served_slot() {
    // One served slot (and no warm connection: one slot allows none), three keep-alive
    // clients taking turns: each exchange takes the slot and gives it back once answered, so
    // none of them is shed (before, the first client kept the slot until it closed and the
    // others got 503 after 500 ms).
    let (holds, announced) = Holds::new();
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "1"), ("WORKERS", "1")], holds.route());
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(app.port)).collect();
    for round in 0..3 {
        for (i, client) in clients.iter_mut().enumerate() {
            let response = exchange(client, GET_ROOT);
            assert!(
                response.starts_with("HTTP/1.1 200")
                    && response.ends_with("Hello World from Kubernetes!"),
                "round {round}, client {i}: {response}"
            );
        }
    }
    // An exchange still in progress holds the slot, and the idle clients' next requests
    // wait for it: one is shed after 500 ms.
    let mut held = hold_slots(app.port, 1, &announced);
    let response = exchange(&mut clients[0], GET_ROOT);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    // Once it is answered, the others are served again on their open connections.
    holds.release();
    let released = crate::binary::read_response(&mut held[0], false).unwrap();
    assert!(released.ends_with("released"), "{released}");
    let response = exchange(&mut clients[1], GET_ROOT);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// One keep-alive exchange that tolerates the server closing or resetting: whether a whole
/// `200` came back.
fn served(stream: &mut TcpStream) -> bool {
    try_exchange(stream, GET_ROOT).is_ok_and(|response| {
        response.starts_with("HTTP/1.1 200") && response.ends_with("Hello World from Kubernetes!")
    })
}

#[test]
fn after_a_flood_over_the_total_cap_new_clients_are_served() {
    // 17 places (1 served, the minimum of 16 waiting) and 64 keep-alive clients: clients over
    // the total cap evict the oldest silent connection all along, and idle keep-alive
    // connections count as silent. Once the flood is over, a new client that connects, and
    // speaks only once the server has taken it in, must be served, not closed by an eviction
    // the flood asked for and nobody took (a stored notification closed the first connection
    // after the flood before its request arrived).
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "1"),
        ("MEMORY_LIMIT_BYTES", "1"),
        ("WORKERS", "1"),
    ]);
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    while !stop.load(Ordering::Relaxed) && served(&mut stream) {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // The flood runs until it has been answered a good many times, over the cap all along.
    wait_for("2,000 answers to the flood", || {
        answered.load(Ordering::Relaxed) >= 2_000
    });
    stop.store(true, Ordering::Relaxed);
    for client in flood {
        client.join().unwrap();
    }
    // Done once the server holds only the connection that asks (a place over the cap, or
    // a slot still taken by the flood, answers 503 or closes: asked again).
    wait_for("the server done with the flood's connections", || {
        let mut observer = connect(port);
        try_exchange(&mut observer, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .is_ok_and(|m| m.contains("hello_k8s_connections{state=\"held\"} 1\n"))
    });
    for i in 0..10 {
        let mut client = connect(port);
        wait_for("the new client taken in", || {
            crate::binary::server_accepted(port, &client)
        });
        assert!(
            served(&mut client),
            "client {i} after the flood ({} answered during it) was closed or refused",
            answered.load(Ordering::Relaxed)
        );
    }
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn heads_that_go_silent_are_closed_within_the_progress_deadline_and_bodies_at_once() {
    let server = Server::start(&[]);
    // 200 connections whose long head stops half-way: each holds a served slot until the
    // deadline (5 s without progress) closes it.
    let mut silent: Vec<TcpStream> = (0..200).map(|_| start_holding(server.port, 1100)).collect();
    wait_for("the server holding the 200 slots", || {
        server_has_read(server.port, &silent)
    });
    // 200 requests whose chunked body has begun and not ended: answered (`/` takes no body,
    // 405) and closed at once, holding nothing.
    let body = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    for _ in 0..200 {
        let mut stream = connect(server.port);
        stream.write_all(body.as_bytes()).unwrap();
        let (got, _) = crate::binary::read_to_close(&mut stream);
        let response = String::from_utf8_lossy(&got);
        assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    }
    let started = Instant::now();
    // The deadline is 5 s without progress; the rest is slack for a busy machine (without the
    // deadline they stayed open for good).
    let deadline = Duration::from_secs(15);
    for stream in &mut silent {
        let left = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        assert!(
            closed_within(stream, left),
            "still open after {:?}",
            started.elapsed()
        );
    }
    // Still serving afterwards.
    let mut fresh = connect(server.port);
    assert!(exchange(&mut fresh, GET_ROOT).starts_with("HTTP/1.1 200"));
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Writes pipelined requests on `streams` (non-blocking) and reads nothing, until the server
/// has stopped reading every one of them: each write has found its socket full for
/// `stalled` in a row. Returns the request bytes the server took.
fn pipeline_until_the_server_stops_reading(streams: &mut [TcpStream], stalled: Duration) -> usize {
    let batch = GET_ROOT.repeat(2000);
    let mut sent = 0usize;
    let mut blocked_since: Vec<Option<Instant>> = vec![None; streams.len()];
    let started = Instant::now();
    loop {
        for (stream, since) in streams.iter_mut().zip(&mut blocked_since) {
            match stream.write(batch.as_bytes()) {
                Ok(n) if n > 0 => {
                    sent += n;
                    *since = None;
                }
                _ => {
                    since.get_or_insert_with(Instant::now);
                }
            }
        }
        if blocked_since
            .iter()
            .all(|since| since.is_some_and(|t| t.elapsed() >= stalled))
        {
            return sent;
        }
        assert!(
            started.elapsed() < crate::binary::EVENT_WAIT,
            "the server kept reading pipelined requests nobody reads the answers of"
        );
    }
}

#[test]
fn many_pipelining_connections_that_never_read_stay_within_the_served_connection_budget() {
    // 300 connections writing pipelined requests as fast as the server takes them and
    // reading nothing: once the server has stopped reading each (its answers fill the socket,
    // and reads stop while writes are blocked), each holds at most what a served connection
    // is budgeted. Without those bounds the same load grew by 188 MiB in 4 s.
    let server = Server::start(&[("WORKERS", "1")]);
    let pid = server.pid();
    let idle = rss_kib(pid);
    let mut streams: Vec<TcpStream> = (0..300)
        .map(|_| {
            let s = connect(server.port);
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let sent = pipeline_until_the_server_stops_reading(&mut streams, Duration::from_millis(500));
    let held = rss_kib(pid);
    let budget = 300 * hello_k8s::connection::admission::SERVED_CONNECTION_BYTES / 1024;
    eprintln!(
        "300 pipelining connections: RSS idle {idle} KiB, held {held} KiB, {sent} request bytes taken"
    );
    assert!(
        held <= idle + budget,
        "RSS grew from {idle} KiB to {held} KiB, over 300 x the served connection's budget"
    );
    drop(streams);
    let mut fresh = connect(server.port);
    assert!(exchange(&mut fresh, GET_ROOT).starts_with("HTTP/1.1 200"));
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Connections of the flood test: enough that what they allocate while in an exchange
/// (actix-http's buffers) stands well above the bound below.
const FLOOD_CONNECTIONS: usize = 2_000;
/// The unfinished head of each flood connection: 8 KiB of it kept by the server (the
/// connection layer keeps a head until whole, in a buffer whose untouched pages cost nothing;
/// with 1,100 bytes 2,000 connections cost 17 MiB).
const FLOOD_HEAD_FILLER: usize = 8 * 1024;
/// The flood must have cost at least this much, or the test could not tell whether memory
/// came back (2,000 connections with 8 KiB of a head each cost about 30 MiB).
const FLOOD_MIN_GROWTH_KIB: u64 = 20 * 1024;
/// What may stay above the idle RSS once every connection is closed: the e2e flood suite's
/// rule (`RSS_SLACK`). With glibc's malloc the whole peak stayed (its arenas keep the freed
/// buffers, fragmented: 3,000 connections left 32 MiB); jemalloc's background thread purges
/// them on its 10 s decay, leaving about 3 MiB 17 s later (see `FLOOD_RETURN_WITHIN`).
const FLOOD_RETAINED_KIB: u64 = 16 * 1024;
/// How long after the last connection closes RSS must be back within the bound: jemalloc's
/// 10 s `dirty_decay_ms`, and room for its background thread on a busy machine.
const FLOOD_RETURN_WITHIN: Duration = Duration::from_secs(30);

/// Waits until the server answers `/metrics` with no connection served but the asking one
/// (and `warm` kept warm): the state in which memory is read.
fn quiet(server: &Server, warm: usize) -> TcpStream {
    let mut observer = connect(server.port);
    wait_for("the server serving nothing", || {
        connections(&mut observer, "served") <= warm + 1
    });
    observer
}

#[test]
fn memory_taken_by_a_connection_flood_is_returned_to_the_os_after_it_ends() {
    allow_open_files(FLOOD_CONNECTIONS as u64 + 256);
    // A limit that serves every connection of the flood (6,246 served at 512 MiB, 3,544 once
    // cut to a 20,000 open-files limit), so each one holds actix-http's buffers rather than
    // being shed.
    // The deployed binary: giving the memory back is jemalloc's doing (the test build has none).
    let server = Server::start_binary(&release_binary(), &[("MEMORY_LIMIT_BYTES", "536870912")]);
    let pid = server.pid();
    for _ in 0..20 {
        let mut warm = connect(server.port);
        assert!(exchange(&mut warm, GET_ROOT).starts_with("HTTP/1.1 200"));
    }
    let observer = quiet(&server, 0);
    let idle = rss_kib(pid);

    // Each connection stays in its exchange (a long head begun, not ended), holding a served
    // slot and actix-http's buffers, until its head's deadline (5 s): the peak is read once the
    // server has taken them all in, none closed yet (opened again on a machine too busy for it).
    let started = Instant::now();
    let (streams, peak) = loop {
        assert!(
            started.elapsed() < crate::binary::EVENT_WAIT,
            "never held {FLOOD_CONNECTIONS} connections at once"
        );
        let streams: Vec<TcpStream> = (0..FLOOD_CONNECTIONS)
            .map(|_| start_holding(server.port, FLOOD_HEAD_FILLER))
            .collect();
        wait_for("every flood connection taken in or closed", || {
            server_has_read_or_closed(server.port, &streams)
        });
        let peak = rss_kib(pid);
        if crate::binary::closed_count(&streams) == 0 {
            break (streams, peak);
        }
    };
    assert!(
        peak >= idle + FLOOD_MIN_GROWTH_KIB,
        "{FLOOD_CONNECTIONS} open connections took RSS only from {idle} KiB to {peak} KiB"
    );

    drop(streams);
    let closed = Instant::now();
    let mut now = peak;
    while now > idle + FLOOD_RETAINED_KIB && closed.elapsed() < FLOOD_RETURN_WITHIN {
        // Looked at again every 250 ms: the release is jemalloc's decay, which nothing
        // announces.
        std::thread::park_timeout(Duration::from_millis(250));
        now = rss_kib(pid);
    }
    eprintln!(
        "flood of {FLOOD_CONNECTIONS}: RSS idle {idle} KiB, with the connections open {peak} KiB, \
         {now} KiB {:.1} s after they closed",
        closed.elapsed().as_secs_f64()
    );
    assert!(
        now <= idle + FLOOD_RETAINED_KIB,
        "RSS still {now} KiB {} s after the flood closed (idle {idle} KiB, peak {peak} KiB); \
         expected at most idle + {FLOOD_RETAINED_KIB} KiB",
        FLOOD_RETURN_WITHIN.as_secs()
    );
    drop(observer);
    let mut fresh = connect(server.port);
    assert!(exchange(&mut fresh, GET_ROOT).starts_with("HTTP/1.1 200"));
    let (status, stdout, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The binary under test is the deployed one, jemalloc's (make run's and make test's builds
    // leave it out).
    assert!(
        stdout
            .iter()
            .any(|line| line.contains("allocator") && line.contains("jemalloc")),
        "no start-up line names the jemalloc allocator: {stdout:?}"
    );
}

/// Idle keep-alive connections of the next test.
const IDLE_CONNECTIONS: usize = 3_000;

/// Sends `request` once on each of `streams`: how many answers start with `status_line`.
fn answered(streams: &mut [TcpStream], request: &str, status_line: &str) -> usize {
    streams
        .iter_mut()
        .map(|stream| exchange(stream, request))
        .filter(|response| response.starts_with(status_line))
        .count()
}

#[test]
fn idle_keep_alive_connections_cost_no_more_than_a_waiting_place() {
    // Between requests a keep-alive connection waits outside actix-http, without its
    // buffers, except the pool of warm ones (`Admission::warm_allowed`: 256 when not every
    // connection can be warm): the deployed binary holds 3,000 of them under the 4 KiB budget
    // of a waiting place each.
    allow_open_files(IDLE_CONNECTIONS as u64 + 256);
    let server = Server::start_binary(
        &release_binary(),
        &[("MEMORY_LIMIT_BYTES", "536870912"), ("WORKERS", "1")],
    );
    let pid = server.pid();
    // More connections than can all be warm: the pool of warm ones.
    let warm = hello_k8s::connection::admission::WARM_POOL;
    for _ in 0..20 {
        let mut first = connect(server.port);
        assert!(exchange(&mut first, GET_ROOT).starts_with("HTTP/1.1 200"));
    }
    let observer = quiet(&server, 0);
    let idle = rss_kib(pid);
    let mut streams: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| connect(server.port))
        .collect();
    assert_eq!(
        answered(&mut streams, GET_ROOT, "HTTP/1.1 200"),
        IDLE_CONNECTIONS,
        "every connection is served"
    );
    let watcher = quiet(&server, warm);
    let held = rss_kib(pid);
    let each = (held.saturating_sub(idle)) * 1024 / IDLE_CONNECTIONS as u64;
    eprintln!(
        "{IDLE_CONNECTIONS} idle keep-alive connections: RSS idle {idle} KiB, held {held} KiB, \
         {each} bytes each"
    );
    assert!(
        each <= hello_k8s::connection::admission::WAITING_CONNECTION_BYTES,
        "an idle keep-alive connection costs {each} bytes, over the {} bytes of a waiting place",
        hello_k8s::connection::admission::WAITING_CONNECTION_BYTES
    );
    // They are still keep-alive connections: the last hundred (the others may have reached
    // their 5 s keep-alive timeout on a busy machine) each answer a second request.
    let recent = IDLE_CONNECTIONS - 100;
    assert_eq!(
        answered(&mut streams[recent..], GET_ROOT, "HTTP/1.1 200"),
        100,
        "the most recent connections are served again"
    );
    drop((streams, observer, watcher));
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_keep_alive_connection_gives_its_served_slot_and_buffers_back_between_requests() {
    // What the give-back relies on in actix-http (an end of stream read with no request in
    // flight ends its dispatcher, which shuts the connection down through the IO below it):
    // with no warm connection allowed (one served slot, and more connections than slots), a
    // client that stays connected after its answer holds no served slot, only a silent
    // waiting place, and its next request is served on the same connection. Should a new
    // actix-http keep the dispatcher, the connection would stay served here.
    let server = Server::start(&[("MAX_CONNECTIONS", "1"), ("WORKERS", "1")]);
    // The observer connects first: with two connections and one slot, none can be warm.
    let mut observer = connect(server.port);
    let mut client = connect(server.port);
    for (round, request) in [
        GET_ROOT.to_owned(),
        // Two heads in one write, and one split across two writes: each whole head is handed
        // on and answered before the connection is given back.
        GET_ROOT.repeat(2),
    ]
    .iter()
    .enumerate()
    {
        client.write_all(request.as_bytes()).unwrap();
        for _ in 0..request.matches("GET").count() {
            let response = crate::binary::read_response(&mut client, false).unwrap();
            assert!(
                response.ends_with("Hello World from Kubernetes!"),
                "{round}: {response}"
            );
        }
        wait_for("the client given back", || {
            connections(&mut observer, "silent") == 1
        });
        assert_eq!(
            connections(&mut observer, "served"),
            1,
            "the observer alone"
        );
    }
    let (head, rest) = GET_ROOT.split_at(10);
    client.write_all(head.as_bytes()).unwrap();
    wait_for("the first part read", || {
        server_has_read(server.port, std::slice::from_ref(&client))
    });
    client.write_all(rest.as_bytes()).unwrap();
    let response = crate::binary::read_response(&mut client, false).unwrap();
    assert!(
        response.ends_with("Hello World from Kubernetes!"),
        "{response}"
    );
    wait_for("the client given back again", || {
        connections(&mut observer, "silent") == 1
    });
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn while_every_connection_fits_warm_keep_alive_clients_keep_their_slot_between_requests() {
    // A hundred keep-alive clients, far under the served cap and the idle budget: each waits
    // for its next request inside actix-http, with its slot (no new dispatcher per request).
    let server = Server::start(&[("WORKERS", "1")]);
    let mut clients: Vec<TcpStream> = (0..100).map(|_| connect(server.port)).collect();
    assert_eq!(answered(&mut clients, GET_ROOT, "HTTP/1.1 200"), 100);
    let mut observer = connect(server.port);
    wait_for("every client warm", || {
        connections(&mut observer, "served") == 101
    });
    assert_eq!(connections(&mut observer, "silent"), 0);
    assert_eq!(answered(&mut clients, GET_ROOT, "HTTP/1.1 200"), 100);
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_warm_keep_alive_connection_is_closed_after_the_keep_alive_timeout_and_not_before() {
    // Every connection fits, so the client waits for its next request inside actix-http
    // (warm), whose own keep-alive timer is off: the connection layer's timer closes it.
    let server = Server::start(&[("WORKERS", "1")]);
    let keep_alive = hello_k8s::connection::waiting::SILENT_WAIT;
    let mut client = connect(server.port);
    // Busy for longer than the timeout, on the one connection: the timer armed with the first
    // answer fires while the connection is busy, and is moved on, not obeyed.
    let busy = Instant::now();
    let mut requests = 0;
    while busy.elapsed() < keep_alive + Duration::from_secs(1) {
        let response = exchange(&mut client, GET_ROOT);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            !response.to_ascii_lowercase().contains("connection: close"),
            "answer {requests} closed the busy connection: {response}"
        );
        requests += 1;
    }
    let idle = Instant::now();
    // The path taken: the client waits warm, with its served slot (and the observer's own
    // exchange holds the other).
    let mut observer = connect(server.port);
    assert_eq!(connections(&mut observer, "served"), 2);
    assert_eq!(connections(&mut observer, "silent"), 0);
    // Silent: closed once the timeout has passed since its last answer, not before.
    assert!(
        closed_within(&mut client, keep_alive * 3),
        "still open after {:?} of silence",
        idle.elapsed()
    );
    let waited = idle.elapsed();
    assert!(
        waited + Duration::from_millis(100) >= keep_alive,
        "closed after {waited:?} of silence, before the keep-alive timeout ({keep_alive:?})"
    );
    eprintln!(
        "{requests} requests in {keep_alive:?} + 1 s kept the connection; closed after {waited:?} of silence"
    );
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

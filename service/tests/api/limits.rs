//! The real binary under hostile connections: the served cap and what happens over it, the
//! total cap, bodies that never end, and pipelined requests whose responses are never read.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::binary::{Server, exchange, release_binary, try_exchange};

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// True when the server has closed `stream` (EOF or reset), waiting at most `within`.
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

const GET_ROOT: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// A request whose chunked body has begun and not ended: its exchange (and its served slot)
/// lasts until the body ends or the progress deadline (5 s) closes it. It is answered 405
/// (`/` takes no body) at once.
const UNFINISHED_BODY: &str =
    "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";

/// A connection in the middle of an exchange, holding a served slot.
fn hold_a_slot(server: &Server) -> TcpStream {
    let mut holder = connect(server);
    let response = exchange(&mut holder, UNFINISHED_BODY);
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    holder
}

#[test]
fn over_the_served_cap_probes_are_answered_and_other_requests_get_503_with_retry_after() {
    let server = Server::start(&[("MAX_CONNECTIONS", "2"), ("WORKERS", "1")]);
    // Two exchanges in progress hold both served slots.
    let mut holders: Vec<TcpStream> = (0..2).map(|_| hold_a_slot(&server)).collect();
    for (request, status, body) in [
        ("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", "200 OK", "ok"),
        ("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", "200 OK", "ready"),
        ("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n", "200 OK", ""),
    ] {
        let mut probe = connect(&server);
        let started = Instant::now();
        let response = exchange(&mut probe, request);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{response}"
        );
        assert!(response.ends_with(&format!("\r\n\r\n{body}")), "{response}");
        assert!(
            started.elapsed() < Duration::from_millis(480),
            "probes do not wait"
        );
    }
    let mut shed = connect(&server);
    let response = exchange(&mut shed, GET_ROOT);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("retry-after: 1\r\n"), "{response}");
    assert!(response.contains("connection: close\r\n"), "{response}");

    // A slot freed while a request waits: it is served, replaying the bytes already read.
    let mut waiting = connect(&server);
    waiting.write_all(GET_ROOT.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(holders.pop());
    let response = exchange(&mut waiting, "");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.ends_with("Hello World from Kubernetes!"),
        "{response}"
    );

    drop(waiting);

    // The shed request is counted (on a connection that gets the slot just freed).
    std::thread::sleep(Duration::from_millis(100));
    let mut scrape = connect(&server);
    let metrics = exchange(&mut scrape, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        metrics.contains("hello_k8s_connections_refused_total{reason=\"shed\"} 1\n"),
        "{metrics}"
    );
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn over_the_total_cap_probes_are_still_answered_and_other_connections_closed_unanswered() {
    // One served slot; the smallest memory limit gives the minimum of 16 waiting places.
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "1"),
        ("MEMORY_LIMIT_BYTES", "1"),
        ("WORKERS", "1"),
    ]);
    let holder = hold_a_slot(&server);
    // 16 connections that send a head slowly wait for the rest (2 s) in the waiting places
    // (silent ones would be evicted for a client, see closure.rs).
    let idle: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut slow = connect(&server);
            slow.write_all(b"GET / HT").unwrap();
            slow
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Over the total cap: a request that is not a probe is closed without an answer...
    let mut beyond = connect(&server);
    beyond.write_all(GET_ROOT.as_bytes()).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let _ = beyond.read_to_end(&mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(started.elapsed() < Duration::from_millis(1000));
    // ...one that says nothing is closed after the probe reserve's short wait...
    let mut silent = connect(&server);
    assert!(closed_within(&mut silent, Duration::from_millis(1500)));
    // ...and the kubelet's probes are answered.
    let mut probe = connect(&server);
    let response = exchange(&mut probe, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let mut probe = connect(&server);
    let response = exchange(&mut probe, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(response.ends_with("\r\n\r\nready"), "{response}");
    drop(idle);
    drop(holder);
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn keep_alive_connections_between_requests_hold_no_served_slot() {
    // One served slot, three keep-alive clients taking turns: each exchange takes the slot
    // and gives it back once answered, so none of them is shed (before, the first client
    // kept the slot until it closed and the others got 503 after 500 ms).
    let server = Server::start(&[("MAX_CONNECTIONS", "1"), ("WORKERS", "1")]);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    for round in 0..3 {
        for (i, client) in clients.iter_mut().enumerate() {
            let started = Instant::now();
            let response = exchange(client, GET_ROOT);
            assert!(
                response.starts_with("HTTP/1.1 200")
                    && response.ends_with("Hello World from Kubernetes!"),
                "round {round}, client {i}: {response}"
            );
            assert!(
                started.elapsed() < Duration::from_millis(450),
                "round {round}, client {i} waited for the slot"
            );
        }
    }
    // An exchange still in progress holds the slot, and the idle clients' next requests
    // wait for it: one is shed after 500 ms.
    let holder = hold_a_slot(&server);
    let response = exchange(&mut clients[0], GET_ROOT);
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    drop(holder);
    // Once it is gone, the others are served again on their open connections.
    std::thread::sleep(Duration::from_millis(100));
    let response = exchange(&mut clients[1], GET_ROOT);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
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
    // 17 places (1 served, the minimum of 16 waiting) and 64 keep-alive clients for 2 s:
    // clients over the total cap evict the oldest silent connection all along, and idle
    // keep-alive connections count as silent. Once the flood is over, a new client that
    // connects and speaks 50 ms later (a client across a network) must be served, not
    // closed by an eviction the flood asked for and nobody took (a stored notification
    // closed the first connection after the flood before its request arrived).
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "1"),
        ("MEMORY_LIMIT_BYTES", "1"),
        ("WORKERS", "1"),
    ]);
    let port = server.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut answered = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && served(&mut stream) {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered: usize = flood.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(answered > 0, "the flood was served at all");
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..10 {
        let mut client = connect(&server);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            served(&mut client),
            "client {i} after the flood ({answered} answered during it) was closed or refused"
        );
    }
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn chunked_bodies_that_go_silent_are_closed_within_the_progress_deadline() {
    let server = Server::start(&[]);
    let request = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    let mut silent: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = connect(&server);
            s.write_all(request.as_bytes()).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    // The deadline is 5 s without progress; allow 3 s for scheduling.
    let deadline = Duration::from_secs(8);
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
    let mut fresh = connect(&server);
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

/// The bound of the pipelining test: 8 connections × 48 KiB (the budget of a served
/// connection, see `admission`) plus allocator slack. Reads stop while writes are blocked and
/// at most 8 request heads are parsed ahead of written output, so 8 such connections add
/// well under 1 MiB (release build); without those bounds the same load grew by 188 MiB in
/// 4 s.
const PIPELINE_RSS_GROWTH_KIB: u64 = 8 * 48 + 4 * 1024;

#[test]
fn pipelined_requests_whose_responses_are_never_read_do_not_grow_memory() {
    let server = Server::start(&[]);
    let pid = server.pid();
    let idle = rss_kib(pid);
    let batch = GET_ROOT.repeat(1000);
    let mut peak = idle;
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let mut stream = connect(&server);
            stream
                .set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let batch = batch.clone();
            std::thread::spawn(move || {
                // Write for 4 s (or until the server stops reading), never read.
                let started = Instant::now();
                let mut sent = 0usize;
                while started.elapsed() < Duration::from_secs(4) {
                    match stream.write(batch.as_bytes()) {
                        Ok(n) => sent += n,
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                (stream, sent)
            })
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let results: Vec<(TcpStream, usize)> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    peak = peak.max(rss_kib(pid));
    let sent: usize = results.iter().map(|(_, n)| n).sum();
    eprintln!("pipelining: RSS idle {idle} KiB, peak {peak} KiB, {sent} request bytes accepted");
    assert!(
        peak <= idle + PIPELINE_RSS_GROWTH_KIB,
        "RSS grew from {idle} KiB to {peak} KiB ({sent} request bytes sent)"
    );
    // The server stopped reading: far less was accepted than 4 s of writing would send.
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes accepted");
    drop(results);
    // Still serving.
    let mut fresh = connect(&server);
    assert!(exchange(&mut fresh, GET_ROOT).starts_with("HTTP/1.1 200"));
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn many_pipelining_connections_that_never_read_stay_within_the_served_connection_budget() {
    // 300 connections, each writing pipelined requests as fast as the server takes them and
    // reading nothing: each may cost at most the 48 KiB a served connection is budgeted.
    let server = Server::start(&[("WORKERS", "1")]);
    let pid = server.pid();
    let idle = rss_kib(pid);
    let batch = GET_ROOT.repeat(2000);
    let mut streams: Vec<TcpStream> = (0..300)
        .map(|_| {
            let s = connect(&server);
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let mut peak = idle;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for stream in &mut streams {
            let _ = stream.write(batch.as_bytes());
        }
        peak = peak.max(rss_kib(pid));
    }
    let budget = 300 * 48;
    eprintln!("300 pipelining connections: RSS idle {idle} KiB, peak {peak} KiB");
    assert!(
        peak <= idle + budget,
        "RSS grew from {idle} KiB to {peak} KiB, over 300 x 48 KiB"
    );
    drop(streams);
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Connections of the flood test: enough that what they allocate while in an exchange
/// (about 14.5 KiB each in the release build: actix-http's buffers) stands well above the
/// bound below.
const FLOOD_CONNECTIONS: usize = 3_000;
/// The flood must have cost at least this much, or the test could not tell whether memory
/// came back (3,000 connections in an exchange cost about 33 MiB).
const FLOOD_MIN_GROWTH_KIB: u64 = 24 * 1024;
/// What may stay above the idle RSS once every connection is closed: the e2e flood suite's
/// rule (`RSS_SLACK`). With glibc's malloc the whole peak stayed (its arenas keep the freed
/// buffers, fragmented: 3,000 connections left 32 MiB); jemalloc's background thread purges
/// them on its 10 s decay, leaving about 3 MiB 17 s later (see `FLOOD_RETURN_WITHIN`).
const FLOOD_RETAINED_KIB: u64 = 16 * 1024;
/// How long after the last connection closes RSS must be back within the bound. The release
/// binary, sampled every second after this test's flood: RSS flat at the peak for 9-10 s (the
/// freed pages wait out jemalloc's 10 s `dirty_decay_ms`), then back to idle + 3 MiB by 17 s;
/// the 15 s of the e2e flood suite's `SETTLE` failed here 2 runs of 4. 30 s leaves the decay
/// and the background thread's wake-up room on a busy machine; the loop stops as soon as RSS
/// is back, so a run usually takes about 15 s of it.
const FLOOD_RETURN_WITHIN: Duration = Duration::from_secs(30);

/// The server's RSS once warmed up by 20 requests and left alone for `settle`.
fn idle_rss_kib(server: &Server, settle: Duration) -> u64 {
    for _ in 0..20 {
        let mut warm = connect(server);
        assert!(exchange(&mut warm, GET_ROOT).starts_with("HTTP/1.1 200"));
    }
    std::thread::sleep(settle);
    rss_kib(server.pid())
}

/// Sends `request` once on each of `streams`: how many answers start with `status_line`.
fn answered(streams: &mut [TcpStream], request: &str, status_line: &str) -> usize {
    streams
        .iter_mut()
        .map(|stream| exchange(stream, request))
        .filter(|response| response.starts_with(status_line))
        .count()
}

/// Raises this process's soft open-files limit so it can hold `needed` sockets.
fn allow_open_files(needed: u64) {
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
fn memory_taken_by_a_connection_flood_is_returned_to_the_os_after_it_ends() {
    allow_open_files(FLOOD_CONNECTIONS as u64 + 256);
    // A limit that serves every connection of the flood (6,246 served at 512 MiB), so each
    // one holds actix-http's buffers rather than being shed.
    // The deployed binary: giving the memory back is jemalloc's doing (the test build has none).
    let server = Server::start_binary(&release_binary(), &[("MEMORY_LIMIT_BYTES", "536870912")]);
    let pid = server.pid();
    let idle = idle_rss_kib(&server, Duration::from_millis(500));

    // Each connection stays in its exchange (a chunked body begun, not ended), holding
    // actix-http's buffers (an idle keep-alive connection holds none, see the next test); the
    // progress deadline would close them 5 s after their answer, long after the peak is read.
    let mut streams: Vec<TcpStream> = (0..FLOOD_CONNECTIONS).map(|_| connect(&server)).collect();
    let answered = answered(&mut streams, UNFINISHED_BODY, "HTTP/1.1 405");
    let peak = rss_kib(pid);
    assert_eq!(
        answered, FLOOD_CONNECTIONS,
        "every flood connection is served"
    );
    assert!(
        peak >= idle + FLOOD_MIN_GROWTH_KIB,
        "{FLOOD_CONNECTIONS} open connections took RSS only from {idle} KiB to {peak} KiB"
    );

    drop(streams);
    let closed = Instant::now();
    let mut now = rss_kib(pid);
    while now > idle + FLOOD_RETAINED_KIB && closed.elapsed() < FLOOD_RETURN_WITHIN {
        std::thread::sleep(Duration::from_millis(250));
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
    let mut fresh = connect(&server);
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

#[test]
fn idle_keep_alive_connections_cost_no_more_than_a_waiting_place() {
    // Between requests a keep-alive connection waits outside actix-http, without its
    // buffers, except the worker's 256 warm ones (`admission::WARM_CONNECTIONS`): the
    // deployed binary holds 3,000 of them in about 3.3 KiB each (2.4 KiB given back, 14.5 KiB
    // warm; 12 KiB each when actix-http kept them all), under the 4 KiB budget of a waiting
    // place.
    allow_open_files(IDLE_CONNECTIONS as u64 + 256);
    let server = Server::start_binary(
        &release_binary(),
        &[("MEMORY_LIMIT_BYTES", "536870912"), ("WORKERS", "1")],
    );
    let pid = server.pid();
    let idle = idle_rss_kib(&server, Duration::from_millis(300));
    let mut streams: Vec<TcpStream> = (0..IDLE_CONNECTIONS).map(|_| connect(&server)).collect();
    assert_eq!(
        answered(&mut streams, GET_ROOT, "HTTP/1.1 200"),
        IDLE_CONNECTIONS,
        "every connection is served"
    );
    std::thread::sleep(Duration::from_millis(200));
    let held = rss_kib(pid);
    let each = (held.saturating_sub(idle)) * 1024 / IDLE_CONNECTIONS as u64;
    eprintln!(
        "{IDLE_CONNECTIONS} idle keep-alive connections: RSS idle {idle} KiB, held {held} KiB, \
         {each} bytes each"
    );
    assert!(
        each <= hello_k8s::admission::WAITING_CONNECTION_BYTES,
        "an idle keep-alive connection costs {each} bytes, over the {} bytes of a waiting place",
        hello_k8s::admission::WAITING_CONNECTION_BYTES
    );
    // They are still keep-alive connections: each answers a second request.
    assert_eq!(
        answered(&mut streams, GET_ROOT, "HTTP/1.1 200"),
        IDLE_CONNECTIONS,
        "every connection is served again"
    );
    drop(streams);
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

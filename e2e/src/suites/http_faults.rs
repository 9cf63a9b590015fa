//! The bad-HTTP battery: malformed request lines, oversized headers, huge bodies, clients that
//! never finish their headers, hundreds of idle connections, chunked bodies that go silent,
//! pipelined requests whose responses are never read. The service must answer 4xx or
//! close, keep answering probes and normal clients throughout (a monitor checks every 250 ms),
//! and keep its resident memory bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::{Ctx, get};
use crate::http::Req;
use crate::lock::lock;
use crate::manifests::Rendered;
use crate::pod::Pod;

/// RSS ceiling, below any sane container limit for this service.
const RSS_CEILING: u64 = 64 * 1024 * 1024;
const HUGE_BODY: usize = 50 * 1024 * 1024;

/// A chunked body that goes silent must be closed within this (head timeout plus margin).
const SILENT_BODY_DEADLINE: Duration = Duration::from_secs(10);
const PIPELINE_CONNECTIONS: usize = 32;
const PIPELINE_REQUESTS: usize = 50_000;

/// Writes `PIPELINE_REQUESTS` pipelined GETs on each of `PIPELINE_CONNECTIONS` connections
/// and never reads (bounded in time); returns (peak RSS, RSS after, bytes written).
async fn pipeline_unread(pod: &Pod) -> (u64, u64, u64) {
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let batch: Arc<Vec<u8>> = Arc::new(request.repeat(PIPELINE_REQUESTS));
    let written = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for _ in 0..PIPELINE_CONNECTIONS {
        if let Ok(s) = pod.connect().await {
            streams.push(s);
        }
    }
    let writers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let batch = Arc::clone(&batch);
            let written = Arc::clone(&written);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(15), async {
                    for chunk in batch.chunks(64 * 1024) {
                        if stream.write_all(chunk).await.is_err() {
                            return;
                        }
                        written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                    // Everything is sent: hold the connection, still not reading, a while.
                    tokio::time::sleep(Duration::from_secs(3)).await;
                })
                .await;
                drop(stream);
            })
        })
        .collect();
    let mut peak = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        peak = peak.max(pod.rss_bytes().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in writers {
        let _ = w.await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pod.rss_bytes().unwrap_or(0);
    (peak.max(after), after, written.load(Ordering::Relaxed))
}

#[derive(Debug)]
enum Answer {
    Status(u16),
    Closed,
    Silent,
}

impl Answer {
    fn acceptable(&self) -> bool {
        match self {
            Answer::Status(code) => (400..500).contains(code),
            Answer::Closed => true,
            Answer::Silent => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Answer::Status(c) => format!("answered {c}"),
            Answer::Closed => "closed the connection".into(),
            Answer::Silent => "neither answered nor closed".into(),
        }
    }
}

/// Reads until a status line, EOF or `within`.
async fn read_answer(stream: &mut tokio::net::TcpStream, within: Duration) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk)).await {
            Err(_) => return Answer::Silent,
            Ok(Err(_)) | Ok(Ok(0)) => {
                return status_of(&buf).map_or(Answer::Closed, Answer::Status);
            }
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(code) = status_of(&buf) {
                    return Answer::Status(code);
                }
            }
        }
    }
}

fn status_of(buf: &[u8]) -> Option<u16> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..line_end]).ok()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

async fn raw(pod: &Pod, bytes: &[u8]) -> Result<Answer> {
    let mut stream = pod.connect().await?;
    // A write may fail once the server has answered and closed: that is an answer too.
    let _ = stream.write_all(bytes).await;
    Ok(read_answer(&mut stream, Duration::from_secs(10)).await)
}

/// Streams a `HUGE_BODY` request body (bounded in time) while watching for an early answer.
async fn huge_body(pod: &Pod, path: &str, chunked: bool) -> Result<(Answer, usize)> {
    let mut stream = pod.connect().await?;
    let head = if chunked {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    } else {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {HUGE_BODY}\r\n\r\n")
    };
    let (mut rd, mut wr) = stream.split();
    let writer = async {
        let _ = wr.write_all(head.as_bytes()).await;
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0usize;
        while sent < HUGE_BODY {
            let ok = if chunked {
                let mut framed = format!("{:x}\r\n", block.len()).into_bytes();
                framed.extend_from_slice(&block);
                framed.extend_from_slice(b"\r\n");
                wr.write_all(&framed).await.is_ok()
            } else {
                wr.write_all(&block).await.is_ok()
            };
            if !ok {
                break;
            }
            sent += block.len();
        }
        if chunked && sent >= HUGE_BODY {
            let _ = wr.write_all(b"0\r\n\r\n").await;
        }
        sent
    };
    let reader = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return status_of(&buf).map_or(Answer::Closed, Answer::Status),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(code) = status_of(&buf) {
                        return Answer::Status(code);
                    }
                }
            }
        }
    };
    let bounded = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::pin!(writer);
        tokio::pin!(reader);
        let mut sent = None;
        loop {
            tokio::select! {
                answer = &mut reader => {
                    return (answer, sent.unwrap_or(0));
                }
                n = &mut writer, if sent.is_none() => {
                    sent = Some(n);
                }
            }
        }
    })
    .await;
    Ok(bounded.unwrap_or((Answer::Silent, HUGE_BODY)))
}

/// Probes and a normal client, every 250 ms, until stopped: (ok, failed, first failure).
struct Monitor {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    first_failure: Arc<std::sync::Mutex<Option<String>>>,
}

impl Monitor {
    fn start(pod: Arc<Pod>, stop: watch::Receiver<bool>) -> Monitor {
        let m = Monitor {
            ok: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
            first_failure: Arc::new(std::sync::Mutex::new(None)),
        };
        let (ok, failed, first) = (
            Arc::clone(&m.ok),
            Arc::clone(&m.failed),
            Arc::clone(&m.first_failure),
        );
        tokio::spawn(async move {
            while !*stop.borrow() {
                for (path, want) in [
                    (contract::paths::READINESS, None),
                    (contract::paths::LIVENESS, None),
                    (contract::paths::ROOT, Some(contract::GREETING)),
                ] {
                    let result = get(&pod, Req::get(path)).await;
                    let good = match &result {
                        Ok(r) => {
                            r.status.is_success() && want.is_none_or(|w| r.body == w.as_bytes())
                        }
                        Err(_) => false,
                    };
                    if good {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        let mut f = lock(&first);
                        if f.is_none() {
                            *f = Some(match result {
                                Ok(r) => format!("GET {path} -> {}", r.status),
                                Err(e) => format!("GET {path}: {e:#}"),
                            });
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        m
    }

    fn snapshot(&self) -> (u64, u64, Option<String>) {
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            lock(&self.first_failure).clone(),
        )
    }
}

pub async fn run(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    let suite = format!("http {}", rendered.env);
    let suite = suite.as_str();
    let r = &ctx.report;
    let template = ctx.template(rendered)?;
    let pod = ctx
        .start_pod(rendered, &template, "4e7d6c5b3", 2, |_| {})
        .await?;
    if let Err(e) = pod.wait_ready().await {
        r.error(suite, "pod Ready", &e);
        return Ok(());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let monitor = Monitor::start(Arc::clone(&pod), stop_rx);
    let rss_start = pod.rss_bytes().unwrap_or(0);
    let mut rss_max = rss_start;
    let (mut passed, mut failed) = (0u32, 0u32);
    let mut tally = |ok: bool| if ok { passed += 1 } else { failed += 1 };

    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    // actix accepts a request head up to 128 KiB; these are well past any server's limit.
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1024 * 1024)
    );
    let big_cookie = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..64)
            .map(|i| format!("Cookie: c{i}={}\r\n", "c".repeat(4096)))
            .collect::<String>()
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..2000)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let mut junk = vec![0u8; 1024 * 1024];
    getrandom::fill(&mut junk).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        ("method only", b"GET\r\n\r\n".to_vec()),
        ("NUL in the method", b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("control bytes in the path", b"GET /\x01\x7f HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("header without a colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
        ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec()),
        (
            "conflicting Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
        ),
        (
            "Content-Length with Transfer-Encoding (smuggling)",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        ),
        (
            "broken chunk size",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        ("HTTP/2 preface on HTTP/1.1", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        ("1 MiB of random bytes", junk),
        ("100 KiB request URI", long_uri.into_bytes()),
        ("1 MiB header", big_header.into_bytes()),
        ("64 cookie headers of 4 KiB", big_cookie.into_bytes()),
        ("2000 headers", many_headers.into_bytes()),
    ];
    for (name, bytes) in &cases {
        let answer = raw(&pod, bytes).await?;
        let ok = answer.acceptable();
        tally(ok);
        r.check(
            suite,
            &format!("{name} -> 4xx or close"),
            ok,
            answer.describe(),
        );
        rss_max = rss_max.max(pod.rss_bytes().unwrap_or(0));
    }

    for (path, chunked) in [
        (contract::paths::ROOT, false),
        (contract::paths::READINESS, false),
        ("/admin/readiness/off", false),
        (contract::paths::ROOT, true),
    ] {
        let (answer, sent) = huge_body(&pod, path, chunked).await?;
        let ok = answer.acceptable();
        tally(ok);
        r.check(
            suite,
            &format!(
                "50 MiB {} body to POST {path} -> 4xx or close",
                if chunked { "chunked" } else { "Content-Length" }
            ),
            ok,
            format!(
                "{} after {:.1} MiB sent",
                answer.describe(),
                sent as f64 / 1048576.0
            ),
        );
        rss_max = rss_max.max(pod.rss_bytes().unwrap_or(0));
    }

    // Slow clients: a header line started, then one byte every 500 ms, never finished.
    let slow = 20;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..slow {
        let mut stream = pod.connect().await?;
        tasks.push(tokio::spawn(async move {
            let _ = stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await;
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut buf = [0u8; 1024];
            let mut got = Vec::new();
            while Instant::now() < deadline {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return Some((Instant::now(), status_of(&got))),
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    },
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if stream.write_all(b"s").await.is_err() {
                            return Some((Instant::now(), status_of(&got)));
                        }
                    }
                }
            }
            None
        }));
    }
    let mut closed = Vec::new();
    for t in tasks {
        closed.push(t.await.ok().flatten());
    }
    let all_closed = closed.iter().all(Option::is_some);
    let slowest = closed
        .iter()
        .flatten()
        .map(|(at, _)| at.duration_since(started))
        .max()
        .unwrap_or_default();
    let statuses: std::collections::BTreeSet<String> = closed
        .iter()
        .flatten()
        .map(|(_, s)| s.map_or("closed".to_string(), |c| c.to_string()))
        .collect();
    tally(all_closed);
    r.check(
        suite,
        &format!("{slow} slow clients that never finish their headers are cut off"),
        all_closed,
        format!(
            "all closed within {:.1}s ({statuses:?})",
            slowest.as_secs_f64()
        ),
    );
    rss_max = rss_max.max(pod.rss_bytes().unwrap_or(0));

    // Many idle connections: the service must still answer probes and clients.
    let idle_count = 500;
    let mut idle = Vec::new();
    for _ in 0..idle_count {
        match pod.connect().await {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = get(&pod, Req::get(contract::paths::ROOT)).await;
    let probe = get(&pod, Req::get(contract::paths::READINESS)).await;
    let ok = idle.len() == idle_count
        && during
            .as_ref()
            .is_ok_and(|r| r.body == contract::GREETING.as_bytes())
        && probe.as_ref().is_ok_and(|r| r.status.is_success());
    tally(ok);
    r.check(
        suite,
        &format!("{idle_count} idle connections: probes and clients still served"),
        ok,
        format!(
            "{} opened; GET / {}; GET /readyz {}",
            idle.len(),
            during.map_or_else(|e| format!("{e:#}"), |r| r.status.to_string()),
            probe.map_or_else(|e| format!("{e:#}"), |r| r.status.to_string()),
        ),
    );
    rss_max = rss_max.max(pod.rss_bytes().unwrap_or(0));
    drop(idle);

    // Chunked bodies that go silent after one chunk must be closed within a deadline, even
    // with Connection: close (they bypass the head and Content-Length timeouts otherwise).
    let silent = 500;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..silent {
        let Ok(mut stream) = pod.connect().await else {
            break;
        };
        tasks.push(tokio::spawn(async move {
            let _ = stream
                .write_all(
                    b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                      Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                )
                .await;
            let mut buf = [0u8; 1024];
            loop {
                match tokio::time::timeout(SILENT_BODY_DEADLINE * 2, stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
                    Ok(Ok(_)) => {}
                    Err(_) => return None,
                }
            }
        }));
    }
    let opened = tasks.len();
    let mut closed_at = Vec::new();
    for t in tasks {
        closed_at.push(t.await.ok().flatten());
    }
    rss_max = rss_max.max(pod.rss_bytes().unwrap_or(0));
    let latest = closed_at
        .iter()
        .flatten()
        .map(|at| at.duration_since(started))
        .max()
        .unwrap_or_default();
    let still_open = closed_at.iter().filter(|c| c.is_none()).count();
    let ok = opened == silent && still_open == 0 && latest <= SILENT_BODY_DEADLINE;
    tally(ok);
    r.check(
        suite,
        &format!(
            "{silent} chunked bodies silent after one chunk are closed within {}s",
            SILENT_BODY_DEADLINE.as_secs()
        ),
        ok,
        format!(
            "{opened} opened; {} closed, the last after {:.1}s; {still_open} still open after \
             {}s",
            opened - still_open,
            latest.as_secs_f64(),
            (SILENT_BODY_DEADLINE * 2).as_secs()
        ),
    );

    // Pipelined requests whose responses are never read: the queued output must not push the
    // pod past its memory limit (the cgroup would OOM-kill it), and must be returned after.
    let (peak, after, sent) = pipeline_unread(&pod).await;
    rss_max = rss_max.max(peak);
    let limit = template.limits.memory_bytes.unwrap_or(u64::MAX);
    let ok = pod.oom_kills() == 0 && pod.fatal().is_none() && peak < limit;
    tally(ok);
    r.check(
        suite,
        &format!(
            "{PIPELINE_CONNECTIONS} connections x {PIPELINE_REQUESTS} pipelined requests never \
             read stay under the memory limit"
        ),
        ok,
        format!(
            "{:.1} MiB of requests written; VmRSS peak {:.1} MiB, {:.1} MiB 2s after the \
             clients closed (limit {:.0} MiB); oom_kill {}",
            sent as f64 / 1048576.0,
            peak as f64 / 1048576.0,
            after as f64 / 1048576.0,
            limit as f64 / 1048576.0,
            pod.oom_kills()
        ),
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    let (mon_ok, mon_failed, first) = monitor.snapshot();
    r.check(
        suite,
        "probes and normal clients served throughout the battery",
        mon_ok > 0 && mon_failed == 0,
        format!("{mon_ok} ok, {mon_failed} failed {first:?}"),
    );
    let rss_end = pod.rss_bytes().unwrap_or(0);
    rss_max = rss_max.max(rss_end);
    let ceiling = template
        .limits
        .memory_bytes
        .map_or(RSS_CEILING, |l| l.min(RSS_CEILING));
    let mib = |b: u64| b as f64 / 1048576.0;
    r.check(
        suite,
        "resident memory stays bounded",
        rss_start > 0 && rss_max < ceiling,
        format!(
            "VmRSS {:.1} MiB at start, {:.1} MiB max, {:.1} MiB at end (ceiling {:.0} MiB)",
            mib(rss_start),
            mib(rss_max),
            mib(rss_end),
            mib(ceiling)
        ),
    );
    r.count(
        format!("{suite}: bad-HTTP cases (passed/failed)"),
        format!("{passed}/{failed}"),
    );
    r.count(
        format!("{suite}: VmRSS start/max/end (MiB)"),
        format!(
            "{:.1}/{:.1}/{:.1}",
            mib(rss_start),
            mib(rss_max),
            mib(rss_end)
        ),
    );
    pod.kill().await;
    pod.sandbox.shutdown();
    Ok(())
}

//! The real `hello-k8s` binary, started with a chosen environment (nothing inherited), its
//! stdout and stderr captured line by line; raw connections and one HTTP client (ureq, the
//! client the service itself uses) to talk to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_hello-k8s");

/// How long a test waits for an event of the binary (readiness, a log line, its exit) before
/// it fails: bounded, so a hung process fails the test, and far above what a loaded machine
/// takes.
pub const EVENT_WAIT: Duration = Duration::from_secs(30);

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The value of header `name` ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The tests' HTTP client: no proxy, no redirects, every status an answer (not an error),
/// keep-alive connections, a bound on every call.
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    )
}

/// Sends `request` and reads the whole answer.
pub fn send(
    request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
) -> Result<Reply, ureq::Error> {
    let response = request.call()?;
    reply(response)
}

/// Sends `request` with an empty body (a POST) and reads the whole answer.
pub fn send_empty(
    request: ureq::RequestBuilder<ureq::typestate::WithBody>,
) -> Result<Reply, ureq::Error> {
    let response = request.send_empty()?;
    reply(response)
}

/// Reads a ureq response whole.
pub fn reply(response: ureq::http::Response<ureq::Body>) -> Result<Reply, ureq::Error> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().read_to_string()?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Sends one request and reads its response head and body (Content-Length framing).
pub fn exchange(stream: &mut TcpStream, request: &str) -> String {
    try_exchange(stream, request).unwrap()
}

/// [`exchange`] for a connection the server may close or reset: the write's or a read's
/// error instead of a panic (what was read before an end of stream is returned).
pub fn try_exchange(stream: &mut TcpStream, request: &str) -> std::io::Result<String> {
    stream.write_all(request.as_bytes())?;
    read_response(stream, request.starts_with("HEAD"))
}

/// Reads one response (Content-Length framing) from `stream`.
pub fn read_response(stream: &mut TcpStream, head_only: bool) -> std::io::Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if head_only || got.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8(got).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A connection to 127.0.0.1:`port` with a 10 s read timeout.
pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Writes `bytes` in one write and reads until the server closes: what came back (the
/// bytes, then `<reset>` if the close was a reset), and when.
pub fn write_and_read_to_close(port: u16, bytes: &[u8]) -> (String, Duration) {
    let mut stream = connect(port);
    let started = Instant::now();
    stream.write_all(bytes).unwrap();
    let (got, reset) = read_to_close(&mut stream);
    let mut text = String::from_utf8_lossy(&got).into_owned();
    if reset {
        text.push_str("<reset>");
    }
    (text, started.elapsed())
}

/// Reads until the server closes (end of stream, or a reset: then true).
pub fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, false),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(e) => panic!("reading to the close: {e} (after {} bytes)", got.len()),
        }
    }
}

/// The binary users deploy: `scripts/build-release.sh` (static, fat LTO, the default features,
/// jemalloc among them) prints its path, building it first when it is not current. `make test`
/// builds it beside the test build, which has no jemalloc (`--no-default-features`: its C build
/// was the longest step of a fresh clone's test build), so here the script finds it built.
pub fn release_binary() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/build-release.sh");
    let output = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("could not run {script}: {e}"));
    assert!(
        output.status.success(),
        "{script} failed ({}): the release binary could not be built",
        output.status
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// A loopback port nothing listens on, for a binary that must be told its port (it refuses
/// `PORT=0`). Taken below the kernel's ephemeral range (`ip_local_port_range`), never from it:
/// a port the kernel handed out for `bind(0)` and that was released again can be given to any
/// client socket of the tests running beside (their floods open thousands), and the server's
/// bind then fails with `Address already in use` (it did once in CI). Each call in this process
/// tries the next port of a walk that starts at an offset drawn from the process id, so two
/// calls never return the same port.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    assert!(
        ephemeral_low > LOWEST + 1_000,
        "the ephemeral port range starts at {ephemeral_low}: expected above {}, to leave the \
         tests ports no client socket can take",
        LOWEST + 1_000
    );
    let span = ephemeral_low - LOWEST;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let port = LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port from {LOWEST} to {ephemeral_low}");
}

/// True when something accepts connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// The server side of `clients` (connected to 127.0.0.1:`port`) in /proc/net/tcp: how many
/// the server has accepted (a connection still in the listen backlog has inode 0, an accepted
/// one the inode of the server's descriptor) and how many it has closed (gone from the table,
/// or in a closing state). Lets a test wait for the server's view instead of a sleep.
pub fn server_view(port: u16, clients: &[TcpStream]) -> (usize, usize) {
    let (accepted, closed, _) = server_side(port, clients);
    (accepted, closed)
}

/// True when the server has accepted every one of `clients` and read every byte they sent
/// (the receive queue of its side of each connection, in /proc/net/tcp, is empty).
pub fn server_has_read(port: u16, clients: &[TcpStream]) -> bool {
    let (accepted, _, unread) = server_side(port, clients);
    accepted == clients.len() && unread == 0
}

/// [`server_view`], and the bytes the server has not read yet from those still open.
fn server_side(port: u16, clients: &[TcpStream]) -> (usize, usize, u64) {
    let client_ports: Vec<u16> = clients
        .iter()
        .map(|stream| stream.local_addr().unwrap().port())
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port_of = |address: &str| {
        address
            .rsplit_once(':')
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
    };
    // The table is read in pieces while it changes: a connection may show twice.
    let mut seen = std::collections::HashSet::new();
    let (mut accepted, mut open, mut unread) = (0, 0, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 9
            && port_of(fields[1]) == Some(port)
            && port_of(fields[2]).is_some_and(|remote| client_ports.contains(&remote))
            && seen.insert(fields[2].to_owned())
        {
            // 01 ESTABLISHED, 08 CLOSE_WAIT (the client closed, the server not yet).
            if matches!(fields[3], "01" | "08") {
                open += 1;
                if fields[9] != "0" {
                    accepted += 1;
                }
                unread += fields[4]
                    .split_once(':')
                    .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())
                    .unwrap_or(0);
            }
        }
    }
    (accepted, clients.len().saturating_sub(open), unread)
}

/// Waits (bounded by [`EVENT_WAIT`]) until `done` holds: for conditions nothing announces,
/// such as the server's view of connections in the kernel's TCP table. The condition is
/// looked at again every millisecond (the pause only spares the cores the server needs).
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < EVENT_WAIT, "never happened: {what}");
        std::thread::park_timeout(Duration::from_millis(1));
    }
}

/// True when `/readyz` on 127.0.0.1:`port` answers 200 (every worker serving, the signal
/// handlers installed).
pub fn ready(port: u16) -> bool {
    send(agent().get(format!("http://127.0.0.1:{port}/readyz"))).is_ok_and(|r| r.status == 200)
}

/// `hello-k8s` with exactly `env` (plus PATH-less emptiness), run to completion.
pub fn run_to_completion(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The lines a process wrote so far, and whether its stdout ended; the reader thread notifies
/// every new line.
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    ended: bool,
}

pub struct Server {
    pub port: u16,
    pub probe_port: u16,
    child: Child,
    stdout: Arc<(Mutex<Lines>, Condvar)>,
    readers: Vec<JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the binary on a free loopback port with `env` and waits until it logs that
    /// every worker is serving (its readiness turns 200 then).
    pub fn start(env: &[(&str, &str)]) -> Server {
        Server::start_binary(BIN, env)
    }

    /// [`Server::start`] for the binary at `bin` ([`release_binary`], for instance).
    pub fn start_binary(bin: &str, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let probe_port = free_port();
        let mut child = Command::new(bin)
            .env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("PROBE_PORT", probe_port.to_string())
            .env("WORKERS", "2")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out_pipe = child.stdout.take().unwrap();
        let err_pipe = child.stderr.take().unwrap();
        let lines = Arc::clone(&stdout);
        let text = Arc::clone(&stderr);
        let readers = vec![
            std::thread::spawn(move || {
                let (lock, changed) = &*lines;
                for line in BufReader::new(out_pipe).lines() {
                    lock.lock().unwrap().lines.push(line.unwrap());
                    changed.notify_all();
                }
                lock.lock().unwrap().ended = true;
                changed.notify_all();
            }),
            std::thread::spawn(move || {
                let mut buf = String::new();
                BufReader::new(err_pipe).read_to_string(&mut buf).unwrap();
                text.lock().unwrap().push_str(&buf);
            }),
        ];
        let server = Server {
            port,
            probe_port,
            child,
            stdout,
            readers,
            stderr,
        };
        if !server.wait_for_line(|line| line.contains("ready: every worker is serving")) {
            panic!(
                "hello-k8s on port {port} never logged that it is ready; stderr: {}",
                server.stderr.lock().unwrap()
            );
        }
        server
    }

    /// Waits (bounded by [`EVENT_WAIT`]) for a stdout line that matches; false when stdout
    /// ends (the process exited) or the wait runs out first.
    pub fn wait_for_line(&self, matches: impl Fn(&str) -> bool) -> bool {
        self.count_lines_within(1, matches)
    }

    /// Waits (bounded by [`EVENT_WAIT`]) until `count` stdout lines match.
    pub fn count_lines_within(&self, count: usize, matches: impl Fn(&str) -> bool) -> bool {
        let (lock, changed) = &*self.stdout;
        let started = Instant::now();
        let mut lines = lock.lock().unwrap();
        loop {
            if lines.lines.iter().filter(|l| matches(l)).count() >= count {
                return true;
            }
            let left = EVENT_WAIT.saturating_sub(started.elapsed());
            if lines.ended || left.is_zero() {
                return false;
            }
            lines = changed.wait_timeout(lines, left).unwrap().0;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the process to exit (bounded: a hung process fails the test) and returns
    /// its status, every stdout line and the whole stderr.
    pub fn wait(mut self) -> (ExitStatus, Vec<String>, String) {
        {
            let (lock, changed) = &*self.stdout;
            let started = Instant::now();
            let mut lines = lock.lock().unwrap();
            while !lines.ended && started.elapsed() < EVENT_WAIT {
                let left = EVENT_WAIT.saturating_sub(started.elapsed());
                lines = changed.wait_timeout(lines, left).unwrap().0;
            }
        }
        // stdout is closed: the process exited (or closed it, which it never does).
        let status = self.child.wait().unwrap();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let stdout = std::mem::take(&mut self.stdout.0.lock().unwrap().lines);
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        (status, stdout, stderr)
    }

    /// SIGTERM, then [`Server::wait`].
    pub fn stop(self) -> (ExitStatus, Vec<String>, String) {
        self.signal(Signal::SIGTERM);
        self.wait()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only when a test failed half-way: never leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

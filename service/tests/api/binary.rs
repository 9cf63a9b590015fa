//! The real `hello-k8s` binary, started with a chosen environment (nothing inherited), its
//! stdout and stderr captured line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_hello-k8s");

/// Sends one request and reads its response head and body (Content-Length framing).
pub fn exchange(stream: &mut TcpStream, request: &str) -> String {
    try_exchange(stream, request).unwrap()
}

/// [`exchange`] for a connection the server may close or reset: the write's or a read's
/// error instead of a panic (what was read before an end of stream is returned).
pub fn try_exchange(stream: &mut TcpStream, request: &str) -> std::io::Result<String> {
    stream.write_all(request.as_bytes())?;
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
            let head_only = request.starts_with("HEAD");
            if head_only || got.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8(got).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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

/// How many of `clients` (connected to 127.0.0.1:`port`) the server has accepted: in
/// /proc/net/tcp a connection still in the listen backlog has inode 0, and an accepted one the
/// inode of the server's descriptor. Lets a test wait for the server's view instead of a sleep.
pub fn accepted(port: u16, clients: &[TcpStream]) -> usize {
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
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 9
                && port_of(fields[1]) == Some(port)
                && port_of(fields[2]).is_some_and(|remote| client_ports.contains(&remote))
                && fields[9] != "0"
        })
        .count()
}

/// True when `/readyz` on 127.0.0.1:`port` answers 200 (every worker serving, the signal
/// handlers installed).
pub fn ready(client: &reqwest::blocking::Client, port: u16) -> bool {
    client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .is_ok_and(|response| response.status() == 200)
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

pub struct Server {
    pub port: u16,
    pub probe_port: u16,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
}

pub fn blocking_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

impl Server {
    /// Starts the binary on a free loopback port with `env` and waits until `/readyz` is 200.
    pub fn start(env: &[(&str, &str)]) -> Server {
        Server::start_binary(BIN, env)
    }

    /// [`Server::start`] for the binary at `bin` ([`release_binary`], for instance).
    pub fn start_binary(bin: &str, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let port_text = port.to_string();
        let probe_port = free_port();
        let mut child = Command::new(bin)
            .env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", &port_text)
            .env("PROBE_PORT", probe_port.to_string())
            .env("WORKERS", "2")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out_pipe = child.stdout.take().unwrap();
        let err_pipe = child.stderr.take().unwrap();
        let lines = Arc::clone(&stdout);
        let text = Arc::clone(&stderr);
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out_pipe).lines() {
                    lines.lock().unwrap().push(line.unwrap());
                }
            }),
            std::thread::spawn(move || {
                let mut buf = String::new();
                BufReader::new(err_pipe).read_to_string(&mut buf).unwrap();
                text.lock().unwrap().push_str(&buf);
            }),
        ];
        let mut server = Server {
            port,
            probe_port,
            child,
            stdout,
            readers,
            stderr,
        };
        let client = blocking_client();
        for _ in 0..500 {
            if ready(&client, port) {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "hello-k8s exited early with {status}; stderr: {}",
                    server.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("hello-k8s on port {port} never became ready");
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
        let mut status = None;
        for _ in 0..3000 {
            if let Some(s) = self.child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let Some(status) = status else {
            let _ = self.child.kill();
            panic!("hello-k8s did not exit within 30 s");
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let stdout = std::mem::take(&mut *self.stdout.lock().unwrap());
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

//! Connections from inside the cluster's network namespaces: a node's (where the kubelet
//! probes from) or a pod's (prod's own image has no shell to run a client in).
//!
//! A network namespace is a property of each thread: [`spawn_in`] enters one on a thread of its
//! own (`setns(2)`), and every socket that thread opens belongs to it. The harness runs as
//! root (it started the cluster), which `setns` needs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::sched::CloneFlags;

/// Runs `f` on a new thread inside the network namespace `netns` (a file such as
/// `/run/netns/<node>` or `/proc/<pid>/ns/net`); no namespace: the harness's own.
pub fn spawn_in<T: Send + 'static>(
    netns: Option<PathBuf>,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<Result<T>> {
    std::thread::spawn(move || {
        if let Some(path) = netns {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening the network namespace {}", path.display()))?;
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("entering the network namespace {}", path.display()))?;
        }
        Ok(f())
    })
}

/// [`spawn_in`], waited for.
pub fn run_in<T: Send + 'static>(
    netns: Option<&Path>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    spawn_in(netns.map(Path::to_path_buf), f)
        .join()
        .map_err(|_| anyhow!("the thread in the network namespace panicked"))?
}

/// What a connection attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Connected, and the peer answered: its first line.
    Answered(String),
    /// No connection, or nothing came back: why.
    Refused(String),
}

impl Reach {
    pub fn answered(&self) -> bool {
        matches!(self, Reach::Answered(_))
    }
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reach::Answered(line) => write!(f, "answered ({line})"),
            Reach::Refused(why) => write!(f, "refused ({why})"),
        }
    }
}

/// Connects to `addr`, sends `GET path` and reads the first line of whatever comes back, all
/// within `timeout`: a TLS port answers an HTTP request too (with an error), which is enough to
/// tell that it was reached.
pub fn ask(addr: SocketAddr, path: &str, timeout: Duration) -> Reach {
    let started = Instant::now();
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Reach::Refused(format!("connect: {}", e.kind())),
    };
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(100));
    let _ = stream.set_read_timeout(Some(left));
    let _ = stream.set_write_timeout(Some(left));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return Reach::Refused(format!("write: {}", e.kind()));
    }
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => Reach::Refused("closed without an answer".into()),
        Ok(n) => Reach::Answered(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        Err(e) => Reach::Refused(format!("read: {}", e.kind())),
    }
}

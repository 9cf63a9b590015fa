//! Full-rate load through a NodePort while a suite changes the cluster: the project's load
//! client (`e2e-load`, e2e/load: 16 keep-alive connections, every failed request counted, none
//! retried), built optimised and started as a process of its own, as the flood suite starts
//! wrk; stopped with SIGINT, it prints its report.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use e2e_load::{Report as Tally, wall, wall_now};

/// A running load.
#[derive(Debug)]
pub struct Load {
    child: Child,
    lines: Receiver<String>,
}

impl Load {
    /// Starts `bin` against `addr` with its default 16 keep-alive connections and waits until
    /// it runs (its first answers are in).
    pub fn start(bin: &Path, addr: SocketAddr) -> Result<Load> {
        Load::start_with(bin, addr, &[])
    }

    /// [`Load::start`] with more arguments (`--fresh`, `--connections N`).
    pub fn start_with(bin: &Path, addr: SocketAddr, extra: &[&str]) -> Result<Load> {
        let mut child = Command::new(bin)
            .arg(addr.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} (make e2e-cluster builds it)", bin.display()))?;
        let stdout = child.stdout.take().context("the load's stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let load = Load { child, lines };
        match load.lines.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line == e2e_load::RUNNING => Ok(load),
            other => {
                let _ = load.stop();
                bail!("the load through {addr} did not get its first answers: {other:?}")
            }
        }
    }

    /// Stops the load (SIGINT: a request in flight gets its answer or its time-out first) and
    /// reads its report.
    pub fn stop(mut self) -> Result<Tally> {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, Signal::SIGINT).context("stopping the load")?;
        let report = loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(json) = line.strip_prefix(e2e_load::REPORT) {
                        break serde_json::from_str(json).context("parsing the load's report")?;
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(anyhow!("the load printed no report: {e}"));
                }
            }
        };
        self.child.wait()?;
        Ok(report)
    }
}

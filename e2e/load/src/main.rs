//! `e2e-load URL-ADDRESS`: full-rate load until SIGINT or SIGTERM, then one JSON report line
//! (the crate's documentation tells what counts as a failure).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use e2e_load::{FreshPorts, Mode, REPORT, RUNNING, Shared, connection};

/// Sends `GET /` to ADDRESS on keep-alive connections as fast as the answers come, until
/// SIGINT or SIGTERM; prints the report (requests, failures with their times and kinds)
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The address to load (a NodePort: NODE-IP:PORT)
    address: SocketAddr,
    /// Keep-alive connections
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Milliseconds a connect or a request may take before it has failed
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Every request on a connection of its own (Connection: close), as new clients come, one
    /// every --interval-ms on each connection, each from a source port of its own outside the
    /// kernel's ephemeral range
    #[arg(long)]
    fresh: bool,
    /// With --fresh: milliseconds between a connection's requests
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let shared = Arc::new(Shared::default());
    let timeout = Duration::from_millis(args.timeout_ms);
    let fresh = if args.fresh {
        Some(FreshPorts::of_this_machine()?)
    } else {
        None
    };
    rt.block_on(async {
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| {
                let mode = match fresh {
                    Some(ports) => Mode::Fresh(Duration::from_millis(args.interval_ms), ports),
                    None => Mode::FullRate,
                };
                tokio::spawn(connection(args.address, timeout, mode, shared.clone()))
            })
            .collect();
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut announced = false;
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = tokio::time::sleep(Duration::from_millis(20)), if !announced => {
                    if shared.answered_so_far() >= 100 {
                        println!("{RUNNING}");
                        announced = true;
                    }
                }
            }
        }
        shared.stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
        anyhow::Ok(())
    })?;
    let target = format!(
        "http://{}/{}",
        args.address,
        if args.fresh {
            format!(
                " (a new connection a request, every {} ms)",
                args.interval_ms
            )
        } else {
            String::new()
        }
    );
    let report = shared.report(target, args.connections);
    println!("{REPORT}{}", serde_json::to_string(&report)?);
    Ok(())
}

//! `e2e-load --fresh` against a server of the test's own on 127.0.0.1: every connection comes
//! from a source port of its own, none of them in the kernel's ephemeral range, where the ports
//! of every other connect of the machine come from.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

const CONNECTS: usize = 60;

/// The load this test started: killed by its PID if the test ends before stopping it.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn fresh_connections_come_from_ports_of_their_own_outside_the_ephemeral_range() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
    let addr = listener.local_addr().expect("the listener's address");
    let mut load = Started(
        Command::new(env!("CARGO_BIN_EXE_e2e-load"))
            .args(["--fresh", "--connections", "3", "--interval-ms", "5"])
            .args(["--timeout-ms", "1000"])
            .arg(addr.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting e2e-load"),
    );

    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        contract::GREETING.len(),
        contract::GREETING
    );
    let mut ports = Vec::new();
    for _ in 0..CONNECTS {
        let (mut stream, peer) = listener.accept().expect("a connection from the load");
        ports.push(peer.port());
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).expect("reading the request"),
                1,
                "the request's head ended early"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(head.contains("connection: close"), "{head}");
        stream.write_all(answer.as_bytes()).expect("answering");
    }
    // Stop the load this test started, by its PID, and read its report.
    let status = Command::new("kill")
        .args(["-TERM", &load.0.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success());
    let report = BufReader::new(load.0.stdout.take().expect("the load's output"))
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix(e2e_load::REPORT).map(str::to_string))
        .expect("the load's report");
    assert!(load.0.wait().expect("the load's exit").success());
    let report: e2e_load::Report = serde_json::from_str(&report).expect("the report's JSON");
    assert!(report.ok >= CONNECTS as u64 - 3, "answered: {}", report.ok);

    let (low, high) = e2e_load::ephemeral_range().expect("the kernel's ephemeral range");
    let inside: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| (low..=high).contains(p))
        .collect();
    assert!(
        inside.is_empty(),
        "ports inside the ephemeral range {low}-{high}: {inside:?}"
    );
    let distinct: BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "a port used twice: {ports:?}");
}

//! Signals other than SIGTERM and SIGINT: SIGHUP drains like SIGTERM; SIGUSR1 and SIGUSR2
//! are logged and ignored. None of them kills the process, even mid-drain.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::binary::{Server, blocking_client};

/// Polls `/readyz` until it answers 503 `draining`.
fn wait_for_draining(server: &Server) {
    let client = blocking_client();
    for _ in 0..200 {
        let res = client.get(server.url("/readyz")).send().unwrap();
        if res.status() == 503 {
            assert_eq!(res.text().unwrap(), "draining");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("/readyz never answered 503");
}

#[test]
fn sighup_drains_like_sigterm_then_exits_0() {
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "2")]);
    server.signal(Signal::SIGHUP);
    wait_for_draining(&server);
    let res = blocking_client().get(server.url("/")).send().unwrap();
    assert_eq!(res.status(), 200, "still serving during the drain");
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let log = stdout.join("\n");
    assert!(
        log.contains("signal=\"SIGHUP\"") || log.contains("signal=SIGHUP"),
        "{log}"
    );
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn sigusr1_and_sigusr2_are_logged_and_ignored_even_mid_drain() {
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "2")]);
    let client = blocking_client();
    server.signal(Signal::SIGUSR1);
    server.signal(Signal::SIGUSR2);
    std::thread::sleep(Duration::from_millis(200));
    let res = client.get(server.url("/readyz")).send().unwrap();
    assert_eq!(res.status(), 200, "SIGUSR1/2 must not start a drain");

    server.signal(Signal::SIGTERM);
    wait_for_draining(&server);
    server.signal(Signal::SIGUSR1);
    server.signal(Signal::SIGUSR2);
    std::thread::sleep(Duration::from_millis(200));
    let res = client.get(server.url("/")).send().unwrap();
    assert_eq!(res.status(), 200, "still serving mid-drain after SIGUSR1/2");
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let ignored = stdout
        .iter()
        .filter(|l| l.contains("signal ignored"))
        .count();
    assert_eq!(ignored, 4, "{stdout:#?}");
}

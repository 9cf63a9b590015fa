//! Signals other than SIGTERM and SIGINT: SIGHUP drains like SIGTERM; SIGUSR1 and SIGUSR2
//! are logged and ignored. None of them kills the process, even mid-drain.

use nix::sys::signal::Signal;

use crate::binary::{Server, agent, send};

#[test]
fn sighup_drains_like_sigterm_then_exits_0() {
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "2")]);
    server.signal(Signal::SIGHUP);
    assert!(server.wait_for_line(|l| l.contains("draining")));
    let res = send(agent().get(server.url("/readyz"))).unwrap();
    assert_eq!((res.status, res.body.as_str()), (503, "draining"));
    let res = send(agent().get(server.url("/"))).unwrap();
    assert_eq!(res.status, 200, "still serving during the drain");
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
    let client = agent();
    let ignored = |l: &str| l.contains("signal ignored");
    server.signal(Signal::SIGUSR1);
    server.signal(Signal::SIGUSR2);
    // Both handled (logged), and neither started a drain.
    assert!(server.count_lines_within(2, ignored));
    let res = send(client.get(server.url("/readyz"))).unwrap();
    assert_eq!(res.status, 200, "SIGUSR1/2 must not start a drain");

    server.signal(Signal::SIGTERM);
    assert!(server.wait_for_line(|l| l.contains("draining")));
    server.signal(Signal::SIGUSR1);
    server.signal(Signal::SIGUSR2);
    assert!(server.count_lines_within(4, ignored));
    let res = send(client.get(server.url("/"))).unwrap();
    assert_eq!(res.status, 200, "still serving mid-drain after SIGUSR1/2");
    let (status, stdout, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout.iter().filter(|l| ignored(l)).count(),
        4,
        "{stdout:#?}"
    );
}

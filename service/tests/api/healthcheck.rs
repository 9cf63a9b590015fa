use crate::binary::{Server, free_port, run_to_completion};

#[test]
fn healthcheck_exits_0_against_a_running_server() {
    let server = Server::start(&[("DRAIN_DELAY_SECONDS", "0")]);
    let port = server.port.to_string();
    let probe_port = server.probe_port.to_string();
    let (status, stdout, stderr) = run_to_completion(
        &["healthcheck"],
        &[
            ("HOST", "0.0.0.0"),
            ("PORT", port.as_str()),
            ("PROBE_PORT", probe_port.as_str()),
        ],
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stdout.is_empty() && stderr.is_empty(), "{stdout}{stderr}");
    let (status, _, _) = server.stop();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn healthcheck_exits_1_with_one_line_when_nothing_listens() {
    let port = free_port().to_string();
    let (status, _, stderr) = run_to_completion(
        &["healthcheck"],
        &[("HOST", "127.0.0.1"), ("PROBE_PORT", port.as_str())],
    );
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: healthcheck: "), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}/healthz")),
        "{stderr}"
    );
}

#[test]
fn help_and_version_describe_the_binary() {
    let (status, stdout, _) = run_to_completion(&["--help"], &[]);
    assert_eq!(status.code(), Some(0));
    assert!(stdout.contains("healthcheck"), "{stdout}");
    let (status, stdout, _) = run_to_completion(&["--version"], &[]);
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        stdout.trim(),
        format!("hello-k8s {}", env!("CARGO_PKG_VERSION"))
    );
}

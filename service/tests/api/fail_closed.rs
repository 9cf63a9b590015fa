//! A configuration the service cannot read stops the real binary: exit 2, one line on stderr
//! naming the key, nothing on stdout, nothing listening. Every key of the contract, with the
//! environments a shell cannot make (non-UTF-8 values, a key set twice), and every kind of
//! file `API_KEY_FILE` can name by mistake.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::{Duration, Instant};

use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, posix_spawn};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::binary::{BIN, free_port, listening, ready, wait_for};

/// How long a refusal may take; start-up never waits on a file.
const DEADLINE: Duration = Duration::from_secs(10);

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Starts the binary with exactly `env` as its environment block, entries in order and
/// duplicates kept (posix_spawn, no shell, no `std::process::Command`, which would merge
/// them), its stdout and stderr into the given files.
fn spawn_exact(
    env: &[(OsString, OsString)],
    stdout: &std::fs::File,
    stderr: &std::fs::File,
) -> Pid {
    let mut actions = PosixSpawnFileActions::init().unwrap();
    actions.add_dup2(stdout.as_raw_fd(), 1).unwrap();
    actions.add_dup2(stderr.as_raw_fd(), 2).unwrap();
    let attr = PosixSpawnAttr::init().unwrap();
    let path = CString::new(BIN).unwrap();
    let envp: Vec<CString> = env
        .iter()
        .map(|(name, value)| {
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            CString::new(entry).unwrap()
        })
        .collect();
    posix_spawn(
        path.as_c_str(),
        &actions,
        &attr,
        std::slice::from_ref(&path),
        &envp,
    )
    .unwrap()
}

/// [`spawn_exact`], then waits at most [`DEADLINE`] for the process to exit; a process still
/// running then is killed and the test fails.
fn spawn_raw(env: &[(OsString, OsString)]) -> Outcome {
    let stdout = tempfile::tempfile().unwrap();
    let stderr = tempfile::tempfile().unwrap();
    let started = Instant::now();
    let pid = spawn_exact(env, &stdout, &stderr);
    // The exit is waited for on a thread of its own, so the wait is bounded.
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = exited.send(waitpid(pid, None));
    });
    let code = match exit.recv_timeout(DEADLINE) {
        Ok(Ok(WaitStatus::Exited(_, code))) => Some(code),
        Ok(Ok(WaitStatus::Signaled(..))) => None,
        Ok(other) => panic!("hello-k8s ended unexpectedly: {other:?}"),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("hello-k8s still running after {DEADLINE:?} with {env:?}");
        }
    };
    assert!(started.elapsed() <= DEADLINE);
    let read = |file: std::fs::File| {
        use std::io::{Read, Seek};
        let mut file = file;
        file.rewind().unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    };
    Outcome {
        code,
        stdout: read(stdout),
        stderr: read(stderr),
    }
}

fn os(text: &str) -> OsString {
    OsString::from(text)
}

/// Loopback on a free port, then `extra` (which may set HOST or PORT again, on purpose).
fn environment(port: u16, extra: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    let mut env = Vec::new();
    for (name, value) in [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("PROBE_PORT", free_port().to_string()),
    ] {
        if !extra.iter().any(|(n, _)| n == OsStr::new(name)) {
            env.push((os(name), os(&value)));
        }
    }
    env.extend_from_slice(extra);
    env
}

/// Asserts the refusal: exit 2, exactly one stderr line about `key` containing `expected`,
/// empty stdout (no "listening" line was ever logged), and nothing on the port.
fn assert_refused(port: u16, extra: &[(OsString, OsString)], key: &str, expected: &str) {
    let outcome = spawn_raw(&environment(port, extra));
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(
        outcome.code,
        Some(2),
        "{extra:?}: stderr {:?}",
        outcome.stderr
    );
    assert_eq!(
        lines.len(),
        1,
        "{extra:?}: one line expected: {:?}",
        outcome.stderr
    );
    assert!(
        lines[0].starts_with(&format!("error: invalid configuration: {key} ")),
        "{extra:?}: {}",
        lines[0]
    );
    assert!(lines[0].contains(expected), "{extra:?}: {}", lines[0]);
    assert!(outcome.stdout.is_empty(), "{extra:?}: {}", outcome.stdout);
    assert!(!listening(port), "{extra:?}: something listens on {port}");
}

#[test]
fn a_non_utf8_value_of_any_contract_key_stops_the_binary_naming_that_key() {
    assert!(contract::KEYS.len() >= 10, "every declared key is tried");
    for key in contract::KEYS {
        let port = free_port();
        // A plausible value with one invalid byte: "production\xff", "5600\xff", ...
        let mut value = key
            .cluster_value(contract::Environment::Production)
            .or_else(|| key.default())
            .unwrap_or_else(|| "value".to_owned())
            .into_bytes();
        value.push(0xff);
        let extra = [(os(key.name), OsString::from_vec(value))];
        assert_refused(port, &extra, key.name, "is not valid UTF-8");
    }
}

#[test]
fn any_contract_key_set_twice_stops_the_binary_even_with_equal_values() {
    for key in contract::KEYS {
        let port = free_port();
        let value = key
            .cluster_value(contract::Environment::Development)
            .or_else(|| key.default())
            .unwrap_or_else(|| "value".to_owned());
        let extra = [(os(key.name), os(&value)), (os(key.name), os(&value))];
        assert_refused(port, &extra, key.name, "is set more than once");
    }
}

#[test]
fn the_raw_spawner_passes_duplicates_through_and_a_good_environment_starts() {
    // The harness proves itself: without the duplicate the same spawn serves, so the
    // refusals above come from the duplicate, not from the spawner.
    let port = free_port();
    let env = environment(
        port,
        &[
            (os("DRAIN_DELAY_SECONDS"), os("0")),
            (os("WORKERS"), os("1")),
        ],
    );
    let stdout = tempfile::tempfile().unwrap();
    let stderr = tempfile::tempfile().unwrap();
    let pid = spawn_exact(&env, &stdout, &stderr);
    // Ready, not just listening: the socket listens before the SIGTERM handler is installed,
    // and a SIGTERM in between kills the process by default (seen when tests run 4 at a time).
    wait_for(&format!("ready on {port}"), || ready(port));
    kill(pid, Signal::SIGTERM).unwrap();
    assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
}

/// `API_KEY_FILE` naming `path` is refused with `expected` in the line, quickly.
fn file_refused(path: &std::path::Path, expected: &str) {
    let port = free_port();
    let extra = [(os("API_KEY_FILE"), path.as_os_str().to_owned())];
    let started = Instant::now();
    assert_refused(port, &extra, "API_KEY_FILE", expected);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{path:?} took {:?}",
        started.elapsed()
    );
}

#[test]
fn api_key_file_on_dev_zero_is_refused_as_a_device_without_reading_it() {
    file_refused(
        std::path::Path::new("/dev/zero"),
        "which is a character device, not a regular file",
    );
}

#[test]
fn api_key_file_on_a_fifo_is_refused_without_blocking_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("API_KEY");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR).unwrap();
    file_refused(&fifo, "which is a FIFO, not a regular file");
}

#[test]
fn api_key_file_on_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    file_refused(dir.path(), "which is a directory, not a regular file");
}

#[test]
fn a_13_mb_api_key_file_is_refused_as_oversized() {
    let file = tempfile::NamedTempFile::new().unwrap();
    file.as_file().set_len(13 * 1024 * 1024).unwrap();
    file_refused(file.path(), "which holds more than 4096 bytes");
}

#[test]
fn a_missing_api_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    file_refused(&dir.path().join("absent"), "which cannot be read");
}

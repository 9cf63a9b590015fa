//! The harness's command line, on the real binary: without a cluster it stops at once, naming
//! what is missing and how to get it.

use std::process::Command;

#[test]
fn without_the_cluster_env_file_it_exits_2_naming_the_file_and_make_cluster() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let env = dir.path().join("no-such-env");
    let out = Command::new(env!("CARGO_BIN_EXE_e2e"))
        .arg("--cluster-env")
        .arg(&env)
        .output()
        .expect("running e2e");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("reading {}", env.display()))
            && stderr.contains("run make cluster first"),
        "stderr: {stderr}"
    );
}

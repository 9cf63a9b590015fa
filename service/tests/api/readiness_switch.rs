use hello_k8s::shutdown::Signal;

use crate::binary::send_empty;
use crate::helpers::{TEST_API_KEY, spawn_app, spawn_app_with};

const OFF: &str = "/admin/readiness/off";
const ON: &str = "/admin/readiness/on";

#[test]
fn the_switch_lives_under_the_contract_path() {
    assert!(OFF.starts_with(contract::paths::ADMIN_READINESS));
    assert_eq!(hello_k8s::routes::ADMIN_READINESS_OFF, OFF);
    assert_eq!(hello_k8s::routes::ADMIN_READINESS_ON, ON);
}

#[test]
fn switching_without_a_token_is_refused_with_401_and_a_bearer_challenge() {
    let app = spawn_app();
    for path in [OFF, ON] {
        let res = app.post_with_token(path, None);
        assert_eq!(res.status, 401, "{path}");
        assert!(
            res.header("www-authenticate").starts_with("Bearer"),
            "{path}"
        );
    }
    assert_eq!(app.get("/readyz").status, 200);
}

#[test]
fn switching_with_a_wrong_token_is_refused_with_401() {
    let app = spawn_app();
    for token in ["wrong", "test-key-4f1c9a2e7", "test-key-4f1c9a2e7bb"] {
        let res = app.post_with_token(OFF, Some(token));
        assert_eq!(res.status, 401, "{token}");
        assert!(res.headers.contains_key("www-authenticate"));
    }
    let res = send_empty(
        app.agent
            .post(app.url(OFF))
            .header("authorization", format!("Basic {TEST_API_KEY}")),
    )
    .unwrap();
    assert_eq!(res.status, 401);
    assert_eq!(app.get("/readyz").status, 200);
}

#[test]
fn the_right_token_switches_readiness_off_and_on_again() {
    let app = spawn_app();
    let res = app.post_with_token(OFF, Some(TEST_API_KEY));
    assert_eq!(res.status, 200);
    let res = app.get("/readyz");
    assert_eq!(res.status, 503);
    assert_eq!(res.body, "switched off");
    // Liveness and the greeting are unaffected: the pod is out of the Service, not dead.
    assert_eq!(app.get("/healthz").status, 200);
    assert_eq!(app.get("/").status, 200);

    let res = app.post_with_token(ON, Some(TEST_API_KEY));
    assert_eq!(res.status, 200);
    assert_eq!(app.get("/readyz").status, 200);
}

#[test]
fn without_a_configured_api_key_the_switch_is_disabled_with_403() {
    let app = spawn_app_with(&[("API_KEY", "<unset>")], |_| {});
    for token in [None, Some("anything"), Some("")] {
        let res = app.post_with_token(OFF, token);
        assert_eq!(res.status, 403, "{token:?}");
    }
    assert_eq!(app.get("/readyz").status, 200);
}

#[test]
fn switching_on_during_drain_is_refused_with_409() {
    let app = spawn_app_with(&[("DRAIN_DELAY_SECONDS", "30")], |_| {});
    assert!(app.shutdown.begin(Signal::Term));
    let res = app.post_with_token(ON, Some(TEST_API_KEY));
    assert_eq!(res.status, 409);
    let res = app.get("/readyz");
    assert_eq!(res.status, 503);
    assert_eq!(res.body, "draining");
    // A second signal ends the drain early; the server then stops.
    app.shutdown.begin(Signal::Term);
    app.stopped().unwrap();
}

#[test]
fn the_key_read_from_api_key_file_guards_the_switch_in_the_real_binary() {
    use crate::binary::{Server, agent, send};
    // As in the cluster: the Secret is a mounted file with a trailing newline.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "file-token-3c1d\n").unwrap();
    let server = Server::start(&[
        ("ENV", "production"),
        ("API_KEY_FILE", file.path().to_str().unwrap()),
        ("DRAIN_DELAY_SECONDS", "0"),
    ]);
    let client = agent();
    let off = server.url("/admin/readiness/off");
    let wrong = send_empty(
        client
            .post(&off)
            .header("authorization", "Bearer file-token-3c1"),
    )
    .unwrap();
    assert_eq!(wrong.status, 401);
    let right = send_empty(
        client
            .post(&off)
            .header("authorization", "Bearer file-token-3c1d"),
    )
    .unwrap();
    assert_eq!(right.status, 200);
    assert_eq!(send(client.get(server.url("/readyz"))).unwrap().status, 503);
    let (status, _, stderr) = server.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

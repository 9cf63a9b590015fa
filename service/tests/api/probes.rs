use crate::helpers::spawn_app;

#[test]
fn healthz_answers_ok_to_get_and_head() {
    let app = spawn_app();
    let res = app.get("/healthz");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "ok");
    let res = app.head("/healthz");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "");
}

#[test]
fn readyz_answers_ready_to_get_and_head_once_serving() {
    let app = spawn_app();
    let res = app.get("/readyz");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "ready");
    let res = app.head("/readyz");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "");
}

use crate::helpers::spawn_app_with;

#[test]
fn info_reports_version_environment_pod_and_readiness_as_json() {
    let app = spawn_app_with(
        &[
            ("ENV", "production"),
            ("POD_NAME", "hello-k8s-abc"),
            ("POD_NAMESPACE", "hello-prod"),
            ("NODE_NAME", "minikube"),
        ],
        |_| {},
    );
    let res = app.get("/info");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), "application/json");
    let info: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(info["name"], "hello-k8s");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["environment"], "production");
    assert_eq!(info["pod"], "hello-k8s-abc");
    assert_eq!(info["namespace"], "hello-prod");
    assert_eq!(info["node"], "minikube");
    assert!(info["uptime_seconds"].is_u64());
    assert_eq!(info["ready"], true);
    assert_eq!(info["draining"], false);
    let mut keys: Vec<_> = info.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "draining",
            "environment",
            "name",
            "namespace",
            "node",
            "pod",
            "ready",
            "uptime_seconds",
            "version"
        ]
    );
    let res = app.head("/info");
    assert_eq!(res.status, 200);
}

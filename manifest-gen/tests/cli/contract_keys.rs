//! The contract: the Deployment's container reads exactly the keys the service reads, each
//! from where the contract says.

use std::collections::BTreeSet;

use contract::{KEYS, Source};

use crate::helpers::*;

#[test]
fn deployment_env_names_are_the_contract_keys_with_their_sources() {
    if tool("kubectl").is_none() {
        return;
    }
    let (_tmp, root) = tree_copy();
    for env in ["dev", "prod"] {
        let out = render(&root, env, &[]).success().stdout;
        let objects = objects(&out);
        let container =
            &objects["Deployment/hello-k8s"]["spec"]["template"]["spec"]["containers"][0];
        let vars = container["env"].as_array().unwrap();
        let names: BTreeSet<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
        // Every key the service reads is a variable, except the Secret's: those are files.
        let declared: BTreeSet<&str> = KEYS
            .iter()
            .filter(|k| !matches!(k.source, Source::Secret))
            .map(|k| k.name)
            .collect();
        assert_eq!(names, declared, "{env}");
        let data = config_map_data(&objects);
        for key in KEYS {
            let from = vars
                .iter()
                .find(|v| v["name"] == key.name)
                .map_or(&serde_json::Value::Null, |var| &var["valueFrom"]);
            match key.source {
                Source::ConfigMap(_) => {
                    assert!(from["configMapKeyRef"]["key"] == key.name, "{}", key.name);
                    assert!(
                        data.contains_key(key.name),
                        "{env}: ConfigMap lacks {}",
                        key.name
                    );
                }
                Source::Secret => {
                    let pod = &objects["Deployment/hello-k8s"]["spec"]["template"]["spec"];
                    let mount = &container["volumeMounts"][0];
                    assert_eq!(mount["mountPath"], contract::SECRET_MOUNT_DIR);
                    assert_eq!(mount["readOnly"], true);
                    let volume = &pod["volumes"][0];
                    assert_eq!(volume["name"], mount["name"]);
                    let secret_name = volume["secret"]["secretName"].as_str().unwrap();
                    let secret = &objects[&format!("Secret/{secret_name}")];
                    assert!(secret["data"][key.name].is_string(), "{env}: {}", key.name);
                    assert_eq!(
                        data["API_KEY_FILE"],
                        format!("{}/{}", contract::SECRET_MOUNT_DIR, key.name)
                    );
                }
                Source::FieldRef(path) => assert_eq!(from["fieldRef"]["fieldPath"], path),
                Source::ResourceFieldRef(resource) => {
                    assert_eq!(from["resourceFieldRef"]["resource"], resource);
                    assert_eq!(
                        from["resourceFieldRef"]["containerName"],
                        contract::APP_NAME
                    );
                }
            }
        }
        // The port the probes and the Service use is the contract's.
        assert_eq!(container["ports"][0]["containerPort"], contract::HTTP_PORT);
        assert_eq!(container["ports"][0]["name"], contract::HTTP_PORT_NAME);
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"],
            contract::paths::READINESS
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"],
            contract::paths::LIVENESS
        );
    }
}

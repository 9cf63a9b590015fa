//! The checks, fourth stage of the pipeline: what a user's input (the declaration, the flags,
//! the operator's Secret file) can break, judged before any output. [`check`] is the only way
//! to a [`CheckedPlan`], and a [`CheckedPlan`] is what the writers take ([`crate::tree`],
//! [`crate::render`]), so nothing unchecked is output.
//!
//! What the objects stage builds by one function for every overlay (selectors, probe ports,
//! the securityContext, env references, the Secret volume) is not checked again here: kustomize
//! renders it, and the API server judges it under Pod Security `restricted` (the e2e admission
//! suite applies every overlay with a server-side dry run).
//!
//! An object check names the object and the field, e.g.
//! `Deployment hello-k8s: spec.template.spec.terminationGracePeriodSeconds is 30, expected >= 70 (...)`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use anyhow::{Result, bail};
use contract::{Environment, Source};
use k8s_openapi::api::core::v1::Container;

use crate::declaration::SecretSource;
use crate::objects::{CONFIG_MAP_NAME, GRACE_MARGIN_SECONDS, SECRET_NAME};
use crate::overrides::{MAX_DATA_BYTES, config_map_key, config_map_value};
use crate::plan::Plan;

/// A plan that passed every check: the only input of the writers.
#[derive(Debug, Clone)]
pub struct CheckedPlan {
    plan: Plan,
    warnings: Vec<String>,
}

impl CheckedPlan {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// One line each, for stderr: accepted overrides the user should know about.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// What [`check`] checks on the objects of a plan, one line each, for the docs' "Checks before
/// any output" (kept beside the checks it lists).
pub const OBJECT_CHECKS: &[&str] = &[
    "the Deployment's grace period covers `DRAIN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS` + 5 s",
    "the ConfigMap's `PORT` is the container port `http` and its `PROBE_PORT` the container port `probes`; its `HOST` is an any-address",
];

/// Checks `plan`: the replica count against the autoscaler, the `--set` keys against the
/// contract, the data sizes, the declared Secret pairs, the configuration against the service's
/// own rules, and the objects against the configuration.
pub fn check(plan: Plan) -> Result<CheckedPlan> {
    let overlay = &plan.overlay;
    if let (Some(n), Some(scaling)) = (plan.overrides.replicas, overlay.autoscaling()) {
        bail!(
            "--replicas {n}: the {overlay} overlay's HorizontalPodAutoscaler owns the replica count ({}-{}), so the overlay declares none (a deploy would reset the autoscaler's count); leave --replicas out",
            scaling.min_replicas,
            scaling.max_replicas
        );
    }
    let warnings = set_keys(&plan)?;
    let size: usize = plan.literals.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_DATA_BYTES {
        bail!(
            "ConfigMap {CONFIG_MAP_NAME} of {overlay}: its data is {size} bytes (keys and values), above the API server's limit of {MAX_DATA_BYTES} bytes (1 MiB)"
        );
    }
    if let SecretSource::Literals(pairs) = &overlay.secret {
        for (key, value) in pairs {
            config_map_value(value).map_err(|e| {
                anyhow::anyhow!(
                    "overlay {overlay}: secret.literals: the value of {key}: {e} (value not shown)"
                )
            })?;
        }
        let data = pairs
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        secret_data(
            &data,
            overlay.environment,
            &format!("overlay {overlay}: secret.literals"),
        )?;
    }
    service_config(&plan)?;
    objects(&plan).map_err(anyhow::Error::new)?;
    Ok(CheckedPlan { plan, warnings })
}

/// The `--set` keys against the contract: never a secret (in any spelling) or a key the
/// Secret or the downward API provides; a warning for a key the container does not read or
/// that looks like a secret.
fn set_keys(plan: &Plan) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for literal in &plan.overrides.set {
        let key = &literal.key;
        if let Some(secret) = crate::overrides::secret_key_named(key)
            && secret.name != key
        {
            bail!(
                "--set {key}=...: {key} is the secret {} in another spelling; secrets never go into the ConfigMap (value not shown)",
                secret.name
            );
        }
        warnings.extend(crate::overrides::literal_warning(key));
        match contract::key(key).map(|k| k.source) {
            Some(Source::Secret) => bail!(
                "--set {key}=...: {key} comes from the Secret {SECRET_NAME}, not the ConfigMap; {}",
                match &plan.overlay.secret {
                    SecretSource::EnvFile(file) =>
                        format!("put it in the overlay's {file} (value not shown)"),
                    SecretSource::Literals(_) =>
                        format!("the {} overlay uses a fixed fake key", plan.overlay),
                }
            ),
            Some(Source::FieldRef(path) | Source::ResourceFieldRef(path)) => {
                bail!("--set {key}: {key} is set by the downward API ({path}), not the ConfigMap")
            }
            _ => {}
        }
    }
    Ok(warnings)
}

/// The ConfigMap's values by the service's own configuration check, with the mounted Secret
/// stood in for (only at the path the Deployment mounts it, so an `API_KEY_FILE` pointing
/// elsewhere is refused); the error names the `--set` at fault when there is one.
fn service_config(plan: &Plan) -> Result<()> {
    let raw = contract::RawConfig::from_pairs(plan.literals.iter().cloned())
        .map_err(|err| anyhow::anyhow!("ConfigMap {CONFIG_MAP_NAME} of {}: {err}", plan.overlay))?;
    let read_mounted_secret = |path: &std::path::Path| {
        if path == std::path::Path::new(contract::API_KEY_FILE_PATH) {
            Ok("placeholder-for-validation".to_string())
        } else {
            Err(contract::files::FileProblem::Unreadable(
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "not the mounted Secret file {}",
                        contract::API_KEY_FILE_PATH
                    ),
                ),
            ))
        }
    };
    if let Err(err) = contract::Settings::from_raw_with(raw, read_mounted_secret) {
        match plan.overrides.set.iter().rev().find(|l| l.key == err.key) {
            Some(l) => bail!("--set {}={}: {err}", l.key, l.value),
            None => bail!("ConfigMap {CONFIG_MAP_NAME} of {}: {err}", plan.overlay),
        }
    }
    Ok(())
}

/// A Secret's data, from the declaration's literals or from kustomize's rendering of the
/// operator's secret.env, never showing a value: each key by the API server's rule (and the
/// YAML rule of [`config_map_key`]), the whole within the API server's 1 MiB, and the keys the
/// service reads (`API_KEY`) by the service's own rules in `environment`. `origin` names the
/// input in errors.
pub fn secret_data(
    data: &BTreeMap<String, Vec<u8>>,
    environment: Environment,
    origin: &str,
) -> Result<()> {
    for key in data.keys() {
        config_map_key(key).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_DATA_BYTES {
        bail!(
            "{origin} holds {size} bytes of keys and values, above the API server's limit of {MAX_DATA_BYTES} bytes (1 MiB)"
        );
    }
    let pairs = data
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()));
    let with_env = pairs.chain([("ENV".to_string(), environment.to_string())]);
    contract::RawConfig::from_pairs(with_env)
        .and_then(contract::Settings::from_raw)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{origin}: {e}"))
}

/// A problem in the plan's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectError {
    /// `Kind name`, e.g. `Deployment hello-k8s`.
    pub object: String,
    /// The field path, e.g. `spec.template.spec.terminationGracePeriodSeconds`.
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.object, self.field, self.problem)
    }
}

impl std::error::Error for ObjectError {}

fn fail(object: &str, field: impl Into<String>, problem: impl Into<String>) -> ObjectError {
    ObjectError {
        object: object.into(),
        field: field.into(),
        problem: problem.into(),
    }
}

/// [`OBJECT_CHECKS`]: the Deployment the plan runs against the ConfigMap's values.
fn objects(plan: &Plan) -> Result<(), ObjectError> {
    let deployment = crate::objects::base_deployment(&plan.base_image);
    let object = format!("Deployment {}", contract::APP_NAME);
    let config_map = format!("ConfigMap {CONFIG_MAP_NAME}");
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .ok_or_else(|| fail(&object, "spec.template.spec", "is missing"))?;
    let container = pod
        .containers
        .first()
        .ok_or_else(|| fail(&object, "spec.template.spec.containers", "is missing"))?;
    let data: BTreeMap<String, String> = plan.literals.iter().cloned().collect();

    // The values typed by the contract (absent keys at the service's defaults).
    let config = contract::RawConfig::from_pairs(data.clone())
        .and_then(|raw| contract::Config::from_raw(&raw))
        .map_err(|err| {
            fail(
                &config_map,
                format!("data.{}", err.key),
                format!("{} {}; expected {}", err.key, err.problem, err.expected),
            )
        })?;
    let drain = config.drain_delay_seconds.as_secs();
    let shutdown = config.shutdown_timeout_seconds.as_secs();
    // The kubelet's default when the field is absent.
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    let needed = i64::try_from(drain + shutdown).unwrap_or(i64::MAX) + GRACE_MARGIN_SECONDS;
    if grace < needed {
        return Err(fail(
            &object,
            "spec.template.spec.terminationGracePeriodSeconds",
            format!(
                "is {grace}, expected >= {needed} (DRAIN_DELAY_SECONDS {drain} + SHUTDOWN_TIMEOUT_SECONDS {shutdown} + {GRACE_MARGIN_SECONDS} s to exit); lower them with --set or raise the grace period"
            ),
        ));
    }

    // Each listener's port is the container port of its name: PORT the Service's, PROBE_PORT
    // (when the contract declares it) the probes'.
    let listeners = [
        ("PORT", contract::HTTP_PORT_NAME, "the Service"),
        (
            "PROBE_PORT",
            contract::PROBE_PORT_NAME,
            "the kubelet's probes",
        ),
    ];
    for (key, port_name, who) in listeners {
        if contract::key(key).is_none() {
            continue;
        }
        let value = data.get(key).map(String::as_str).unwrap_or_default();
        let declared = container_port(container, port_name);
        if declared.is_none() || value.parse::<i32>().ok() != declared {
            return Err(fail(
                &config_map,
                format!("data.{key}"),
                format!(
                    "is {value:?}, but container {} of {object} declares the port {port_name:?} as {declared:?}; {who} would miss the server",
                    container.name
                ),
            ));
        }
    }
    let host = data.get("HOST").map(String::as_str).unwrap_or_default();
    if !host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(fail(
            &config_map,
            "data.HOST",
            format!(
                "is {host:?}, expected 0.0.0.0 or :: (any other address hides the server from the kubelet's probes and the Service)"
            ),
        ));
    }
    Ok(())
}

fn container_port(container: &Container, name: &str) -> Option<i32> {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::declaration::Overlays;
    use crate::overrides::{Literal, Overrides};

    fn checked(env: &str, sets: &[&str]) -> Result<CheckedPlan> {
        let overlays = Overlays::builtin().unwrap();
        let overrides = Overrides {
            set: sets.iter().map(|s| s.parse::<Literal>().unwrap()).collect(),
            ..Overrides::default()
        };
        check(Plan::new(overlays.find(env).unwrap(), &overrides).unwrap())
    }

    fn error(env: &str, sets: &[&str]) -> String {
        format!("{:#}", checked(env, sets).unwrap_err())
    }

    #[test]
    fn committed_overlays_pass() {
        for overlay in &Overlays::builtin().unwrap().list {
            check(Plan::committed(overlay).unwrap()).unwrap();
        }
    }

    #[test]
    fn a_grace_period_shorter_than_drain_and_shutdown_is_refused() {
        let e = error("dev", &["SHUTDOWN_TIMEOUT_SECONDS=60"]);
        assert_eq!(
            e,
            "Deployment hello-k8s: spec.template.spec.terminationGracePeriodSeconds is 30, expected >= 70 (DRAIN_DELAY_SECONDS 5 + SHUTDOWN_TIMEOUT_SECONDS 60 + 5 s to exit); lower them with --set or raise the grace period"
        );
        checked("dev", &["SHUTDOWN_TIMEOUT_SECONDS=20"]).unwrap();
    }

    #[test]
    fn port_and_host_of_the_config_must_match_the_container() {
        assert!(
            error("dev", &["PORT=8080"])
                .starts_with("ConfigMap hello-k8s-config: data.PORT is \"8080\""),
            "{}",
            error("dev", &["PORT=8080"])
        );
        assert!(error("dev", &["PROBE_PORT=5602"]).contains("data.PROBE_PORT is \"5602\""));
        assert!(
            error("prod", &["HOST=127.0.0.1"])
                .contains("data.HOST is \"127.0.0.1\", expected 0.0.0.0 or ::")
        );
        checked("dev", &["HOST=::"]).unwrap();
    }

    #[test]
    fn values_the_service_refuses_name_the_set_at_fault() {
        let e = error("dev", &["DEBUG=maybe"]);
        assert!(e.starts_with("--set DEBUG=maybe: ") && e.contains("expected true or false"));
        let e = error("dev", &["API_KEY_FILE=/tmp/key"]);
        assert!(e.starts_with("--set API_KEY_FILE=/tmp/key: "), "{e}");
    }

    #[test]
    fn replicas_of_an_autoscaled_overlay_are_refused() {
        let overlays = Overlays::builtin().unwrap();
        let overrides = Overrides {
            replicas: Some(5),
            ..Overrides::default()
        };
        let e = check(Plan::new(overlays.find("prod").unwrap(), &overrides).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HorizontalPodAutoscaler owns the replica count (3-10)"),
            "{e}"
        );
    }

    #[test]
    fn declared_secret_literals_are_checked_by_their_readers_rules_without_the_value() {
        let base = "- name: a\n  environment: development\n  replicas: 1\n  node_port: 31000\n  secret: {literals: {API_KEY: k}}\n";
        for (pairs, says) in [
            (
                "{API_KEY: two words}",
                "overlay a: secret.literals: invalid configuration: API_KEY is set to a value that is not valid (value not shown)",
            ),
            ("{API_KEY: k, a b: v}", "the key \"a b\""),
            ("{API_KEY: k, ../../etc/x: v}", "the API server's rule"),
            ("{API_KEY: k, 'true': v}", "json: unsupported type"),
            ("{API_KEY: \"k\\x7F\"}", "U+007F"),
            ("{API_KEY: qzq qzq}", "API_KEY"),
        ] {
            let text = base.replace("{API_KEY: k}", pairs);
            let overlays = Overlays::parse(&text, None).unwrap();
            let e = format!(
                "{:#}",
                check(Plan::committed(&overlays.list[0]).unwrap()).unwrap_err()
            );
            assert!(
                e.starts_with("overlay a: secret.literals") && e.contains(says),
                "{e}"
            );
            assert!(!e.contains("two words") && !e.contains("qzq"), "{e}");
        }
    }

    #[test]
    fn secret_data_is_checked_without_showing_a_value() {
        let data = |pairs: &[(&str, &[u8])]| -> BTreeMap<String, Vec<u8>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect()
        };
        secret_data(&data(&[("API_KEY", b"tok")]), Environment::Production, "x").unwrap();
        for (pairs, says) in [
            (
                data(&[("API_KEY", b"tok"), ("a b", b"v")]),
                "the API server's rule",
            ),
            (data(&[("API_KEY", b"qzq qzq")]), "API_KEY"),
            (data(&[("API_KEY", b"qzq\x7fqzq")]), "API_KEY"),
            (data(&[("OTHER", b"qzq")]), "API_KEY"),
        ] {
            let e = format!(
                "{:#}",
                secret_data(&pairs, Environment::Production, "the Secret file f").unwrap_err()
            );
            assert!(
                e.starts_with("the Secret file f: ") && e.contains(says),
                "{e}"
            );
            assert!(!e.contains("qzq"), "{e}");
        }
    }
}

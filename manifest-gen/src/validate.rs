//! Consistency checks on an overlay's final objects, run before anything is output.
//!
//! Each check names the object and the field at fault, e.g.
//! `Deployment hello-k8s: spec.template.spec.terminationGracePeriodSeconds is 10, expected >= 20 (...)`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use contract::{KEYS, Source};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::builders::GRACE_MARGIN_SECONDS;
use crate::overlay::Overlay;
use crate::overrides::Overrides;
use crate::plan::Plan;
use crate::render::{Rendered, placeholder_secret_data, render};

impl Plan {
    /// Applies and checks overrides ([`Plan::checked`]), then validates the objects the plan
    /// renders to, with a placeholder for the Secret's values: the only public way to a plan.
    pub fn new(overlay: &Overlay, overrides: &Overrides) -> anyhow::Result<Self> {
        let plan = Plan::checked(overlay, overrides)?;
        validate(&render(&plan, &placeholder_secret_data(&plan)))?;
        Ok(plan)
    }
}

/// A problem in the generated objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// `Kind name`, e.g. `Deployment hello-k8s`.
    pub object: String,
    /// The field path, e.g. `spec.selector.matchLabels`.
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.object, self.field, self.problem)
    }
}

impl std::error::Error for ValidationError {}

type Check = Result<(), ValidationError>;

fn fail(object: &str, field: impl Into<String>, problem: impl Into<String>) -> Check {
    Err(ValidationError {
        object: object.into(),
        field: field.into(),
        problem: problem.into(),
    })
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("<unnamed>")
}

/// What [`validate`] checks on the final objects, one line each, for the docs' "Checks before
/// any output" (kept beside the checks it lists).
pub const OBJECT_CHECKS: &[&str] = &[
    "the selectors (Deployment, Service, PodDisruptionBudget, NetworkPolicy, topology spread) match the pod template labels, and none is empty",
    "the Service's `targetPort` names a container port, and its `nodePort` lies in 30000-32767",
    "every probe uses the container port `probes` (the contract's probe listener), and that port exists",
    "the ConfigMap's `PORT` is the container port `http` and its `PROBE_PORT` the container port `probes`; its `HOST` is an any-address",
    "every env reference points at a generated ConfigMap or Secret key; the container's env names are exactly the contract's keys, each from where the contract says",
    "the Secret is mounted read-only at the contract's directory, holds `API_KEY`, and the ConfigMap's `API_KEY_FILE` names that file",
    "the grace period covers `DRAIN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS` + 5 s",
    "the Namespace enforces, warns and audits the restricted Pod Security Standard, and the pod template meets it (non-root, no privilege escalation, capabilities drop ALL and add none but NET_BIND_SERVICE, seccomp RuntimeDefault or Localhost, no host namespaces or ports, allowed volume types only)",
    "a Deployment scaled by a HorizontalPodAutoscaler declares no `replicas`, and the HPA targets that Deployment",
];

/// Runs every check; the first failure is returned.
pub fn validate(r: &Rendered) -> Check {
    let deployment = format!("Deployment {}", name_of(&r.deployment.metadata));
    let d_spec = r
        .deployment
        .spec
        .as_ref()
        .ok_or_else(|| missing(&deployment, "spec"))?;
    let template_labels = d_spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let pod = d_spec
        .template
        .spec
        .as_ref()
        .ok_or_else(|| missing(&deployment, "spec.template.spec"))?;
    let container = pod
        .containers
        .first()
        .ok_or_else(|| missing(&deployment, "spec.template.spec.containers"))?;

    selector_matches(
        &deployment,
        "spec.selector",
        &d_spec.selector,
        &template_labels,
    )?;
    for (i, constraint) in pod.topology_spread_constraints.iter().flatten().enumerate() {
        if let Some(selector) = &constraint.label_selector {
            selector_matches(
                &deployment,
                &format!("spec.template.spec.topologySpreadConstraints[{i}].labelSelector"),
                selector,
                &template_labels,
            )?;
        }
    }

    let service = format!("Service {}", name_of(&r.service.metadata));
    let s_spec = r
        .service
        .spec
        .as_ref()
        .ok_or_else(|| missing(&service, "spec"))?;
    labels_match(
        &service,
        "spec.selector",
        s_spec.selector.as_ref(),
        &template_labels,
    )?;
    for (i, port) in s_spec.ports.iter().flatten().enumerate() {
        let target = port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port));
        if !container_has_port(container, &target) {
            return fail(
                &service,
                format!("spec.ports[{i}].targetPort"),
                format!(
                    "is {}, which names no port of container {} in {deployment}",
                    show(&target),
                    container.name
                ),
            );
        }
        if let Some(node_port) = port.node_port
            && !(30000..=32767).contains(&node_port)
        {
            return fail(
                &service,
                format!("spec.ports[{i}].nodePort"),
                format!("is {node_port}, expected 30000-32767 (the default NodePort range)"),
            );
        }
    }

    probes_use_container_ports(&deployment, container)?;
    pod_security_restricted(r, &deployment, pod)?;
    env_matches_generated_keys(r, &deployment, container)?;
    secret_is_mounted(r, &deployment, pod, container)?;
    grace_period_covers_shutdown(r, &deployment, pod)?;
    config_matches_container(r, &deployment, container)?;

    if let Some(pdb) = &r.pod_disruption_budget {
        let object = format!("PodDisruptionBudget {}", name_of(&pdb.metadata));
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .ok_or_else(|| missing(&object, "spec.selector"))?;
        selector_matches(&object, "spec.selector", selector, &template_labels)?;
    }
    if let Some(policy) = &r.network_policy {
        let object = format!("NetworkPolicy {}", name_of(&policy.metadata));
        let selector = policy
            .spec
            .as_ref()
            .and_then(|s| s.pod_selector.as_ref())
            .ok_or_else(|| missing(&object, "spec.podSelector"))?;
        selector_matches(&object, "spec.podSelector", selector, &template_labels)?;
    }
    if let Some(hpa) = &r.horizontal_pod_autoscaler {
        let object = format!("HorizontalPodAutoscaler {}", name_of(&hpa.metadata));
        let spec = hpa.spec.as_ref().ok_or_else(|| missing(&object, "spec"))?;
        let target = &spec.scale_target_ref;
        if target.kind != "Deployment" || Some(&target.name) != r.deployment.metadata.name.as_ref()
        {
            return fail(
                &object,
                "spec.scaleTargetRef",
                format!("is {} {}, expected {deployment}", target.kind, target.name),
            );
        }
        if let Some(replicas) = d_spec.replicas {
            return fail(
                &deployment,
                "spec.replicas",
                format!(
                    "is {replicas}, expected no count: {object} owns it ({}-{}), and a deploy that declares one resets the autoscaler's",
                    spec.min_replicas.unwrap_or(1),
                    spec.max_replicas
                ),
            );
        }
    }
    Ok(())
}

fn missing(object: &str, field: &str) -> ValidationError {
    ValidationError {
        object: object.into(),
        field: field.into(),
        problem: "is missing".into(),
    }
}

fn show(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => format!("{s:?}"),
    }
}

fn show_labels(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn selector_matches(
    object: &str,
    field: &str,
    selector: &LabelSelector,
    template: &BTreeMap<String, String>,
) -> Check {
    if selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        return fail(
            object,
            format!("{field}.matchExpressions"),
            "is set; only matchLabels is generated and checked",
        );
    }
    labels_match(
        object,
        &format!("{field}.matchLabels"),
        selector.match_labels.as_ref(),
        template,
    )
}

fn labels_match(
    object: &str,
    field: &str,
    selector: Option<&BTreeMap<String, String>>,
    template: &BTreeMap<String, String>,
) -> Check {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        // An empty selector selects every pod in the namespace: never what we mean.
        return fail(object, field, "is empty; it would select every pod");
    };
    for (key, value) in selector {
        if template.get(key) != Some(value) {
            return fail(
                object,
                field,
                format!(
                    "has {key}={value}, which the pod template labels {} do not carry",
                    show_labels(template)
                ),
            );
        }
    }
    Ok(())
}

fn container_has_port(container: &Container, port: &IntOrString) -> bool {
    container.ports.iter().flatten().any(|p| match port {
        IntOrString::Int(n) => p.container_port == *n,
        IntOrString::String(name) => p.name.as_deref() == Some(name),
    })
}

fn probes_use_container_ports(deployment: &str, container: &Container) -> Check {
    let probes: [(&str, &Option<Probe>); 3] = [
        ("startupProbe", &container.startup_probe),
        ("readinessProbe", &container.readiness_probe),
        ("livenessProbe", &container.liveness_probe),
    ];
    for (name, probe) in probes {
        let field = format!("spec.template.spec.containers[0].{name}");
        let Some(probe) = probe else {
            return fail(deployment, field, "is missing");
        };
        let Some(get) = &probe.http_get else {
            return fail(deployment, format!("{field}.httpGet"), "is missing");
        };
        if !container_has_port(container, &get.port) {
            return fail(
                deployment,
                format!("{field}.httpGet.port"),
                format!(
                    "is {}, which names no port of container {}",
                    show(&get.port),
                    container.name
                ),
            );
        }
        if get.port != IntOrString::String(contract::PROBE_PORT_NAME.into()) {
            return fail(
                deployment,
                format!("{field}.httpGet.port"),
                format!(
                    "is {}, expected the probe port {:?} (the contract's probe listener, which a flood of the HTTP port cannot delay)",
                    show(&get.port),
                    contract::PROBE_PORT_NAME
                ),
            );
        }
    }
    Ok(())
}

/// The capabilities the restricted Pod Security Standard lets a container add back.
const RESTRICTED_ADDABLE_CAPABILITIES: &[&str] = &["NET_BIND_SERVICE"];
/// The volume types the restricted Pod Security Standard allows.
const RESTRICTED_VOLUME_TYPES: &str =
    "configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret";

/// The Namespace enforces the restricted Pod Security Standard, and the pod template meets
/// it (what Pod Security Admission checks, so the pods are admitted with no warning):
/// non-root, no privilege escalation, all capabilities dropped (none added but
/// NET_BIND_SERVICE), seccomp RuntimeDefault or Localhost, not privileged, no host
/// namespaces, ports or paths, and only the allowed volume types.
fn pod_security_restricted(r: &Rendered, deployment: &str, pod: &PodSpec) -> Check {
    let namespace = format!("Namespace {}", name_of(&r.namespace.metadata));
    let labels = r.namespace.metadata.labels.clone().unwrap_or_default();
    for mode in crate::builders::POD_SECURITY_MODES {
        let key = format!("pod-security.kubernetes.io/{mode}");
        if labels.get(&key).map(String::as_str) != Some(crate::builders::POD_SECURITY_LEVEL) {
            return fail(
                &namespace,
                format!("metadata.labels[{key}]"),
                format!(
                    "is {:?}, expected {:?}",
                    labels.get(&key),
                    crate::builders::POD_SECURITY_LEVEL
                ),
            );
        }
    }
    let pod_context = pod.security_context.as_ref();
    let spec = "spec.template.spec";
    if pod.host_network == Some(true) || pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        return fail(
            deployment,
            spec,
            "shares a host namespace (hostNetwork, hostPID or hostIPC), which the restricted Pod Security Standard forbids",
        );
    }
    for (i, volume) in pod.volumes.iter().flatten().enumerate() {
        let allowed = volume.config_map.is_some()
            || volume.csi.is_some()
            || volume.downward_api.is_some()
            || volume.empty_dir.is_some()
            || volume.ephemeral.is_some()
            || volume.persistent_volume_claim.is_some()
            || volume.projected.is_some()
            || volume.secret.is_some();
        if !allowed {
            return fail(
                deployment,
                format!("{spec}.volumes[{i}]"),
                format!(
                    "({}) is of a type the restricted Pod Security Standard forbids; expected one of {RESTRICTED_VOLUME_TYPES}",
                    volume.name
                ),
            );
        }
    }
    let pod_non_root = pod_context.and_then(|c| c.run_as_non_root);
    let pod_seccomp = pod_context
        .and_then(|c| c.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    if pod_context.and_then(|c| c.run_as_user) == Some(0) {
        return fail(
            deployment,
            format!("{spec}.securityContext.runAsUser"),
            "is 0, which the restricted Pod Security Standard forbids",
        );
    }
    for (i, c) in pod.containers.iter().enumerate() {
        let field = format!("{spec}.containers[{i}].securityContext");
        let context = c.security_context.as_ref();
        let problem = if context.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            Some(("allowPrivilegeEscalation", "expected false".to_string()))
        } else if context.and_then(|s| s.privileged) == Some(true) {
            Some(("privileged", "expected false".to_string()))
        } else if context.and_then(|s| s.run_as_non_root).or(pod_non_root) != Some(true) {
            Some((
                "runAsNonRoot",
                "expected true here or in the pod's securityContext".to_string(),
            ))
        } else if context.and_then(|s| s.run_as_user) == Some(0) {
            Some(("runAsUser", "is 0, expected a non-root user".to_string()))
        } else if !context
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.drop.as_ref())
            .is_some_and(|drop| drop.iter().any(|d| d == "ALL"))
        {
            Some(("capabilities.drop", "expected it to hold ALL".to_string()))
        } else if let Some(added) = context
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.as_ref())
            .and_then(|add| {
                add.iter()
                    .find(|a| !RESTRICTED_ADDABLE_CAPABILITIES.contains(&a.as_str()))
            })
        {
            Some((
                "capabilities.add",
                format!("holds {added}, expected none but {RESTRICTED_ADDABLE_CAPABILITIES:?}"),
            ))
        } else if !matches!(
            context
                .and_then(|s| s.seccomp_profile.as_ref())
                .map(|p| p.type_.as_str())
                .or(pod_seccomp),
            Some("RuntimeDefault" | "Localhost")
        ) {
            Some((
                "seccompProfile.type",
                "expected RuntimeDefault or Localhost here or in the pod's securityContext"
                    .to_string(),
            ))
        } else {
            None
        };
        if let Some((name, expected)) = problem {
            return fail(
                deployment,
                format!("{field}.{name}"),
                format!(
                    "{expected} (the restricted Pod Security Standard, which {namespace} enforces)"
                ),
            );
        }
        for (j, port) in c.ports.iter().flatten().enumerate() {
            if port.host_port.is_some_and(|p| p != 0) {
                return fail(
                    deployment,
                    format!("{spec}.containers[{i}].ports[{j}].hostPort"),
                    "is set, which the restricted Pod Security Standard forbids",
                );
            }
        }
    }
    Ok(())
}

fn env_matches_generated_keys(r: &Rendered, deployment: &str, container: &Container) -> Check {
    let config_name = name_of(&r.config_map.metadata);
    let config_keys: BTreeSet<&str> = r
        .config_map
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    let secret_name = name_of(&r.secret.metadata);
    let secret_keys: BTreeSet<&str> = r
        .secret
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    let env = container.env.as_deref().unwrap_or_default();
    for (i, var) in env.iter().enumerate() {
        let field = format!("spec.template.spec.containers[0].env[{i}]");
        let Some(source) = &var.value_from else {
            continue;
        };
        if let Some(r) = &source.config_map_key_ref
            && (r.name != config_name || !config_keys.contains(r.key.as_str()))
        {
            return fail(
                deployment,
                format!("{field}.valueFrom.configMapKeyRef"),
                format!(
                    "({}) refers to key {} of ConfigMap {}, but the generated ConfigMap {config_name} has keys {config_keys:?}",
                    var.name, r.key, r.name
                ),
            );
        }
        if let Some(r) = &source.secret_key_ref
            && (r.name != secret_name || !secret_keys.contains(r.key.as_str()))
        {
            return fail(
                deployment,
                format!("{field}.valueFrom.secretKeyRef"),
                format!(
                    "({}) refers to key {} of Secret {}, but the generated Secret {secret_name} has keys {secret_keys:?}",
                    var.name, r.key, r.name
                ),
            );
        }
    }
    // The contract: exactly the keys the service reads as variables, each from where the
    // contract says; the Secret's keys arrive as files, never as variables.
    let declared: BTreeSet<&str> = KEYS
        .iter()
        .filter(|k| !matches!(k.source, Source::Secret))
        .map(|k| k.name)
        .collect();
    let present: BTreeSet<&str> = env.iter().map(|v| v.name.as_str()).collect();
    if declared != present {
        return fail(
            deployment,
            "spec.template.spec.containers[0].env",
            format!(
                "names {present:?}, expected the contract's keys {declared:?} (Secret keys are mounted files, not variables)"
            ),
        );
    }
    for key in KEYS {
        let source = env
            .iter()
            .find(|v| v.name == key.name)
            .and_then(|v| v.value_from.as_ref());
        let ok = match key.source {
            Source::ConfigMap(_) => source.is_some_and(|s| s.config_map_key_ref.is_some()),
            Source::Secret => true,
            Source::ResourceFieldRef(resource) => source
                .and_then(|s| s.resource_field_ref.as_ref())
                .is_some_and(|f| f.resource == resource),
            Source::FieldRef(path) => source
                .and_then(|s| s.field_ref.as_ref())
                .is_some_and(|f| f.field_path == path),
        };
        if !ok {
            return fail(
                deployment,
                "spec.template.spec.containers[0].env",
                format!(
                    "takes {} from elsewhere than the contract's {:?}",
                    key.name, key.source
                ),
            );
        }
    }
    Ok(())
}

/// The Secret reaches the container as files under the contract's mount directory, from a
/// volume of the generated Secret, and the ConfigMap points `API_KEY_FILE` at one of them.
fn secret_is_mounted(
    r: &Rendered,
    deployment: &str,
    pod: &PodSpec,
    container: &Container,
) -> Check {
    let secret_name = name_of(&r.secret.metadata);
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == contract::SECRET_MOUNT_DIR);
    let Some(mount) = mount else {
        return fail(
            deployment,
            "spec.template.spec.containers[0].volumeMounts",
            format!(
                "has no mount at {}, expected the Secret {secret_name} there",
                contract::SECRET_MOUNT_DIR
            ),
        );
    };
    if mount.read_only != Some(true) {
        return fail(
            deployment,
            format!(
                "spec.template.spec.containers[0].volumeMounts[{}].readOnly",
                mount.name
            ),
            "is not true, expected the Secret mounted read-only",
        );
    }
    let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
    let mounted = volume
        .and_then(|v| v.secret.as_ref())
        .and_then(|s| s.secret_name.as_deref());
    if mounted != Some(secret_name) {
        return fail(
            deployment,
            format!(
                "spec.template.spec.volumes[{}].secret.secretName",
                mount.name
            ),
            format!("is {mounted:?}, expected the generated Secret {secret_name:?}"),
        );
    }
    let secret_keys: BTreeSet<&str> = r
        .secret
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    if !secret_keys.contains(contract::API_KEY_SECRET_KEY) {
        return fail(
            &format!("Secret {secret_name}"),
            format!("data.{}", contract::API_KEY_SECRET_KEY),
            "is missing; the service reads it from the mounted Secret",
        );
    }
    let file = r
        .config_map
        .data
        .as_ref()
        .and_then(|d| d.get("API_KEY_FILE"));
    if file.map(String::as_str) != Some(contract::API_KEY_FILE_PATH) {
        return fail(
            &format!("ConfigMap {}", name_of(&r.config_map.metadata)),
            "data.API_KEY_FILE",
            format!(
                "is {file:?}, expected {:?} (key {} of the Secret mounted at {})",
                contract::API_KEY_FILE_PATH,
                contract::API_KEY_SECRET_KEY,
                contract::SECRET_MOUNT_DIR
            ),
        );
    }
    Ok(())
}

fn grace_period_covers_shutdown(r: &Rendered, deployment: &str, pod: &PodSpec) -> Check {
    // The ConfigMap's values, typed by the contract (absent keys at the service's defaults);
    // a value the service would refuse is an error here too, never a default.
    let data = r.config_map.data.clone().unwrap_or_default();
    let config = contract::RawConfig::from_pairs(data)
        .and_then(|raw| contract::Config::from_raw(&raw))
        .map_err(|err| ValidationError {
            object: format!("ConfigMap {}", name_of(&r.config_map.metadata)),
            field: format!("data.{}", err.key),
            problem: format!("{} {}; expected {}", err.key, err.problem, err.expected),
        })?;
    let drain = config.drain_delay_seconds.as_secs();
    let shutdown = config.shutdown_timeout_seconds.as_secs();
    // The kubelet's default when the field is absent.
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    let needed = i64::try_from(drain + shutdown).unwrap_or(i64::MAX) + GRACE_MARGIN_SECONDS;
    if grace < needed {
        return fail(
            deployment,
            "spec.template.spec.terminationGracePeriodSeconds",
            format!(
                "is {grace}, expected >= {needed} (DRAIN_DELAY_SECONDS {drain} + SHUTDOWN_TIMEOUT_SECONDS {shutdown} + {GRACE_MARGIN_SECONDS} s to exit); lower them with --set or raise the grace period"
            ),
        );
    }
    Ok(())
}

fn config_matches_container(r: &Rendered, deployment: &str, container: &Container) -> Check {
    let object = format!("ConfigMap {}", name_of(&r.config_map.metadata));
    let data = r.config_map.data.clone().unwrap_or_default();
    for key in KEYS
        .iter()
        .filter(|k| matches!(k.source, Source::ConfigMap(_)))
        .map(|k| k.name)
    {
        if !data.contains_key(key) {
            return fail(
                &object,
                format!("data.{key}"),
                "is missing; the Deployment refers to it",
            );
        }
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
        let declared = container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(port_name))
            .map(|p| p.container_port);
        if value.parse::<i32>().ok() != declared || declared.is_none() {
            return fail(
                &object,
                format!("data.{key}"),
                format!(
                    "is {value:?}, but container {} of {deployment} declares the port {port_name:?} as {declared:?}; {who} would miss the server",
                    container.name
                ),
            );
        }
    }
    let host = data.get("HOST").map(String::as_str).unwrap_or_default();
    if !host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return fail(
            &object,
            "data.HOST",
            format!(
                "is {host:?}, expected 0.0.0.0 or :: (any other address hides the server from the kubelet's probes and the Service)"
            ),
        );
    }
    Ok(())
}

/// The env names of the Deployment's container (for the contract test).
pub fn container_env_names(deployment: &Deployment) -> BTreeSet<String> {
    deployment
        .spec
        .iter()
        .filter_map(|s| s.template.spec.as_ref())
        .flat_map(|p| p.containers.iter())
        .flat_map(|c| c.env.iter().flatten())
        .map(|v| v.name.clone())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::overlay::Overlays;
    use crate::plan::Plan;
    use crate::render::{placeholder_secret_data, render};
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

    fn rendered(name: &str) -> Rendered {
        let overlays = Overlays::builtin().unwrap();
        let plan = Plan::committed(overlays.find(name).unwrap()).unwrap();
        render(&plan, &placeholder_secret_data(&plan))
    }

    /// Sets one key of the rendered ConfigMap, as an edited manifest would.
    fn set_config(r: &mut Rendered, key: &str, value: &str) {
        r.config_map
            .data
            .as_mut()
            .unwrap()
            .insert(key.into(), value.into());
    }

    fn pod(r: &mut Rendered) -> &mut PodSpec {
        r.deployment
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
    }

    fn container(r: &mut Rendered) -> &mut Container {
        &mut pod(r).containers[0]
    }

    fn error(r: &Rendered) -> String {
        validate(r).unwrap_err().to_string()
    }

    #[test]
    fn committed_overlays_are_valid() {
        for name in Overlays::builtin().unwrap().names() {
            validate(&rendered(name)).unwrap();
        }
    }

    #[test]
    fn selector_that_the_template_lacks_is_refused() {
        let mut r = rendered("dev");
        r.deployment
            .spec
            .as_mut()
            .unwrap()
            .selector
            .match_labels
            .as_mut()
            .unwrap()
            .insert("tier".into(), "web".into());
        let e = error(&r);
        assert!(
            e.starts_with("Deployment hello-k8s: spec.selector.matchLabels has tier=web"),
            "{e}"
        );
    }

    #[test]
    fn service_selector_mismatch_is_refused() {
        let mut r = rendered("dev");
        r.service.spec.as_mut().unwrap().selector =
            Some([("app.kubernetes.io/name".to_string(), "other".to_string())].into());
        assert!(
            error(&r)
                .starts_with("Service hello-k8s: spec.selector has app.kubernetes.io/name=other")
        );
    }

    #[test]
    fn target_port_must_name_a_container_port() {
        let mut r = rendered("dev");
        r.service.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port =
            Some(IntOrString::String("web".into()));
        let e = error(&r);
        assert!(
            e.starts_with(
                "Service hello-k8s: spec.ports[0].targetPort is \"web\", which names no port"
            ),
            "{e}"
        );
    }

    #[test]
    fn node_port_outside_the_range_is_refused() {
        let mut r = rendered("prod");
        r.service.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(5600);
        assert!(error(&r).contains("spec.ports[0].nodePort is 5600, expected 30000-32767"));
    }

    #[test]
    fn probe_port_must_exist() {
        let mut r = rendered("dev");
        container(&mut r)
            .readiness_probe
            .as_mut()
            .unwrap()
            .http_get
            .as_mut()
            .unwrap()
            .port = IntOrString::Int(8080);
        let e = error(&r);
        assert!(
            e.starts_with("Deployment hello-k8s: spec.template.spec.containers[0].readinessProbe.httpGet.port is 8080"),
            "{e}"
        );
    }

    #[test]
    fn probes_must_use_the_contracts_probe_port() {
        let mut r = rendered("dev");
        container(&mut r)
            .liveness_probe
            .as_mut()
            .unwrap()
            .http_get
            .as_mut()
            .unwrap()
            .port = IntOrString::String("http".into());
        let e = error(&r);
        assert!(
            e.contains(
                "livenessProbe.httpGet.port is \"http\", expected the probe port \"probes\""
            ),
            "{e}"
        );
    }

    #[test]
    fn pods_must_meet_the_restricted_pod_security_standard_the_namespace_enforces() {
        let r = rendered("prod");
        let labels = r.namespace.metadata.labels.clone().unwrap();
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(
            labels["pod-security.kubernetes.io/enforce-version"],
            "v1.34"
        );
        let mut r = rendered("dev");
        r.namespace.metadata.labels.as_mut().unwrap().insert(
            "pod-security.kubernetes.io/enforce".into(),
            "baseline".into(),
        );
        assert!(
            error(&r).contains(
                "metadata.labels[pod-security.kubernetes.io/enforce] is Some(\"baseline\")"
            )
        );
        let mut r = rendered("dev");
        container(&mut r)
            .security_context
            .as_mut()
            .unwrap()
            .allow_privilege_escalation = None;
        assert!(error(&r).contains("securityContext.allowPrivilegeEscalation expected false"));
        let mut r = rendered("dev");
        container(&mut r)
            .security_context
            .as_mut()
            .unwrap()
            .capabilities
            .as_mut()
            .unwrap()
            .add = Some(vec!["NET_ADMIN".into()]);
        assert!(error(&r).contains("capabilities.add holds NET_ADMIN"));
        let mut r = rendered("dev");
        container(&mut r)
            .security_context
            .as_mut()
            .unwrap()
            .seccomp_profile = None;
        pod(&mut r)
            .security_context
            .as_mut()
            .unwrap()
            .seccomp_profile = None;
        assert!(error(&r).contains("seccompProfile.type expected RuntimeDefault"));
        let mut r = rendered("dev");
        pod(&mut r).host_network = Some(true);
        assert!(error(&r).contains("shares a host namespace"));
    }

    #[test]
    fn env_reference_to_a_missing_key_is_refused() {
        let mut r = rendered("dev");
        r.config_map.data.as_mut().unwrap().remove("WORKERS");
        let e = error(&r);
        assert!(
            e.contains("valueFrom.configMapKeyRef (WORKERS) refers to key WORKERS"),
            "{e}"
        );
    }

    #[test]
    fn secret_volume_of_another_secret_is_refused() {
        let mut r = rendered("prod");
        r.secret.metadata.name = Some("other".into());
        let e = error(&r);
        assert!(
            e.contains(
                "spec.template.spec.volumes[secrets].secret.secretName is Some(\"hello-k8s-secret-"
            ),
            "{e}"
        );
    }

    #[test]
    fn secret_not_mounted_at_the_contract_path_is_refused() {
        let mut r = rendered("dev");
        container(&mut r).volume_mounts.as_mut().unwrap()[0].mount_path = "/secrets".into();
        let e = error(&r);
        assert!(
            e.contains("has no mount at /var/run/secrets/hello-k8s"),
            "{e}"
        );
    }

    #[test]
    fn secret_as_environment_variable_is_refused() {
        let mut r = rendered("dev");
        let secret = r.secret.metadata.name.clone().unwrap();
        container(&mut r).env.as_mut().unwrap().push(EnvVar {
            name: "API_KEY".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret,
                    key: "API_KEY".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        });
        let e = error(&r);
        assert!(
            e.contains("Secret keys are mounted files, not variables"),
            "{e}"
        );
    }

    #[test]
    fn api_key_file_pointing_elsewhere_is_refused() {
        let mut r = rendered("dev");
        set_config(&mut r, "API_KEY_FILE", "/tmp/key");
        let e = error(&r);
        assert!(e.contains("data.API_KEY_FILE is Some(\"/tmp/key\")"), "{e}");
    }

    #[test]
    fn env_names_must_be_the_contract_keys() {
        let mut r = rendered("dev");
        container(&mut r).env.as_mut().unwrap().pop();
        assert!(error(&r).contains("spec.template.spec.containers[0].env names"));
    }

    #[test]
    fn grace_period_shorter_than_drain_and_shutdown_is_refused() {
        let mut r = rendered("dev");
        pod(&mut r).termination_grace_period_seconds = Some(10);
        let e = error(&r);
        assert!(
            e.starts_with("Deployment hello-k8s: spec.template.spec.terminationGracePeriodSeconds is 10, expected >= 20 (DRAIN_DELAY_SECONDS 5 + SHUTDOWN_TIMEOUT_SECONDS 10 + 5 s to exit)"),
            "{e}"
        );
    }

    #[test]
    fn port_and_host_of_the_config_must_match_the_container() {
        let mut r = rendered("dev");
        set_config(&mut r, "PORT", "8080");
        assert!(error(&r).contains("data.PORT is \"8080\""));
        let mut r = rendered("dev");
        set_config(&mut r, "PROBE_PORT", "5600");
        assert!(
            error(&r).contains("data.PROBE_PORT is \"5600\""),
            "{}",
            error(&r)
        );
        let mut r = rendered("dev");
        set_config(&mut r, "HOST", "127.0.0.1");
        assert!(error(&r).contains("data.HOST is \"127.0.0.1\", expected 0.0.0.0 or ::"));
    }

    #[test]
    fn production_selectors_and_autoscaler_bounds_are_checked() {
        let mut r = rendered("prod");
        r.pod_disruption_budget
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .selector = Some(LabelSelector::default());
        assert!(
            error(&r)
                .starts_with("PodDisruptionBudget hello-k8s: spec.selector.matchLabels is empty")
        );

        let mut r = rendered("prod");
        r.network_policy
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .pod_selector = Some(LabelSelector {
            match_labels: Some(
                [(
                    "app.kubernetes.io/instance".to_string(),
                    "hello-k8s-dev".to_string(),
                )]
                .into(),
            ),
            match_expressions: None,
        });
        assert!(error(&r).starts_with("NetworkPolicy hello-k8s: spec.podSelector.matchLabels has app.kubernetes.io/instance=hello-k8s-dev"));

        let mut r = rendered("prod");
        r.deployment.spec.as_mut().unwrap().replicas = Some(11);
        assert!(
            error(&r).starts_with("Deployment hello-k8s: spec.replicas is 11, expected no count: HorizontalPodAutoscaler hello-k8s owns it (3-10)")
        );

        let mut r = rendered("prod");
        pod(&mut r).topology_spread_constraints.as_mut().unwrap()[0].label_selector =
            Some(LabelSelector {
                match_labels: Some([("x".to_string(), "y".to_string())].into()),
                match_expressions: None,
            });
        assert!(
            error(&r).contains("topologySpreadConstraints[0].labelSelector.matchLabels has x=y")
        );
    }
}

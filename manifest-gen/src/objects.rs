//! The objects, third stage of the pipeline: the base objects (Namespace, Deployment,
//! Service, NetworkPolicy) and the hardening component's (PodDisruptionBudget,
//! HorizontalPodAutoscaler, topology spread) as k8s-openapi types, and the kustomizations that
//! tie them to a [`Plan`]'s overlay. kustomize renders the final objects from them; nothing here
//! imitates it.
//!
//! Every name, port, path and environment key comes from the `contract` crate. The network
//! rules are [`base_network_policy`]; the pod's own scheduling is in
//! [`base_deployment`]'s `PodSpec`; what hardening adds is [`pod_disruption_budget`],
//! [`horizontal_pod_autoscaler`], [`topology_spread`] and [`node_loss_tolerations`].

use std::collections::BTreeMap;

use contract::{
    APP_NAME, HTTP_PORT_NAME, KEYS, PART_OF, PROBE_PORT_NAME, RUN_AS_UID, Source, paths, resources,
};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapKeySelector, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, Namespace, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceFieldSelector, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, Toleration, TopologySpreadConstraint,
    Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::declaration::{Autoscaling, Component, SecretSource};
use crate::kustomization::{
    Generator, Image, JsonPatchOp, Kustomization, Label, Patch, Replica, Target, literal,
};
use crate::overrides::ImageRef;
use crate::plan::Plan;

/// Name of the generated ConfigMap before kustomize appends its hash.
pub const CONFIG_MAP_NAME: &str = "hello-k8s-config";
/// Name of the generated Secret before kustomize appends its hash.
pub const SECRET_NAME: &str = "hello-k8s-secret";
pub const SECRET_TYPE: &str = "Opaque";
/// The pod volume that carries the Secret's keys as files (see [`contract::SECRET_MOUNT_DIR`]).
pub const SECRET_VOLUME: &str = "secrets";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_VERSION: &str = "app.kubernetes.io/version";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT: &str = "server";
pub const MANAGED_BY: &str = "manifest-gen";

k8s_openapi::k8s_if_1_34! {
    /// The Kubernetes minor the objects are typed against (k8s-openapi's `v1_34` feature, the
    /// cluster's minor): the Pod Security Standards version the Namespaces pin. A new feature
    /// leaves this undefined, so the pin cannot silently lag behind the types.
    pub const KUBERNETES_MINOR: &str = "v1.34";
}

/// The Pod Security Admission level of every generated Namespace, for each of its modes.
pub const POD_SECURITY_LEVEL: &str = "restricted";
/// The Pod Security Admission modes: refuse (enforce), warn the client, and audit-log.
pub const POD_SECURITY_MODES: [&str; 3] = ["enforce", "warn", "audit"];

/// The Pod Security Admission labels of a generated Namespace: every mode at
/// [`POD_SECURITY_LEVEL`], pinned to [`KUBERNETES_MINOR`] so a cluster upgrade does not
/// tighten the policy under running workloads without a regeneration.
pub fn pod_security_labels() -> BTreeMap<String, String> {
    POD_SECURITY_MODES
        .iter()
        .flat_map(|mode| {
            [
                (
                    format!("pod-security.kubernetes.io/{mode}"),
                    POD_SECURITY_LEVEL.to_string(),
                ),
                (
                    format!("pod-security.kubernetes.io/{mode}-version"),
                    KUBERNETES_MINOR.to_string(),
                ),
            ]
        })
        .collect()
}

/// Seconds the kubelet waits after the drain and the shutdown timeout before it kills: the
/// process still has to flush logs and exit.
pub const GRACE_MARGIN_SECONDS: i64 = 5;
/// Covers the defaults (5 s drain + 10 s shutdown + margin) with room for overrides.
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Labels of the base objects: those that do not depend on the overlay.
pub fn base_labels() -> BTreeMap<String, String> {
    labels(&[
        (LABEL_NAME, APP_NAME),
        (LABEL_COMPONENT, COMPONENT),
        (LABEL_PART_OF, PART_OF),
        (LABEL_MANAGED_BY, MANAGED_BY),
    ])
}

fn http_port() -> IntOrString {
    IntOrString::String(HTTP_PORT_NAME.into())
}

/// The probes' port, by name: the probe listener the contract declares, which a flood of the
/// HTTP port cannot delay.
fn probe_port() -> IntOrString {
    IntOrString::String(PROBE_PORT_NAME.into())
}

fn http_probe(path: &str, period: i32, timeout: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: probe_port(),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        success_threshold: Some(1),
        ..Probe::default()
    }
}

/// The container's environment: one entry per contract key, from where the contract says.
/// The Secret's keys are not environment variables: they arrive as files in the Secret volume
/// (see [`secret_volume`]), and the ConfigMap's `API_KEY_FILE` names the file.
pub fn container_env() -> Vec<EnvVar> {
    KEYS.iter()
        .filter_map(|key| {
            let source = match key.source {
                Source::ConfigMap(_) => EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: CONFIG_MAP_NAME.into(),
                        key: key.name.into(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                },
                Source::Secret => return None,
                Source::FieldRef(path) => EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: path.into(),
                    }),
                    ..EnvVarSource::default()
                },
                Source::ResourceFieldRef(resource) => EnvVarSource {
                    resource_field_ref: Some(ResourceFieldSelector {
                        container_name: Some(APP_NAME.into()),
                        resource: resource.into(),
                        divisor: None,
                    }),
                    ..EnvVarSource::default()
                },
            };
            Some(EnvVar {
                name: key.name.into(),
                value: None,
                value_from: Some(source),
            })
        })
        .collect()
}

/// The generated Secret as a read-only volume: one file per key, readable by the pod's group
/// only (`fsGroup` makes the files group-owned by the non-root user).
pub fn secret_volume() -> (Volume, VolumeMount) {
    let volume = Volume {
        name: SECRET_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(SECRET_NAME.into()),
            default_mode: Some(0o440),
            items: None,
            optional: None,
        }),
        ..Volume::default()
    };
    let mount = VolumeMount {
        name: SECRET_VOLUME.into(),
        mount_path: contract::SECRET_MOUNT_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    (volume, mount)
}

/// A Kubernetes quantity for millicores (`500m`) and bytes (`128Mi` when whole mebibytes).
fn quantities(cpu_millis: u32, memory_bytes: u64) -> BTreeMap<String, Quantity> {
    const MI: u64 = 1024 * 1024;
    let memory = if memory_bytes.is_multiple_of(MI) {
        format!("{}Mi", memory_bytes / MI)
    } else {
        memory_bytes.to_string()
    };
    [
        ("cpu".to_string(), Quantity(format!("{cpu_millis}m"))),
        ("memory".to_string(), Quantity(memory)),
    ]
    .into()
}

/// The base Deployment: everything every overlay shares.
pub fn base_deployment(image: &ImageRef) -> Deployment {
    let selector = labels(&[(LABEL_NAME, APP_NAME)]);
    let annotations = labels(&[
        ("prometheus.io/scrape", "true"),
        ("prometheus.io/port", &contract::HTTP_PORT.to_string()),
        ("prometheus.io/path", paths::METRICS),
    ]);
    let container = Container {
        name: APP_NAME.into(),
        image: Some(image.to_string()),
        // Images are built into minikube's own Docker daemon and never pushed, so Always
        // would fail to pull; a content-derived tag makes IfNotPresent safe (a new build is
        // a new tag).
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![
            ContainerPort {
                name: Some(HTTP_PORT_NAME.into()),
                container_port: contract::http_port_i32(),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some(PROBE_PORT_NAME.into()),
                container_port: i32::from(contract::PROBE_PORT),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
        ]),
        env: Some(container_env()),
        volume_mounts: Some(vec![secret_volume().1]),
        // Start-up gets 1 s checks for 15 s before liveness takes over. Readiness every 1 s,
        // out after 2 failures in a row: a draining pod (503 at once) leaves the endpoints
        // within about 2 s, well inside the drain delay, while one probe lost under a flood
        // (a dropped SYN is retried after 1 s; the 2 s timeout) does not take the pod out of
        // its Service (docs/service.md). Liveness is patient: a restart is expensive.
        startup_probe: Some(http_probe(paths::LIVENESS, 1, 1, 15)),
        readiness_probe: Some(http_probe(paths::READINESS, 1, 2, 2)),
        liveness_probe: Some(http_probe(paths::LIVENESS, 10, 2, 3)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(
                resources::CPU_REQUEST_MILLIS,
                resources::MEMORY_REQUEST_BYTES,
            )),
            limits: Some(quantities(
                resources::CPU_LIMIT_MILLIS,
                resources::MEMORY_LIMIT_BYTES,
            )),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_UID),
            run_as_group: Some(RUN_AS_UID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(APP_NAME.into()),
            labels: Some(base_labels()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            // No count in the base: an overlay without an autoscaler sets one, and an overlay
            // whose HorizontalPodAutoscaler owns the count must not declare any (a deploy would
            // reset it; docs/generator.md, "Replicas and the autoscaler").
            replicas: None,
            revision_history_limit: Some(5),
            progress_deadline_seconds: Some(120),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                // A new pod must be ready before an old one goes: no capacity is lost.
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(base_labels()),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    // Service links would add variables the service does not read.
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_PERIOD_SECONDS),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_UID),
                        run_as_group: Some(RUN_AS_UID),
                        fs_group: Some(RUN_AS_UID),
                        seccomp_profile: Some(runtime_default()),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![secret_volume().0]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

/// The base Service: a NodePort on the named container port (the overlay picks the node port).
pub fn base_service() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(APP_NAME.into()),
            labels: Some(base_labels()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            selector: Some(labels(&[(LABEL_NAME, APP_NAME)])),
            ports: Some(vec![ServicePort {
                name: Some(HTTP_PORT_NAME.into()),
                port: contract::http_port_i32(),
                target_port: Some(http_port()),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Metadata of a base or component object: its name and the base labels (the overlay adds
/// its namespace and the rest of the labels).
fn base_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(base_labels()),
        ..ObjectMeta::default()
    }
}

/// The selector of the base: the name only (the overlay adds the instance).
fn base_selector() -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(&[(LABEL_NAME, APP_NAME)])),
        match_expressions: None,
    }
}

/// The base Namespace. Its name is a placeholder: an overlay's `namespace:` renames it (and
/// every other object's namespace) to the overlay's.
pub fn base_namespace() -> Namespace {
    let mut metadata = base_meta(APP_NAME);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(pod_security_labels());
    Namespace {
        metadata,
        ..Namespace::default()
    }
}

/// What the service needs and no more: ingress to the HTTP port from anywhere (it is the public
/// entry point), and no egress at all (`Egress` among the policy types, no egress rule: the
/// service calls nothing, no DNS, no API server; the answers to what comes in are not egress).
/// In the base, so development tests what production enforces. The probe port is not
/// admitted: the kubelet probes from the pod's own node, which a NetworkPolicy always allows
/// (Kubernetes' NetworkPolicy semantics), so the probe listener stays out of reach of every
/// other pod, of other nodes and of the Service (`make e2e-cluster`'s netpol table shows each).
pub fn base_network_policy() -> NetworkPolicy {
    NetworkPolicy {
        metadata: base_meta(APP_NAME),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(base_selector()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: None,
                ports: Some(vec![NetworkPolicyPort {
                    protocol: Some("TCP".into()),
                    port: Some(IntOrString::Int(contract::http_port_i32())),
                    end_port: None,
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Voluntary disruptions (node drains) take at most one pod at a time.
pub fn pod_disruption_budget() -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: base_meta(APP_NAME),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(base_selector()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// CPU-based autoscaling of the Deployment within `scaling`'s bounds.
pub fn horizontal_pod_autoscaler(scaling: Autoscaling) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: base_meta(APP_NAME),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: APP_NAME.into(),
            },
            min_replicas: Some(scaling.min_replicas),
            max_replicas: scaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(scaling.cpu_utilization),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        status: None,
    }
}

/// Spread replicas over nodes, at most one apart, as a rule the scheduler keeps
/// (`DoNotSchedule`): with `ScheduleAnyway` (a preference) a rollout on three nodes left 1/2/0
/// in about half the runs. Each revision is spread on its own (`matchLabelKeys:
/// pod-template-hash`; counted together, the old pods a rollout is about to delete skewed the
/// new ones every time), and a node tainted unschedulable (cordoned, drained, unreachable) is
/// no domain (`nodeTaintsPolicy: Honor`), so a drain or a lost node does not leave the
/// replacements pending. A single-node minikube is one domain: every replica fits.
/// The selector is the base's: an overlay's selector labels reach it as they reach the rest.
pub fn topology_spread() -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "DoNotSchedule".into(),
        label_selector: Some(base_selector()),
        match_label_keys: Some(vec!["pod-template-hash".into()]),
        node_taints_policy: Some("Honor".into()),
        ..TopologySpreadConstraint::default()
    }]
}

/// How long prod's pods stay bound to a node the node lifecycle controller has marked not
/// ready or unreachable (after its 50 s grace period) before they are evicted and run elsewhere.
/// Kubernetes' default is 300 s. Measured on `make cluster`'s three nodes with a node cut off
/// under load (`make e2e-cluster`'s node-loss suite, docs/deploy.md): the Service routes around
/// the node once it is NotReady, about 45 s after the cut, and for every second after that the
/// pods there serve nothing; a stateless replica costs a few seconds to start elsewhere, so
/// 30 s more is what a short partition is given before prod is whole again.
pub const NODE_LOSS_TOLERATION_SECONDS: i64 = 30;

/// Tolerations of a not-ready or unreachable node for [`NODE_LOSS_TOLERATION_SECONDS`] (the
/// taints the node lifecycle controller sets, `NoExecute`).
pub fn node_loss_tolerations() -> Vec<Toleration> {
    [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .into_iter()
    .map(|key| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(NODE_LOSS_TOLERATION_SECONDS),
        ..Toleration::default()
    })
    .collect()
}

/// The base's kustomization: its resources, one file each.
pub fn base_kustomization() -> Kustomization {
    let mut kustomization = Kustomization::new();
    kustomization.resources = BASE_RESOURCES.map(String::from).to_vec();
    kustomization
}

/// The files of the base's resources, in the order its kustomization lists them.
pub const BASE_RESOURCES: [&str; 4] = [
    "namespace.yaml",
    "deployment.yaml",
    "service.yaml",
    "networkpolicy.yaml",
];

/// The files of the hardening component's resources.
pub const HARDENING_RESOURCES: [&str; 2] =
    ["poddisruptionbudget.yaml", "horizontalpodautoscaler.yaml"];

/// A Component's kustomization: its resources and its patch, inline.
pub fn component_kustomization(component: Component) -> anyhow::Result<Kustomization> {
    let mut kustomization = Kustomization::component();
    match component {
        Component::Hardening => {
            kustomization.resources = HARDENING_RESOURCES.map(String::from).to_vec();
            let spread = vec![
                JsonPatchOp {
                    op: "add".into(),
                    path: "/spec/template/spec/topologySpreadConstraints".into(),
                    value: serde_json::to_value(topology_spread())?,
                },
                JsonPatchOp {
                    op: "add".into(),
                    path: "/spec/template/spec/tolerations".into(),
                    value: serde_json::to_value(node_loss_tolerations())?,
                },
            ];
            kustomization.patches = vec![Patch {
                patch: crate::yaml::to_yaml(&spread)?,
                target: Some(Target {
                    kind: "Deployment".into(),
                    name: APP_NAME.into(),
                }),
            }];
        }
    }
    Ok(kustomization)
}

/// Where an overlay finds the base and the components, relative to its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    pub base: String,
    pub components: String,
}

impl Refs {
    /// The references of `k8s/overlays/<name>/`.
    pub fn committed() -> Self {
        Refs {
            base: "../../base".into(),
            components: "../../components".into(),
        }
    }
}

/// `app.kubernetes.io/instance`: stable per overlay, so it may sit in selectors.
pub fn instance(plan: &Plan) -> String {
    format!("{APP_NAME}-{}", plan.overlay.name)
}

/// The labels the overlay adds to selectors: only ones that never change for an overlay.
pub fn selector_labels(plan: &Plan) -> BTreeMap<String, String> {
    labels(&[(LABEL_NAME, APP_NAME), (LABEL_INSTANCE, &instance(plan))])
}

/// The descriptive labels the overlay adds everywhere except selectors.
pub fn descriptive_labels(plan: &Plan) -> BTreeMap<String, String> {
    let mut all = labels(&[
        (LABEL_COMPONENT, COMPONENT),
        (LABEL_PART_OF, PART_OF),
        (LABEL_MANAGED_BY, MANAGED_BY),
    ]);
    if let Some(version) = plan.image.version_label() {
        all.insert(LABEL_VERSION.into(), version);
    }
    all
}

/// The overlay's kustomization, its only file: `refs` locate the base and the components.
/// Every override is a field here (namespace, images, replicas, the ConfigMap's literals), so
/// kustomize applies it.
pub fn overlay_kustomization(plan: &Plan, refs: &Refs) -> anyhow::Result<Kustomization> {
    let mut k = Kustomization::new();
    k.namespace = Some(plan.namespace.clone());
    k.resources = vec![refs.base.clone()];
    k.components = plan
        .overlay
        .components
        .iter()
        .map(|c| format!("{}/{}", refs.components, c.name()))
        .collect();
    // Selectors are immutable, so only the stable labels go there; the rest (version changes
    // with every release) reach metadata and pod templates only.
    k.labels = vec![
        Label {
            pairs: selector_labels(plan),
            include_selectors: true,
            include_templates: false,
        },
        Label {
            pairs: descriptive_labels(plan),
            include_selectors: false,
            include_templates: true,
        },
    ];
    k.images = vec![Image {
        name: plan.base_image.name.clone(),
        new_name: (plan.image.name != plan.base_image.name).then(|| plan.image.name.clone()),
        new_tag: plan.image.tag.clone(),
        digest: plan.image.digest.clone(),
    }];
    // An overlay whose HorizontalPodAutoscaler owns the count declares none.
    k.replicas = plan
        .replicas
        .map(|count| Replica {
            name: APP_NAME.into(),
            count,
        })
        .into_iter()
        .collect();
    k.config_map_generator = vec![Generator {
        name: CONFIG_MAP_NAME.into(),
        type_: None,
        literals: plan.literals.iter().map(|(k, v)| literal(k, v)).collect(),
        envs: Vec::new(),
    }];
    k.secret_generator = vec![match &plan.overlay.secret {
        SecretSource::Literals(pairs) => Generator {
            name: SECRET_NAME.into(),
            type_: Some(SECRET_TYPE.into()),
            literals: pairs.iter().map(|(k, v)| literal(k, v)).collect(),
            envs: Vec::new(),
        },
        SecretSource::EnvFile(file) => Generator {
            name: SECRET_NAME.into(),
            type_: Some(SECRET_TYPE.into()),
            literals: Vec::new(),
            envs: vec![file.clone()],
        },
    }];
    let node_port = vec![JsonPatchOp {
        op: "add".into(),
        path: "/spec/ports/0/nodePort".into(),
        value: plan.overlay.node_port.into(),
    }];
    k.patches = vec![Patch {
        patch: crate::yaml::to_yaml(&node_port)?,
        target: Some(Target {
            kind: "Service".into(),
            name: APP_NAME.into(),
        }),
    }];
    Ok(k)
}

/// The contract's keys that come from the Secret.
pub fn secret_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(|k| matches!(k.source, Source::Secret))
        .map(|k| k.name)
}

//! The Kubernetes objects, as k8s-openapi types: the base (Deployment, Service), what each
//! overlay adds (Namespace, and in production PodDisruptionBudget, HorizontalPodAutoscaler,
//! NetworkPolicy, topology spread), and the final objects of an environment.
//!
//! Every name, port, path and environment key comes from the `contract` crate.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use contract::{APP_NAME, HTTP_PORT_NAME, KEYS, PART_OF, RUN_AS_UID, Source, paths, resources};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapKeySelector, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, Namespace, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceFieldSelector, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource,
    SecurityContext, Service, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::env::{Env, EnvSettings, SecretSource};
use crate::hash;
use crate::overrides::{ImageRef, Overrides};

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
const COMPONENT: &str = "server";
const MANAGED_BY: &str = "manifest-gen";

/// Seconds the kubelet waits after the drain and the shutdown timeout before it kills: the
/// process still has to flush logs and exit.
pub const GRACE_MARGIN_SECONDS: i64 = 5;
/// Covers the defaults (5 s drain + 10 s shutdown + margin) with room for overrides.
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;

/// One environment with the user's overrides applied and checked: what every output is
/// built from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub env: Env,
    pub settings: EnvSettings,
    pub namespace: String,
    /// The image the base names (from image.env).
    pub base_image: ImageRef,
    /// The image the environment runs.
    pub image: ImageRef,
    pub replicas: i32,
    /// ConfigMap literals in output order: the environment's, overridden in place, then extras.
    pub literals: Vec<(String, String)>,
    /// True when any override is in effect (the file header then says so).
    pub overridden: bool,
    /// One line each, for stderr: accepted overrides the user should know about.
    pub warnings: Vec<String>,
}

impl Plan {
    /// The environment as committed, without overrides.
    pub fn committed(env: Env) -> Result<Self> {
        Self::new(env, &Overrides::default())
    }

    /// Applies and checks overrides; the ConfigMap values must pass the service's own
    /// configuration check (with a placeholder for the Secret's keys).
    pub fn new(env: Env, overrides: &Overrides) -> Result<Self> {
        let settings = env.settings();
        let base_image = ImageRef::from_image_env().map_err(anyhow::Error::msg)?;
        let mut literals = settings.literals();
        let mut warnings = Vec::new();
        for literal in &overrides.set {
            if let Some(secret) = crate::overrides::secret_key_named(&literal.key)
                && secret.name != literal.key
            {
                bail!(
                    "--set {}=...: {} is the secret {} in another spelling; secrets never go into the ConfigMap (value not shown)",
                    literal.key,
                    literal.key,
                    secret.name
                );
            }
            warnings.extend(crate::overrides::literal_warning(&literal.key));
            match contract::key(&literal.key).map(|k| k.source) {
                Some(Source::Secret) => bail!(
                    "--set {}=...: {} comes from the Secret {SECRET_NAME}, not the ConfigMap; {}",
                    literal.key,
                    literal.key,
                    match settings.secret {
                        SecretSource::EnvFile(file) =>
                            format!("put it in the overlay's {file} (value not shown)"),
                        SecretSource::Literals(_) =>
                            "the development overlay uses a fixed fake key".to_string(),
                    }
                ),
                Some(Source::FieldRef(path) | Source::ResourceFieldRef(path)) => bail!(
                    "--set {}: {} is set by the downward API ({path}), not the ConfigMap",
                    literal.key,
                    literal.key
                ),
                _ => {}
            }
            match literals.iter_mut().find(|(k, _)| *k == literal.key) {
                Some(existing) => existing.1 = literal.value.clone(),
                None => literals.push((literal.key.clone(), literal.value.clone())),
            }
        }
        let plan = Plan {
            env,
            settings,
            namespace: overrides
                .namespace
                .clone()
                .unwrap_or_else(|| env.namespace()),
            image: overrides
                .image
                .clone()
                .unwrap_or_else(|| base_image.clone()),
            base_image,
            replicas: overrides.replicas.unwrap_or(settings.replicas),
            literals,
            overridden: *overrides != Overrides::default(),
            warnings,
        };
        let size: usize = plan.literals.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > crate::overrides::MAX_DATA_BYTES {
            bail!(
                "ConfigMap {CONFIG_MAP_NAME} of {env}: its data is {size} bytes (keys and values), above the API server's limit of {} bytes (1 MiB)",
                crate::overrides::MAX_DATA_BYTES
            );
        }
        plan.check_config(overrides)?;
        Ok(plan)
    }

    fn check_config(&self, overrides: &Overrides) -> Result<()> {
        let raw = contract::RawConfig::from_pairs(self.literals.iter().cloned())
            .map_err(|err| anyhow::anyhow!("ConfigMap {CONFIG_MAP_NAME} of {}: {err}", self.env))?;
        // The Secret is mounted only in the cluster: stand in for its file, and only for the
        // path the Deployment mounts, so an API_KEY_FILE pointing elsewhere is refused.
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
            let culprit = overrides.set.iter().rev().find(|l| l.key == err.key);
            match culprit {
                Some(l) => bail!("--set {}={}: {err}", l.key, l.value),
                None => bail!("ConfigMap {CONFIG_MAP_NAME} of {}: {err}", self.env),
            }
        }
        Ok(())
    }

    /// `app.kubernetes.io/instance`: stable per environment, so it may sit in selectors.
    pub fn instance(&self) -> String {
        format!("{APP_NAME}-{}", self.env.name())
    }

    /// The labels selectors use: only ones that never change for an environment.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        labels(&[(LABEL_NAME, APP_NAME), (LABEL_INSTANCE, &self.instance())])
    }

    /// The descriptive labels the overlay adds everywhere except selectors.
    pub fn descriptive_labels(&self) -> BTreeMap<String, String> {
        let mut all = labels(&[
            (LABEL_COMPONENT, COMPONENT),
            (LABEL_PART_OF, PART_OF),
            (LABEL_MANAGED_BY, MANAGED_BY),
        ]);
        if let Some(version) = self.image.version_label() {
            all.insert(LABEL_VERSION.into(), version);
        }
        all
    }

    /// Every label an object of this environment carries.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut all = self.selector_labels();
        all.extend(self.descriptive_labels());
        all
    }

    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.all_labels()),
            ..ObjectMeta::default()
        }
    }

    /// The ConfigMap data as generated.
    pub fn config_map_data(&self) -> BTreeMap<String, String> {
        self.literals.iter().cloned().collect()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Labels of the base objects: those that do not depend on the environment.
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

fn http_probe(path: &str, period: i32, timeout: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: http_port(),
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

/// The base Deployment: everything both environments share.
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
        ports: Some(vec![ContainerPort {
            name: Some(HTTP_PORT_NAME.into()),
            container_port: contract::http_port_i32(),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(container_env()),
        volume_mounts: Some(vec![secret_volume().1]),
        // Start-up gets 1 s checks for 15 s before liveness takes over; readiness every 2 s
        // with one failure allowed, so a draining pod leaves the endpoints within one period
        // (well inside the drain delay); liveness is patient, a restart is expensive.
        startup_probe: Some(http_probe(paths::LIVENESS, 1, 1, 15)),
        readiness_probe: Some(http_probe(paths::READINESS, 2, 1, 1)),
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
            replicas: Some(1),
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

/// The environment's Namespace.
pub fn namespace(plan: &Plan) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(plan.namespace.clone()),
            labels: Some(plan.all_labels()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

fn selector(plan: &Plan) -> LabelSelector {
    LabelSelector {
        match_labels: Some(plan.selector_labels()),
        match_expressions: None,
    }
}

/// Voluntary disruptions (node drains) take at most one pod at a time.
pub fn pod_disruption_budget(plan: &Plan) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: plan.meta(APP_NAME),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(plan)),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// CPU-based autoscaling within the environment's bounds.
pub fn horizontal_pod_autoscaler(plan: &Plan) -> Option<HorizontalPodAutoscaler> {
    let scaling = plan.settings.autoscaling?;
    Some(HorizontalPodAutoscaler {
        metadata: plan.meta(APP_NAME),
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
    })
}

/// Ingress to the pods only on the HTTP port, from anywhere (it is the public entry point);
/// no egress rule, since the service calls nothing. Development gets it too, so that what
/// is tested there is what production enforces.
pub fn network_policy(plan: &Plan) -> NetworkPolicy {
    NetworkPolicy {
        metadata: plan.meta(APP_NAME),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(plan)),
            policy_types: Some(vec!["Ingress".into()]),
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

/// Spread replicas over nodes; ScheduleAnyway so a single-node minikube still runs them all.
pub fn topology_spread(plan: &Plan) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(selector(plan)),
        ..TopologySpreadConstraint::default()
    }]
}

/// Base64 as kustomize's secretGenerator writes it: standard alphabet, and when longer than
/// 70 characters, cut into 70-character lines each ending in `\n` (the API server's decoder
/// skips newlines). The hash suffix is computed from this text, so `render` must match it.
pub fn kustomize_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let plain = serde_json::to_value(ByteString(bytes.to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if plain.len() < LINE {
        return plain;
    }
    let mut wrapped = String::with_capacity(plain.len() + plain.len() / LINE + 1);
    for chunk in plain.as_bytes().chunks(LINE) {
        wrapped.push_str(&String::from_utf8_lossy(chunk));
        wrapped.push('\n');
    }
    wrapped
}

/// The data of the environment's Secret, as kustomize generates it.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The Secret data of the development overlay (committed, fake).
pub fn literal_secret_data(pairs: &[(&str, &str)]) -> SecretData {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// The contract's keys that come from the Secret.
pub fn secret_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(|k| matches!(k.source, Source::Secret))
        .map(|k| k.name)
}

/// Stand-in Secret data for checks that do not need the real secret (never output).
pub fn placeholder_secret_data(plan: &Plan) -> SecretData {
    match plan.settings.secret {
        SecretSource::Literals(pairs) => literal_secret_data(pairs),
        SecretSource::EnvFile(_) => secret_keys()
            .map(|k| (k.to_string(), b"placeholder-for-validation".to_vec()))
            .collect(),
    }
}

/// The final objects of an environment: what `kubectl kustomize k8s/overlays/<env>` yields.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub namespace: Namespace,
    pub config_map: ConfigMap,
    pub secret: Secret,
    pub service: Service,
    pub deployment: Deployment,
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscaler>,
    pub network_policy: Option<NetworkPolicy>,
}

/// Builds the final objects the way kustomize does from the base and the overlay: generators
/// with hash suffixes and references rewritten, namespace, labels, images, replicas, patches.
pub fn render(plan: &Plan, secret_data: &SecretData) -> Rendered {
    let config_data = plan.config_map_data();
    let config_map_name = format!(
        "{CONFIG_MAP_NAME}-{}",
        hash::config_map_suffix(&config_data)
    );
    let secret_base64: BTreeMap<String, String> = secret_data
        .iter()
        .map(|(k, v)| (k.clone(), kustomize_base64(v)))
        .collect();
    let secret_name = format!(
        "{SECRET_NAME}-{}",
        hash::secret_suffix(SECRET_TYPE, &secret_base64)
    );

    let config_map = ConfigMap {
        metadata: plan.meta(&config_map_name),
        data: Some(config_data),
        ..ConfigMap::default()
    };
    let secret = Secret {
        metadata: plan.meta(&secret_name),
        data: Some(
            secret_data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                .collect(),
        ),
        type_: Some(SECRET_TYPE.into()),
        ..Secret::default()
    };

    let mut service = base_service();
    service.metadata = plan.meta(APP_NAME);
    if let Some(spec) = service.spec.as_mut() {
        spec.selector
            .get_or_insert_with(BTreeMap::new)
            .extend(plan.selector_labels());
        for port in spec.ports.iter_mut().flatten() {
            port.node_port = Some(plan.settings.node_port);
        }
    }

    let mut deployment = base_deployment(&plan.base_image);
    deployment.metadata = plan.meta(APP_NAME);
    if let Some(spec) = deployment.spec.as_mut() {
        spec.replicas = Some(plan.replicas);
        spec.selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .extend(plan.selector_labels());
        let template_meta = spec
            .template
            .metadata
            .get_or_insert_with(ObjectMeta::default);
        template_meta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(plan.all_labels());
        if let Some(pod) = spec.template.spec.as_mut() {
            if plan.settings.hardened {
                pod.topology_spread_constraints = Some(topology_spread(plan));
            }
            // kustomize's name references: the Secret volume follows the hashed name too.
            for volume in pod.volumes.iter_mut().flatten() {
                if let Some(secret) = volume.secret.as_mut()
                    && secret.secret_name.as_deref() == Some(SECRET_NAME)
                {
                    secret.secret_name = Some(secret_name.clone());
                }
            }
            for container in &mut pod.containers {
                container.image = Some(plan.image.to_string());
                for var in container.env.iter_mut().flatten() {
                    let Some(source) = var.value_from.as_mut() else {
                        continue;
                    };
                    if let Some(r) = source.config_map_key_ref.as_mut()
                        && r.name == CONFIG_MAP_NAME
                    {
                        r.name = config_map_name.clone();
                    }
                    if let Some(r) = source.secret_key_ref.as_mut()
                        && r.name == SECRET_NAME
                    {
                        r.name = secret_name.clone();
                    }
                }
            }
        }
    }

    Rendered {
        namespace: namespace(plan),
        config_map,
        secret,
        service,
        deployment,
        pod_disruption_budget: plan.settings.hardened.then(|| pod_disruption_budget(plan)),
        horizontal_pod_autoscaler: horizontal_pod_autoscaler(plan),
        network_policy: Some(network_policy(plan)),
    }
}

impl Rendered {
    /// The objects as JSON values, in the order kustomize emits them (its legacy kind order:
    /// Namespace, ConfigMap, Secret, Service, Deployment, PodDisruptionBudget, then the other
    /// kinds by group-version-kind).
    pub fn documents(&self) -> Result<Vec<serde_json::Value>> {
        self.values()?
            .iter()
            .map(|v| Ok(serde_json::to_value(v)?))
            .collect()
    }

    /// The YAML stream `kubectl apply -f -` takes, fields in the k8s-openapi order.
    pub fn to_yaml(&self) -> Result<String> {
        let docs = self
            .values()?
            .iter()
            .map(crate::yaml::to_yaml)
            .collect::<Result<Vec<_>>>()?;
        Ok(docs.join("---\n"))
    }

    /// The Secret with its data in kustomize's base64 layout (k8s-openapi writes one line).
    fn secret_value(&self) -> Result<yaml_serde::Value> {
        let mut value = yaml_serde::to_value(&self.secret)?;
        if let Some(data) = value.get_mut("data").and_then(|d| d.as_mapping_mut()) {
            for (key, encoded) in data.iter_mut() {
                let bytes = key
                    .as_str()
                    .and_then(|k| self.secret.data.as_ref()?.get(k))
                    .map(|b| b.0.as_slice())
                    .unwrap_or_default();
                *encoded = yaml_serde::Value::String(kustomize_base64(bytes));
            }
        }
        Ok(value)
    }

    /// Each object as a YAML value (which keeps the typed field order), in kustomize's order.
    fn values(&self) -> Result<Vec<yaml_serde::Value>> {
        let mut out = vec![
            yaml_serde::to_value(&self.namespace)?,
            yaml_serde::to_value(&self.config_map)?,
            self.secret_value()?,
            yaml_serde::to_value(&self.service)?,
            yaml_serde::to_value(&self.deployment)?,
        ];
        if let Some(pdb) = &self.pod_disruption_budget {
            out.push(yaml_serde::to_value(pdb)?);
        }
        if let Some(hpa) = &self.horizontal_pod_autoscaler {
            out.push(yaml_serde::to_value(hpa)?);
        }
        if let Some(policy) = &self.network_policy {
            out.push(yaml_serde::to_value(policy)?);
        }
        Ok(out)
    }
}

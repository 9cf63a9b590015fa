//! Render: the final objects of an overlay, built from the base and component objects the
//! way kustomize builds them from the tree (generators with hash suffixes and references
//! rewritten, namespace, labels, images, replicas, patches), so that `manifest-gen render`
//! and `kubectl kustomize k8s/overlays/<name>` yield the same objects.

mod hash;

use std::collections::BTreeMap;

use anyhow::Result;
use base64::Engine as _;
use contract::{KEYS, Source};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::builders::{self, CONFIG_MAP_NAME, SECRET_NAME, SECRET_TYPE};
use crate::overlay::SecretSource;
use crate::plan::Plan;

pub use hash::{config_map_suffix, secret_suffix};

/// Base64 as kustomize's secretGenerator writes it: standard alphabet, and when longer than
/// 70 characters, cut into 70-character lines each ending in `\n` (the API server's decoder
/// skips newlines). The hash suffix is computed from this text, so `render` must match it.
pub fn kustomize_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let plain = base64::engine::general_purpose::STANDARD.encode(bytes);
    if plain.len() < LINE {
        return plain;
    }
    let mut wrapped = String::with_capacity(plain.len() + plain.len() / LINE + 1);
    for chunk in plain.as_bytes().chunks(LINE) {
        // Base64 text is ASCII, so every chunk is a whole string.
        wrapped.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        wrapped.push('\n');
    }
    wrapped
}

/// The data of an overlay's Secret, as kustomize generates it.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The Secret data of an overlay whose Secret is literal pairs (committed, fake).
pub fn literal_secret_data(pairs: &BTreeMap<String, String>) -> SecretData {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
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
    match &plan.overlay.secret {
        SecretSource::Literals(pairs) => literal_secret_data(pairs),
        SecretSource::EnvFile(_) => secret_keys()
            .map(|k| (k.to_string(), b"placeholder-for-validation".to_vec()))
            .collect(),
    }
}

/// The final objects of an overlay: what `kubectl kustomize k8s/overlays/<name>` yields.
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

/// What the overlay's `namespace:` and `labels:` do to an object's metadata.
fn overlay_meta(meta: &mut ObjectMeta, plan: &Plan) {
    meta.namespace = Some(plan.namespace.clone());
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(plan.all_labels());
}

/// What the overlay's `labels:` with `includeSelectors` do to a selector.
fn overlay_selector(selector: &mut LabelSelector, plan: &Plan) {
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .extend(plan.selector_labels());
}

/// Builds the final objects the way kustomize does from the base, the components and the
/// overlay: generators with hash suffixes and references rewritten, namespace, labels,
/// images, replicas, patches.
pub fn render(plan: &Plan, secret_data: &SecretData) -> Rendered {
    let config_data = plan.config_map_data();
    let config_map_name = format!("{CONFIG_MAP_NAME}-{}", config_map_suffix(&config_data));
    let secret_base64: BTreeMap<String, String> = secret_data
        .iter()
        .map(|(k, v)| (k.clone(), kustomize_base64(v)))
        .collect();
    let secret_name = format!(
        "{SECRET_NAME}-{}",
        secret_suffix(SECRET_TYPE, &secret_base64)
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

    // kustomize's namespace transformer renames the Namespace object itself.
    let mut namespace = builders::base_namespace();
    overlay_meta(&mut namespace.metadata, plan);
    namespace.metadata.name = Some(plan.namespace.clone());
    namespace.metadata.namespace = None;

    let mut service = builders::base_service();
    overlay_meta(&mut service.metadata, plan);
    if let Some(spec) = service.spec.as_mut() {
        spec.selector
            .get_or_insert_with(BTreeMap::new)
            .extend(plan.selector_labels());
        // The overlay's inline patch.
        for port in spec.ports.iter_mut().flatten() {
            port.node_port = Some(plan.overlay.node_port);
        }
    }

    let mut network_policy = builders::base_network_policy();
    overlay_meta(&mut network_policy.metadata, plan);
    if let Some(selector) = network_policy
        .spec
        .as_mut()
        .and_then(|s| s.pod_selector.as_mut())
    {
        overlay_selector(selector, plan);
    }

    let mut deployment = builders::base_deployment(&plan.base_image);
    overlay_meta(&mut deployment.metadata, plan);
    if let Some(spec) = deployment.spec.as_mut() {
        if plan.replicas.is_some() {
            spec.replicas = plan.replicas;
        }
        overlay_selector(&mut spec.selector, plan);
        let template_meta = spec
            .template
            .metadata
            .get_or_insert_with(ObjectMeta::default);
        template_meta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(plan.all_labels());
        if let Some(pod) = spec.template.spec.as_mut() {
            if plan.overlay.hardened() {
                // The hardening component's patch.
                let mut spread = builders::topology_spread();
                for constraint in &mut spread {
                    if let Some(selector) = constraint.label_selector.as_mut() {
                        overlay_selector(selector, plan);
                    }
                }
                pod.topology_spread_constraints = Some(spread);
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

    let pod_disruption_budget = plan.overlay.hardened().then(|| {
        let mut pdb = builders::pod_disruption_budget();
        overlay_meta(&mut pdb.metadata, plan);
        if let Some(selector) = pdb.spec.as_mut().and_then(|s| s.selector.as_mut()) {
            overlay_selector(selector, plan);
        }
        pdb
    });
    let horizontal_pod_autoscaler = plan.overlay.autoscaling().map(|scaling| {
        let mut hpa = builders::horizontal_pod_autoscaler(scaling);
        overlay_meta(&mut hpa.metadata, plan);
        hpa
    });

    Rendered {
        namespace,
        config_map,
        secret,
        service,
        deployment,
        pod_disruption_budget,
        horizontal_pod_autoscaler,
        network_policy: Some(network_policy),
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

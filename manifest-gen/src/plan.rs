//! The plan: one overlay with the user's overrides applied, checked, and its objects
//! validated. [`Plan::new`] is the only public way to get one, so nothing is output from a
//! plan that was not validated. It lives in `validate.rs`, beside the validation it runs, so
//! that this module, `render` and `validate` import each other in one direction only:
//! validate -> render -> plan.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use contract::{APP_NAME, PART_OF, Source};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::builders::{
    COMPONENT, CONFIG_MAP_NAME, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME,
    LABEL_PART_OF, LABEL_VERSION, MANAGED_BY, SECRET_NAME, labels,
};
use crate::overlay::{Overlay, SecretSource};
use crate::overrides::{ImageRef, Overrides};

/// One overlay with the user's overrides applied and checked: what every output is built
/// from. Its objects passed [`crate::validate::validate`] (with a placeholder Secret).
#[derive(Debug, Clone)]
pub struct Plan {
    pub overlay: Overlay,
    pub namespace: String,
    /// The image the base names (from image.env).
    pub base_image: ImageRef,
    /// The image the overlay runs.
    pub image: ImageRef,
    /// The Deployment's replica count; `None` when the overlay's HorizontalPodAutoscaler owns
    /// it (nothing then declares a count, so a deploy keeps the autoscaler's).
    pub replicas: Option<i32>,
    /// ConfigMap literals in output order: the overlay's, overridden in place, then extras.
    pub literals: Vec<(String, String)>,
    /// True when any override is in effect (the file header then says so).
    pub overridden: bool,
    /// One line each, for stderr: accepted overrides the user should know about.
    pub warnings: Vec<String>,
}

impl Plan {
    /// The overlay as committed, without overrides.
    pub fn committed(overlay: &Overlay) -> Result<Self> {
        Self::new(overlay, &Overrides::default())
    }

    /// Applies and checks overrides: the ConfigMap values must pass the service's own
    /// configuration check, with a placeholder for the Secret's keys. [`Plan::new`] then
    /// validates the objects the plan renders to.
    pub(crate) fn checked(overlay: &Overlay, overrides: &Overrides) -> Result<Self> {
        let base_image = ImageRef::from_image_env().map_err(anyhow::Error::msg)?;
        if let (Some(n), Some(scaling)) = (overrides.replicas, overlay.autoscaling()) {
            bail!(
                "--replicas {n}: the {overlay} overlay's HorizontalPodAutoscaler owns the replica count ({}-{}), so the overlay declares none (a deploy would reset the autoscaler's count); leave --replicas out",
                scaling.min_replicas,
                scaling.max_replicas
            );
        }
        let mut literals = overlay.literals();
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
                    match &overlay.secret {
                        SecretSource::EnvFile(file) =>
                            format!("put it in the overlay's {file} (value not shown)"),
                        SecretSource::Literals(_) =>
                            format!("the {overlay} overlay uses a fixed fake key"),
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
            overlay: overlay.clone(),
            namespace: overrides
                .namespace
                .clone()
                .unwrap_or_else(|| overlay.namespace.clone()),
            image: overrides
                .image
                .clone()
                .unwrap_or_else(|| base_image.clone()),
            base_image,
            replicas: overrides.replicas.or(overlay.replicas),
            literals,
            overridden: *overrides != Overrides::default(),
            warnings,
        };
        let size: usize = plan.literals.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > crate::overrides::MAX_DATA_BYTES {
            bail!(
                "ConfigMap {CONFIG_MAP_NAME} of {overlay}: its data is {size} bytes (keys and values), above the API server's limit of {} bytes (1 MiB)",
                crate::overrides::MAX_DATA_BYTES
            );
        }
        plan.check_config(overrides)?;
        Ok(plan)
    }

    fn check_config(&self, overrides: &Overrides) -> Result<()> {
        let raw =
            contract::RawConfig::from_pairs(self.literals.iter().cloned()).map_err(|err| {
                anyhow::anyhow!("ConfigMap {CONFIG_MAP_NAME} of {}: {err}", self.overlay)
            })?;
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
                None => bail!("ConfigMap {CONFIG_MAP_NAME} of {}: {err}", self.overlay),
            }
        }
        Ok(())
    }

    /// `app.kubernetes.io/instance`: stable per overlay, so it may sit in selectors.
    pub fn instance(&self) -> String {
        format!("{APP_NAME}-{}", self.overlay.name)
    }

    /// The labels selectors use: only ones that never change for an overlay.
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

    /// Every label an object of this overlay carries.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut all = self.selector_labels();
        all.extend(self.descriptive_labels());
        all
    }

    /// Metadata of an object of this plan: name, namespace, every label.
    pub fn meta(&self, name: &str) -> ObjectMeta {
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

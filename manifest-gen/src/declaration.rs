//! The declaration, first stage of the pipeline: the overlays and their settings, everything
//! that differs between dev and prod.
//!
//! They are declared once, in `manifest-gen/overlays.yaml` (compiled in); `--overlays FILE`
//! reads another declaration of the same form. Everything else (the overlay directories, the
//! `overlays` command, the docs table) is derived from that list. Reading checks the form
//! (names, ports, namespaces, which fields go together); what the values must be for the
//! service and the API server is judged in [`crate::checks`].

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use contract::{APP_NAME, Environment};
use serde::Deserialize;

use crate::overrides::{dns_label, namespace};

/// The declaration compiled in.
pub const DECLARATION: &str = include_str!("../overlays.yaml");
/// Where the compiled-in declaration lives, as errors and docs name it.
pub const DECLARATION_PATH: &str = "manifest-gen/overlays.yaml";

/// How an overlay's Secret is generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Literal pairs committed in the overlay: only for obviously fake development keys.
    Literals(std::collections::BTreeMap<String, String>),
    /// An operator-provided env file next to the kustomization, ignored by git.
    EnvFile(String),
}

/// A kustomize Component under `k8s/components/` an overlay can include.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// What production adds: PodDisruptionBudget, HorizontalPodAutoscaler, topology spread,
    /// tolerations of a lost node.
    Hardening,
}

/// HorizontalPodAutoscaler bounds and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autoscaling {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub cpu_utilization: i32,
}

impl Component {
    pub const ALL: [Component; 1] = [Component::Hardening];

    pub const fn name(self) -> &'static str {
        match self {
            Component::Hardening => "hardening",
        }
    }

    /// The autoscaler the component adds, if any.
    pub const fn autoscaling(self) -> Option<Autoscaling> {
        match self {
            Component::Hardening => Some(Autoscaling {
                min_replicas: 3,
                max_replicas: 10,
                cpu_utilization: 70,
            }),
        }
    }

    /// What it adds, for the docs.
    pub const fn adds(self) -> &'static str {
        match self {
            Component::Hardening => {
                "PodDisruptionBudget (maxUnavailable 1), HorizontalPodAutoscaler (3-10 replicas, 70 % CPU), hostname topology spread, 30 s tolerations of a lost node"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EnvironmentName {
    Development,
    Production,
}

/// `secret:` as declared: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclaredSecret {
    #[serde(default)]
    literals: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    env_file: Option<String>,
}

/// One overlay as declared.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    name: String,
    environment: EnvironmentName,
    #[serde(default)]
    replicas: Option<i32>,
    node_port: i32,
    secret: DeclaredSecret,
    #[serde(default)]
    components: Vec<Component>,
    #[serde(default)]
    namespace: Option<String>,
}

/// An overlay: one directory `k8s/overlays/<name>/`, one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub name: String,
    /// The service environment the overlay runs (its ConfigMap literals follow from it).
    pub environment: Environment,
    /// The Deployment's replica count; `None` when a HorizontalPodAutoscaler owns it.
    pub replicas: Option<i32>,
    pub node_port: i32,
    pub secret: SecretSource,
    pub components: Vec<Component>,
    /// The namespace it deploys into: one per overlay, so they never collide.
    pub namespace: String,
}

impl Overlay {
    /// The ConfigMap literals: every ConfigMap key of the contract with its cluster value for
    /// this overlay's environment, in declaration order.
    pub fn literals(&self) -> Vec<(String, String)> {
        contract::KEYS
            .iter()
            .filter_map(|key| Some((key.name.to_owned(), key.cluster_value(self.environment)?)))
            .collect()
    }

    /// True when the overlay includes the hardening component.
    pub fn hardened(&self) -> bool {
        self.components.contains(&Component::Hardening)
    }

    /// The autoscaler its components add, if any.
    pub fn autoscaling(&self) -> Option<Autoscaling> {
        self.components.iter().find_map(|c| c.autoscaling())
    }
}

impl fmt::Display for Overlay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The declared overlays, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlays {
    pub list: Vec<Overlay>,
    /// The declaration file when it is not the compiled-in one (headers then name it).
    pub source: Option<String>,
}

impl Overlays {
    /// The compiled-in declaration.
    pub fn builtin() -> Result<Self> {
        Self::parse(DECLARATION, None).with_context(|| format!("in {DECLARATION_PATH}"))
    }

    /// The compiled-in declaration, or `file`'s.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let Some(file) = file else {
            return Self::builtin();
        };
        let text = crate::input::read(
            "the overlay declaration",
            file,
            crate::input::MAX_DECLARATION_BYTES,
        )?;
        Self::parse(&text, Some(file.display().to_string()))
            .with_context(|| format!("in the overlay declaration {}", file.display()))
    }

    pub(crate) fn parse(text: &str, source: Option<String>) -> Result<Self> {
        let declared: Vec<Declared> =
            yaml_serde::from_str(text).context("expected a list of overlays")?;
        if declared.is_empty() {
            bail!("no overlay is declared");
        }
        let mut names = BTreeSet::new();
        let mut ports = BTreeSet::new();
        let mut namespaces = BTreeSet::new();
        let mut list = Vec::new();
        for d in declared {
            let name = &d.name;
            dns_label(name).map_err(|e| anyhow::anyhow!("overlay name {name:?}: {e}"))?;
            if !names.insert(name.clone()) {
                bail!("the overlay {name} is declared twice");
            }
            if !(30000..=32767).contains(&d.node_port) {
                bail!(
                    "overlay {name}: node_port {} is outside the NodePort range 30000-32767",
                    d.node_port
                );
            }
            if !ports.insert(d.node_port) {
                bail!(
                    "overlay {name}: node_port {} is another overlay's too",
                    d.node_port
                );
            }
            let mut components = d.components.clone();
            components.sort();
            components.dedup();
            let autoscaled = components.iter().find_map(|c| c.autoscaling());
            match (d.replicas, autoscaled) {
                (Some(n), None) if n < 1 => {
                    bail!("overlay {name}: replicas is {n}, expected >= 1")
                }
                (None, None) => bail!(
                    "overlay {name}: replicas is missing; expected a count >= 1 (only an overlay with an autoscaling component leaves it out)"
                ),
                (Some(n), Some(scaling)) => bail!(
                    "overlay {name}: replicas is {n}, but its HorizontalPodAutoscaler owns the count ({}-{}); leave replicas out, or a deploy would reset the autoscaler's count",
                    scaling.min_replicas,
                    scaling.max_replicas
                ),
                _ => {}
            }
            let ns = d
                .namespace
                .clone()
                .unwrap_or_else(|| format!("{APP_NAME}-{name}"));
            namespace(&ns).map_err(|e| anyhow::anyhow!("overlay {name}: namespace {ns}: {e}"))?;
            if !namespaces.insert(ns.clone()) {
                bail!("overlay {name}: the namespace {ns} is another overlay's too");
            }
            let secret = match (d.secret.literals.clone(), d.secret.env_file.clone()) {
                (Some(pairs), None) => SecretSource::Literals(pairs),
                (None, Some(file)) if !file.contains('/') && file.ends_with(".env") => {
                    SecretSource::EnvFile(file)
                }
                (None, Some(file)) => bail!(
                    "overlay {name}: secret.env_file {file:?}: expected a file name ending in .env"
                ),
                _ => bail!("overlay {name}: secret: expected either literals or env_file"),
            };
            let environment = match d.environment {
                EnvironmentName::Development => Environment::Development,
                EnvironmentName::Production => Environment::Production,
            };
            list.push(Overlay {
                name: d.name,
                environment,
                replicas: d.replicas,
                node_port: d.node_port,
                secret,
                components,
                namespace: ns,
            });
        }
        Ok(Overlays { list, source })
    }

    /// The overlay called `name`.
    pub fn find(&self, name: &str) -> Result<&Overlay> {
        self.list.iter().find(|o| o.name == name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown overlay {name:?}; expected one of: {} (declared in {})",
                self.names().join(", "),
                self.source.as_deref().unwrap_or(DECLARATION_PATH)
            )
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|o| o.name.as_str()).collect()
    }

    /// The components some overlay includes.
    pub fn components(&self) -> BTreeSet<Component> {
        self.list
            .iter()
            .flat_map(|o| o.components.iter().copied())
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_declaration_holds_dev_and_prod_with_every_configmap_key() {
        let overlays = Overlays::builtin().unwrap();
        assert_eq!(overlays.names(), ["dev", "prod"]);
        for overlay in &overlays.list {
            let literals = overlay.literals();
            for key in contract::KEYS
                .iter()
                .filter(|k| matches!(k.source, contract::Source::ConfigMap(_)))
            {
                assert!(
                    literals.iter().any(|(k, _)| k == key.name),
                    "{overlay} does not set {}",
                    key.name
                );
            }
        }
    }

    #[test]
    fn prod_keeps_the_origins_node_port_and_is_hardened() {
        let overlays = Overlays::builtin().unwrap();
        let prod = overlays.find("prod").unwrap();
        assert_eq!(prod.node_port, i32::from(contract::PROD_NODE_PORT));
        assert!(prod.hardened());
        assert_eq!(prod.namespace, "hello-k8s-prod");
        assert!(!overlays.find("dev").unwrap().hardened());
    }

    #[test]
    fn bad_declarations_are_refused_naming_the_overlay_and_field() {
        let base = "- name: a\n  environment: development\n  replicas: 1\n  node_port: 31000\n  secret: {env_file: secret.env}\n";
        let hardened = format!("{base}  components: [hardening]\n");
        for (text, says) in [
            (format!("{base}{base}"), "declared twice"),
            (base.replace("31000", "80"), "outside the NodePort range"),
            (base.replace("name: a", "name: A"), "DNS-1123"),
            (format!("{base}  namespace: kube-system\n"), "reserved"),
            (format!("{base}  color: red\n"), "unknown field"),
            (base.replace("development", "staging"), "unknown variant"),
            ("[]".to_string(), "no overlay"),
            (
                hardened.clone(),
                "its HorizontalPodAutoscaler owns the count (3-10)",
            ),
            (base.replace("  replicas: 1\n", ""), "replicas is missing"),
            (format!("{base}  namespace: kube-foo\n"), "reserved"),
            (
                base.replace("{env_file: secret.env}", "{}"),
                "either literals or env_file",
            ),
            (base.replace("secret.env}", "../x.env}"), "ending in .env"),
        ] {
            let err = format!("{:#}", Overlays::parse(&text, None).unwrap_err());
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn an_unknown_name_lists_the_declared_ones() {
        let err = Overlays::builtin().unwrap().find("nosuch").unwrap_err();
        assert!(
            err.to_string().contains("expected one of: dev, prod"),
            "{err}"
        );
    }
}

//! A typed `kustomization.yaml`: the kustomize v5 fields this project uses, and no others.
//!
//! Deprecated fields (`commonLabels`, `patchesStrategicMerge`, `patchesJson6902`, `bases`,
//! `vars`) have no field here, so they cannot be generated; `deny_unknown_fields` makes reading
//! a file with them back an error. Empty fields are left out of the output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "kustomize.config.k8s.io/v1beta1";
pub const KIND: &str = "Kustomization";
/// A kustomize Component: a reusable set of resources and patches overlays include.
pub const COMPONENT_API_VERSION: &str = "kustomize.config.k8s.io/v1alpha1";
pub const COMPONENT_KIND: &str = "Component";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kustomization {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_map_generator: Vec<Generator>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_generator: Vec<Generator>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
}

impl Kustomization {
    /// An empty kustomization with apiVersion and kind set.
    pub fn new() -> Self {
        Kustomization {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            namespace: None,
            resources: Vec::new(),
            components: Vec::new(),
            labels: Vec::new(),
            images: Vec::new(),
            replicas: Vec::new(),
            config_map_generator: Vec::new(),
            secret_generator: Vec::new(),
            patches: Vec::new(),
        }
    }
}

impl Kustomization {
    /// An empty Component.
    pub fn component() -> Self {
        Kustomization {
            api_version: COMPONENT_API_VERSION.into(),
            kind: COMPONENT_KIND.into(),
            ..Self::new()
        }
    }
}

impl Default for Kustomization {
    fn default() -> Self {
        Self::new()
    }
}

/// One entry of `labels:` (the v5 replacement of `commonLabels`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Label {
    pub pairs: BTreeMap<String, String>,
    /// Also add the pairs to selectors (and templates). Selectors are immutable, so only
    /// labels that never change may go there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_selectors: bool,
    /// Also add the pairs to pod templates (without touching selectors).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_templates: bool,
}

/// One entry of `images:`: rewrites a container image by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// `sha256:...`: with `newTag` the image becomes `NAME:TAG@DIGEST`, alone `NAME@DIGEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One entry of `replicas:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    pub name: String,
    pub count: i32,
}

/// A `configMapGenerator` or `secretGenerator` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Generator {
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub literals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envs: Vec<String>,
}

/// One entry of `patches:`: a JSON 6902 (or strategic-merge) patch, inline so the
/// kustomization is the overlay's only file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    /// The patch text (YAML).
    pub patch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Which objects a patch applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    pub kind: String,
    pub name: String,
}

/// One JSON 6902 operation (RFC 6902), the content of a patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonPatchOp {
    pub op: String,
    pub path: String,
    pub value: serde_json::Value,
}

/// The text kustomize's literal parser turns back into `value`: it strips one pair of
/// matching quotes around a literal's value, so a value that has them gets another pair.
pub fn literal(key: &str, value: &str) -> String {
    let quoted_both_ends = value.len() >= 2
        && (value.starts_with('"') && value.ends_with('"')
            || value.starts_with('\'') && value.ends_with('\''));
    if quoted_both_ends || value == "\"" || value == "'" {
        format!("{key}=\"{value}\"")
    } else {
        format!("{key}={value}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn deprecated_fields_are_refused_when_read() {
        for field in [
            "commonLabels: {a: b}",
            "bases: [x]",
            "vars: []",
            "patchesStrategicMerge: []",
        ] {
            let text = format!("apiVersion: {API_VERSION}\nkind: {KIND}\n{field}\n");
            let err = yaml_serde::from_str::<Kustomization>(&text).unwrap_err();
            assert!(err.to_string().contains("unknown field"), "{err}");
        }
    }

    #[test]
    fn empty_fields_are_left_out() {
        let text = yaml_serde::to_string(&Kustomization::new()).unwrap();
        assert_eq!(text, format!("apiVersion: {API_VERSION}\nkind: {KIND}\n"));
    }

    #[test]
    fn literals_keep_quotes_kustomize_would_strip() {
        assert_eq!(literal("K", "plain"), "K=plain");
        assert_eq!(literal("K", "\"q\""), "K=\"\"q\"\"");
        assert_eq!(literal("K", "'q'"), "K=\"'q'\"");
        assert_eq!(literal("K", "\"q"), "K=\"q");
        assert_eq!(literal("K", "'"), "K=\"'\"");
    }
}

//! `manifest-gen`: the kustomize base, components and overlays of `hello-k8s`, written from
//! typed k8s-openapi objects that share the service's contract and checked before any output;
//! kustomize renders them.
//!
//! The modules run one way, each importing only those before it:
//!
//! ```text
//! declaration -> plan -> objects -> checks -> output
//! ```
//!
//! - declaration: [`declaration`] (the declared overlays) and [`overrides`] (the user's flags
//!   and the rules of their values);
//! - [`plan`]: one overlay with the overrides applied;
//! - [`objects`]: the base and component objects and the kustomizations ([`kustomization`]);
//! - [`checks`]: what the user's input can break; the only way to a [`checks::CheckedPlan`];
//! - output, from a checked plan only: [`tree`] (the files, written atomically), [`render`]
//!   (`kubectl kustomize` on a tree written to a temporary directory) and [`docs`].
//!
//! [`cli`] drives them; [`input`] (bounded file reads), [`cmdline`] (shell-quoted commands) and
//! [`yaml`] (YAML text any Kubernetes reader takes back) serve every stage.

pub mod checks;
pub mod cli;
pub mod cmdline;
pub mod declaration;
pub mod docs;
pub mod input;
pub mod kustomization;
pub mod objects;
pub mod overrides;
pub mod plan;
pub mod render;
pub mod tree;
pub mod yaml;

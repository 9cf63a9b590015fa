//! `manifest-gen`: the kustomize base, components and overlays of `hello-k8s`, generated from
//! typed k8s-openapi objects that share the service's contract, validated before any output.
//!
//! The path from declaration to output: [`overlay`] (the declared overlays) and [`overrides`]
//! (the user's flags) make a [`plan::Plan`], validated as it is made; [`builders`] hold the
//! objects no overlay changes; [`render`] applies an overlay to them as kustomize would;
//! [`tree`] writes the kustomize files; [`docs`] fills the documentation's generated blocks.

pub mod builders;
pub mod classes;
pub mod cli;
pub mod cmdline;
pub mod docs;
pub mod input;
pub mod kustomization;
pub mod overlay;
pub mod overrides;
pub mod plan;
pub mod render;
pub mod secret_env;
pub mod tree;
pub mod validate;
pub mod yaml;

//! `manifest-gen`: the kustomize base and overlays of `hello-k8s`, generated from typed
//! k8s-openapi objects that share the service's contract, validated before any output.

pub mod cli;
pub mod env;
pub mod hash;
pub mod kustomization;
pub mod objects;
pub mod overrides;
pub mod secret_env;
pub mod tree;
pub mod validate;
pub mod yaml;

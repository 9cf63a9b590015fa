//! CLI tests: the real `manifest-gen` binary, the real `kubectl kustomize` and the real
//! third-party validators, on temporary copies of the committed tree.

#![allow(clippy::unwrap_used)]

mod classes;
mod contract_keys;
mod docs;
mod errors;
mod helpers;
mod hostile;
mod inputs;
mod kustomize;
mod overlays;
mod print;
mod tree;
mod validators;

//! The plan, second stage of the pipeline: one declared overlay with the user's overrides
//! applied. It is not checked yet; [`crate::checks::check`] turns it into the
//! [`crate::checks::CheckedPlan`] that every output takes.

use anyhow::Result;

use crate::declaration::Overlay;
use crate::overrides::{ImageRef, Overrides};

/// One overlay with the user's overrides applied: what the objects are built from.
#[derive(Debug, Clone)]
pub struct Plan {
    pub overlay: Overlay,
    /// The overrides as given (the checks name the flag at fault).
    pub overrides: Overrides,
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
}

impl Plan {
    /// `overlay` with `overrides` applied (fails only on a broken image.env, compiled in).
    pub fn new(overlay: &Overlay, overrides: &Overrides) -> Result<Self> {
        let base_image = ImageRef::from_image_env().map_err(anyhow::Error::msg)?;
        let mut literals = overlay.literals();
        for literal in &overrides.set {
            match literals.iter_mut().find(|(k, _)| *k == literal.key) {
                Some(existing) => existing.1 = literal.value.clone(),
                None => literals.push((literal.key.clone(), literal.value.clone())),
            }
        }
        Ok(Plan {
            overlay: overlay.clone(),
            overrides: overrides.clone(),
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
        })
    }

    /// The overlay as committed, without overrides.
    pub fn committed(overlay: &Overlay) -> Result<Self> {
        Self::new(overlay, &Overrides::default())
    }
}

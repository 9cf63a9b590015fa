//! The generated `k8s/` tree: its files in memory, writing them atomically, checking for drift.
//!
//! ```text
//! k8s/base/{kustomization,deployment,service}.yaml
//! k8s/overlays/<env>/kustomization.yaml   + namespace.yaml and patch files
//! k8s/overlays/prod/{poddisruptionbudget,horizontalpodautoscaler,networkpolicy}.yaml
//! k8s/overlays/prod/secret.env.example    (the operator copies it to the git-ignored secret.env)
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use contract::APP_NAME;
use serde::Serialize;

use crate::env::{Env, SecretSource};
use crate::kustomization::{
    Generator, Image, JsonPatchOp, Kustomization, Label, Patch, Replica, Target, literal,
};
use crate::objects::{self, CONFIG_MAP_NAME, Plan, SECRET_NAME};
use crate::yaml::{header, to_yaml};

/// The command the header of every committed file names.
pub const REGENERATE: &str = "make manifests";
/// The header's command when overrides are in effect (the committed files do not have them).
const REGENERATE_WITH_OVERRIDES: &str = "manifest-gen with the same options";
/// How overlays refer to the base from `k8s/overlays/<env>/`.
pub const BASE_FROM_OVERLAY: &str = "../../base";

const SERVICE_PATCH: &str = "service-nodeport.patch.yaml";
const DEPLOYMENT_PATCH: &str = "deployment-topology.patch.yaml";

/// Generated files by path relative to the tree's root, in a stable order.
pub type Files = BTreeMap<PathBuf, String>;

fn yaml_file<T: Serialize>(value: &T, regenerate: &str) -> Result<String> {
    Ok(format!("{}{}", header(regenerate), to_yaml(value)?))
}

/// The base: one object per file and a kustomization listing them.
pub fn base_files() -> Result<Files> {
    let image = crate::overrides::ImageRef::from_image_env().map_err(anyhow::Error::msg)?;
    let mut kustomization = Kustomization::new();
    kustomization.resources = vec!["deployment.yaml".into(), "service.yaml".into()];
    let mut files = Files::new();
    files.insert(
        "kustomization.yaml".into(),
        yaml_file(&kustomization, REGENERATE)?,
    );
    files.insert(
        "deployment.yaml".into(),
        yaml_file(&objects::base_deployment(&image), REGENERATE)?,
    );
    files.insert(
        "service.yaml".into(),
        yaml_file(&objects::base_service(), REGENERATE)?,
    );
    Ok(files)
}

/// An overlay's kustomization: `base` is the path of the base relative to the overlay.
pub fn overlay_kustomization(plan: &Plan, base: &str) -> Kustomization {
    let mut k = Kustomization::new();
    k.namespace = Some(plan.namespace.clone());
    k.resources = vec![
        base.to_string(),
        "namespace.yaml".into(),
        "networkpolicy.yaml".into(),
    ];
    if plan.settings.hardened {
        k.resources.push("poddisruptionbudget.yaml".into());
    }
    if plan.settings.autoscaling.is_some() {
        k.resources.push("horizontalpodautoscaler.yaml".into());
    }
    // Selectors are immutable, so only the stable labels go there; the rest (version changes
    // with every release) reach metadata and pod templates only.
    k.labels = vec![
        Label {
            pairs: plan.selector_labels(),
            include_selectors: true,
            include_templates: false,
        },
        Label {
            pairs: plan.descriptive_labels(),
            include_selectors: false,
            include_templates: true,
        },
    ];
    k.images = vec![Image {
        name: plan.base_image.name.clone(),
        new_name: (plan.image.name != plan.base_image.name).then(|| plan.image.name.clone()),
        new_tag: plan.image.tag.clone(),
        digest: plan.image.digest.clone(),
    }];
    k.replicas = vec![Replica {
        name: APP_NAME.into(),
        count: plan.replicas,
    }];
    k.config_map_generator = vec![Generator {
        name: CONFIG_MAP_NAME.into(),
        type_: None,
        literals: plan.literals.iter().map(|(k, v)| literal(k, v)).collect(),
        envs: Vec::new(),
    }];
    k.secret_generator = vec![match plan.settings.secret {
        SecretSource::Literals(pairs) => Generator {
            name: SECRET_NAME.into(),
            type_: Some(objects::SECRET_TYPE.into()),
            literals: pairs.iter().map(|(k, v)| literal(k, v)).collect(),
            envs: Vec::new(),
        },
        SecretSource::EnvFile(file) => Generator {
            name: SECRET_NAME.into(),
            type_: Some(objects::SECRET_TYPE.into()),
            literals: Vec::new(),
            envs: vec![file.into()],
        },
    }];
    k.patches = vec![Patch {
        path: SERVICE_PATCH.into(),
        target: Some(Target {
            kind: "Service".into(),
            name: APP_NAME.into(),
        }),
    }];
    if plan.settings.hardened {
        k.patches.push(Patch {
            path: DEPLOYMENT_PATCH.into(),
            target: Some(Target {
                kind: "Deployment".into(),
                name: APP_NAME.into(),
            }),
        });
    }
    k
}

/// The header command for this plan's files.
fn regenerate(plan: &Plan) -> &'static str {
    if plan.overridden {
        REGENERATE_WITH_OVERRIDES
    } else {
        REGENERATE
    }
}

/// The text of an overlay's kustomization.yaml (what `manifest-gen --env <env>` prints).
pub fn overlay_kustomization_text(plan: &Plan, base: &str) -> Result<String> {
    yaml_file(&overlay_kustomization(plan, base), regenerate(plan))
}

/// Every file of an overlay directory, by file name.
pub fn overlay_files(plan: &Plan, base: &str) -> Result<Files> {
    let regenerate = regenerate(plan);
    let mut files = Files::new();
    files.insert(
        "kustomization.yaml".into(),
        overlay_kustomization_text(plan, base)?,
    );
    files.insert(
        "namespace.yaml".into(),
        yaml_file(&objects::namespace(plan), regenerate)?,
    );
    let node_port = vec![JsonPatchOp {
        op: "add".into(),
        path: "/spec/ports/0/nodePort".into(),
        value: plan.settings.node_port.into(),
    }];
    files.insert(SERVICE_PATCH.into(), yaml_file(&node_port, regenerate)?);
    if plan.settings.hardened {
        let topology = vec![JsonPatchOp {
            op: "add".into(),
            path: "/spec/template/spec/topologySpreadConstraints".into(),
            value: serde_json::to_value(objects::topology_spread(plan))?,
        }];
        files.insert(DEPLOYMENT_PATCH.into(), yaml_file(&topology, regenerate)?);
        files.insert(
            "poddisruptionbudget.yaml".into(),
            yaml_file(&objects::pod_disruption_budget(plan), regenerate)?,
        );
    }
    files.insert(
        "networkpolicy.yaml".into(),
        yaml_file(&objects::network_policy(plan), regenerate)?,
    );
    if let Some(hpa) = objects::horizontal_pod_autoscaler(plan) {
        files.insert(
            "horizontalpodautoscaler.yaml".into(),
            yaml_file(&hpa, regenerate)?,
        );
    }
    if let SecretSource::EnvFile(file) = plan.settings.secret {
        files.insert(
            format!("{file}.example").into(),
            format!(
                "{}# Copy to {file} (git-ignored) with a real random key, e.g.\n#   {}\n# Keys: {}.\n{}\n",
                header(regenerate),
                crate::secret_env::CREATE_HINT,
                objects::secret_keys()
                    .collect::<Vec<_>>()
                    .join(", "),
                objects::secret_keys()
                    .map(|k| format!("{k}=replace-with-a-random-token"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        );
    }
    Ok(files)
}

/// The whole committed tree; every environment is validated first.
pub fn tree() -> Result<Files> {
    let mut files = Files::new();
    for (name, text) in base_files()? {
        files.insert(Path::new("base").join(name), text);
    }
    for env in Env::ALL {
        let plan = Plan::committed(env)?;
        crate::validate::validate(&objects::render(
            &plan,
            &objects::placeholder_secret_data(&plan),
        ))?;
        for (name, text) in overlay_files(&plan, BASE_FROM_OVERLAY)? {
            files.insert(Path::new("overlays").join(env.name()).join(name), text);
        }
    }
    Ok(files)
}

/// Directories whose files are all generated (others, e.g. the operator's secret.env, are
/// left alone).
fn generated_dirs(files: &Files) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = files
        .keys()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.dedup();
    dirs
}

/// Whether a file in a generated directory is ours to manage (the operator's secret is not).
fn is_managed_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".example")
}

/// Writes `files` under `root`. Every file is first written in full to a temporary file in
/// its directory; only then are they renamed into place, so an error leaves the old tree.
/// With `remove_stale`, generated files that are no longer produced are removed.
pub fn write(root: &Path, files: &Files, remove_stale: bool) -> Result<()> {
    let mut staged = Vec::new();
    for (relative, text) in files {
        let path = root.join(relative);
        let dir = path.parent().unwrap_or(root);
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        // 0666 before the umask, as a plain write creates files (tempfile's own 0600 would
        // make the tree unreadable to others).
        let mut temp = tempfile::Builder::new()
            .prefix(".manifest-gen-")
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        temp.write_all(text.as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        staged.push((temp, path));
    }
    for (temp, path) in staged {
        temp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let stale = if remove_stale {
        stale_files(root, files)?
    } else {
        Vec::new()
    };
    for stale in stale {
        std::fs::remove_file(&stale)
            .with_context(|| format!("cannot remove stale file {}", stale.display()))?;
    }
    Ok(())
}

fn stale_files(root: &Path, files: &Files) -> Result<Vec<PathBuf>> {
    let mut stale = Vec::new();
    for dir in generated_dirs(files) {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_managed_name(&name) && !files.contains_key(&dir.join(&name)) {
                stale.push(root.join(&dir).join(name));
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// Compares the tree under `root` with `files`; returns a unified diff, empty when current.
pub fn check(root: &Path, files: &Files) -> Result<String> {
    let mut report = String::new();
    for (relative, expected) in files {
        let path = root.join(relative);
        let actual = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if actual != *expected {
            let name = relative.display().to_string();
            report.push_str(
                &similar::TextDiff::from_lines(&actual, expected)
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("a/{name} (on disk)"),
                        &format!("b/{name} (generated)"),
                    )
                    .to_string(),
            );
        }
    }
    for stale in stale_files(root, files)? {
        report.push_str(&format!(
            "unexpected file {} (not generated; `{REGENERATE}` removes it)\n",
            stale.display()
        ));
    }
    Ok(report)
}

//! The generated `k8s/` tree (an output): its files in memory, writing them atomically,
//! checking for drift. The overlay's files come only from a [`CheckedPlan`].
//!
//! ```text
//! k8s/base/kustomization.yaml                 namespace, deployment, service, networkpolicy
//! k8s/base/{namespace,deployment,service,networkpolicy}.yaml
//! k8s/components/hardening/kustomization.yaml a Component: PDB, HPA, topology spread patch
//! k8s/components/hardening/{poddisruptionbudget,horizontalpodautoscaler}.yaml
//! k8s/overlays/<name>/kustomization.yaml      one file per overlay, patches inline
//! k8s/overlays/prod/secret.env.example        (the operator copies it to the git-ignored secret.env)
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::checks::{self, CheckedPlan};
use crate::declaration::{Component, Overlays, SecretSource};
use crate::objects::{self, Refs};
use crate::overrides::ImageRef;
use crate::plan::Plan;
use crate::yaml::{header, to_yaml};

/// The command the header of every committed file names.
pub const REGENERATE: &str = "make manifests";

/// Generated files by path relative to the tree's root, in a stable order.
pub type Files = BTreeMap<PathBuf, String>;

fn yaml_file<T: Serialize>(value: &T, regenerate: &str) -> Result<String> {
    Ok(format!("{}{}", header(regenerate), to_yaml(value)?))
}

/// The base: one object per file and a kustomization listing them. The Namespace is named
/// after the app; each overlay's `namespace:` renames it.
pub fn base_files(regenerate: &str) -> Result<Files> {
    let image = ImageRef::from_image_env().map_err(anyhow::Error::msg)?;
    let [namespace, deployment, service, network_policy] = objects::BASE_RESOURCES;
    Ok(Files::from([
        (
            "kustomization.yaml".into(),
            yaml_file(&objects::base_kustomization(), regenerate)?,
        ),
        (
            namespace.into(),
            yaml_file(&objects::base_namespace(), regenerate)?,
        ),
        (
            deployment.into(),
            yaml_file(&objects::base_deployment(&image), regenerate)?,
        ),
        (
            service.into(),
            yaml_file(&objects::base_service(), regenerate)?,
        ),
        (
            network_policy.into(),
            yaml_file(&objects::base_network_policy(), regenerate)?,
        ),
    ]))
}

/// A Component's directory: its kustomization (patches inline) and one file per object.
pub fn component_files(component: Component, regenerate: &str) -> Result<Files> {
    let mut files = Files::from([(
        "kustomization.yaml".into(),
        yaml_file(&objects::component_kustomization(component)?, regenerate)?,
    )]);
    match component {
        Component::Hardening => {
            let [pdb, hpa] = objects::HARDENING_RESOURCES;
            files.insert(
                pdb.into(),
                yaml_file(&objects::pod_disruption_budget(), regenerate)?,
            );
            if let Some(scaling) = component.autoscaling() {
                files.insert(
                    hpa.into(),
                    yaml_file(&objects::horizontal_pod_autoscaler(scaling), regenerate)?,
                );
            }
        }
    }
    Ok(files)
}

/// The text of an overlay's kustomization.yaml (what `manifest-gen --env <name>` prints).
pub fn overlay_kustomization_text(
    checked: &CheckedPlan,
    refs: &Refs,
    regenerate: &str,
) -> Result<String> {
    yaml_file(
        &objects::overlay_kustomization(checked.plan(), refs)?,
        regenerate,
    )
}

/// The command that creates a random Secret file at `path`, as the docs and errors print it
/// (the umask keeps the file readable by its owner only).
pub fn create_hint(path: &Path) -> String {
    format!(
        "(umask 077; printf 'API_KEY=%s\\n' \"$(openssl rand -hex 32)\" > {})",
        crate::cmdline::shell_word(&path.display().to_string())
    )
}

/// Every file of an overlay directory, by file name: the kustomization, and for an overlay
/// whose Secret comes from an env file, an example of that file. `dir` is the directory as
/// the user names it (for the example's command).
pub fn overlay_files(
    checked: &CheckedPlan,
    refs: &Refs,
    regenerate: &str,
    dir: &Path,
) -> Result<Files> {
    let mut files = Files::new();
    files.insert(
        "kustomization.yaml".into(),
        overlay_kustomization_text(checked, refs, regenerate)?,
    );
    if let SecretSource::EnvFile(file) = &checked.plan().overlay.secret {
        let keys: Vec<&str> = objects::secret_keys().collect();
        files.insert(
            format!("{file}.example").into(),
            format!(
                "{}# Copy to {file} (git-ignored) with a real random key, e.g.\n#   {}\n# Keys: {}.\n{}\n",
                header(regenerate),
                create_hint(&dir.join(file)),
                keys.join(", "),
                keys.iter()
                    .map(|k| format!("{k}=replace-with-a-random-token"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        );
    }
    Ok(files)
}

/// The tree that holds one overlay, `checked`, at `overlays/<name>/`: the base, the overlay's
/// components and its files (what `render` hands to kustomize).
pub fn overlay_tree(checked: &CheckedPlan, regenerate: &str) -> Result<Files> {
    let mut files = Files::new();
    for (name, text) in base_files(regenerate)? {
        files.insert(Path::new("base").join(name), text);
    }
    for component in &checked.plan().overlay.components {
        for (name, text) in component_files(*component, regenerate)? {
            files.insert(
                Path::new("components").join(component.name()).join(name),
                text,
            );
        }
    }
    let dir = Path::new("overlays").join(&checked.plan().overlay.name);
    for (name, text) in overlay_files(checked, &Refs::committed(), regenerate, &dir)? {
        files.insert(dir.join(name), text);
    }
    Ok(files)
}

/// The whole tree of `overlays` (the same wherever it is written: the commands in its files
/// name `k8s/`, relative to the repository); every overlay's plan is checked first.
pub fn tree(overlays: &Overlays, regenerate: &str) -> Result<Files> {
    let mut files = Files::new();
    for (name, text) in base_files(regenerate)? {
        files.insert(Path::new("base").join(name), text);
    }
    for component in overlays.components() {
        for (name, text) in component_files(component, regenerate)? {
            files.insert(
                Path::new("components").join(component.name()).join(name),
                text,
            );
        }
    }
    for overlay in &overlays.list {
        let checked = checks::check(Plan::committed(overlay)?)?;
        let dir = Path::new("overlays").join(&overlay.name);
        for (name, text) in overlay_files(
            &checked,
            &Refs::committed(),
            regenerate,
            &Path::new("k8s").join(&dir),
        )? {
            files.insert(dir.join(name), text);
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
    // A directory in a file's place would fail its rename after others were renamed; a
    // symlink is replaced by the rename itself, so nothing is written where it points.
    for (_, path) in &staged {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            anyhow::bail!(
                "cannot write {}: it is a directory, expected a file or nothing",
                path.display()
            );
        }
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
        let actual = match crate::input::read(
            "the generated file",
            &path,
            crate::input::MAX_TREE_FILE_BYTES,
        ) {
            Ok(text) => text,
            Err(e) if e.is_missing() => String::new(),
            Err(e) => return Err(e.into()),
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

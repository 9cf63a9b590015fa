//! `manifest-gen render` (an output): the final objects of an overlay as `kubectl kustomize`
//! renders them, from a tree manifest-gen writes into a private temporary directory (mode
//! 0700, removed afterwards). Nothing of kustomize is done here: the overrides are fields of the
//! written overlay, and the operator's Secret file is copied beside it (mode 0600) for
//! kustomize to read.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize as _;

use crate::checks::{CheckedPlan, secret_data};
use crate::declaration::SecretSource;
use crate::input::{MAX_SECRET_ENV_BYTES, read};
use crate::tree;

/// The kubectl that renders: `KUBECTL` (a command and its arguments, split on blanks, as the
/// deploy scripts take it), else `kubectl`.
fn kubectl() -> (String, Vec<String>) {
    let words = std::env::var("KUBECTL").unwrap_or_default();
    let mut words = words.split_whitespace().map(str::to_string);
    let program = words.next().unwrap_or_else(|| "kubectl".to_string());
    (program, words.collect())
}

/// `kubectl kustomize DIR`.
fn kustomize(dir: &Path) -> Result<Output> {
    let (program, args) = kubectl();
    Command::new(&program)
        .args(args)
        .arg("kustomize")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "cannot run {program}: render runs `kubectl kustomize` (kubectl 1.27 or later; KUBECTL names another); install it with `make install-k8s_env`"
            )
        })
}

/// kubectl's error output, trimmed, for a message.
fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Writes `bytes` as a new file at `path` readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The final objects of `checked`'s overlay, as `kubectl kustomize` prints them. An overlay
/// whose Secret comes from a file reads it from `secret_file`, by default
/// `<root>/overlays/<name>/<file>`; its Secret, as kustomize made it, is checked by
/// [`secret_data`] before anything is printed.
pub fn render(checked: &CheckedPlan, root: &Path, secret_file: Option<&Path>) -> Result<String> {
    let overlay = &checked.plan().overlay;
    let tmp = tempfile::Builder::new()
        .prefix("manifest-gen-render-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    tree::write(
        tmp.path(),
        &tree::overlay_tree(checked, "manifest-gen render")?,
        false,
    )?;
    let dir = tmp.path().join("overlays").join(&overlay.name);
    let SecretSource::EnvFile(file) = &overlay.secret else {
        let out = kustomize(&dir)?;
        if !out.status.success() {
            bail!(
                "kubectl kustomize failed on the {overlay} overlay: {}",
                stderr_of(&out)
            );
        }
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    };

    let default = root.join("overlays").join(&overlay.name).join(file);
    let secret_file = secret_file.unwrap_or(&default);
    let origin = format!("the Secret file {}", secret_file.display());
    let text = match read("the Secret file", secret_file, MAX_SECRET_ENV_BYTES) {
        Ok(text) => text,
        Err(err) if err.is_missing() => {
            let hint = format!(
                "{origin} is missing (it is operator-provided and git-ignored); create it with: {}",
                tree::create_hint(secret_file)
            );
            return Err(anyhow::Error::new(err).context(hint));
        }
        Err(err) => return Err(err.into()),
    };
    write_private(&dir.join(file), text.as_bytes())?;
    let out = kustomize(&dir)?;
    if !out.status.success() {
        // kustomize's message may quote the file's values (a key it cannot use makes it print
        // the whole Secret): it is shown only when the same overlay fails without them.
        let placeholder: String = crate::objects::secret_keys()
            .map(|k| format!("{k}=placeholder\n"))
            .collect();
        std::fs::remove_file(dir.join(file))
            .with_context(|| format!("cannot replace {}", dir.join(file).display()))?;
        write_private(&dir.join(file), placeholder.as_bytes())?;
        let again = kustomize(&dir)?;
        if !again.status.success() {
            bail!(
                "kubectl kustomize failed on the {overlay} overlay: {}",
                stderr_of(&again)
            );
        }
        bail!(
            "kubectl kustomize refused {origin} (its message is not shown: it can quote the file's values); expected one KEY=VALUE a line, each key once, an environment variable name that a YAML 1.1 reader does not take for a boolean, null, number or date, in UTF-8"
        );
    }
    let stream = String::from_utf8_lossy(&out.stdout).into_owned();
    secret_data(
        &rendered_secret(&stream)?,
        overlay.environment,
        &format!("{origin} (as kustomize read it)"),
    )?;
    Ok(stream)
}

/// The data of the one Secret in a YAML stream.
fn rendered_secret(stream: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    for document in yaml_serde::Deserializer::from_str(stream) {
        let mut value = serde_json::Value::deserialize(document)
            .context("kubectl kustomize printed a document that is not YAML")?;
        if value["kind"] == "Secret" {
            // kustomize cuts long base64 values into lines, which the API server's decoder
            // (and not k8s-openapi's) skips.
            for encoded in value["data"]
                .as_object_mut()
                .into_iter()
                .flat_map(|d| d.values_mut())
            {
                if let Some(text) = encoded.as_str() {
                    *encoded = text.replace('\n', "").into();
                }
            }
            let secret: Secret = serde_json::from_value(value)
                .context("kubectl kustomize printed a Secret that is not one")?;
            return Ok(secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect());
        }
    }
    bail!("kubectl kustomize printed no Secret")
}

//! Getting the final objects of an environment, the way a cluster would receive them.
//!
//! The committed `k8s/` tree is copied into a temporary directory (an overlay's git-ignored
//! `secret.env`, where it ships a `secret.env.example`, is generated there, never in the real
//! tree), rendered with `kubectl kustomize`
//! (or `manifest-gen render` when kubectl is absent outside CI), and parsed with `yaml_serde`
//! into k8s-openapi types.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service};
use serde::Deserialize;

/// Where the harness finds the tools and the tree it renders.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Repository root (holds `k8s/`).
    pub repo: PathBuf,
    /// The release `hello-k8s` binary under test.
    pub binary: PathBuf,
    /// The `manifest-gen` binary (fallback renderer).
    pub manifest_gen: PathBuf,
    /// `kubectl` or `manifest-gen`: which renderer to use.
    pub renderer: Renderer,
}

/// The program that turns the overlay into final objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    Kubectl,
    ManifestGen,
}

impl Renderer {
    /// kubectl when it runs; otherwise manifest-gen, loudly, and never under CI=true.
    pub fn detect(forced: Option<&str>) -> Result<Self> {
        match forced {
            Some("kubectl") => return Ok(Renderer::Kubectl),
            Some("manifest-gen") => return Ok(Renderer::ManifestGen),
            Some(other) => bail!("unknown renderer {other:?}; expected kubectl or manifest-gen"),
            None => {}
        }
        let kubectl_runs = Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| o.status.success());
        if kubectl_runs {
            return Ok(Renderer::Kubectl);
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            bail!(
                "kubectl is not installed (or does not run), and CI=true requires it: the e2e suite \
                 must test what `kubectl kustomize` produces; install kubectl (it bundles kustomize)"
            );
        }
        eprintln!(
            "WARNING: kubectl not found: rendering with `manifest-gen render` instead of \
             `kubectl kustomize` (this would FAIL under CI=true)"
        );
        Ok(Renderer::ManifestGen)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Renderer::Kubectl => "kubectl kustomize",
            Renderer::ManifestGen => "manifest-gen render",
        }
    }
}

/// The final objects of one environment.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub env: String,
    pub deployment: Deployment,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    pub services: Vec<Service>,
    /// `Kind/name` of every object, for the report.
    pub objects: Vec<String>,
    /// The API_KEY the harness generated for this render (prod), or None (dev's own fake key).
    pub generated_api_key: Option<String>,
}

impl Rendered {
    /// The Deployment's application container (the one named after the app, else the first).
    pub fn container(&self) -> Result<&Container> {
        let containers = &self.pod_spec()?.containers;
        containers
            .iter()
            .find(|c| c.name == contract::APP_NAME)
            .or_else(|| containers.first())
            .ok_or_else(|| anyhow!("Deployment has no containers"))
    }

    pub fn container_mut(&mut self) -> Result<&mut Container> {
        let containers = &mut self
            .deployment
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .ok_or_else(|| anyhow!("Deployment has no spec.template.spec"))?
            .containers;
        let index = containers
            .iter()
            .position(|c| c.name == contract::APP_NAME)
            .unwrap_or(0);
        containers
            .get_mut(index)
            .ok_or_else(|| anyhow!("Deployment has no containers"))
    }

    pub fn pod_spec(&self) -> Result<&k8s_openapi::api::core::v1::PodSpec> {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .ok_or_else(|| anyhow!("Deployment has no spec.template.spec"))
    }

    pub fn deployment_name(&self) -> String {
        self.deployment
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| contract::APP_NAME.to_string())
    }

    pub fn namespace(&self) -> String {
        self.deployment
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string())
    }

    pub fn replicas(&self) -> i32 {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
    }
}

/// The overlays the generator declares (`manifest-gen overlays`, one name a line): e2e runs
/// every one of them, so a new overlay needs no edit here.
pub fn overlays(tools: &Tools) -> Result<Vec<String>> {
    let output = Command::new(&tools.manifest_gen)
        .arg("overlays")
        .current_dir(&tools.repo)
        .output()
        .with_context(|| format!("running {} overlays", tools.manifest_gen.display()))?;
    if !output.status.success() {
        bail!(
            "`{} overlays` failed ({}): {}; e2e takes its environments from the generator",
            tools.manifest_gen.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let names: Vec<String> = String::from_utf8(output.stdout)
        .context("`manifest-gen overlays` printed non-UTF-8")?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        bail!("`manifest-gen overlays` declared no overlay");
    }
    Ok(names)
}

/// Renders `env` from a temporary copy of `repo/k8s`, with a fresh secret file for prod.
pub fn render(tools: &Tools, env: &str) -> Result<Rendered> {
    let tmp = tempfile::Builder::new()
        .prefix("e2e-k8s-")
        .tempdir()
        .context("creating a temporary directory")?;
    let k8s = tools.repo.join("k8s");
    let copy = tmp.path().join("k8s");
    copy_tree(&k8s, &copy).with_context(|| format!("copying {}", k8s.display()))?;

    // prod's Secret comes from an operator-provided, git-ignored file: the harness writes a
    // unique one into its copy (and uses it as the canary), never into the real tree.
    let mut generated_api_key = None;
    let secret_file = copy.join("overlays").join(env).join("secret.env");
    // An overlay that ships a secret.env.example expects the operator's secret.env.
    if copy
        .join("overlays")
        .join(env)
        .join("secret.env.example")
        .exists()
    {
        let key = format!("e2e-canary-{}", random_hex(16)?);
        std::fs::write(&secret_file, format!("API_KEY={key}\n"))
            .with_context(|| format!("writing {}", secret_file.display()))?;
        generated_api_key = Some(key);
    }

    let output = match tools.renderer {
        Renderer::Kubectl => Command::new("kubectl")
            .arg("kustomize")
            .arg(copy.join("overlays").join(env))
            .output()
            .context("running kubectl kustomize")?,
        Renderer::ManifestGen => {
            let mut cmd = Command::new(&tools.manifest_gen);
            cmd.args(["render", "--env", env]);
            if secret_file.exists() {
                cmd.arg("--secret-env-file").arg(&secret_file);
            }
            cmd.current_dir(tmp.path())
                .output()
                .with_context(|| format!("running {}", tools.manifest_gen.display()))?
        }
    };
    if !output.status.success() {
        bail!(
            "{} for {env} failed ({}): {}",
            tools.renderer.describe(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8(output.stdout).context("rendered YAML is not UTF-8")?;
    let mut rendered = parse(env, &text)?;
    rendered.generated_api_key = generated_api_key;
    Ok(rendered)
}

/// Parses a YAML stream of Kubernetes objects.
pub fn parse(env: &str, text: &str) -> Result<Rendered> {
    let mut deployments = Vec::new();
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    let mut services = Vec::new();
    let mut objects = Vec::new();
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = yaml_serde::Value::deserialize(document)
            .with_context(|| format!("parsing YAML document {index}"))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| anyhow!("YAML document {index} has no kind"))?
            .to_string();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_string();
        objects.push(format!("{kind}/{name}"));
        let context = || format!("{kind}/{name} does not parse as a Kubernetes {kind}");
        match kind.as_str() {
            "Deployment" => {
                deployments.push(yaml_serde::from_value::<Deployment>(value).with_context(context)?)
            }
            "ConfigMap" => {
                config_maps.push(yaml_serde::from_value::<ConfigMap>(value).with_context(context)?)
            }
            "Secret" => {
                secrets.push(yaml_serde::from_value::<Secret>(value).with_context(context)?)
            }
            "Service" => {
                services.push(yaml_serde::from_value::<Service>(value).with_context(context)?)
            }
            _ => {}
        }
    }
    if deployments.len() != 1 {
        bail!(
            "expected exactly one Deployment in the {env} objects, found {}",
            deployments.len()
        );
    }
    let deployment = deployments.remove(0);
    Ok(Rendered {
        env: env.to_string(),
        deployment,
        config_maps,
        secrets,
        services,
        objects,
        generated_api_key: None,
    })
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness available: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

//! The container's environment and command line, built the way the kubelet builds them.
//!
//! Mirrors `makeEnvironmentVariables` in the kubelet: `envFrom` first (with prefixes), then
//! `env` in order with `$(VAR)` expansion against what is already defined, `configMapKeyRef`
//! and `secretKeyRef` looked up in the rendered ConfigMaps and Secrets by their final
//! (hash-suffixed) names, downward-API `fieldRef` and `resourceFieldRef` from a made-up pod,
//! then the service-link variables of the namespace's Services. A reference that does not
//! resolve and is not `optional: true` is an error, as it is a `CreateContainerConfigError`
//! in a cluster.
//!
//! Volumes: `secret`, `configMap` and `emptyDir` volumes the container mounts are materialized
//! in a private temporary directory per mount (files with the volume's `defaultMode`). The
//! harness has no image filesystem to mount them into, so every environment value and argument
//! that names a path under a `mountPath` is rewritten to that directory, and the rewrite is
//! reported. A path that does not fall under a mount (e.g. a mistyped `API_KEY_FILE`) is left
//! alone and so fails as it would in the cluster.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Container, EnvVar, KeyToPath, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::manifests::{Rendered, random_hex};

/// The made-up identity of one simulated pod (what the API server and scheduler would set).
#[derive(Debug, Clone)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub node_name: String,
    pub pod_ip: String,
    pub host_ip: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl PodIdentity {
    /// A pod of `rendered`'s Deployment: `<deployment>-<template hash>-<5 chars>`, as the
    /// ReplicaSet controller names them. `ordinal` makes the made-up IPs distinct.
    pub fn new(rendered: &Rendered, template_hash: &str, ordinal: u8) -> Result<Self> {
        let template = rendered
            .deployment
            .spec
            .as_ref()
            .map(|s| &s.template.metadata);
        let labels = template
            .and_then(|m| m.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let annotations = template
            .and_then(|m| m.as_ref())
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        let service_account = rendered
            .pod_spec()?
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        Ok(PodIdentity {
            name: format!(
                "{}-{template_hash}-{}",
                rendered.deployment_name(),
                &random_hex(3)?[..5]
            ),
            namespace: rendered.namespace(),
            uid: format!(
                "{}-{}-{}-{}-{}",
                random_hex(4)?,
                random_hex(2)?,
                random_hex(2)?,
                random_hex(2)?,
                random_hex(6)?
            ),
            node_name: "e2e-node-1".into(),
            // Strings only: no traffic ever goes to these addresses.
            pod_ip: format!("10.244.0.{}", 10 + u16::from(ordinal)),
            host_ip: "192.168.49.2".into(),
            service_account,
            labels,
            annotations,
        })
    }
}

/// What the kubelet hands the container runtime: argv, environment and mounted volumes.
#[derive(Debug, Clone)]
pub struct ContainerLaunch {
    /// argv after `$(VAR)` expansion; argv[0] is the image's entrypoint or `command[0]`.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The container's volume mounts, materialized on the host (removed with the last clone).
    pub volumes: Vec<MountedVolume>,
    /// How paths under a mount were rewritten to the host directories, for the run's output.
    pub rewrites: Vec<String>,
}

/// One volume mount of the container, materialized in a host directory.
#[derive(Debug, Clone)]
pub struct MountedVolume {
    pub name: String,
    pub mount_path: String,
    pub dir: Arc<tempfile::TempDir>,
}

impl ContainerLaunch {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.env.push((key.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }
}

/// Builds argv and environment of `container` for `pod`. `image_entrypoint` is what the image
/// runs when the container sets no `command` (the Dockerfile's ENTRYPOINT).
pub fn launch(
    rendered: &Rendered,
    container: &Container,
    pod: &PodIdentity,
    image_entrypoint: &[String],
) -> Result<ContainerLaunch> {
    let mut defined: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut define = |defined: &mut BTreeMap<String, String>, key: String, value: String| {
        if !order.contains(&key) {
            order.push(key.clone());
        }
        defined.insert(key, value);
    };
    let service_env = service_link_env(rendered, pod)?;

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(cm_ref) = &source.config_map_ref {
            let name = &cm_ref.name;
            match rendered
                .config_maps
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
            {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        define(&mut defined, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if cm_ref.optional == Some(true) => {}
                None => bail!(
                    "container {:?} envFrom configMapRef {name:?}: no such ConfigMap among the \
                     rendered objects (the kubelet would refuse to start the container)",
                    container.name
                ),
            }
        }
        if let Some(secret_ref) = &source.secret_ref {
            let name = &secret_ref.name;
            match rendered
                .secrets
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
            {
                Some(secret) => {
                    for (k, v) in secret_entries(secret)? {
                        define(&mut defined, format!("{prefix}{k}"), v);
                    }
                }
                None if secret_ref.optional == Some(true) => {}
                None => bail!(
                    "container {:?} envFrom secretRef {name:?}: no such Secret among the \
                     rendered objects",
                    container.name
                ),
            }
        }
    }

    for var in container.env.iter().flatten() {
        if let Some(value) = env_var_value(rendered, container, pod, var, &defined, &service_env)? {
            define(&mut defined, var.name.clone(), value);
        }
    }

    // Service links (enableServiceLinks defaults to true) and the API server's variables are
    // added for names the container did not set.
    let links = rendered.pod_spec()?.enable_service_links.unwrap_or(true);
    for (k, v) in service_env {
        let is_master = k.starts_with("KUBERNETES_");
        if (links || is_master) && !defined.contains_key(&k) {
            define(&mut defined, k, v);
        }
    }
    // The runtime's own additions: HOSTNAME is the pod's hostname, PATH the image default.
    for (k, v) in [
        ("HOSTNAME", pod.name.clone()),
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
    ] {
        if !defined.contains_key(k) {
            define(&mut defined, k.to_string(), v);
        }
    }

    let env: Vec<(String, String)> = order
        .iter()
        .filter_map(|k| defined.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    let expand_all = |items: &[String]| -> Vec<String> {
        items.iter().map(|s| expand(s, &defined, &[])).collect()
    };
    // command replaces the ENTRYPOINT (and drops the image CMD); args replace CMD.
    let mut argv = match &container.command {
        Some(command) if !command.is_empty() => expand_all(command),
        _ => image_entrypoint.to_vec(),
    };
    if let Some(args) = &container.args {
        argv.extend(expand_all(args));
    }
    if argv.is_empty() {
        bail!(
            "container {:?} has no command and the image no entrypoint",
            container.name
        );
    }
    let volumes = mount_volumes(rendered, container)?;
    let mut launch = ContainerLaunch {
        argv,
        env,
        volumes,
        rewrites: Vec::new(),
    };
    launch.rewrite_mount_paths();
    Ok(launch)
}

impl ContainerLaunch {
    /// Points every env value and argument under a `mountPath` at the volume's host directory.
    fn rewrite_mount_paths(&mut self) {
        let volumes = &self.volumes;
        let rewrites = &mut self.rewrites;
        let mut rewrite = |what: &str, value: &mut String| {
            for volume in volumes {
                let rest = match value.strip_prefix(volume.mount_path.trim_end_matches('/')) {
                    Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_string(),
                    _ => continue,
                };
                let host = format!("{}{rest}", volume.dir.path().display());
                rewrites.push(format!(
                    "{what} {value:?} -> {host:?} (volume {:?} mounted at {})",
                    volume.name, volume.mount_path
                ));
                *value = host;
                return;
            }
        };
        for (k, v) in &mut self.env {
            rewrite(k, v);
        }
        for (i, arg) in self.argv.iter_mut().enumerate().skip(1) {
            rewrite(&format!("argv[{i}]"), arg);
        }
    }
}

/// Materializes the container's volume mounts as the kubelet's volume manager would.
fn mount_volumes(rendered: &Rendered, container: &Container) -> Result<Vec<MountedVolume>> {
    let pod = rendered.pod_spec()?;
    let mut mounted = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let what = format!(
            "container {:?} volumeMount {:?} at {}",
            container.name, mount.name, mount.mount_path
        );
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| anyhow!("{what}: the pod has no volume of that name"))?;
        let dir = tempfile::Builder::new()
            .prefix("e2e-volume-")
            .tempdir()
            .context("creating a volume directory")?;
        write_volume(rendered, volume, dir.path()).with_context(|| what.clone())?;
        mounted.push(MountedVolume {
            name: mount.name.clone(),
            mount_path: mount.mount_path.clone(),
            dir: Arc::new(dir),
        });
    }
    Ok(mounted)
}

/// Writes a volume's files into `dir`; a missing Secret or ConfigMap that is not optional is
/// an error (the pod would stay in ContainerCreating).
fn write_volume(rendered: &Rendered, volume: &Volume, dir: &Path) -> Result<()> {
    let (entries, items, mode) = if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        let Some(secret) = rendered
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
        else {
            if source.optional == Some(true) {
                return Ok(());
            }
            bail!(
                "secret volume {:?} names Secret {name:?}, which is not among the rendered \
                 objects ({}); the kubelet would never start the container",
                volume.name,
                names(rendered.secrets.iter().map(|s| &s.metadata.name))
            );
        };
        (secret_entries(secret)?, &source.items, source.default_mode)
    } else if let Some(source) = &volume.config_map {
        let name = &source.name;
        let Some(cm) = rendered
            .config_maps
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
        else {
            if source.optional == Some(true) {
                return Ok(());
            }
            bail!(
                "configMap volume {:?} names ConfigMap {name:?}, which is not among the \
                 rendered objects",
                volume.name
            );
        };
        let entries = cm.data.clone().unwrap_or_default().into_iter().collect();
        (entries, &source.items, source.default_mode)
    } else if volume.empty_dir.is_some() {
        return Ok(());
    } else {
        bail!(
            "volume {:?}: only secret, configMap and emptyDir volumes are simulated",
            volume.name
        );
    };
    let files = project(&volume.name, entries, items.as_deref())?;
    let mode = u32::try_from(mode.unwrap_or(0o644)).unwrap_or(0o644);
    for (path, contents) in files {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .and_then(|mut f| f.write_all(contents.as_bytes()))
            .with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

/// The files of a volume: every key, or only `items` (each of which must exist).
fn project(
    volume: &str,
    entries: Vec<(String, String)>,
    items: Option<&[KeyToPath]>,
) -> Result<Vec<(String, String)>> {
    let Some(items) = items else {
        return Ok(entries);
    };
    items
        .iter()
        .map(|item| {
            let value = entries
                .iter()
                .find(|(k, _)| *k == item.key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    anyhow!(
                        "volume {volume:?}: items names key {:?}, which is not there",
                        item.key
                    )
                })?;
            Ok((item.path.clone(), value))
        })
        .collect()
}

fn env_var_value(
    rendered: &Rendered,
    container: &Container,
    pod: &PodIdentity,
    var: &EnvVar,
    defined: &BTreeMap<String, String>,
    service_env: &[(String, String)],
) -> Result<Option<String>> {
    let Some(from) = &var.value_from else {
        return Ok(Some(expand(
            var.value.as_deref().unwrap_or(""),
            defined,
            service_env,
        )));
    };
    let what = format!("container {:?} env {:?}", container.name, var.name);
    if let Some(key_ref) = &from.config_map_key_ref {
        let optional = key_ref.optional == Some(true);
        let Some(cm) = rendered
            .config_maps
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(key_ref.name.as_str()))
        else {
            if optional {
                return Ok(None);
            }
            bail!(
                "{what}: configMapKeyRef names ConfigMap {:?}, which is not among the rendered \
                 objects (have: {})",
                key_ref.name,
                names(rendered.config_maps.iter().map(|c| &c.metadata.name))
            );
        };
        if let Some(v) = cm.data.as_ref().and_then(|d| d.get(&key_ref.key)) {
            return Ok(Some(v.clone()));
        }
        if let Some(v) = cm.binary_data.as_ref().and_then(|d| d.get(&key_ref.key)) {
            return Ok(Some(String::from_utf8_lossy(&v.0).into_owned()));
        }
        if optional {
            return Ok(None);
        }
        bail!(
            "{what}: configMapKeyRef key {:?} is not in ConfigMap {:?} (keys: {})",
            key_ref.key,
            key_ref.name,
            cm.data
                .iter()
                .flatten()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(key_ref) = &from.secret_key_ref {
        let optional = key_ref.optional == Some(true);
        let Some(secret) = rendered
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(key_ref.name.as_str()))
        else {
            if optional {
                return Ok(None);
            }
            bail!(
                "{what}: secretKeyRef names Secret {:?}, which is not among the rendered objects \
                 (have: {})",
                key_ref.name,
                names(rendered.secrets.iter().map(|s| &s.metadata.name))
            );
        };
        match secret_entries(secret)?
            .into_iter()
            .find(|(k, _)| *k == key_ref.key)
        {
            Some((_, v)) => return Ok(Some(v)),
            None if optional => return Ok(None),
            None => bail!(
                "{what}: secretKeyRef key {:?} is not in Secret {:?}",
                key_ref.key,
                key_ref.name
            ),
        }
    }
    if let Some(field) = &from.field_ref {
        return field_value(pod, &field.field_path)
            .map(Some)
            .ok_or_else(|| {
                anyhow!(
                    "{what}: fieldRef {:?} is not supported by the downward API",
                    field.field_path
                )
            });
    }
    if let Some(resource) = &from.resource_field_ref {
        return resource_value(container, &resource.resource, resource.divisor.as_ref())
            .map(Some)
            .map_err(|e| anyhow!("{what}: resourceFieldRef {:?}: {e}", resource.resource));
    }
    bail!("{what}: valueFrom names no source")
}

/// A Secret's entries, `data` base64-decoded (k8s-openapi's ByteString already decoded it)
/// and `stringData` as written.
fn secret_entries(secret: &k8s_openapi::api::core::v1::Secret) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in secret.data.iter().flatten() {
        let text = String::from_utf8(v.0.clone()).map_err(|_| {
            anyhow!(
                "Secret {:?} key {k:?} is not UTF-8 text",
                secret.metadata.name.as_deref().unwrap_or("?")
            )
        })?;
        out.push((k.clone(), text));
    }
    for (k, v) in secret.string_data.iter().flatten() {
        out.push((k.clone(), v.clone()));
    }
    Ok(out)
}

fn names<'a>(it: impl Iterator<Item = &'a Option<String>>) -> String {
    it.map(|n| n.as_deref().unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The downward API's field paths (those valid in `env`).
fn field_value(pod: &PodIdentity, path: &str) -> Option<String> {
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_string)
    };
    Some(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "metadata.uid" => pod.uid.clone(),
        "spec.nodeName" => pod.node_name.clone(),
        "spec.serviceAccountName" => pod.service_account.clone(),
        "status.podIP" | "status.podIPs" => pod.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => pod.host_ip.clone(),
        _ => {
            if let Some(label) = quoted("metadata.labels") {
                return Some(pod.labels.get(&label).cloned().unwrap_or_default());
            }
            if let Some(annotation) = quoted("metadata.annotations") {
                return Some(
                    pod.annotations
                        .get(&annotation)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            return None;
        }
    })
}

/// `limits.cpu`, `requests.memory`, ... as the kubelet exposes them: rounded up to the divisor.
fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
) -> Result<String> {
    let (bucket, name) = resource
        .split_once('.')
        .ok_or_else(|| anyhow!("expected limits.<name> or requests.<name>"))?;
    let resources = container.resources.as_ref();
    let map = match bucket {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => bail!("expected limits.<name> or requests.<name>"),
    };
    let value = match map.and_then(|m| m.get(name)) {
        Some(q) => crate::quantity::parse(&q.0)?,
        // Without a limit the kubelet reports the node's allocatable: make one up.
        None if name == "cpu" => 2.0,
        None => 8.0 * 1024.0 * 1024.0 * 1024.0,
    };
    let divisor = match divisor {
        Some(q) => crate::quantity::parse(&q.0)?,
        None => 1.0,
    };
    if divisor <= 0.0 {
        bail!("divisor must be positive");
    }
    Ok(format!("{}", (value / divisor).ceil().max(1.0) as u64))
}

/// Service links: `<NAME>_SERVICE_HOST`, `<NAME>_PORT_<port>_TCP...` for every Service of the
/// namespace, and the API server's `KUBERNETES_*` (always set). Cluster IPs are made up.
fn service_link_env(rendered: &Rendered, pod: &PodIdentity) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut add = |name: &str, ip: &str, ports: &[(Option<String>, i32, String)]| {
        let base = name.to_uppercase().replace('-', "_");
        let Some((_, first, first_proto)) = ports.first() else {
            return;
        };
        out.push((format!("{base}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{base}_SERVICE_PORT"), first.to_string()));
        for (port_name, port, _) in ports {
            if let Some(port_name) = port_name {
                let suffix = port_name.to_uppercase().replace('-', "_");
                out.push((format!("{base}_SERVICE_PORT_{suffix}"), port.to_string()));
            }
        }
        out.push((
            format!("{base}_PORT"),
            format!("{}://{ip}:{first}", first_proto.to_lowercase()),
        ));
        for (_, port, proto) in ports {
            let p = format!("{base}_PORT_{port}_{}", proto.to_uppercase());
            out.push((p.clone(), format!("{}://{ip}:{port}", proto.to_lowercase())));
            out.push((format!("{p}_PROTO"), proto.to_lowercase()));
            out.push((format!("{p}_PORT"), port.to_string()));
            out.push((format!("{p}_ADDR"), ip.to_string()));
        }
    };
    add(
        "kubernetes",
        "10.96.0.1",
        &[(Some("https".into()), 443, "TCP".into())],
    );
    for (i, svc) in rendered.services.iter().enumerate() {
        let ns = svc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        if ns != pod.namespace {
            continue;
        }
        let ports: Vec<_> = svc
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .map(|p| {
                (
                    p.name.clone(),
                    p.port,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                )
            })
            .collect();
        let name = svc.metadata.name.clone().unwrap_or_default();
        add(&name, &format!("10.96.{}.{}", 100 + i, 10 + i), &ports);
    }
    Ok(out)
}

/// The kubelet's `$(VAR)` expansion: defined names are replaced, undefined ones stay as
/// written, `$$` is an escaped `$`.
pub fn expand(
    input: &str,
    defined: &BTreeMap<String, String>,
    extra: &[(String, String)],
) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match defined
                        .get(name)
                        .or_else(|| extra.iter().find(|(k, _)| k == name).map(|(_, v)| v))
                    {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_the_kubelet_rules() {
        let mut defined = BTreeMap::new();
        defined.insert("A".to_string(), "1".to_string());
        assert_eq!(expand("x$(A)y", &defined, &[]), "x1y");
        assert_eq!(expand("$(B)", &defined, &[]), "$(B)");
        assert_eq!(expand("$$(A)", &defined, &[]), "$(A)");
        assert_eq!(expand("$A $(A", &defined, &[]), "$A $(A");
    }

    const OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg-abc123, namespace: ns}
data: {PORT: "5600", GREETING_PREFIX: hi}
---
apiVersion: v1
kind: Secret
metadata: {name: sec-def456, namespace: ns}
data: {API_KEY: c2VjcmV0LXZhbHVl}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: ns}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      containers:
      - name: hello-k8s
        envFrom:
        - configMapRef: {name: cfg-abc123}
          prefix: CM_
        env:
        - {name: PORT, valueFrom: {configMapKeyRef: {name: cfg-abc123, key: PORT}}}
        - {name: API_KEY, valueFrom: {secretKeyRef: {name: sec-def456, key: API_KEY}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: URL, value: "http://$(POD_NAME):$(PORT)/$(NOPE)"}
        - {name: OPT, valueFrom: {configMapKeyRef: {name: gone, key: X, optional: true}}}
        args: ["--port=$(PORT)"]
"#;

    fn launch_of(text: &str) -> Result<ContainerLaunch> {
        let rendered = crate::manifests::parse("test", text)?;
        let pod = PodIdentity::new(&rendered, "hash", 0)?;
        launch(
            &rendered,
            rendered.container()?,
            &pod,
            &["/hello-k8s".to_string()],
        )
    }

    const MOUNTED: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: sec-def456, namespace: ns}
data: {API_KEY: c2VjcmV0LXZhbHVl}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: ns}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      volumes:
      - {name: secrets, secret: {secretName: sec-def456, defaultMode: 288}}
      containers:
      - name: hello-k8s
        volumeMounts:
        - {name: secrets, mountPath: /var/run/secrets/app, readOnly: true}
        env:
        - {name: API_KEY_FILE, value: /var/run/secrets/app/API_KEY}
        - {name: ELSEWHERE, value: /var/run/secrets/application/API_KEY}
"#;

    #[test]
    fn secret_volumes_are_files_and_paths_under_the_mount_are_rewritten() {
        use std::os::unix::fs::PermissionsExt;
        let l = launch_of(MOUNTED).expect("resolves");
        let file = l.get("API_KEY_FILE").expect("set");
        assert!(!file.starts_with("/var/run/secrets/app"), "{file}");
        assert_eq!(
            std::fs::read_to_string(file).expect("mounted"),
            "secret-value"
        );
        let mode = std::fs::metadata(file)
            .expect("mounted")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o440, "defaultMode 288 is 0440");
        assert_eq!(
            l.get("ELSEWHERE"),
            Some("/var/run/secrets/application/API_KEY"),
            "a mere prefix of another directory is not under the mount"
        );
        assert_eq!(l.rewrites.len(), 1, "{:?}", l.rewrites);
    }

    #[test]
    fn a_secret_volume_of_a_missing_secret_is_an_error() {
        let gone = MOUNTED.replace("secretName: sec-def456", "secretName: sec-gone");
        let err = launch_of(&gone).expect_err("must not resolve");
        assert!(format!("{err:#}").contains("\"sec-gone\""), "{err:#}");
    }

    #[test]
    fn env_is_built_from_refs_envfrom_fieldref_and_expansion() {
        let l = launch_of(OBJECTS).expect("resolves");
        assert_eq!(l.get("PORT"), Some("5600"));
        assert_eq!(
            l.get("API_KEY"),
            Some("secret-value"),
            "Secret data is base64-decoded"
        );
        assert_eq!(l.get("CM_GREETING_PREFIX"), Some("hi"));
        let pod = l.get("POD_NAME").expect("fieldRef");
        assert!(pod.starts_with("app-hash-"), "{pod}");
        assert_eq!(
            l.get("URL"),
            Some(format!("http://{pod}:5600/$(NOPE)").as_str())
        );
        assert_eq!(
            l.get("OPT"),
            None,
            "optional refs that do not resolve are skipped"
        );
        assert_eq!(l.argv, ["/hello-k8s", "--port=5600"]);
        assert!(l.get("HOSTNAME").is_some() && l.get("KUBERNETES_SERVICE_HOST").is_some());
    }

    #[test]
    fn a_reference_that_does_not_resolve_is_an_error() {
        let renamed = OBJECTS.replace("key: PORT}", "key: PORT_NUMBER}");
        let err = launch_of(&renamed).expect_err("must fail").to_string();
        assert!(
            err.contains("PORT_NUMBER") && err.contains("cfg-abc123"),
            "{err}"
        );
        let no_secret = OBJECTS.replace("name: sec-def456, key", "name: sec-other, key");
        assert!(launch_of(&no_secret).is_err());
    }
}

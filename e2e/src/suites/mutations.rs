//! Sensitivity proof: break one agreement at a time in the rendered objects and show that the
//! harness fails for each, while the unmutated objects pass the very same stages.
//!
//! The stages are the pod's life (env, start, probes, load, SIGTERM, exit) and a rolling update
//! of two replicas behind the Service stand-in.

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Ctx, lifecycle, rollout};
use crate::manifests::Rendered;
use crate::report::Report;

type Mutate = fn(&mut Rendered) -> Result<()>;

/// Every agreement the suite must guard, as a mutation of the final objects.
pub const MUTATIONS: &[(&str, Mutate)] = &[
    ("readiness probe path /readyz -> /ready", |r| {
        set_probe_path(r, Kind::Readiness, "/ready")
    }),
    ("liveness probe path /healthz -> /health", |r| {
        set_probe_path(r, Kind::Liveness, "/health")
    }),
    ("startup probe path -> /started", |r| {
        set_probe_path(r, Kind::Startup, "/started")
    }),
    ("containerPort named http 5600 -> 5601", |r| {
        let c = r.container_mut()?;
        let port = c
            .ports
            .iter_mut()
            .flatten()
            .find(|p| p.name.as_deref() == Some(contract::HTTP_PORT_NAME))
            .ok_or_else(|| anyhow!("no port named http"))?;
        port.container_port = 5601;
        Ok(())
    }),
    ("readiness probe port -> 5601 (by number)", |r| {
        let probe = probe_mut(r, Kind::Readiness)?;
        let get = probe
            .http_get
            .as_mut()
            .ok_or_else(|| anyhow!("not an httpGet probe"))?;
        get.port = IntOrString::Int(5601);
        Ok(())
    }),
    (
        "PORT in the ConfigMap 5600 -> 5601 (service listens elsewhere)",
        |r| set_config(r, "PORT", "5601"),
    ),
    (
        "configMapKeyRef key renamed DRAIN_DELAY_SECONDS -> DRAIN_DELAY",
        |r| rename_ref_key(r, "DRAIN_DELAY_SECONDS", "DRAIN_DELAY"),
    ),
    ("env name renamed POD_NAME -> MY_POD_NAME", |r| {
        let c = r.container_mut()?;
        let var = c
            .env
            .iter_mut()
            .flatten()
            .find(|v| v.name == "POD_NAME")
            .ok_or_else(|| anyhow!("no env POD_NAME"))?;
        var.name = "MY_POD_NAME".into();
        Ok(())
    }),
    (
        "Secret key renamed API_KEY -> APIKEY (the mounted file is missing)",
        |r| {
            let data = r
                .secrets
                .first_mut()
                .and_then(|s| s.data.as_mut())
                .ok_or_else(|| anyhow!("no Secret data"))?;
            let value = data
                .remove(contract::API_KEY_SECRET_KEY)
                .ok_or_else(|| anyhow!("the Secret has no API_KEY"))?;
            data.insert("APIKEY".into(), value);
            Ok(())
        },
    ),
    (
        "Secret volume mountPath /var/run/secrets/hello-k8s -> /etc/hello-k8s",
        |r| {
            let mount = r
                .container_mut()?
                .volume_mounts
                .iter_mut()
                .flatten()
                .find(|m| m.mount_path == contract::SECRET_MOUNT_DIR)
                .ok_or_else(|| anyhow!("no mount at {}", contract::SECRET_MOUNT_DIR))?;
            mount.mount_path = "/etc/hello-k8s".into();
            Ok(())
        },
    ),
    ("API_KEY_FILE names another file of the mount", |r| {
        set_config(r, "API_KEY_FILE", "/var/run/secrets/hello-k8s/api-key")
    }),
    (
        "terminationGracePeriodSeconds -> 1 (shorter than drain + shutdown)",
        |r| {
            r.deployment
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
                .ok_or_else(|| anyhow!("no pod spec"))?
                .termination_grace_period_seconds = Some(1);
            Ok(())
        },
    ),
    (
        "DRAIN_DELAY_SECONDS -> 0 (no time for endpoints to notice)",
        |r| set_config(r, "DRAIN_DELAY_SECONDS", "0"),
    ),
    ("Service targetPort -> 5601", |r| {
        let svc = r
            .services
            .first_mut()
            .ok_or_else(|| anyhow!("no Service"))?;
        let port = svc
            .spec
            .as_mut()
            .and_then(|s| s.ports.as_mut())
            .and_then(|p| p.first_mut())
            .ok_or_else(|| anyhow!("Service has no ports"))?;
        port.target_port = Some(IntOrString::Int(5601));
        Ok(())
    }),
    ("Service selector app.kubernetes.io/name -> other", |r| {
        let svc = r
            .services
            .first_mut()
            .ok_or_else(|| anyhow!("no Service"))?;
        let selector = svc
            .spec
            .as_mut()
            .and_then(|s| s.selector.as_mut())
            .ok_or_else(|| anyhow!("Service has no selector"))?;
        let key = selector
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| anyhow!("empty selector"))?;
        selector.insert(key, "other".into());
        Ok(())
    }),
    ("HOST in the ConfigMap 0.0.0.0 -> 127.0.0.1", |r| {
        set_config(r, "HOST", "127.0.0.1")
    }),
    (TOO_SMALL_MEMORY, |r| {
        let resources = r.container_mut()?.resources.get_or_insert_default();
        for map in [&mut resources.limits, &mut resources.requests] {
            map.get_or_insert_default()
                .insert("memory".into(), Quantity("512Ki".into()));
        }
        Ok(())
    }),
];

/// The harness's proof that it enforces limits: a pod given too little memory is OOM-killed.
const TOO_SMALL_MEMORY: &str =
    "resources.limits.memory 128Mi -> 512Ki (below the service's idle footprint)";

/// Mutations that must be caught in one particular way, not merely by some failure.
const CAUGHT_AS: &[(&str, &str)] = &[(TOO_SMALL_MEMORY, "OOMKilled")];

#[derive(Clone, Copy)]
enum Kind {
    Startup,
    Readiness,
    Liveness,
}

fn probe_mut(r: &mut Rendered, kind: Kind) -> Result<&mut Probe> {
    let c = r.container_mut()?;
    let probe = match kind {
        Kind::Startup => c.startup_probe.as_mut(),
        Kind::Readiness => c.readiness_probe.as_mut(),
        Kind::Liveness => c.liveness_probe.as_mut(),
    };
    probe.ok_or_else(|| anyhow!("the probe is not declared"))
}

fn set_probe_path(r: &mut Rendered, kind: Kind, path: &str) -> Result<()> {
    let probe = probe_mut(r, kind)?;
    let get = probe
        .http_get
        .as_mut()
        .ok_or_else(|| anyhow!("not an httpGet probe"))?;
    get.path = Some(path.into());
    Ok(())
}

/// Changes the value the container gets for `key`, wherever the manifest takes it from.
fn set_config(r: &mut Rendered, key: &str, value: &str) -> Result<()> {
    let container = r.container()?.clone();
    if let Some(var) = container.env.iter().flatten().find(|v| v.name == key) {
        if let Some(cm_ref) = var
            .value_from
            .as_ref()
            .and_then(|f| f.config_map_key_ref.as_ref())
        {
            let cm = r
                .config_maps
                .iter_mut()
                .find(|c| c.metadata.name.as_deref() == Some(cm_ref.name.as_str()))
                .ok_or_else(|| anyhow!("ConfigMap {} missing", cm_ref.name))?;
            cm.data
                .get_or_insert_default()
                .insert(cm_ref.key.clone(), value.into());
            return Ok(());
        }
        let c = r.container_mut()?;
        if let Some(v) = c.env.iter_mut().flatten().find(|v| v.name == key) {
            v.value = Some(value.into());
            v.value_from = None;
        }
        return Ok(());
    }
    for source in container.env_from.iter().flatten() {
        if let Some(cm_ref) = &source.config_map_ref
            && let Some(cm) = r
                .config_maps
                .iter_mut()
                .find(|c| c.metadata.name.as_deref() == Some(cm_ref.name.as_str()))
            && let Some(data) = cm.data.as_mut()
            && data.contains_key(key)
        {
            data.insert(key.into(), value.into());
            return Ok(());
        }
    }
    bail!("the manifest does not set {key}")
}

/// Renames the key a `configMapKeyRef`/`secretKeyRef` points at (the ConfigMap or Secret
/// keeps the old key), or, for `envFrom`, the key in the ConfigMap itself.
fn rename_ref_key(r: &mut Rendered, env_name: &str, new_key: &str) -> Result<()> {
    let c = r.container_mut()?;
    if let Some(var) = c.env.iter_mut().flatten().find(|v| v.name == env_name)
        && let Some(from) = var.value_from.as_mut()
    {
        if let Some(k) = from.config_map_key_ref.as_mut() {
            k.key = new_key.into();
            return Ok(());
        }
        if let Some(k) = from.secret_key_ref.as_mut() {
            k.key = new_key.into();
            return Ok(());
        }
    }
    for cm in &mut r.config_maps {
        if let Some(data) = cm.data.as_mut()
            && let Some(v) = data.remove(env_name)
        {
            data.insert(new_key.into(), v);
            return Ok(());
        }
    }
    bail!("no reference for {env_name}")
}

/// The stages every variant runs: the pod's life, and a 2-replica rolling update (skipped
/// when the pod could not even start or become Ready: the rollout would only wait for the
/// same failure again).
async fn stages(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    lifecycle::run(ctx, rendered).await?;
    let never_served = ctx.report.checks().iter().any(|c| {
        !c.passed
            && (c.name.contains("Ready within")
                || c.name.contains("container starts")
                || c.name.contains("resolve"))
    });
    if never_served {
        return Ok(());
    }
    let mut two = rendered.clone();
    if let Some(spec) = two.deployment.spec.as_mut() {
        spec.replicas = Some(2);
    }
    rollout::run(ctx, &two).await
}

/// Runs one variant quietly; returns the failed checks.
async fn failures(ctx: &Ctx, rendered: &Rendered) -> Vec<String> {
    let report = Arc::new(Report::new(true));
    let quiet = ctx.with_report(Arc::clone(&report));
    if let Err(e) = stages(&quiet, rendered).await {
        report.error("stage", "runs", &e);
    }
    report
        .checks()
        .into_iter()
        .filter(|c| !c.passed)
        .map(|c| format!("[{}] {}: {}", c.suite, c.name, first_line(&c.detail)))
        .collect()
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > 220 {
        format!("{}...", line.chars().take(220).collect::<String>())
    } else {
        line.to_string()
    }
}

pub async fn run(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    let suite = format!("mutations {}", rendered.env);
    let suite = suite.as_str();
    let r = &ctx.report;

    // The baseline (None) runs beside the mutations, under the same load.
    let mut variants: Vec<(Option<&str>, Rendered)> = vec![(None, rendered.clone())];
    let selected = MUTATIONS.iter().filter(|(name, _)| {
        ctx.mutation_filter
            .as_deref()
            .is_none_or(|f| name.contains(f))
    });
    for (name, mutate) in selected {
        let mut mutated = rendered.clone();
        match mutate(&mut mutated) {
            Ok(()) => variants.push((Some(*name), mutated)),
            Err(e) => r.note(format!("{suite}: {name}: not applicable ({e:#})")),
        }
    }
    let (mut detected, mut missed) = (0, 0);
    // Eight at a time: the stages mostly wait on probe periods and drain delays (the CPU is
    // idle most of the time), and each variant has its own sandboxes.
    for chunk in variants.chunks(8) {
        let outcomes = futures::future::join_all(
            chunk
                .iter()
                .map(|(name, mutated)| async move { (*name, failures(ctx, mutated).await) }),
        )
        .await;
        for (name, failed) in outcomes {
            let Some(name) = name else {
                r.check(
                    suite,
                    "baseline: the unmutated objects pass the same stages",
                    failed.is_empty(),
                    failed.join(" | "),
                );
                continue;
            };
            let must = CAUGHT_AS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| *text);
            let caught = match must {
                Some(text) => failed.iter().any(|f| f.contains(text)),
                None => !failed.is_empty(),
            };
            if caught {
                detected += 1;
            } else {
                missed += 1;
            }
            let detail = failed
                .iter()
                .take(4)
                .cloned()
                .collect::<Vec<_>>()
                .join(" | ");
            r.check(
                suite,
                &format!("mutation detected: {name}"),
                caught,
                match (caught, must) {
                    (true, _) => format!("{} failed checks, e.g. {detail}", failed.len()),
                    (false, Some(text)) if !failed.is_empty() => {
                        format!("failed, but not as {text}: {detail}")
                    }
                    (false, _) => "every check passed: the suite cannot see this break".into(),
                },
            );
        }
    }
    r.count(
        format!("{suite}: mutations detected/missed"),
        format!("{detected}/{missed}"),
    );
    Ok(())
}

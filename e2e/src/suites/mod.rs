//! The suites: each takes rendered objects, runs pods the kubelet's way, and records checks.

pub mod canary;
pub mod config;
pub mod flood;
pub mod http_faults;
pub mod lifecycle;
pub mod mutations;
pub mod rollout;
pub mod switch;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cgroup::Cgroups;
use crate::kubelet::{ContainerLaunch, PodIdentity};
use crate::manifests::{Rendered, Tools};
use crate::pod::{Pod, PodTemplate};
use crate::report::Report;
use crate::sandbox::{NetMode, Sandbox};

/// What every suite needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub tools: Tools,
    /// Where pods' resource limits are enforced.
    pub cgroups: Arc<Cgroups>,
    pub mode: NetMode,
    pub report: Arc<Report>,
    /// Delay between a pod's Ready change and the load balancer acting on it (the endpoint
    /// controller and kube-proxy's sync).
    pub propagation: Duration,
    /// Pause between two requests of one load client (bounds the rate).
    pub pace: Duration,
    /// Only the mutations whose name contains this text (all when None).
    pub mutation_filter: Option<String>,
}

impl Ctx {
    /// The same context reporting into `report` (mutation runs).
    pub fn with_report(&self, report: Arc<Report>) -> Ctx {
        Ctx {
            report,
            ..self.clone()
        }
    }

    pub fn template(&self, rendered: &Rendered) -> Result<Arc<PodTemplate>> {
        Ok(Arc::new(PodTemplate::from_rendered(
            rendered,
            &self.tools.binary,
            &self.tools.repo,
        )?))
    }

    /// Starts one pod of `rendered` in a fresh sandbox.
    pub async fn start_pod(
        &self,
        rendered: &Rendered,
        template: &Arc<PodTemplate>,
        template_hash: &str,
        ordinal: u8,
        adjust: impl FnOnce(&mut ContainerLaunch),
    ) -> Result<Arc<Pod>> {
        let sandbox = Sandbox::new(self.mode).await?;
        let identity = PodIdentity::new(rendered, template_hash, ordinal)?;
        let cgroup = self
            .cgroups
            .create(&identity.name, template.limits)
            .with_context(|| format!("enforcing the limits of pod {}", identity.name))?;
        sandbox.confine(cgroup)?;
        Ok(Arc::new(
            Pod::start(rendered, Arc::clone(template), sandbox, identity, adjust).await?,
        ))
    }
}

/// The drain delay the container was given, read by the contract as the service reads it
/// (its default when absent); a value the service would refuse is an error.
pub fn drain_delay(launch: &ContainerLaunch) -> Result<Duration> {
    let raw = contract::RawConfig::from_pairs(launch.env.iter().cloned())?;
    Ok(contract::Config::from_raw(&raw)?.drain_delay_seconds)
}

/// Requests sent this close to the end of the drain delay may race the listener's closing:
/// a connection still in the accept backlog when the server stops is reset, and on a busy
/// 2-core machine the accept can lag by hundreds of milliseconds. In a cluster no request
/// reaches the pod then (the endpoint is gone after the probe lag); the single-pod test sends
/// straight to the pod, so its drain window ends this early.
pub const DRAIN_GUARD: Duration = Duration::from_millis(500);

/// GET `path` on the pod's http port over a fresh connection.
pub async fn get(pod: &Pod, req: crate::http::Req) -> Result<crate::http::Response> {
    let stream = pod.connect().await?;
    crate::http::once(stream, &pod.identity.pod_ip, req, Duration::from_secs(5)).await
}

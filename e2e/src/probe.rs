//! Container probes as the kubelet runs them.
//!
//! `httpGet` sends `GET <path>` to the pod with `User-Agent: kube-probe/<version>` and counts
//! 200-399 as success; `tcpSocket` succeeds when a connection opens; `exec` runs the command
//! in the container (here: the local binary inside the pod's sandbox) and wants exit 0. Ports
//! given by name are resolved through the container's `ports`, exactly as the kubelet does;
//! a name that no container port carries is an error before the pod starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::http::{self, Req};
use crate::kubelet::ContainerLaunch;
use crate::sandbox::Sandbox;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Liveness => "liveness",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone)]
pub enum Action {
    Http {
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        port: u16,
    },
    Exec {
        argv: Vec<String>,
    },
}

/// A probe with the kubelet's defaults filled in.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeSpec {
    /// Reads `probe` of `container`, resolving named ports.
    pub fn from_k8s(kind: ProbeKind, probe: &Probe, container: &Container) -> Result<ProbeSpec> {
        let secs = |v: Option<i32>, default: i32| -> Duration {
            Duration::from_secs(u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0))
        };
        let what = format!("{} probe of container {:?}", kind.as_str(), container.name);
        let action = if let Some(get) = &probe.http_get {
            if get
                .scheme
                .as_deref()
                .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
            {
                bail!("{what}: scheme {:?} is not simulated", get.scheme);
            }
            if get.host.is_some() {
                bail!(
                    "{what}: httpGet.host is set; the kubelet would probe that host, not the pod"
                );
            }
            Action::Http {
                port: resolve_port(&get.port, container).map_err(|e| anyhow!("{what}: {e}"))?,
                path: get.path.clone().unwrap_or_else(|| "/".into()),
                headers: get
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            Action::Tcp {
                port: resolve_port(&tcp.port, container).map_err(|e| anyhow!("{what}: {e}"))?,
            }
        } else if let Some(exec) = &probe.exec {
            Action::Exec {
                argv: exec.command.clone().unwrap_or_default(),
            }
        } else {
            bail!("{what}: no httpGet, tcpSocket or exec (grpc is not simulated)");
        };
        let spec = ProbeSpec {
            kind,
            action,
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10),
            timeout: secs(probe.timeout_seconds, 1),
            success_threshold: u32::try_from(probe.success_threshold.unwrap_or(1).max(1))
                .unwrap_or(1),
            failure_threshold: u32::try_from(probe.failure_threshold.unwrap_or(3).max(1))
                .unwrap_or(3),
        };
        if kind != ProbeKind::Readiness && spec.success_threshold != 1 {
            bail!("{what}: successThreshold must be 1 (the API server would refuse it)");
        }
        Ok(spec)
    }

    pub fn describe(&self) -> String {
        let action = match &self.action {
            Action::Http { port, path, .. } => format!("GET {path} on port {port}"),
            Action::Tcp { port } => format!("TCP port {port}"),
            Action::Exec { argv } => format!("exec {argv:?}"),
        };
        format!(
            "{}: {action}, initialDelay {}s, period {}s, timeout {}s, success {}, failure {}",
            self.kind.as_str(),
            self.initial_delay.as_secs(),
            self.period.as_secs(),
            self.timeout.as_secs(),
            self.success_threshold,
            self.failure_threshold
        )
    }
}

/// `port: http` -> the containerPort named `http`; numbers as they are.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16> {
    match port {
        IntOrString::Int(n) => {
            u16::try_from(*n).map_err(|_| anyhow!("port {n} is not a valid port number"))
        }
        IntOrString::String(name) => {
            let found = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| {
                    anyhow!(
                        "port {name:?} names no port of container {:?} (ports: {})",
                        container.name,
                        container
                            .ports
                            .iter()
                            .flatten()
                            .map(|p| format!(
                                "{}={}",
                                p.name.as_deref().unwrap_or("-"),
                                p.container_port
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            u16::try_from(found.container_port)
                .map_err(|_| anyhow!("containerPort {} is not valid", found.container_port))
        }
    }
}

/// Everything a probe needs to reach the container.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub sandbox: Arc<Sandbox>,
    pub pod_ip: String,
    pub binary: PathBuf,
    pub launch: ContainerLaunch,
}

/// Runs a probe once: Ok(detail) on success, Err(reason) on failure.
pub async fn run_once(
    spec: &ProbeSpec,
    target: &ProbeTarget,
) -> std::result::Result<String, String> {
    match &spec.action {
        Action::Http {
            port,
            path,
            headers,
        } => {
            let attempt = async {
                let stream = target
                    .sandbox
                    .connect_probe(*port)
                    .await
                    .map_err(|e| format!("connect to port {port}: {e}"))?;
                let mut req = Req::get(path)
                    .header("User-Agent", "kube-probe/1.33")
                    .header("Accept", "*/*");
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let host = format!("{}:{port}", target.pod_ip);
                http::once(stream, &host, req, spec.timeout)
                    .await
                    .map_err(|e| format!("GET {path}: {e:#}"))
            };
            let response = tokio::time::timeout(spec.timeout, attempt)
                .await
                .map_err(|_| format!("GET {path}: timeout after {:?}", spec.timeout))??;
            let code = response.status.as_u16();
            if (200..400).contains(&code) {
                Ok(format!("GET {path} -> {code}"))
            } else {
                Err(format!("GET {path} -> {code}"))
            }
        }
        Action::Tcp { port } => {
            match tokio::time::timeout(spec.timeout, target.sandbox.connect_probe(*port)).await {
                Ok(Ok(_)) => Ok(format!("TCP {port} open")),
                Ok(Err(e)) => Err(format!("TCP {port}: {e}")),
                Err(_) => Err(format!("TCP {port}: timeout")),
            }
        }
        Action::Exec { argv } => {
            let Some(first) = argv.first() else {
                return Err("exec probe without a command".into());
            };
            let program = crate::sandbox::local_program(first, &target.binary)
                .map_err(|e| format!("exec {first}: {e}"))?;
            let mut cmd = target.sandbox.command(&program);
            cmd.args(&argv[1..])
                .env_clear()
                .envs(target.launch.env.iter().map(|(k, v)| (k, v)))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            match tokio::time::timeout(spec.timeout, cmd.status()).await {
                Ok(Ok(status)) if status.success() => Ok(format!("exec {argv:?} -> 0")),
                Ok(Ok(status)) => Err(format!("exec {argv:?} -> {status}")),
                Ok(Err(e)) => Err(format!("exec {argv:?}: {e}")),
                Err(_) => Err(format!("exec {argv:?}: timeout")),
            }
        }
    }
}

//! One simulated pod: the kubelet's part from container start to termination.
//!
//! Start: the real binary with exactly the environment `kubelet::launch` built (nothing
//! inherited from the harness), inside the pod's sandbox. Probes: startup first; readiness and
//! liveness once it has succeeded, each at its period with its thresholds. A startup probe that
//! reaches its failure threshold, a failing liveness probe or an unexpected exit is fatal (the
//! kubelet would kill or restart the container). Termination: preStop hook if declared, then
//! SIGTERM, readiness probes continue (liveness and startup stop, as in the kubelet), SIGKILL
//! when `terminationGracePeriodSeconds` runs out.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Container;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::cgroup::Limits;
use crate::kubelet::{self, ContainerLaunch, PodIdentity};
use crate::lock::lock;
use crate::manifests::Rendered;
use crate::probe::{ProbeKind, ProbeSpec, ProbeTarget, resolve_port};
use crate::prober::{ContainerStatus, ProbeEvent, Prober};
use crate::quantity;
use crate::sandbox::Sandbox;

/// The declared behaviour of the Deployment's pods, read once from the rendered objects.
#[derive(Debug, Clone)]
pub struct PodTemplate {
    pub container: Container,
    pub startup: Option<ProbeSpec>,
    pub readiness: Option<ProbeSpec>,
    pub liveness: Option<ProbeSpec>,
    pub grace: Duration,
    pub pre_stop: Option<PreStop>,
    /// The containerPort named `http` (what the Service and the load reach).
    pub http_port: u16,
    /// The image's ENTRYPOINT and CMD (exec form), from the Dockerfile.
    pub image_entrypoint: Vec<String>,
    pub binary: PathBuf,
    /// `resources.limits`, enforced through the pod's cgroup.
    pub limits: Limits,
}

/// A preStop handler.
#[derive(Debug, Clone)]
pub enum PreStop {
    Sleep(Duration),
    Exec(Vec<String>),
    Http { port: u16, path: String },
}

impl PodTemplate {
    pub fn from_rendered(rendered: &Rendered, binary: &Path, repo: &Path) -> Result<PodTemplate> {
        let container = rendered.container()?.clone();
        let probe = |kind, p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .map(|p| ProbeSpec::from_k8s(kind, p, &container))
                .transpose()
        };
        let grace_secs = rendered
            .pod_spec()?
            .termination_grace_period_seconds
            .unwrap_or(30);
        let pre_stop = match container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
        {
            None => None,
            Some(h) => Some(if let Some(s) = &h.sleep {
                PreStop::Sleep(Duration::from_secs(u64::try_from(s.seconds).unwrap_or(0)))
            } else if let Some(e) = &h.exec {
                PreStop::Exec(e.command.clone().unwrap_or_default())
            } else if let Some(g) = &h.http_get {
                PreStop::Http {
                    port: resolve_port(&g.port, &container)?,
                    path: g.path.clone().unwrap_or_else(|| "/".into()),
                }
            } else {
                bail!("preStop handler of an unsupported kind");
            }),
        };
        let http_port = resolve_port(
            &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                contract::HTTP_PORT_NAME.into(),
            ),
            &container,
        )?;
        let limit = |name: &str| {
            container
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get(name))
                .map(|q| q.0.clone())
        };
        let limits = Limits {
            memory_bytes: limit("memory")
                .map(|q| quantity::bytes(&q))
                .transpose()
                .context("resources.limits.memory")?,
            cpu_millis: limit("cpu")
                .map(|q| quantity::millicores(&q))
                .transpose()
                .context("resources.limits.cpu")?,
        };
        Ok(PodTemplate {
            startup: probe(ProbeKind::Startup, &container.startup_probe)?,
            readiness: probe(ProbeKind::Readiness, &container.readiness_probe)?,
            liveness: probe(ProbeKind::Liveness, &container.liveness_probe)?,
            grace: Duration::from_secs(u64::try_from(grace_secs.max(0)).unwrap_or(0)),
            pre_stop,
            http_port,
            image_entrypoint: crate::image::entrypoint(repo),
            binary: binary.to_path_buf(),
            limits,
            container,
        })
    }

    /// The longest the kubelet lets a container take to become Ready before it gives up on
    /// it: the startup probe's whole budget (or the liveness probe's, without one), then the
    /// readiness probe's first successes.
    pub fn ready_budget(&self) -> Duration {
        // Probes run on a ticker of `period` (a slow probe does not shift the next one), so
        // n probes span n periods, the last one up to its timeout longer.
        let budget = |p: &ProbeSpec, n: u32| p.initial_delay + p.period * n + p.timeout;
        let start = match (&self.startup, &self.liveness) {
            (Some(s), _) => budget(s, s.failure_threshold),
            (None, Some(l)) => budget(l, l.failure_threshold),
            (None, None) => Duration::from_secs(30),
        };
        let ready = self
            .readiness
            .as_ref()
            .map_or(Duration::ZERO, |r| budget(r, r.success_threshold));
        start + ready
    }
}

/// Captured container output.
#[derive(Debug, Default)]
pub struct Logs {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// How the container ended.
#[derive(Debug, Clone)]
pub struct Termination {
    pub sigterm_at: Instant,
    pub status: Option<ExitStatus>,
    /// SIGTERM to exit.
    pub took: Duration,
    /// The kubelet had to SIGKILL it at the end of the grace period.
    pub killed: bool,
    pub grace: Duration,
}

/// A running simulated pod.
#[derive(Debug)]
pub struct Pod {
    pub identity: PodIdentity,
    pub template: Arc<PodTemplate>,
    pub sandbox: Arc<Sandbox>,
    pub launch: ContainerLaunch,
    pub notes: Vec<String>,
    pub pid: u32,
    pub started: Instant,
    pub logs: Arc<Mutex<Logs>>,
    pub ready: watch::Receiver<bool>,
    /// Probe results and the kubelet's verdict, shared with the prober.
    pub status: Arc<ContainerStatus>,
    exit: watch::Receiver<Option<(ExitStatus, Instant)>>,
    sigterm: watch::Sender<Option<Instant>>,
}

impl Pod {
    /// Builds the environment as the kubelet would and starts the container in a new
    /// sandbox. `adjust` may change the launch (configuration battery) before it starts.
    pub async fn start(
        rendered: &Rendered,
        template: Arc<PodTemplate>,
        sandbox: Arc<Sandbox>,
        identity: PodIdentity,
        adjust: impl FnOnce(&mut ContainerLaunch),
    ) -> Result<Pod> {
        let mut launch = kubelet::launch(
            rendered,
            &template.container,
            &identity,
            &template.image_entrypoint,
        )?;
        let mut notes = sandbox.prepare(&mut launch)?;
        notes.extend(launch.rewrites.iter().cloned());
        // After prepare, so a case can set PORT or HOST to anything, in either mode.
        adjust(&mut launch);
        let program = crate::sandbox::local_program(&launch.argv[0], &template.binary)?;
        let mut cmd = sandbox.command(&program);
        cmd.args(&launch.argv[1..])
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let started = Instant::now();
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the container exited at once"))?;

        let logs = Arc::new(Mutex::new(Logs::default()));
        if let Some(mut out) = child.stdout.take() {
            let logs = Arc::clone(&logs);
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = out.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    lock(&logs).stdout.extend_from_slice(&buf[..n]);
                }
            });
        }
        if let Some(mut err) = child.stderr.take() {
            let logs = Arc::clone(&logs);
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    lock(&logs).stderr.extend_from_slice(&buf[..n]);
                }
            });
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(async move {
            if let Ok(status) = child.wait().await {
                let _ = exit_tx.send(Some((status, Instant::now())));
            }
        });

        let (ready_tx, ready_rx) = watch::channel(false);
        let pod = Pod {
            identity,
            template: Arc::clone(&template),
            sandbox: Arc::clone(&sandbox),
            launch: launch.clone(),
            notes,
            pid,
            started,
            logs,
            ready: ready_rx,
            status: Arc::new(ContainerStatus::default()),
            exit: exit_rx,
            sigterm: watch::channel(None).0,
        };
        let target = ProbeTarget {
            sandbox,
            pod_ip: pod.identity.pod_ip.clone(),
            binary: template.binary.clone(),
            launch,
        };
        watch_exit(&pod, Arc::clone(&target.sandbox));
        Prober {
            startup: template.startup.clone(),
            readiness: template.readiness.clone(),
            liveness: template.liveness.clone(),
            target,
            status: Arc::clone(&pod.status),
            exit: pod.exit.clone(),
            pid,
            started,
        }
        .spawn(ready_tx);
        Ok(pod)
    }

    /// Why the kubelet would have killed or restarted this container, if it would have.
    pub fn fatal(&self) -> Option<String> {
        self.status.fatal()
    }

    /// The container's restartCount as the kubelet would report it: 1 once it would have
    /// been restarted (the harness does not restart it; every suite treats that as a failure).
    pub fn restart_count(&self) -> u32 {
        u32::from(self.fatal().is_some())
    }

    /// OOM kills in the pod's cgroup so far (0 when memory is not enforced).
    pub fn oom_kills(&self) -> u64 {
        self.sandbox.cgroup().map_or(0, |c| c.oom_kills())
    }

    /// Whether the container ended as OOMKilled.
    pub fn oom_killed(&self) -> bool {
        self.fatal().is_some_and(|f| f.starts_with("OOMKilled"))
    }

    /// The pod cgroup's memory usage (what the limit is compared with), if enforced.
    pub fn memory_usage(&self) -> Option<u64> {
        self.sandbox.cgroup().and_then(|c| c.memory_usage())
    }

    pub fn exited(&self) -> Option<(ExitStatus, Instant)> {
        *self.exit.borrow()
    }

    /// Waits until the pod is Ready; fails when the kubelet would have given up first.
    pub async fn wait_ready(&self) -> Result<Duration> {
        let budget = self.template.ready_budget() + Duration::from_secs(1);
        let mut ready = self.ready.clone();
        let mut exit = self.exit.clone();
        let deadline = self.started + budget;
        loop {
            if *ready.borrow() {
                return Ok(self.started.elapsed());
            }
            if let Some(reason) = self.fatal() {
                bail!("{reason}\n{}", self.log_tail());
            }
            if let Some((status, _)) = *exit.borrow() {
                if let Some(oom) = oom_reason(&status, self.oom_kills(), self.template.limits) {
                    bail!("{oom}, before it was Ready\n{}", self.log_tail());
                }
                bail!(
                    "the container exited ({status}) before it was Ready\n{}",
                    self.log_tail()
                );
            }
            tokio::select! {
                _ = ready.changed() => {}
                _ = exit.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if !*ready.borrow() {
                        bail!(
                            "not Ready within {budget:?} (what the probes allow)\n{}",
                            self.log_tail()
                        );
                    }
                }
            }
        }
    }

    /// Sends a signal to the container's main process.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let pid = i32::try_from(self.pid).context("pid out of range")?;
        kill(Pid::from_raw(pid), signal).with_context(|| format!("sending {signal} to {pid}"))
    }

    /// The kubelet's termination: preStop, SIGTERM, wait for the grace period, SIGKILL.
    pub async fn terminate(&self) -> Termination {
        let begin = Instant::now();
        self.status.begin_termination();
        match &self.template.pre_stop {
            Some(PreStop::Sleep(d)) => tokio::time::sleep(*d).await,
            Some(PreStop::Exec(argv)) => {
                if let Some(first) = argv.first()
                    && let Ok(program) = crate::sandbox::local_program(first, &self.template.binary)
                {
                    let mut cmd = self.sandbox.command(&program);
                    cmd.args(&argv[1..])
                        .env_clear()
                        .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
                        .kill_on_drop(true);
                    let _ = tokio::time::timeout(self.template.grace, cmd.status()).await;
                }
            }
            Some(PreStop::Http { port, path }) => {
                if let Ok(stream) = self.sandbox.connect(*port).await {
                    let _ = crate::http::once(
                        stream,
                        &self.identity.pod_ip,
                        crate::http::Req::get(path),
                        self.template.grace,
                    )
                    .await;
                }
            }
            None => {}
        }
        let sigterm_at = Instant::now();
        let _ = self.signal(Signal::SIGTERM);
        self.sigterm.send_replace(Some(sigterm_at));
        let deadline = begin + self.template.grace;
        let mut exit = self.exit.clone();
        let exited = tokio::time::timeout_at(deadline.into(), async {
            loop {
                if let Some(e) = *exit.borrow() {
                    return e;
                }
                if exit.changed().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
        .await;
        match exited {
            Ok((status, at)) => Termination {
                sigterm_at,
                status: Some(status),
                took: at.saturating_duration_since(sigterm_at),
                killed: false,
                grace: self.template.grace,
            },
            Err(_) => {
                let _ = self.signal(Signal::SIGKILL);
                let status = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        if let Some((s, _)) = *exit.borrow() {
                            return s;
                        }
                        if exit.changed().await.is_err() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                })
                .await
                .ok();
                Termination {
                    sigterm_at,
                    status,
                    took: sigterm_at.elapsed(),
                    killed: true,
                    grace: self.template.grace,
                }
            }
        }
    }

    /// Ends the container without ceremony (harness clean-up, failed cases).
    pub async fn kill(&self) {
        if self.exited().is_none() {
            let _ = self.signal(Signal::SIGKILL);
            let mut exit = self.exit.clone();
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while exit.borrow().is_none() {
                    if exit.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// Waits until `terminate` has sent SIGTERM; returns when it was sent.
    pub async fn sigterm_sent(&self) -> Instant {
        let mut rx = self.sigterm.subscribe();
        loop {
            if let Some(at) = *rx.borrow_and_update() {
                return at;
            }
            if rx.changed().await.is_err() {
                return Instant::now();
            }
        }
    }

    /// Readiness probe events after `since`.
    pub fn readiness_after(&self, since: Instant) -> Vec<ProbeEvent> {
        self.status
            .events()
            .into_iter()
            .filter(|e| e.kind == ProbeKind::Readiness && e.at >= since)
            .collect()
    }

    /// Resident memory of the container process in bytes (VmRSS).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&lock(&self.logs).stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&lock(&self.logs).stderr).into_owned()
    }

    /// The last lines of the container's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let logs = lock(&self.logs);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
        format!("  container output (last lines):\n    {tail}")
    }

    /// The pod's own HTTP port reached directly (as from another pod).
    pub async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        self.sandbox.connect(self.template.http_port).await
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.signal(Signal::SIGKILL);
        }
    }
}

/// The kubelet's account of an OOM kill: SIGKILL while the cgroup's OOM counter moved.
fn oom_reason(status: &ExitStatus, ooms: u64, limits: Limits) -> Option<String> {
    (ooms > 0 && status.signal() == Some(Signal::SIGKILL as i32)).then(|| {
        // lastState.terminated.reason OOMKilled, exit code 137, restartCount + 1.
        format!(
            "OOMKilled: the kernel's OOM killer ended the container at its limits ({}; exit \
             code 137, cgroup oom_kill counter {ooms}); the kubelet reports reason OOMKilled \
             and restarts it (restartCount 1)",
            limits.describe()
        )
    })
}

/// The container's end as the kubelet reports it: an exit while not terminating is a crash,
/// and a SIGKILL while the cgroup's OOM counter moved is OOMKilled (either way restarted).
fn watch_exit(pod: &Pod, sandbox: Arc<Sandbox>) {
    let mut exit = pod.exit.clone();
    let status = Arc::clone(&pod.status);
    let limits = pod.template.limits;
    tokio::spawn(async move {
        while exit.borrow().is_none() {
            if exit.changed().await.is_err() {
                return;
            }
        }
        let code = exit.borrow().map(|(s, _)| s);
        let ooms = sandbox.cgroup().map_or(0, |c| c.oom_kills());
        if let Some(oom) = code.and_then(|c| oom_reason(&c, ooms, limits)) {
            status.set_fatal(oom, true);
        } else if !status.terminating() {
            let code = code.map(|c| c.to_string()).unwrap_or_default();
            status.set_fatal(
                format!("the container exited on its own ({code}); the kubelet restarts it (restartCount 1)"),
                false,
            );
        }
    });
}

//! The suites that run on the real cluster (`make e2e-cluster`), in the order they run.
//!
//! Each suite states its claim in its module documentation; every verdict comes from the real
//! components (the API server's admission, the kubelet's probes and restarts, kube-proxy's
//! NodePort, the scheduler, the Deployment and ReplicaSet controllers, the disruption
//! controller, the node lifecycle controller, the HPA with metrics-server, kube-router's
//! network-policy rules).

pub mod admission;
pub mod config_roll;
pub mod deploy;
pub mod disruption;
pub mod drain;
pub mod flood;
pub mod netpol;
pub mod node_loss;
pub mod spread;
pub mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus};
use k8s_openapi::api::core::v1::Pod;

use crate::kube::{Cluster, NodeInfo, serving};
use crate::load::{Load, Tally};
use crate::report::Report;

/// The app's label selector in every namespace.
pub const SELECTOR: &str = "app.kubernetes.io/name=hello-k8s";

/// What every suite gets.
#[derive(Debug)]
pub struct Ctx {
    pub cluster: Cluster,
    /// The repository (holds k8s/, the Makefile, scripts/).
    pub repo: PathBuf,
    /// The manifest-gen binary.
    pub manifest_gen: PathBuf,
    /// Scratch space of this run (k8s/ copies, archives, logs).
    pub work: PathBuf,
    /// The load client (`e2e-load`, built optimised).
    pub load: PathBuf,
    pub report: Report,
}

impl Ctx {
    /// The overlays, as manifest-gen lists them.
    pub fn overlays(&self) -> Result<Vec<String>> {
        let out = run(Command::new(&self.manifest_gen).arg("overlays"))?;
        Ok(out.split_whitespace().map(str::to_string).collect())
    }

    /// The namespace an overlay declares (`namespace:` of its kustomization).
    pub fn namespace_of(&self, env: &str) -> Result<String> {
        let path = self
            .repo
            .join(format!("k8s/overlays/{env}/kustomization.yaml"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .find_map(|l| l.strip_prefix("namespace: "))
            .map(|s| s.trim().trim_matches('\'').to_string())
            .with_context(|| format!("{} declares no namespace", path.display()))
    }

    /// A copy of k8s/ in the run's scratch space, with a secret.env (a fresh random API_KEY)
    /// for every overlay that ships a secret.env.example; the repository is never written.
    pub fn k8s_copy(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        run(Command::new("cp")
            .arg("-r")
            .arg(self.repo.join("k8s"))
            .arg(&dir))?;
        for env in self.overlays()? {
            let overlay = dir.join("overlays").join(&env);
            if overlay.join("secret.env.example").exists() {
                write_secret(&overlay.join("secret.env"), &random_token()?)?;
            }
        }
        Ok(dir)
    }

    /// `kubectl kustomize DIR` with the cluster's kubectl.
    pub fn kustomize(&self, dir: &Path) -> Result<String> {
        self.cluster.kubectl(&["kustomize", &dir.to_string_lossy()])
    }

    /// `make TARGET` in the repository with the cluster's deploy variables (the env file of
    /// `make cluster`, as a user passes them).
    pub fn make(&self, target: &str, extra: &[(&str, &str)]) -> Result<String> {
        let mut cmd = Command::new("make");
        cmd.arg("-C").arg(&self.repo).arg(target);
        for (k, v) in &self.cluster.vars {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let log = self.work.join(format!("make-{target}.log"));
        let file = std::fs::File::create(&log)?;
        let status = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .status()
            .with_context(|| format!("starting make {target}"))?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            bail!(
                "make {target} failed ({status}); last lines of {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(text)
    }

    /// Applies an overlay directory as `make deploy-<env>` applies: server-side, under the
    /// deploy's field manager (scripts/run_system.sh and the Makefile's FIELD_MANAGER), so that
    /// a later `make deploy-prod` owns the same fields and meets no conflict.
    pub fn apply_as_deploy(&self, dir: &Path) -> Result<String> {
        self.cluster.kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=hello-k8s-deploy",
            "-k",
            &dir.to_string_lossy(),
        ])
    }

    /// The NodePort URL of `path` for a Service, on the first node.
    pub fn node_url(&self, namespace: &str, path: &str) -> Result<String> {
        let port = self.node_port(namespace)?;
        Ok(format!("http://{}:{port}{path}", self.cluster.node_ip))
    }

    /// The Service's NodePort (of its `http` port).
    pub fn node_port(&self, namespace: &str) -> Result<u16> {
        let port = self.cluster.kubectl(&[
            "get",
            "service",
            "hello-k8s",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.ports[?(@.name==\"http\")].nodePort}",
        ])?;
        port.trim()
            .parse()
            .with_context(|| format!("service hello-k8s in {namespace} has no nodePort"))
    }

    /// The NodePort's address on `node`.
    pub fn node_port_on(&self, node: &NodeInfo, namespace: &str) -> Result<SocketAddr> {
        let port = self.node_port(namespace)?;
        format!("{}:{port}", node.ip)
            .parse()
            .context("a node's address")
    }

    /// The Deployment hello-k8s of `namespace`.
    pub fn deployment(&self, namespace: &str) -> Result<Deployment> {
        self.cluster
            .get(&["deployment", "hello-k8s", "-n", namespace])
    }

    /// Waits until the Deployment's wanted replicas are all Ready and none is being deleted;
    /// the pods.
    pub fn settled(&self, namespace: &str, limit: Duration) -> Result<Vec<Pod>> {
        let want = desired(&self.deployment(namespace)?);
        self.cluster.watch_pods(
            namespace,
            SELECTOR,
            "every replica Ready, none being deleted",
            limit,
            |pods| {
                let ready = pods.iter().filter(|p| serving(p)).count();
                if ready >= want && pods.len() == ready {
                    Ok(pods.iter().map(|p| (**p).clone()).collect())
                } else {
                    Err(format!("{ready} of {want} Ready, {} pods", pods.len()))
                }
            },
        )
    }

    /// Starts full-rate load through `addr` ([`Load`]).
    pub fn load(&self, addr: SocketAddr) -> Result<Load> {
        Load::start(&self.load, addr)
    }

    /// Runs `step` while full-rate load runs through `addr`, and `after` beyond it; the step's
    /// outcome and what the load saw.
    pub fn under_load<T>(
        &self,
        addr: SocketAddr,
        after: Duration,
        step: impl FnOnce() -> Result<T>,
    ) -> Result<(Result<T>, Tally)> {
        let load = self.load(addr)?;
        let outcome = step();
        pause(after);
        Ok((outcome, load.stop()?))
    }

    /// `ctr ARGS` against the containerd of every node.
    pub fn ctr_all(&self, args: &[&str]) -> Result<()> {
        let sockets = self
            .cluster
            .vars
            .get("CONTAINERD_ADDRESSES")
            .context("the env file names no CONTAINERD_ADDRESSES")?;
        for socket in sockets.split_whitespace() {
            run(Command::new("ctr")
                .args(["--address", socket, "-n", "k8s.io"])
                .args(args))?;
        }
        Ok(())
    }

    /// prod back to its own 3 replicas and an HPA with no history (an earlier load may have
    /// scaled it out, and the HPA's downscale window, 300 s, would keep it there). The HPA is
    /// removed, prod scaled to 3, and the HPA created again by `make auto-deploy-prod` only
    /// after the controller's next sync of the deleted key (every 15 s), which forgets its
    /// recommendations; else the new HPA inherits them.
    pub fn reset_prod(&self) -> Result<()> {
        let ns = self.namespace_of("prod")?;
        self.cluster.kubectl(&[
            "delete",
            "hpa",
            "hello-k8s",
            "-n",
            &ns,
            "--ignore-not-found",
        ])?;
        self.cluster
            .kubectl(&["scale", "deployment/hello-k8s", "-n", &ns, "--replicas=3"])?;
        self.settled(&ns, Duration::from_secs(180))?;
        pause(Duration::from_secs(20));
        self.make("auto-deploy-prod", &[])?;
        self.settled(&ns, Duration::from_secs(180))?;
        Ok(())
    }
}

/// Whether the cluster has the `n` nodes `suite` needs. With fewer (`make cluster NODES=1`) the
/// suite is skipped, loudly, and under `CI=true` that is a failure: CI runs the three nodes.
pub fn has_nodes(ctx: &Ctx, suite: &str, n: usize) -> bool {
    let have = ctx.cluster.nodes.len();
    if have >= n {
        return true;
    }
    let why = format!("SKIPPED: needs {n} nodes, the cluster has {have} (make cluster NODES=3)");
    if std::env::var("CI").as_deref() == Ok("true") {
        ctx.report.check(
            suite,
            "the cluster has the nodes the suite needs",
            false,
            why,
        );
    } else {
        ctx.report.note(why);
    }
    false
}

/// The replicas a Deployment wants.
pub fn desired(d: &Deployment) -> usize {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as usize
}

/// The status of the service's HPA in `ns` (empty before the controller's first sync).
pub fn hpa_status(cluster: &Cluster, ns: &str) -> Result<HorizontalPodAutoscalerStatus> {
    let hpa: HorizontalPodAutoscaler = cluster.get(&["hpa", "hello-k8s", "-n", ns])?;
    Ok(hpa.status.unwrap_or_default())
}

/// An HPA's CPU utilization as metrics-server last gave it (% of the request).
pub fn hpa_cpu(status: &HorizontalPodAutoscalerStatus) -> Option<i32> {
    status
        .current_metrics
        .iter()
        .flatten()
        .find_map(|m| m.resource.as_ref()?.current.average_utilization)
}

/// Runs a command; its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// 32 random bytes, hex: an API_KEY of this run.
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random bytes: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `API_KEY=<token>` with mode 0600.
pub fn write_secret(path: &Path, token: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, format!("API_KEY={token}\n").as_bytes())?;
    Ok(())
}

/// The warning lines kubectl printed (on its stderr): any fails the suite that reads them.
pub fn warnings(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("Warning")).collect()
}

/// Sleeps in the suites' own bounded waits.
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

//! The suites that run on the real cluster (`make e2e-cluster`), in the order they run.
//!
//! Each suite states its claim in its module documentation; every verdict comes from the real
//! components (the API server's admission, the kubelet's probes and restarts, kube-proxy's
//! NodePort, the Deployment and ReplicaSet controllers, the disruption controller, the HPA
//! with metrics-server).

pub mod admission;
pub mod config_roll;
pub mod deploy;
pub mod disruption;
pub mod flood;
pub mod netpol;
pub mod values;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::kube::Cluster;
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

    /// The NodePort URL of `path` for a Service.
    pub fn node_url(&self, namespace: &str, path: &str) -> Result<String> {
        let port = self.cluster.kubectl(&[
            "get",
            "service",
            "hello-k8s",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.ports[?(@.name==\"http\")].nodePort}",
        ])?;
        let port = port.trim();
        if port.is_empty() {
            bail!("service hello-k8s in {namespace} has no nodePort");
        }
        Ok(format!("http://{}:{port}{path}", self.cluster.node_ip))
    }
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

/// Sleeps in the suites' own bounded waits.
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

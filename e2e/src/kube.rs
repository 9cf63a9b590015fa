//! The cluster the suites run on, and `kubectl` against it.
//!
//! `make cluster` writes the variables a deploy needs to its env file (KUBECONFIG, KUBE_CONTEXT,
//! KUBECTL, NODE_IP, ...); the harness reads the same file, so the suites reach the cluster
//! exactly as a user's `make deploy-prod` does. Every object read back is parsed into
//! k8s-openapi's types.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;

/// The cluster as `make cluster` describes it.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Every variable of the env file, as written (`export` dropped).
    pub vars: BTreeMap<String, String>,
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
    pub context: String,
    pub node_ip: String,
}

impl Cluster {
    /// Reads the env file `make cluster` wrote.
    pub fn from_env_file(path: &Path) -> Result<Cluster> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading {} (run make cluster first: it writes this file)",
                path.display()
            )
        })?;
        let mut vars = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .with_context(|| format!("{} names no {k}", path.display()))
        };
        Ok(Cluster {
            kubectl: get("KUBECTL")?.into(),
            kubeconfig: get("KUBECONFIG")?.into(),
            context: get("KUBE_CONTEXT")?,
            node_ip: get("NODE_IP")?,
            vars,
        })
    }

    /// `kubectl --kubeconfig .. --context .. ARGS`, as a command to complete.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--context")
            .arg(&self.context)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl; its stdout on success, an error with its stderr otherwise.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_in(args, None).map(|o| o.stdout)
    }

    /// Runs kubectl with `input` on stdin.
    pub fn kubectl_in(&self, args: &[&str], input: Option<&str>) -> Result<Output> {
        let out = self.try_kubectl(args, input)?;
        if !out.success {
            bail!("kubectl {} failed: {}", args.join(" "), out.stderr.trim());
        }
        Ok(out)
    }

    /// Runs kubectl and returns its outcome, whatever its exit status.
    pub fn try_kubectl(&self, args: &[&str], input: Option<&str>) -> Result<Output> {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().context("starting kubectl")?;
        if let Some(text) = input {
            let mut stdin = child.stdin.take().context("kubectl's stdin")?;
            stdin.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `kubectl get ... -o json`, parsed.
    pub fn get<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T> {
        let mut full: Vec<&str> = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let text = self.kubectl(&full)?;
        serde_json::from_str(&text).with_context(|| format!("parsing kubectl {}", full.join(" ")))
    }

    /// The pods of `namespace` matching `selector`.
    pub fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>> {
        let list: Items<Pod> = self.get(&["pods", "-n", namespace, "-l", selector])?;
        Ok(list.items)
    }

    /// The pods that are Ready and not being deleted.
    pub fn ready_pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>> {
        Ok(self
            .pods(namespace, selector)?
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
            .collect())
    }

    /// Polls `probe` every 500 ms until it returns `Some`, or fails after `limit`.
    pub fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        loop {
            match probe() {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!(
                    "{what}: not within {limit:?}{}",
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(" (last error: {last})")
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `kubectl rollout status`, bounded.
    pub fn rollout(&self, namespace: &str, deployment: &str, limit: Duration) -> Result<()> {
        let timeout = format!("--timeout={}s", limit.as_secs());
        let target = format!("deployment/{deployment}");
        self.kubectl(&["rollout", "status", &target, "-n", namespace, &timeout])
            .map(|_| ())
    }
}

/// What `kubectl get ... -o json` prints for several objects (`kind: List`, which
/// k8s-openapi's typed `List` refuses).
#[derive(Debug, serde::Deserialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// A finished kubectl.
#[derive(Debug, Clone)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's name.
pub fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The pod's IP.
pub fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone())
}

/// The sum of the restarts of the pod's containers.
pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// Why the pod's containers last terminated (`OOMKilled`, `Error`, ...), current or last state.
pub fn terminations(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    for c in pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        for state in [c.state.as_ref(), c.last_state.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(t) = &state.terminated {
                out.push(
                    t.reason
                        .clone()
                        .unwrap_or_else(|| format!("exit {}", t.exit_code)),
                );
            }
        }
    }
    out
}

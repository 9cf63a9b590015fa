//! The cluster the suites run on: kube-rs to read it, `kubectl` for what users type.
//!
//! `make cluster` writes the variables a deploy needs to its env file (KUBECONFIG, KUBE_CONTEXT,
//! KUBECTL, the nodes, ...); the harness reads the same file, so the suites reach the cluster
//! exactly as a user's `make deploy-prod` does. Where a suite waits for the cluster to reach a
//! state it watches the objects through kube-rs ([`Cluster::watch_until`]) and decides on the
//! objects' own conditions; the commands users run (`kubectl drain`, `kubectl delete pod`,
//! `make auto-deploy-prod`) stay the commands the suites run.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::Store;
use kube::runtime::watcher::Event;
use kube::runtime::{reflector, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// One node of the cluster: its name (also its network namespace) and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub ip: String,
}

impl NodeInfo {
    /// The node's network namespace, as `ip netns` names it.
    pub fn netns(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

/// The cluster as `make cluster` describes it.
#[derive(Clone)]
pub struct Cluster {
    /// Every variable of the env file, as written (`export` and quotes dropped).
    pub vars: BTreeMap<String, String>,
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
    pub context: String,
    /// The first node's address (the API server's; the NodePort users are shown).
    pub node_ip: String,
    pub nodes: Vec<NodeInfo>,
    /// The host's end of the cluster's link (the harness's own address there).
    pub host_ip: String,
    /// `CLUSTER_RUN`: the recorded PIDs of the components.
    pub run_dir: PathBuf,
    /// scripts/cluster of the checkout that started the cluster.
    pub scripts: PathBuf,
    client: Client,
    rt: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("kubeconfig", &self.kubeconfig)
            .field("context", &self.context)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Reads the env file `make cluster` wrote and connects a kube-rs client through the same
    /// kubeconfig and context.
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
                vars.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .with_context(|| format!("{} names no {k}", path.display()))
        };
        let names = get("NODE_NAMES")?;
        let ips = get("NODE_IPS")?;
        let nodes: Vec<NodeInfo> = names
            .split_whitespace()
            .zip(ips.split_whitespace())
            .map(|(name, ip)| NodeInfo {
                name: name.to_string(),
                ip: ip.to_string(),
            })
            .collect();
        if nodes.is_empty() || nodes.len() != names.split_whitespace().count() {
            bail!("{}: NODE_NAMES and NODE_IPS do not match", path.display());
        }
        let kubeconfig: PathBuf = get("KUBECONFIG")?.into();
        let context = get("KUBE_CONTEXT")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("e2e-kube")
            .enable_all()
            .build()?;
        let client = rt.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(
                Kubeconfig::read_from(&kubeconfig)?,
                &KubeConfigOptions {
                    context: Some(context.clone()),
                    ..KubeConfigOptions::default()
                },
            )
            .await?;
            anyhow::Ok(Client::try_from(config)?)
        })?;
        Ok(Cluster {
            kubectl: get("KUBECTL")?.into(),
            kubeconfig,
            context,
            node_ip: get("NODE_IP")?,
            host_ip: get("HOST_IP")?,
            run_dir: get("CLUSTER_RUN")?.into(),
            scripts: get("CLUSTER_SCRIPTS")?.into(),
            nodes,
            vars,
            client,
            rt: Arc::new(rt),
        })
    }

    /// The kube-rs client (the kubeconfig and context of the env file).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs a future on the harness's runtime, from the suites' plain threads.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Result<&NodeInfo> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .with_context(|| format!("no node {name} in the env file"))
    }

    /// Watches the objects `api` lists under `config` until `done` accepts them: `Ok(T)` ends
    /// the wait, `Err(why)` says why not yet (printed when the time is up). `done` sees every
    /// state the watch delivers, the initial list first.
    pub fn watch_until<K, T>(
        &self,
        api: Api<K>,
        config: watcher::Config,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&[Arc<K>]) -> std::result::Result<T, String>,
    ) -> Result<T>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone,
    {
        self.block_on(async {
            let (reader, writer) = reflector::store::<K>();
            let mut events = reflector(writer, watcher::watcher(api, config)).boxed();
            let mut last = String::from("no list received");
            let watch = async {
                while let Some(event) = events.next().await {
                    match event {
                        Ok(Event::Init | Event::InitApply(_)) => continue,
                        Ok(_) => {}
                        Err(e) => {
                            last = format!("watch error: {e}");
                            continue;
                        }
                    }
                    match done(&reader.state()) {
                        Ok(v) => return Some(v),
                        Err(why) => last = why,
                    }
                }
                None
            };
            match tokio::time::timeout(limit, watch).await {
                Ok(Some(v)) => Ok(v),
                Ok(None) => bail!("{what}: the watch ended ({last})"),
                Err(_) => bail!("{what}: not within {limit:?} ({last})"),
            }
        })
    }

    /// Watches pods of `namespace` matching `selector` until `done` accepts them.
    pub fn watch_pods<T>(
        &self,
        namespace: &str,
        selector: &str,
        what: &str,
        limit: Duration,
        done: impl FnMut(&[Arc<Pod>]) -> std::result::Result<T, String>,
    ) -> Result<T> {
        self.watch_until(
            Api::<Pod>::namespaced(self.client(), namespace),
            watcher::Config::default().labels(selector),
            what,
            limit,
            done,
        )
    }

    /// Watches one node until `done` accepts it.
    pub fn watch_node<T>(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Node) -> std::result::Result<T, String>,
    ) -> Result<T> {
        self.watch_until(
            Api::<Node>::all(self.client()),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
            what,
            limit,
            |nodes| match nodes.first() {
                Some(node) => done(node),
                None => Err(format!("no node {name}")),
            },
        )
    }

    /// A store of the objects `api` lists, kept current by a watch on the harness's runtime
    /// until the returned guard is dropped; `on_change` sees every state the watch delivers (for
    /// what must be judged while a command of the suite runs).
    pub fn mirror_with<K>(
        &self,
        api: Api<K>,
        config: watcher::Config,
        mut on_change: impl FnMut(&[Arc<K>]) + Send + 'static,
    ) -> Mirror<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone,
    {
        let (reader, writer) = reflector::store::<K>();
        let store = reader.clone();
        let task = self.rt.spawn(async move {
            let mut events = reflector(writer, watcher::watcher(api, config)).boxed();
            while let Some(event) = events.next().await {
                if matches!(
                    event,
                    Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone)
                ) {
                    on_change(&store.state());
                }
            }
        });
        Mirror {
            store: reader,
            task,
        }
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

    /// Polls `probe` every 500 ms until it returns `Some`, or fails after `limit` (for what no
    /// object's watch tells: an answer through the network, a command's output).
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

/// A store kept current by a watch (see [`Cluster::mirror_with`]); the watch ends with it.
pub struct Mirror<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    pub store: Store<K>,
    task: tokio::task::JoinHandle<()>,
}

impl<K: Resource + 'static> std::fmt::Debug for Mirror<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").finish_non_exhaustive()
    }
}

impl<K: Resource + 'static> Drop for Mirror<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
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

/// The pod is Ready and not being deleted.
pub fn serving(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && pod_ready(pod)
}

/// The node's Ready condition, as the kubelet (or the node lifecycle controller) last set it.
pub fn node_ready(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// The pod's name.
pub fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The node the pod is bound to.
pub fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
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

/// How many of `pods` each node holds (nodes without any are left out).
pub fn per_node<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for pod in pods {
        *out.entry(node_of(pod)).or_insert(0) += 1;
    }
    out
}

/// The pod's cgroup directory in a cgroup v1 hierarchy (`memory`, `pids`, ...): under its node's
/// cgroup root (`/kco/<node>`, the kubelet's `cgroupRoot`), then the QoS class, as the kubelet's
/// cgroupfs driver lays them out.
pub fn pod_cgroup(pod: &Pod, hierarchy: &str) -> Option<PathBuf> {
    let uid = pod.metadata.uid.as_ref()?;
    let qos = pod.status.as_ref()?.qos_class.as_deref()?.to_lowercase();
    let node = pod.spec.as_ref()?.node_name.as_ref()?;
    let mut path = PathBuf::from("/sys/fs/cgroup")
        .join(hierarchy)
        .join("kco")
        .join(node)
        .join("kubepods");
    if qos != "guaranteed" {
        path.push(qos);
    }
    path.push(format!("pod{uid}"));
    Some(path)
}

/// The network namespace of a running pod, through one of its processes (the pod's cgroup
/// lists them: the sandbox's and its containers').
pub fn pod_netns(pod: &Pod) -> Result<PathBuf> {
    let cgroup = pod_cgroup(pod, "pids").context("the pod has no uid, QoS class or node yet")?;
    for entry in
        std::fs::read_dir(&cgroup).with_context(|| format!("reading {}", cgroup.display()))?
    {
        let procs = entry?.path().join("cgroup.procs");
        if let Ok(text) = std::fs::read_to_string(&procs)
            && let Some(pid) = text.lines().next()
        {
            return Ok(PathBuf::from(format!("/proc/{}/ns/net", pid.trim())));
        }
    }
    bail!("no process in {}", cgroup.display())
}

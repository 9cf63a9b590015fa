//! NetworkPolicy, enforced: prod's policy as kube-router's network-policy controller (running on
//! every node, its firewall alone) enforces it, as a truth table of who reaches what, each cell
//! expected and observed.
//!
//! Into a prod pod (its serving port and its probe port), from: a client pod in prod's
//! namespace, a client pod in another namespace (the cluster's client image, `kubectl exec` of
//! its busybox `nc`), the pod's own node (where the kubelet probes from), another node, and
//! outside the cluster through the NodePort. Out of the prod pod (from its network namespace: its
//! image has no client): to the API server (the `kubernetes` Service), to another pod, and to an
//! address of the harness outside the cluster (the host's end of the link). The policy says:
//! the serving port from anywhere, the probe port from nothing but the node (the kubelet), and
//! no egress. Controls: the same egress from the client pod in prod's namespace, which no policy
//! selects, is answered, so each refusal is the policy's and not the network's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::Ctx;
use crate::kube::{name, node_of, pod_ip, pod_netns, serving};
use crate::netns::{Reach, ask, run_in};

const SUITE: &str = "netpol";
const CLIENT: &str = "netpol-client";
const OTHER_NS: &str = "hello-k8s-netpol-client";
const CLIENT_PORT: u16 = 8080;
const TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(ctx: &Ctx) -> Result<()> {
    let ns = ctx.namespace_of("prod")?;
    let list: crate::kube::Items<NetworkPolicy> =
        ctx.cluster.get(&["networkpolicies", "-n", &ns])?;
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    ctx.report.check(
        SUITE,
        "prod's NetworkPolicy is admitted and stored",
        !names.is_empty(),
        format!("{names:?}"),
    );
    let image = ctx
        .cluster
        .vars
        .get("CLIENT_IMAGE")
        .cloned()
        .context("the env file names no CLIENT_IMAGE")?;
    ctx.cluster.kubectl(&["create", "namespace", OTHER_NS])?;
    let outcome = table(ctx, &ns, &image);
    // The clients go (a bare pod would stop a later kubectl drain).
    let _ = ctx.cluster.kubectl(&[
        "delete",
        "pod",
        CLIENT,
        "-n",
        &ns,
        "--wait=true",
        "--timeout=60s",
    ]);
    let _ = ctx.cluster.kubectl(&[
        "delete",
        "namespace",
        OTHER_NS,
        "--wait=true",
        "--timeout=120s",
    ]);
    outcome
}

/// One row of the table: where from, and the cells it reaches.
struct Row {
    from: String,
    cells: Vec<Cell>,
}

struct Cell {
    to: String,
    expect: bool,
    seen: Option<Reach>,
}

fn table(ctx: &Ctx, ns: &str, image: &str) -> Result<()> {
    for (namespace, labels) in [(ns, "prod's namespace"), (OTHER_NS, "another namespace")] {
        ctx.cluster
            .kubectl_in(&["apply", "-f", "-"], Some(&client_pod(namespace, image)?))
            .with_context(|| format!("a client pod in {labels}"))?;
    }
    let clients: Vec<Pod> = [ns, OTHER_NS]
        .iter()
        .map(|namespace| {
            ctx.cluster.watch_pods(
                namespace,
                &format!("app.kubernetes.io/name={CLIENT}"),
                "the client pod Ready",
                Duration::from_secs(120),
                |pods| match pods.first() {
                    Some(p) if serving(p) => Ok((**p).clone()),
                    _ => Err("not Ready".into()),
                },
            )
        })
        .collect::<Result<_>>()?;
    let (inside, other) = (&clients[0], &clients[1]);
    let target = ctx
        .settled(ns, Duration::from_secs(180))?
        .into_iter()
        .next()
        .context("no prod pod")?;
    let target_ip = pod_ip(&target).context("the prod pod has no IP")?;
    let target_node = ctx.cluster.node(&node_of(&target))?.clone();
    let another_node = ctx
        .cluster
        .nodes
        .iter()
        .find(|n| n.name != target_node.name)
        .cloned();
    let serve_port = contract::HTTP_PORT;
    let probe_port = contract::PROBE_PORT;
    let serve: SocketAddr = format!("{target_ip}:{serve_port}").parse()?;
    let probe: SocketAddr = format!("{target_ip}:{probe_port}").parse()?;
    let to_serve = format!("{} :{serve_port} (serving)", name(&target));
    let to_probe = format!(":{probe_port} (probes)");
    let ingress = |expect_probe: bool, f: &dyn Fn(SocketAddr, &str) -> Reach| {
        vec![
            Cell {
                to: to_serve.clone(),
                expect: true,
                seen: Some(f(serve, "/")),
            },
            Cell {
                to: to_probe.clone(),
                expect: expect_probe,
                seen: Some(f(probe, "/healthz")),
            },
        ]
    };

    // Ingress.
    let mut rows = vec![
        Row {
            from: format!("a pod in {ns} ({})", node_of(inside)),
            cells: ingress(false, &|a, p| exec_ask(ctx, inside, a, p)),
        },
        Row {
            from: format!("a pod in {OTHER_NS} ({})", node_of(other)),
            cells: ingress(false, &|a, p| exec_ask(ctx, other, a, p)),
        },
        Row {
            from: format!("{}, the pod's node (the kubelet's)", target_node.name),
            cells: ingress(true, &|a, p| from_netns(&target_node.netns(), a, p)),
        },
    ];
    if let Some(node) = &another_node {
        rows.push(Row {
            from: format!("{}, another node", node.name),
            cells: ingress(false, &|a, p| from_netns(&node.netns(), a, p)),
        });
    }
    let nodeport = ctx.node_port_on(&ctx.cluster.nodes[0], ns)?;
    rows.push(Row {
        from: format!("outside the cluster, through the NodePort {nodeport}"),
        cells: vec![
            Cell {
                to: to_serve.clone(),
                expect: true,
                seen: Some(ask(nodeport, "/", TIMEOUT)),
            },
            Cell {
                to: to_probe.clone(),
                expect: false,
                seen: None,
            },
        ],
    });

    // Egress, from the prod pod and, as the control, from the client in its namespace.
    let outside = Outside::start(&ctx.cluster.host_ip)?;
    let api: SocketAddr = format!("{}:443", kubernetes_ip(ctx)?).parse()?;
    let other_ip = pod_ip(other).context("the other client has no IP")?;
    let peer: SocketAddr = format!("{other_ip}:{CLIENT_PORT}").parse()?;
    let targets = [
        (format!("the API server ({api})"), api),
        (format!("another pod ({peer})"), peer),
        (
            format!("the harness outside ({})", outside.addr),
            outside.addr,
        ),
    ];
    let netns = pod_netns(&target)?;
    rows.push(Row {
        from: format!("{} (prod), out", name(&target)),
        cells: targets
            .iter()
            .map(|(to, addr)| Cell {
                to: to.clone(),
                expect: false,
                seen: Some(from_netns(&netns, *addr, "/")),
            })
            .collect(),
    });
    rows.push(Row {
        from: format!("control: the client in {ns}, out"),
        cells: targets
            .iter()
            .map(|(to, addr)| Cell {
                to: to.clone(),
                expect: true,
                seen: Some(exec_ask(ctx, inside, *addr, "/")),
            })
            .collect(),
    });
    let answered_outside = outside.stop();

    // The table, then a verdict per cell.
    let mut text = String::from("truth table (expected / observed):");
    for row in &rows {
        text.push_str(&format!("\n    from {}:", row.from));
        for cell in &row.cells {
            let expect = if cell.expect { "answers" } else { "refused" };
            let seen = match &cell.seen {
                Some(r) => r.to_string(),
                None => "not exposed (the Service publishes the serving port only)".into(),
            };
            text.push_str(&format!("\n      to {:<48} {expect:<8} / {seen}", cell.to));
        }
    }
    ctx.report.note(text);
    let mut wrong = Vec::new();
    let mut cells = 0;
    for row in &rows {
        for cell in &row.cells {
            let Some(seen) = &cell.seen else { continue };
            cells += 1;
            if seen.answered() != cell.expect {
                wrong.push(format!("from {} to {}: {seen}", row.from, cell.to));
            }
        }
    }
    ctx.report.check(
        SUITE,
        "every cell as prod's policy says: the serving port from anywhere, the probe port from the node alone, no egress",
        wrong.is_empty() && cells > 0,
        if wrong.is_empty() {
            format!("{cells} cells")
        } else {
            format!("{} of {cells} cells wrong: {}", wrong.len(), wrong.join("; "))
        },
    );
    ctx.report.check(
        SUITE,
        "the refusals are the policy's: the unselected client's egress is answered, the harness's listener was reached",
        answered_outside > 0,
        format!("the harness's listener answered {answered_outside} connections"),
    );
    ctx.report.count(
        "netpol: cells as expected",
        format!("{} of {cells}", cells - wrong.len()),
    );
    Ok(())
}

/// A client pod (the cluster's client image: busybox's httpd on 8080, `nc` to connect), within
/// Pod Security's restricted profile.
fn client_pod(namespace: &str, image: &str) -> Result<String> {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": CLIENT,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": CLIENT},
        },
        "spec": {
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "client",
                "image": image,
                "imagePullPolicy": "Never",
                "ports": [{"containerPort": CLIENT_PORT, "name": "http"}],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    });
    let _: Pod = serde_json::from_value(pod.clone()).context("the client pod as a typed Pod")?;
    Ok(serde_json::to_string(&pod)?)
}

/// `GET path` to `addr` from a client pod: `kubectl exec` of busybox's `nc`, bounded.
fn exec_ask(ctx: &Ctx, pod: &Pod, addr: SocketAddr, path: &str) -> Reach {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = name(pod);
    let wait = TIMEOUT.as_secs().to_string();
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let mut cmd = Command::new("timeout");
    cmd.arg("20")
        .arg(&ctx.cluster.kubectl)
        .arg("--kubeconfig")
        .arg(&ctx.cluster.kubeconfig)
        .arg("--context")
        .arg(&ctx.cluster.context)
        .args(["exec", "-i", "-n", &namespace, &pod_name, "--"])
        .args(["/bin/busybox", "nc", "-w", &wait, &ip, &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut run = || -> Result<std::process::Output> {
        let mut child = cmd.spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        Ok(child.wait_with_output()?)
    };
    match run() {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            match stdout.lines().next() {
                Some(line) if !line.trim().is_empty() => Reach::Answered(line.trim().to_string()),
                _ => Reach::Refused(format!(
                    "nc {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                )),
            }
        }
        Err(e) => Reach::Refused(format!("kubectl exec: {e:#}")),
    }
}

/// `GET path` to `addr` from inside a network namespace (a node's, a pod's).
fn from_netns(netns: &std::path::Path, addr: SocketAddr, path: &str) -> Reach {
    let path = path.to_string();
    run_in(Some(netns), move || ask(addr, &path, TIMEOUT))
        .unwrap_or_else(|e| Reach::Refused(format!("{e:#}")))
}

/// The `kubernetes` Service's cluster IP (the API server as pods reach it).
fn kubernetes_ip(ctx: &Ctx) -> Result<String> {
    let ip = ctx.cluster.kubectl(&[
        "get",
        "service",
        "kubernetes",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])?;
    if ip.trim().is_empty() {
        bail!("the kubernetes Service has no cluster IP");
    }
    Ok(ip.trim().to_string())
}

/// A listener of the harness outside the cluster, on the host's end of the cluster's link:
/// answers every connection with a line and counts them.
struct Outside {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Outside {
    fn start(host_ip: &str) -> Result<Outside> {
        let listener = TcpListener::bind((host_ip, 0))
            .with_context(|| format!("listening on {host_ip} (the host's end of the link)"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut answered = 0;
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut buf = [0u8; 512];
                        let _ = stream.read(&mut buf);
                        let _ = stream
                            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nharness\n");
                        answered += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            answered
        });
        Ok(Outside { addr, stop, thread })
    }

    /// Stops listening; how many connections it answered.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

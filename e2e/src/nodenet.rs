//! A node's network for the replicas, with the Service as kube-proxy's nftables mode makes it:
//! kernel DNAT, not a user-space proxy, so a flood through it costs the harness nothing per
//! connection.
//!
//! The test creates a "node" network namespace (lo only, like a pod sandbox) and one veth pair
//! per replica: `vp<i>` 10.250.<i>.1/30 on the node, `eth0` 10.250.<i>.2/30 in the pod's own
//! namespace. No other interface and no route lead anywhere else, so the traffic stays inside
//! the test's namespaces. An nftables `nat output` rule in the node namespace sends every new
//! connection to the Service address (`10.96.0.10`, the Service port) to one ready endpoint,
//! round robin (`numgen inc`), and conntrack keeps established connections where they are, as
//! kube-proxy does; the node masquerades toward the pods, so their replies return through the
//! veth they arrived on. Only pods whose readiness probe passes (seen after the endpoint-propagation
//! delay) are in the map; with none ready, new connections are rejected with a reset.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::lock::lock;
use crate::pod::Pod;
use crate::sandbox::{NetMode, Sandbox};

/// The Service's cluster IP in the node namespace (made up; nothing else carries it).
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn pod_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, u8::try_from(i).unwrap_or(255), 2)
}

/// The node namespace and the Service's DNAT rule.
#[derive(Debug)]
pub struct NodeNet {
    /// The node's network namespace (wrk and the harness's clients run in it).
    pub node: Arc<Sandbox>,
    pub service_port: u16,
    target_port: u16,
    ready: Arc<Mutex<Vec<bool>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn run(argv: &[String]) -> Result<()> {
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .await
        .with_context(|| format!("running {}", argv.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn in_ns(pid: u32, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "nsenter".to_string(),
        format!("--net=/proc/{pid}/ns/net"),
        "--".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

impl NodeNet {
    /// Whether this machine can build it: network namespaces, `ip` and `nft`.
    pub fn available(mode: NetMode) -> bool {
        mode == NetMode::Netns
            && std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join("nft").is_file())
            })
    }

    /// Wires `pods` (each in its own namespace) to a new node namespace behind the Service
    /// address; `target_port` is the pods' resolved targetPort.
    pub async fn start(
        pods: &[Arc<Pod>],
        service_port: u16,
        target_port: u16,
        propagation: Duration,
    ) -> Result<NodeNet> {
        let node = Sandbox::new(NetMode::Netns).await?;
        let Some(node_pid) = node.netns_pid() else {
            bail!("the node namespace has no holder");
        };
        for (i, pod) in pods.iter().enumerate() {
            let Some(pod_pid) = pod.sandbox.netns_pid() else {
                bail!("pod {} has no network namespace", pod.identity.name);
            };
            let veth = format!("vp{i}");
            let node_ip = format!("10.250.{i}.1/30");
            let ip = format!("{}/30", pod_ip(i));
            run(&in_ns(
                node_pid,
                &[
                    "ip",
                    "link",
                    "add",
                    &veth,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &pod_pid.to_string(),
                ],
            ))
            .await?;
            run(&in_ns(
                node_pid,
                &["ip", "addr", "add", &node_ip, "dev", &veth],
            ))
            .await?;
            run(&in_ns(node_pid, &["ip", "link", "set", &veth, "up"])).await?;
            run(&in_ns(pod_pid, &["ip", "addr", "add", &ip, "dev", "eth0"])).await?;
            run(&in_ns(pod_pid, &["ip", "link", "set", "eth0", "up"])).await?;
        }
        // The Service address needs a route for the first lookup; the DNAT re-routes each
        // connection to its endpoint's veth, and masquerading makes the replies come back to
        // the node through that same veth (the pods have no route beyond their /30).
        run(&in_ns(
            node_pid,
            &[
                "ip",
                "route",
                "add",
                &format!("{SERVICE_IP}/32"),
                "dev",
                "vp0",
            ],
        ))
        .await?;
        let ready = Arc::new(Mutex::new(vec![false; pods.len()]));
        let mut net = NodeNet {
            node,
            service_port,
            target_port,
            ready: Arc::clone(&ready),
            tasks: Vec::new(),
        };
        net.apply().await?;
        // Endpoints follow each pod's readiness after the propagation delay, like the
        // EndpointSlice controller and kube-proxy's sync.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        for (i, pod) in pods.iter().enumerate() {
            let mut watch = pod.ready.clone();
            let ready = Arc::clone(&ready);
            let tx = tx.clone();
            net.tasks.push(tokio::spawn(async move {
                loop {
                    let value = *watch.borrow_and_update();
                    tokio::time::sleep(propagation).await;
                    lock(&ready)[i] = value;
                    let _ = tx.send(());
                    if watch.changed().await.is_err() {
                        return;
                    }
                }
            }));
        }
        let rules = RuleWriter {
            node_pid,
            service_port,
            target_port,
            ready: Arc::clone(&ready),
        };
        net.tasks.push(tokio::spawn(async move {
            while rx.recv().await.is_some() {
                let _ = rules.apply().await;
            }
        }));
        Ok(net)
    }

    async fn apply(&self) -> Result<()> {
        let Some(node_pid) = self.node.netns_pid() else {
            bail!("the node namespace has no holder");
        };
        RuleWriter {
            node_pid,
            service_port: self.service_port,
            target_port: self.target_port,
            ready: Arc::clone(&self.ready),
        }
        .apply()
        .await
    }

    /// The Service address as clients in the node namespace reach it.
    pub fn service_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(SERVICE_IP, self.service_port)
    }

    /// How many endpoints are in the DNAT map right now.
    pub fn ready_endpoints(&self) -> usize {
        lock(&self.ready).iter().filter(|r| **r).count()
    }

    /// A client program run in the node namespace.
    pub fn client_command(&self, program: &Path) -> Command {
        self.node.client_command(program)
    }
}

impl Drop for NodeNet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // The veths and the rules go with the namespaces.
        self.node.shutdown();
    }
}

/// Writes the Service's rule for the current ready endpoints (atomically, one `nft -f`).
struct RuleWriter {
    node_pid: u32,
    service_port: u16,
    target_port: u16,
    ready: Arc<Mutex<Vec<bool>>>,
}

impl RuleWriter {
    async fn apply(&self) -> Result<()> {
        let endpoints: Vec<Ipv4Addr> = lock(&self.ready)
            .iter()
            .enumerate()
            .filter(|(_, r)| **r)
            .map(|(i, _)| pod_ip(i))
            .collect();
        let matcher = format!("ip daddr {SERVICE_IP} tcp dport {}", self.service_port);
        let action = if endpoints.is_empty() {
            // kube-proxy's REJECT for a Service without endpoints (filter hook: nat cannot).
            String::new()
        } else {
            let map = endpoints
                .iter()
                .enumerate()
                .map(|(k, ip)| format!("{k} : {ip}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{matcher} dnat to numgen inc mod {} map {{ {map} }} : {}\n",
                endpoints.len(),
                self.target_port
            )
        };
        let reject = if endpoints.is_empty() {
            format!("{matcher} reject with tcp reset\n")
        } else {
            String::new()
        };
        let script = format!(
            "table ip e2e-service\ndelete table ip e2e-service\n\
             table ip e2e-service {{\n\
              chain out {{\n  type nat hook output priority -100;\n  {action}}}\n\
              chain post {{\n  type nat hook postrouting priority 100;\n  \
              ip daddr 10.250.0.0/16 masquerade\n}}\n\
              chain filter {{\n  type filter hook output priority 0;\n  {reject}}}\n\
             }}\n"
        );
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.node_pid))
            .args(["--", "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running nft")?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(script.as_bytes()).await?;
        }
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            bail!(
                "nft refused the Service rule ({}): {}\n{script}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }
}

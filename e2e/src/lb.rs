//! A loopback stand-in for a Service as kube-proxy implements it.
//!
//! Layer 4, like kube-proxy: each new client connection goes to one ready endpoint (round
//! robin), and stays there until either side closes it, as conntrack keeps established flows.
//! Endpoints are the pods the Service's selector matches; the named `targetPort` is resolved
//! through each pod's container ports, as the EndpointSlice controller does. An endpoint is
//! used only while the pod's readiness (the simulated kubelet's probe result, with its
//! thresholds) says Ready, seen after an endpoint-propagation delay. With no ready endpoint the
//! connection is refused, as kube-proxy's REJECT rule does.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpListener;

use crate::lock::lock;
use crate::pod::Pod;
use crate::probe::resolve_port;
use crate::sandbox::Sandbox;

/// One endpoint (pod) of the Service.
#[derive(Debug)]
pub struct Endpoint {
    pub pod_name: String,
    sandbox: Arc<Sandbox>,
    target_port: u16,
    serving: Arc<AtomicBool>,
    /// Connections routed to this pod.
    pub connections: AtomicU64,
    deleted: AtomicBool,
}

impl Endpoint {
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }
}

/// The Service's stand-in.
#[derive(Debug)]
pub struct Lb {
    pub addr: SocketAddr,
    service: Service,
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
    next: AtomicUsize,
    /// Connections refused for want of a ready endpoint.
    pub rejected: AtomicU64,
    /// Connections whose endpoint could not be reached.
    pub upstream_errors: AtomicU64,
    propagation: Duration,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Lb {
    /// Listens on an ephemeral loopback port on behalf of `service`.
    pub async fn start(service: &Service, propagation: Duration) -> Result<Arc<Lb>> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let lb = Arc::new(Lb {
            addr: listener.local_addr()?,
            service: service.clone(),
            endpoints: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            propagation,
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&lb);
        let task = tokio::spawn(async move {
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    // Out of file descriptors under a flood: keep the listener, as kube-proxy's
                    // rules outlive any one connection; the client sees a wait or a reset.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Some(lb) = weak.upgrade() else { return };
                tokio::spawn(async move { lb.route(client).await });
            }
        });
        *lock(&lb.task) = Some(task);
        Ok(lb)
    }

    /// The Service port the harness stands in for, and its targetPort.
    fn target(&self) -> Result<IntOrString> {
        let spec = self
            .service
            .spec
            .as_ref()
            .ok_or_else(|| anyhow!("Service has no spec"))?;
        let port = spec
            .ports
            .iter()
            .flatten()
            .next()
            .ok_or_else(|| anyhow!("Service has no ports"))?;
        Ok(port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port)))
    }

    /// Adds `pod` as an endpoint if the selector matches it and its container has the
    /// targetPort; says why not otherwise (no endpoint, as in a cluster).
    pub fn add_pod(&self, pod: &Pod) -> Result<()> {
        let name = self.service.metadata.name.clone().unwrap_or_default();
        let selector = self
            .service
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if selector.is_empty() {
            return Err(anyhow!(
                "Service {name} has no selector: it gets no endpoints"
            ));
        }
        for (k, v) in &selector {
            if pod.identity.labels.get(k) != Some(v) {
                return Err(anyhow!(
                    "Service {name} selector {k}={v} does not match the pod's labels {:?}: \
                     no endpoint",
                    pod.identity.labels
                ));
            }
        }
        let target_port = resolve_port(&self.target()?, &pod.template.container)
            .map_err(|e| anyhow!("Service {name} targetPort: {e}: no endpoint"))?;
        let serving = Arc::new(AtomicBool::new(false));
        let endpoint = Arc::new(Endpoint {
            pod_name: pod.identity.name.clone(),
            sandbox: Arc::clone(&pod.sandbox),
            target_port,
            serving: Arc::clone(&serving),
            connections: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
        });
        let mut ready = pod.ready.clone();
        let propagation = self.propagation;
        let ep = Arc::downgrade(&endpoint);
        tokio::spawn(async move {
            loop {
                let value = *ready.borrow_and_update();
                tokio::time::sleep(propagation).await;
                let Some(ep) = ep.upgrade() else { return };
                ep.serving.store(value, Ordering::SeqCst);
                drop(ep);
                if ready.changed().await.is_err() {
                    return;
                }
            }
        });
        lock(&self.endpoints).push(endpoint);
        Ok(())
    }

    /// The pod object is gone: its endpoint disappears.
    pub fn remove_pod(&self, pod_name: &str) {
        for ep in lock(&self.endpoints).iter() {
            if ep.pod_name == pod_name {
                ep.deleted.store(true, Ordering::SeqCst);
                ep.serving.store(false, Ordering::SeqCst);
            }
        }
    }

    pub fn endpoint(&self, pod_name: &str) -> Option<Arc<Endpoint>> {
        lock(&self.endpoints)
            .iter()
            .find(|e| e.pod_name == pod_name)
            .cloned()
    }

    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        lock(&self.endpoints).clone()
    }

    async fn route(&self, mut client: tokio::net::TcpStream) {
        let ready: Vec<Arc<Endpoint>> = lock(&self.endpoints)
            .iter()
            .filter(|e| e.serving() && !e.deleted.load(Ordering::SeqCst))
            .cloned()
            .collect();
        if ready.is_empty() {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let ep = &ready[self.next.fetch_add(1, Ordering::SeqCst) % ready.len()];
        ep.connections.fetch_add(1, Ordering::SeqCst);
        match ep.sandbox.connect(ep.target_port).await {
            Ok(mut upstream) => {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(_) => {
                self.upstream_errors.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

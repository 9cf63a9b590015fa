//! The end-to-end harness on a real Kubernetes (`make e2e-cluster`).
//!
//! `make cluster` starts a single-node cluster of upstream components (scripts/cluster/); the
//! suites deploy the project onto it the way a user does (`make auto-deploy-prod`, its
//! kubeconfig and context) and take every verdict from the real components: the API server's
//! admission, the kubelet's probes and restarts, kube-proxy's NodePort, the Deployment, ReplicaSet,
//! disruption and autoscaling controllers, metrics-server. The harness only drives traffic,
//! probes from outside for the timeline, and reads the results back.

pub mod kube;
pub mod lock;
pub mod probes;
pub mod quantity;
pub mod report;
pub mod suites;
pub mod traffic;

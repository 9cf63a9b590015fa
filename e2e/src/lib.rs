//! The end-to-end harness on a real Kubernetes (`make e2e-cluster`).
//!
//! `make cluster` starts a cluster of three nodes of upstream components (scripts/cluster/); the
//! suites deploy the project onto it the way a user does (`make auto-deploy-prod`, its
//! kubeconfig and context) and take every verdict from the real components: the API server's
//! admission, the kubelet's probes and restarts, kube-proxy's NodePort, the scheduler, the
//! Deployment, ReplicaSet, disruption, node lifecycle and autoscaling controllers,
//! metrics-server, kube-router's network-policy rules. The harness only drives traffic, probes
//! for the timeline, and reads the results back.

pub mod kube;
pub mod load;
pub mod lock;
pub mod memory;
pub mod netns;
pub mod probes;
pub mod quantity;
pub mod report;
pub mod suites;
pub mod traffic;

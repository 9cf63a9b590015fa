//! The kubelet's-eye end-to-end harness.
//!
//! No cluster runs here, so the harness plays the cluster's part from the rendered manifests:
//! it builds each container's environment as the kubelet does, starts the real release binary
//! with it in a per-pod sandbox, runs the declared probes, terminates pods the kubelet's way,
//! routes traffic like kube-proxy through a readiness-aware loopback load balancer, replaces
//! replicas like the Deployment controller, and proves with mutations that a broken agreement
//! between manifests and binary makes it fail.

pub mod cgroup;
pub mod http;
pub mod image;
pub mod kubelet;
pub mod lb;
pub mod load;
pub mod lock;
pub mod manifests;
pub mod nodenet;
pub mod pod;
pub mod probe;
pub mod prober;
pub mod quantity;
pub mod report;
pub mod sandbox;
pub mod suites;

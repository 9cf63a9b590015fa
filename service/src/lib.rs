//! The `hello-k8s` service as a library, so that the binary stays thin and integration tests
//! can build and run the real application in-process on an ephemeral port.

pub mod allocator;
pub mod cli;
pub mod configuration;
pub mod connection;
pub mod healthcheck;
pub mod metrics;
pub mod middleware;
pub mod negotiation;
pub mod readiness;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;

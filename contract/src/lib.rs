//! The contract between the `hello-k8s` service and the manifests that run it.
//!
//! Everything the binary and the Kubernetes objects must agree on lives here, once: the
//! application name (every resource name and label derives from it), the HTTP port, the probe
//! and operator paths, the container's resources, and the environment keys the service reads
//! ([`KEYS`], declared in `keys.rs`: type, default, range, where the cluster sets each key and
//! to what). The service reads its environment with [`envy`] into [`RawConfig`] and validates
//! it into [`Settings`]; the generator writes the ConfigMap and the container's env from
//! [`KEYS`] and checks what it generates with the same [`Settings`].

mod declare;
pub mod docs;
pub mod files;
mod keys;
pub mod kinds;
mod settings;

pub use declare::{Key, Source};
pub use keys::{Config, KEYS, RawConfig, key, names, spec};
pub use kinds::{ApiKey, Count, Environment, LogFormat, LogLevel};
pub use settings::{ConfigError, Settings};

/// Application name: binary, container, Deployment, Service and `app.kubernetes.io/name`.
pub const APP_NAME: &str = "hello-k8s";
/// The project the application is part of (`app.kubernetes.io/part-of`).
pub const PART_OF: &str = "kubecloudorchestrator";
/// The text `GET /` answers, byte for byte, as the origin did.
pub const GREETING: &str = "Hello World from Kubernetes!";
/// The HTTP port the service listens on and the container exposes (as in the origin).
pub const HTTP_PORT: u16 = 5600;
/// The name of the container port; probes and the Service refer to it by this name.
pub const HTTP_PORT_NAME: &str = "http";
/// The port of the probe listener: liveness and readiness (and only they) are also served here,
/// on a listener of their own, so that a flood of the HTTP port cannot delay the kubelet's
/// probes. The manifests' probes, the container port list and the NetworkPolicy follow it.
pub const PROBE_PORT: u16 = 5601;
/// The name of the probe container port; the probes refer to it by this name.
pub const PROBE_PORT_NAME: &str = "probes";
/// The NodePort the origin used; production keeps it as its entry point.
pub const PROD_NODE_PORT: u16 = 31181;
/// Numeric user and group the container runs as (distroless `nonroot`).
pub const RUN_AS_UID: i64 = 65532;
/// Where the Deployment mounts the generated Secret (read-only); each Secret key is a file.
/// Secrets travel as files, not environment variables: they stay out of `/proc/<pid>/environ`,
/// `kubectl describe` and child processes.
pub const SECRET_MOUNT_DIR: &str = "/var/run/secrets/hello-k8s";
/// The file, inside [`SECRET_MOUNT_DIR`], that holds the API key (the Secret's key name).
pub const API_KEY_SECRET_KEY: &str = "API_KEY";
/// The full path of the API key file in the container: the `API_KEY_FILE` the ConfigMap sets.
pub const API_KEY_FILE_PATH: &str = "/var/run/secrets/hello-k8s/API_KEY";
/// The subcommand that probes a running server (image HEALTHCHECK, no curl in the image).
pub const HEALTHCHECK_SUBCOMMAND: &str = "healthcheck";

/// HTTP paths served by the service.
pub mod paths {
    /// The greeting (text/plain, or an HTML page when the client prefers text/html).
    pub const ROOT: &str = "/";
    /// Liveness: 200 while the process can serve HTTP at all.
    pub const LIVENESS: &str = "/healthz";
    /// Readiness: 200 when the pod should receive traffic, 503 while starting, draining or
    /// switched off by an operator.
    pub const READINESS: &str = "/readyz";
    /// Prometheus text exposition.
    pub const METRICS: &str = "/metrics";
    /// JSON: version, environment, pod, uptime. Never the secret.
    pub const INFO: &str = "/info";
    /// Operator switch for readiness: `POST {ADMIN_READINESS}/off` and `.../on`, with
    /// `Authorization: Bearer <API_KEY>`.
    pub const ADMIN_READINESS: &str = "/admin/readiness";
}

/// The container's resources, as the Deployment declares them. The service sizes its
/// connection limits from the memory limit it is given (the downward API's `limits.memory`),
/// and from [`resources::MEMORY_LIMIT_BYTES`] when it is given none.
pub mod resources {
    /// CPU the scheduler reserves, in millicores.
    pub const CPU_REQUEST_MILLIS: u32 = 50;
    /// CPU quota, in millicores (a CFS quota: `WORKERS=auto` sees one CPU).
    pub const CPU_LIMIT_MILLIS: u32 = 500;
    /// Memory the scheduler reserves.
    pub const MEMORY_REQUEST_BYTES: u64 = 32 * 1024 * 1024;
    /// The memory limit: above it the container is OOM-killed.
    pub const MEMORY_LIMIT_BYTES: u64 = 128 * 1024 * 1024;
}

/// Container port must fit the NodePort range checks and Kubernetes' `int32` fields.
pub const fn http_port_i32() -> i32 {
    HTTP_PORT as i32
}

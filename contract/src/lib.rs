//! The contract between the `hello-k8s` service and the manifests that run it.
//!
//! Everything the binary and the Kubernetes objects must agree on lives here, once: the
//! application name (every resource name and label derives from it), the HTTP port, the probe
//! and operator paths, the environment keys the service reads, where each key comes from in the
//! cluster (ConfigMap, Secret or the downward API) and how each value is parsed and validated.
//!
//! The service deserializes its environment with [`envy`] into [`RawConfig`] and validates it
//! with [`Settings::from_raw`]; the generator builds the Deployment's `env` from [`ENV_KEYS`]
//! and checks the ConfigMap it generates with the same [`Settings::from_raw`]. A test proves
//! that [`ENV_KEYS`] and the fields of [`RawConfig`] are the same set, so a key cannot be
//! renamed on one side only.

mod settings;

pub use settings::{
    ApiKey, ConfigError, Environment, LogFormat, LogLevel, RawConfig, Settings, Workers,
};

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

/// Defaults the service applies when a key is absent (the generator writes them explicitly).
pub mod defaults {
    /// Seconds `/readyz` answers 503 while the server keeps serving after SIGTERM, so that
    /// endpoint controllers and kube-proxy stop routing to the pod before it stops accepting.
    pub const DRAIN_DELAY_SECONDS: u64 = 5;
    /// Seconds in-flight requests get to finish once the server stops accepting.
    pub const SHUTDOWN_TIMEOUT_SECONDS: u64 = 10;
    /// Address the service binds when `HOST` is absent: loopback, so a bare `cargo run`
    /// exposes nothing; the ConfigMap and the image set `0.0.0.0`.
    pub const HOST: &str = "127.0.0.1";
}

/// Where the value of an environment key comes from inside the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A literal of the generated ConfigMap.
    ConfigMap,
    /// A key of the generated Secret.
    Secret,
    /// The downward API: a `fieldRef` with this field path.
    FieldRef(&'static str),
}

/// One environment key the service reads.
#[derive(Debug, Clone, Copy)]
pub struct EnvKey {
    /// The variable name, as in the container's environment.
    pub name: &'static str,
    /// Where the cluster takes it from.
    pub source: Source,
    /// What the service uses when the variable is absent (`None`: required or empty).
    pub default: Option<&'static str>,
    /// The accepted form, as error messages and README state it.
    pub expected: &'static str,
    /// One line for the configuration table.
    pub description: &'static str,
}

/// Every environment key the service reads, in the order README's table lists them.
pub const ENV_KEYS: &[EnvKey] = &[
    EnvKey {
        name: "ENV",
        source: Source::ConfigMap,
        default: Some("development"),
        expected: "one of: development, production",
        description: "Environment name; production switches logs to JSON and requires API_KEY",
    },
    EnvKey {
        name: "DEBUG",
        source: Source::ConfigMap,
        default: Some("false"),
        expected: "true or false",
        description: "Debug mode: raises the default log level to debug (one line per request)",
    },
    EnvKey {
        name: "API_KEY",
        source: Source::Secret,
        default: None,
        expected: "a non-empty token without whitespace (required when ENV=production)",
        description: "Bearer token of the operator readiness switch; in the cluster it is a file (see API_KEY_FILE), never a variable; unset in development disables the switch",
    },
    EnvKey {
        name: "API_KEY_FILE",
        source: Source::ConfigMap,
        default: None,
        expected: "the path of a readable file holding the token (not together with API_KEY)",
        description: "Read the API key from this file, e.g. the mounted Secret; preferred over API_KEY in a cluster",
    },
    EnvKey {
        name: "HOST",
        source: Source::ConfigMap,
        default: Some(defaults::HOST),
        expected: "an IP address to bind, e.g. 0.0.0.0 or 127.0.0.1",
        description: "Address to bind",
    },
    EnvKey {
        name: "PORT",
        source: Source::ConfigMap,
        default: Some("5600"),
        expected: "an integer port number from 1 to 65535",
        description: "TCP port to listen on (the container port)",
    },
    EnvKey {
        name: "LOG_FORMAT",
        source: Source::ConfigMap,
        default: Some("json in production, text otherwise"),
        expected: "json or text",
        description: "Log line format on stdout",
    },
    EnvKey {
        name: "LOG_LEVEL",
        source: Source::ConfigMap,
        default: Some("debug when DEBUG=true, info otherwise"),
        expected: "one of: trace, debug, info, warn, error",
        description: "Minimum level of log lines",
    },
    EnvKey {
        name: "DRAIN_DELAY_SECONDS",
        source: Source::ConfigMap,
        default: Some("5"),
        expected: "a whole number of seconds from 0 to 300",
        description: "After SIGTERM: seconds /readyz answers 503 while the server keeps serving",
    },
    EnvKey {
        name: "SHUTDOWN_TIMEOUT_SECONDS",
        source: Source::ConfigMap,
        default: Some("10"),
        expected: "a whole number of seconds from 1 to 300",
        description: "After the drain: seconds in-flight requests get to finish",
    },
    EnvKey {
        name: "WORKERS",
        source: Source::ConfigMap,
        default: Some("auto"),
        expected: "auto or an integer from 1 to 256",
        description: "HTTP worker threads; auto follows the CPUs (and CPU quota) available",
    },
    EnvKey {
        name: "METRICS_ENABLED",
        source: Source::ConfigMap,
        default: Some("true"),
        expected: "true or false",
        description: "Record and serve Prometheus metrics on /metrics",
    },
    EnvKey {
        name: "POD_NAME",
        source: Source::FieldRef("metadata.name"),
        default: Some("unknown"),
        expected: "any text (set by the downward API)",
        description: "Pod name, shown on the HTML page and /info",
    },
    EnvKey {
        name: "POD_NAMESPACE",
        source: Source::FieldRef("metadata.namespace"),
        default: Some("unknown"),
        expected: "any text (set by the downward API)",
        description: "Pod namespace, shown on /info",
    },
    EnvKey {
        name: "NODE_NAME",
        source: Source::FieldRef("spec.nodeName"),
        default: Some("unknown"),
        expected: "any text (set by the downward API)",
        description: "Node name, shown on the HTML page and /info",
    },
];

/// The key description of `name`, if the service reads it.
pub fn env_key(name: &str) -> Option<&'static EnvKey> {
    ENV_KEYS.iter().find(|key| key.name == name)
}

/// Names of the keys that come from `source`, in table order.
pub fn keys_from(source: Source) -> impl Iterator<Item = &'static str> {
    ENV_KEYS
        .iter()
        .filter(move |key| match (key.source, source) {
            (Source::FieldRef(_), Source::FieldRef(_)) => true,
            (a, b) => a == b,
        })
        .map(|key| key.name)
}

/// Container port must fit the NodePort range checks and Kubernetes' `int32` fields.
pub const fn http_port_i32() -> i32 {
    HTTP_PORT as i32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_and_raw_config_fields_are_the_same_set() {
        let mut declared: Vec<String> = ENV_KEYS.iter().map(|k| k.name.to_lowercase()).collect();
        let mut deserialized: Vec<String> = RawConfig::field_names()
            .iter()
            .map(|f| f.to_string())
            .collect();
        declared.sort();
        deserialized.sort();
        assert_eq!(declared, deserialized);
    }

    #[test]
    fn env_key_names_are_unique_and_upper_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for key in ENV_KEYS {
            assert!(seen.insert(key.name), "{} listed twice", key.name);
            assert!(
                key.name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{} is not UPPER_SNAKE_CASE",
                key.name
            );
        }
    }

    #[test]
    fn api_key_file_points_into_the_secret_mount() {
        assert_eq!(keys_from(Source::Secret).next(), Some(API_KEY_SECRET_KEY));
        assert_eq!(
            API_KEY_FILE_PATH,
            format!("{SECRET_MOUNT_DIR}/{API_KEY_SECRET_KEY}")
        );
    }

    #[test]
    fn only_api_key_comes_from_the_secret() {
        assert_eq!(
            keys_from(Source::Secret).collect::<Vec<_>>(),
            vec!["API_KEY"]
        );
    }
}

//! Every environment key the service reads, declared once.
//!
//! A key is one entry: what it does (the doc line), its type and typed default, its kind
//! (range and accepted form), where the cluster sets it and to what, and values the service
//! must refuse. Everything else is derived from this list: the parser ([`Config`]), the
//! errors, the generated ConfigMap literals and container env, the documentation's table and
//! the end-to-end configuration battery. A new key is one new entry here plus the code that
//! uses it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::declare::declare_keys;
use crate::kinds::{
    ApiKey, AutoOr, Bytes, Choice, Count, Environment, FilePath, Flag, Ip, LogFormat, LogLevel,
    Optional, Port, Seconds, Text, Token,
};

/// Every address of the container's network namespace: what the pod must bind so that the
/// kubelet's probes and the Service reach it.
const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

declare_keys! {
    /// Environment name; production switches logs to JSON and requires the API key
    env: Environment = Environment::Development,
        kind Choice::<Environment>::new(),
        from config_map(|environment| environment),
        invalid ["staging", "Production", ""];

    /// Debug mode: raises the default log level to debug (one line per request)
    debug: bool = false,
        kind Flag,
        from config_map(|environment| environment == Environment::Development),
        invalid ["maybe", "1", "TRUE"];

    /// Bearer token of the operator readiness switch; in the cluster it is a file (see API_KEY_FILE), never a variable; unset in development disables the switch
    api_key: Option<ApiKey> = None,
        kind Optional(Token),
        from secret,
        invalid ["", "two words", "tab\tinside"];

    /// Read the API key from this file, e.g. the mounted Secret; preferred over API_KEY in a cluster (not together with it)
    api_key_file: Option<PathBuf> = None,
        kind Optional(FilePath { holding: "the API key" }),
        from config_map(|_| Some(PathBuf::from(crate::API_KEY_FILE_PATH))),
        invalid ["/nonexistent/hello-k8s/API_KEY", "", "/", "/dev/zero"];

    /// Address to bind; loopback by default, so a bare run exposes nothing
    host: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST),
        kind Ip,
        from config_map(|_| ANY),
        invalid ["localhost", "999.1.1.1", ""];

    /// TCP port to listen on (the container port)
    port: u16 = crate::HTTP_PORT,
        kind Port,
        from config_map(|_| crate::HTTP_PORT),
        invalid ["abc", "0", "65536", "+80", "-1"];

    /// TCP port of the probe listener: /healthz and /readyz only, on a listener and thread of their own that a flood of PORT cannot delay (the probes' container port)
    probe_port: u16 = crate::PROBE_PORT,
        kind Port,
        from config_map(|_| crate::PROBE_PORT),
        invalid ["abc", "0", "65536", "probes"];

    /// Log line format on stdout
    log_format: Option<LogFormat> = None,
        kind Optional(Choice::<LogFormat>::new()),
        default "json in production, text otherwise",
        from config_map(|environment| Some(match environment {
            Environment::Development => LogFormat::Text,
            Environment::Production => LogFormat::Json,
        })),
        invalid ["yaml", "JSON"];

    /// Minimum level of log lines
    log_level: Option<LogLevel> = None,
        kind Optional(Choice::<LogLevel>::new()),
        default "debug when DEBUG=true, info otherwise",
        from config_map(|environment| Some(match environment {
            Environment::Development => LogLevel::Debug,
            Environment::Production => LogLevel::Info,
        })),
        invalid ["verbose", "INFO", "5"];

    /// After SIGTERM: seconds /readyz answers 503 while the server keeps serving
    drain_delay_seconds: Duration = Duration::from_secs(5),
        kind Seconds { min: 0, max: 300 },
        from config_map(|_| Duration::from_secs(5)),
        invalid ["5s", "301", "-1", "1.5"];

    /// After the drain: seconds in-flight requests get to finish
    shutdown_timeout_seconds: Duration = Duration::from_secs(10),
        kind Seconds { min: 1, max: 300 },
        from config_map(|_| Duration::from_secs(10)),
        invalid ["0", "301", "ten"];

    /// HTTP worker threads; auto follows the CPUs (and CPU quota) available
    workers: Count = Count::Auto,
        kind AutoOr { min: 1, max: 256 },
        from config_map(|_| Count::Auto),
        invalid ["0", "257", "many"];

    /// Connections served at once; auto sizes it from the memory limit (connections beyond it wait for a slot or are refused)
    max_connections: Count = Count::Auto,
        kind AutoOr { min: 1, max: 100_000 },
        from config_map(|_| Count::Auto),
        invalid ["0", "100001", "unlimited"];

    /// Record and serve Prometheus metrics on /metrics
    metrics_enabled: bool = true,
        kind Flag,
        from config_map(|_| true),
        invalid ["yes", "on"];

    /// The container's memory limit in bytes, which sizes the connection limits; unset: the cgroup's limit, else the Deployment's
    memory_limit_bytes: Option<u64> = None,
        kind Optional(Bytes { min: 1 }),
        from resource_field("limits.memory"),
        invalid ["128Mi", "0", "-1", "1e9"];

    /// Pod name, shown on the HTML page and /info
    pod_name: String = "unknown".to_owned(),
        kind Text { fallback: "unknown" },
        from field_ref("metadata.name"),
        invalid [];

    /// Pod namespace, shown on /info
    pod_namespace: String = "unknown".to_owned(),
        kind Text { fallback: "unknown" },
        from field_ref("metadata.namespace"),
        invalid [];

    /// Node name, shown on the HTML page and /info
    node_name: String = "unknown".to_owned(),
        kind Text { fallback: "unknown" },
        from field_ref("spec.nodeName"),
        invalid [];
}

/// The key called `name`, if the service reads it.
pub fn key(name: &str) -> Option<&'static crate::declare::Key> {
    KEYS.iter().find(|key| key.name == name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::declare::Source;

    #[test]
    fn names_are_the_upper_case_fields_and_unique() {
        assert_eq!(names::drain_delay_seconds, "DRAIN_DELAY_SECONDS");
        let mut seen = std::collections::BTreeSet::new();
        for key in KEYS {
            assert_eq!(key.name, key.field.to_ascii_uppercase());
            assert!(seen.insert(key.name), "{} declared twice", key.name);
        }
    }

    #[test]
    fn every_cluster_value_is_accepted_and_every_invalid_sample_refused() {
        for key in KEYS {
            for environment in [Environment::Development, Environment::Production] {
                if let Some(value) = key.cluster_value(environment) {
                    assert!(key.accepts(&value), "{} = {value:?}", key.name);
                }
            }
            for bad in key.invalid {
                let err =
                    crate::Settings::from_raw(RawConfig::from_pairs([(key.name, *bad)]).unwrap())
                        .expect_err(&format!("{} = {bad:?} is accepted", key.name));
                assert_eq!(err.key, key.name, "{err}");
            }
            if let Some(default) = key.default().filter(|_| !key.default_is_a_rule()) {
                assert!(key.accepts(&default), "{} default {default:?}", key.name);
            }
        }
    }

    #[test]
    fn only_the_api_key_is_secret_and_it_comes_from_the_secret() {
        let secret: Vec<&str> = KEYS
            .iter()
            .filter(|k| k.is_secret())
            .map(|k| k.name)
            .collect();
        assert_eq!(secret, ["API_KEY"]);
        let from_secret: Vec<&str> = KEYS
            .iter()
            .filter(|k| matches!(k.source, Source::Secret))
            .map(|k| k.name)
            .collect();
        assert_eq!(from_secret, [crate::API_KEY_SECRET_KEY]);
    }

    #[test]
    fn the_cluster_points_api_key_file_into_the_secret_mount() {
        let file = key("API_KEY_FILE").unwrap();
        assert_eq!(
            file.cluster_value(Environment::Production).as_deref(),
            Some(crate::API_KEY_FILE_PATH)
        );
        assert_eq!(
            crate::API_KEY_FILE_PATH,
            format!("{}/{}", crate::SECRET_MOUNT_DIR, crate::API_KEY_SECRET_KEY)
        );
    }

    #[test]
    fn defaults_are_typed_and_documented() {
        assert_eq!(key("PORT").unwrap().default().as_deref(), Some("5600"));
        assert_eq!(
            key("PROBE_PORT").unwrap().default().as_deref(),
            Some("5601")
        );
        assert_eq!(key("HOST").unwrap().default().as_deref(), Some("127.0.0.1"));
        assert_eq!(key("API_KEY").unwrap().default(), None);
        assert_eq!(
            key("DRAIN_DELAY_SECONDS").unwrap().accepted(),
            "a whole number of seconds from 0 to 300"
        );
        assert!(key("LOG_FORMAT").unwrap().default_is_a_rule());
    }
}

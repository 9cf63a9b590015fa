//! The environments and their settings: everything that differs between dev and prod.

use std::fmt;

use contract::APP_NAME;

/// A deployment environment; each has one overlay and one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Env {
    Dev,
    Prod,
}

/// How an environment's Secret is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// Literal pairs committed in the overlay: only for obviously fake development keys.
    Literals(&'static [(&'static str, &'static str)]),
    /// An operator-provided env file next to the kustomization, ignored by git.
    EnvFile(&'static str),
}

/// HorizontalPodAutoscaler bounds and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autoscaling {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub cpu_utilization: i32,
}

/// What one environment looks like.
#[derive(Debug, Clone, Copy)]
pub struct EnvSettings {
    pub node_port: i32,
    pub replicas: i32,
    /// The service environment the overlay runs (its ConfigMap literals follow from it).
    pub environment: contract::Environment,
    pub secret: SecretSource,
    /// PodDisruptionBudget and topology spread: what production adds (with autoscaling).
    pub hardened: bool,
    pub autoscaling: Option<Autoscaling>,
}

/// The fake development key: committed on purpose, accepted by the service, useless anywhere.
pub const DEV_API_KEY: &str = "dev-insecure-not-a-secret";
/// The operator-provided Secret file of the production overlay (git-ignored).
pub const PROD_SECRET_FILE: &str = "secret.env";

impl Env {
    pub const ALL: [Env; 2] = [Env::Dev, Env::Prod];

    pub const fn name(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Prod => "prod",
        }
    }

    /// The namespace the overlay deploys into: one per environment, so they never collide.
    pub fn namespace(self) -> String {
        format!("{APP_NAME}-{}", self.name())
    }

    pub const fn settings(self) -> EnvSettings {
        match self {
            Env::Dev => EnvSettings {
                node_port: 31180,
                replicas: 1,
                environment: contract::Environment::Development,
                secret: SecretSource::Literals(&[("API_KEY", DEV_API_KEY)]),
                hardened: false,
                autoscaling: None,
            },
            Env::Prod => EnvSettings {
                node_port: contract::PROD_NODE_PORT as i32,
                replicas: 3,
                environment: contract::Environment::Production,
                secret: SecretSource::EnvFile(PROD_SECRET_FILE),
                hardened: true,
                autoscaling: Some(Autoscaling {
                    min_replicas: 3,
                    max_replicas: 10,
                    cpu_utilization: 70,
                }),
            },
        }
    }
}

impl EnvSettings {
    /// The ConfigMap literals: every ConfigMap key of the contract with its cluster value for
    /// this environment, in declaration order.
    pub fn literals(&self) -> Vec<(String, String)> {
        contract::KEYS
            .iter()
            .filter_map(|key| Some((key.name.to_owned(), key.cluster_value(self.environment)?)))
            .collect()
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_environment_sets_every_configmap_key_of_the_contract() {
        for env in Env::ALL {
            let literals = env.settings().literals();
            for key in contract::KEYS
                .iter()
                .filter(|k| matches!(k.source, contract::Source::ConfigMap(_)))
                .map(|k| k.name)
            {
                assert!(
                    literals.iter().any(|(k, _)| *k == key),
                    "{env} does not set {key}"
                );
            }
        }
    }

    #[test]
    fn environments_use_different_node_ports_and_namespaces() {
        assert_ne!(
            Env::Dev.settings().node_port,
            Env::Prod.settings().node_port
        );
        assert_ne!(Env::Dev.namespace(), Env::Prod.namespace());
        assert_eq!(Env::Prod.settings().node_port, 31181);
    }
}

//! Command-line interface: no subcommand serves, `healthcheck` probes a running server.

use clap::{Parser, Subcommand};

/// The hello-k8s web service. Configuration comes from the environment (see README)
#[derive(Debug, Parser)]
#[command(name = contract::APP_NAME, version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe the running server's /healthz on the configured port; exit 0 when it answers 200
    Healthcheck,
}

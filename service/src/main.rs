//! `hello-k8s`: serve (the default) or probe a running server (`hello-k8s healthcheck`).

use std::process::ExitCode;

use clap::Parser;
use hello_k8s::cli::{Cli, Command};
use hello_k8s::configuration::{self, Settings};
use hello_k8s::connection::admission;
use hello_k8s::startup::Application;
use hello_k8s::{allocator, healthcheck, telemetry};

/// jemalloc rather than glibc's malloc: it gives the memory of a connection flood back to the
/// OS once the flood is over (see `hello_k8s::allocator`). Every build has it but `make run`'s
/// (built without the default `jemalloc` feature, to skip its C build).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Some(Command::Healthcheck) => healthcheck::run(),
        None => serve(),
    }
}

fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    // Before anything starts: a process that cannot hold its listeners, its workers and one
    // connection refuses to start rather than panic in a worker.
    if let Err(err) = admission::check_open_files(configuration::workers(&settings)) {
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    let subscriber =
        telemetry::get_subscriber(settings.log_level, settings.log_format, std::io::stdout);
    telemetry::init_subscriber(subscriber);
    configuration::log_summary(&settings);
    allocator::start();

    let result = actix_web::rt::System::new()
        .block_on(async move { Application::build(settings)?.run_until_stopped().await });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

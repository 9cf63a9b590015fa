use std::process::ExitCode;

use clap::Parser;
use manifest_gen::cli::{Cli, run};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(manifest_gen::input::exit_code(&err))
        }
    }
}

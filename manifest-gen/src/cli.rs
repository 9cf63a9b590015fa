//! The command line: argument definitions (clap derive) and what each command does.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::env::{Env, SecretSource};
use crate::objects::{self, Plan};
use crate::overrides::{ImageRef, Literal, Overrides, namespace};
use crate::{secret_env, tree, validate};

/// Generate the hello-k8s kustomize tree from typed Kubernetes objects
///
/// Without a command, print the overlay kustomization.yaml of --env (exactly the committed
/// file when no override is given).
#[derive(Debug, Parser)]
#[command(
    name = "manifest-gen",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  manifest-gen --env dev\n  manifest-gen write\n  manifest-gen check\n  manifest-gen render --env prod --image hello-k8s:0.2.0 | kubectl apply -f -"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Environment whose overlay to print
    #[arg(long, value_enum, required = true)]
    pub env: Option<Env>,

    /// Write the overlay directory (kustomization.yaml and its files) to DIR instead
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Root of the generated tree (the overlay refers to its base)
    #[arg(long, value_name = "DIR", default_value = "k8s")]
    pub root: PathBuf,

    #[command(flatten)]
    pub overrides: OverrideArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the whole tree (base and every overlay), atomically
    Write {
        /// Root of the generated tree
        #[arg(long, value_name = "DIR", default_value = "k8s")]
        root: PathBuf,
    },
    /// Compare the tree with what would be generated; exit 1 with a diff on drift
    Check {
        /// Root of the generated tree
        #[arg(long, value_name = "DIR", default_value = "k8s")]
        root: PathBuf,
    },
    /// Print the final objects of an environment (what `kubectl kustomize` yields)
    Render {
        /// Environment to render
        #[arg(long, value_enum)]
        env: Env,

        /// Env file with the Secret's keys [default: <ROOT>/overlays/<ENV>/secret.env]
        #[arg(long, value_name = "FILE")]
        secret_env_file: Option<PathBuf>,

        /// Root of the generated tree (where the default Secret file lives)
        #[arg(long, value_name = "DIR", default_value = "k8s")]
        root: PathBuf,

        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Check an environment's objects (every command does this before any output)
    Validate {
        /// Environment to check [default: all]
        #[arg(long, value_enum)]
        env: Option<Env>,

        #[command(flatten)]
        overrides: OverrideArgs,
    },
}

/// What a user can change without editing Rust.
#[derive(Debug, Clone, Default, Args)]
pub struct OverrideArgs {
    /// Run this image instead of image.env's
    #[arg(long, value_name = "NAME:TAG|NAME[:TAG]@sha256:HEX", value_parser = parse_image)]
    pub image: Option<ImageRef>,

    /// Run this many replicas
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub replicas: Option<i32>,

    /// Set a ConfigMap literal (repeatable); the value may be any text
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_literal)]
    pub set: Vec<Literal>,

    /// Deploy into this namespace
    #[arg(long, value_name = "NS", value_parser = namespace)]
    pub namespace: Option<String>,
}

fn parse_image(s: &str) -> Result<ImageRef, String> {
    s.parse()
}

fn parse_literal(s: &str) -> Result<Literal, String> {
    s.parse()
}

impl From<OverrideArgs> for Overrides {
    fn from(args: OverrideArgs) -> Self {
        Overrides {
            image: args.image,
            replicas: args.replicas,
            set: args.set,
            namespace: args.namespace,
        }
    }
}

/// Runs the parsed command line; `Ok` carries the exit code (check reports drift with 1).
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Write { root }) => {
            let files = tree::tree()?;
            tree::write(&root, &files, true)?;
            eprintln!("wrote {} files under {}", files.len(), root.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Check { root }) => {
            let files = tree::tree()?;
            let report = tree::check(&root, &files)?;
            if report.is_empty() {
                eprintln!("{} is current ({} files)", root.display(), files.len());
                Ok(ExitCode::SUCCESS)
            } else {
                print(&report)?;
                eprintln!(
                    "error: {} differs from what manifest-gen generates; run `{}`",
                    root.display(),
                    tree::REGENERATE
                );
                Ok(ExitCode::FAILURE)
            }
        }
        Some(Command::Render {
            env,
            secret_env_file,
            root,
            overrides,
        }) => {
            let plan = planned(env, &overrides.into())?;
            let secret = match plan.settings.secret {
                SecretSource::Literals(pairs) => objects::literal_secret_data(pairs),
                SecretSource::EnvFile(file) => {
                    let path = secret_env_file
                        .unwrap_or_else(|| root.join("overlays").join(env.name()).join(file));
                    let data = secret_env::read(&path)?;
                    check_secret(&data, &path)?;
                    data
                }
            };
            let rendered = objects::render(&plan, &secret);
            validate::validate(&rendered)?;
            print(&rendered.to_yaml()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Validate { env, overrides }) => {
            let overrides: Overrides = overrides.into();
            let envs = env.map_or(Env::ALL.to_vec(), |e| vec![e]);
            for env in envs {
                let plan = planned(env, &overrides)?;
                validate::validate(&objects::render(
                    &plan,
                    &objects::placeholder_secret_data(&plan),
                ))?;
                eprintln!("{env}: valid");
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let Some(env) = cli.env else {
                bail!("--env is required without a command");
            };
            let plan = planned(env, &cli.overrides.into())?;
            validate::validate(&objects::render(
                &plan,
                &objects::placeholder_secret_data(&plan),
            ))?;
            match cli.out_dir {
                None => print(&tree::overlay_kustomization_text(
                    &plan,
                    tree::BASE_FROM_OVERLAY,
                )?)?,
                Some(dir) => {
                    let base = base_reference(&dir, &cli.root)?;
                    let files = tree::overlay_files(&plan, &base)?;
                    tree::write(&dir, &files, false)?;
                    eprintln!("wrote {} files under {}", files.len(), dir.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The plan of `env` with `overrides`; its warnings go to stderr, one line each.
fn planned(env: Env, overrides: &Overrides) -> Result<Plan> {
    let plan = Plan::new(env, overrides)?;
    for warning in &plan.warnings {
        eprintln!("{warning}");
    }
    Ok(plan)
}

/// The Secret must hold what the service needs, checked by the service's own rules (whose
/// messages never show the value).
fn check_secret(data: &objects::SecretData, path: &Path) -> Result<()> {
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > crate::overrides::MAX_DATA_BYTES {
        bail!(
            "the Secret file {} holds {size} bytes of keys and values, above the API server's limit of {} bytes (1 MiB)",
            path.display(),
            crate::overrides::MAX_DATA_BYTES
        );
    }
    let pairs = data
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()));
    let with_env = pairs.chain([("ENV".to_string(), "production".to_string())]);
    contract::RawConfig::from_pairs(with_env)
        .and_then(contract::Settings::from_raw)
        .map(drop)
        .with_context(|| format!("in the Secret file {}", path.display()))
}

/// The path of `<root>/base` relative to `dir`, as the overlay's `resources` entry.
fn base_reference(dir: &Path, root: &Path) -> Result<String> {
    let base = root.join("base");
    let base = base.canonicalize().with_context(|| {
        format!(
            "cannot find the base {} (the overlay refers to it; run `manifest-gen write` or pass --root)",
            base.display()
        )
    })?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let from: Vec<Component> = dir.components().collect();
    let to: Vec<Component> = base.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for part in &to[common..] {
        relative.push(part);
    }
    Ok(relative.to_string_lossy().into_owned())
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}

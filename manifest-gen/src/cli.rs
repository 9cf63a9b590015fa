//! The command line: argument definitions (clap derive) and what each command does.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::checks::{CheckedPlan, check};
use crate::declaration::{Overlay, Overlays};
use crate::objects::Refs;
use crate::overrides::{ImageRef, Literal, Overrides, namespace};
use crate::plan::Plan;
use crate::tree::{self, REGENERATE};
use crate::{cmdline, docs, render};

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
    after_help = "Examples:\n  manifest-gen --env dev > k8s/overlays/dev/kustomization.yaml\n  manifest-gen write\n  manifest-gen check\n  manifest-gen overlays\n  manifest-gen render --env prod --image hello-k8s:0.2.0 | kubectl apply -f -"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Overlay whose kustomization.yaml to print (see `manifest-gen overlays`)
    #[arg(long, value_name = "NAME", required = true)]
    pub env: Option<String>,

    /// Write the overlay directory (kustomization.yaml, and secret.env.example when its
    /// Secret comes from a file) to DIR instead
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Root of the generated tree (the overlay refers to its base and components)
    #[arg(long, value_name = "DIR", default_value = "k8s")]
    pub root: PathBuf,

    #[command(flatten)]
    pub declaration: DeclarationArg,

    #[command(flatten)]
    pub overrides: OverrideArgs,
}

/// Which overlay declaration to use.
#[derive(Debug, Clone, Default, Args)]
pub struct DeclarationArg {
    /// Read the overlay declaration from FILE [default: the compiled-in manifest-gen/overlays.yaml]
    #[arg(long, value_name = "FILE")]
    pub overlays: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the whole tree (base, components and every overlay), atomically
    Write {
        /// Root of the generated tree
        #[arg(long, value_name = "DIR", default_value = "k8s")]
        root: PathBuf,

        #[command(flatten)]
        declaration: DeclarationArg,
    },
    /// Compare the tree with what would be generated; exit 1 with a diff on drift
    Check {
        /// Root of the generated tree
        #[arg(long, value_name = "DIR", default_value = "k8s")]
        root: PathBuf,

        #[command(flatten)]
        declaration: DeclarationArg,
    },
    /// Print the final objects of an overlay: `kubectl kustomize` on the tree written to a
    /// temporary directory, with the overrides in its overlay (KUBECTL names the kubectl)
    Render {
        /// Overlay to render
        #[arg(long, value_name = "NAME")]
        env: String,

        /// Env file with the Secret's keys [default: <ROOT>/overlays/<NAME>/secret.env]
        #[arg(long, value_name = "FILE")]
        secret_env_file: Option<PathBuf>,

        /// Root of the generated tree (where the default Secret file lives)
        #[arg(long, value_name = "DIR", default_value = "k8s")]
        root: PathBuf,

        #[command(flatten)]
        declaration: DeclarationArg,

        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Check an overlay with the overrides (every command does this before any output)
    Validate {
        /// Overlay to check [default: all]
        #[arg(long, value_name = "NAME")]
        env: Option<String>,

        #[command(flatten)]
        declaration: DeclarationArg,

        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Print the declared overlay names, one per line (for scripts and the Makefile)
    Overlays {
        #[command(flatten)]
        declaration: DeclarationArg,
    },
    /// Fill or check the generated blocks of README.md and docs/*.md
    #[command(group(ArgGroup::new("mode").required(true).args(["write", "check"])))]
    Docs {
        /// Rewrite the blocks in place (atomically)
        #[arg(long)]
        write: bool,

        /// Exit 1 naming each file and block that is not current
        #[arg(long)]
        check: bool,

        /// Repository root holding README.md and docs/
        #[arg(long, value_name = "DIR", default_value = ".")]
        root: PathBuf,

        #[command(flatten)]
        declaration: DeclarationArg,
    },
}

/// What a user can change without editing Rust.
#[derive(Debug, Clone, Default, Args)]
pub struct OverrideArgs {
    /// Run this image instead of image.env's (a digest pins it: NAME[:TAG]@sha256:HEX)
    #[arg(long, value_name = "NAME:TAG", value_parser = parse_image)]
    pub image: Option<ImageRef>,

    /// Run this many replicas
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub replicas: Option<i32>,

    /// Set a ConfigMap literal (repeatable); the value may be any text but DEL, C1 controls,
    /// U+FFFE and U+FFFF
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_literal)]
    pub set: Vec<Literal>,

    /// Deploy into this namespace (a DNS-1123 label, not default, not starting with kube-)
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

impl Overrides {
    /// The flags that give these overrides, in a stable order.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(image) = &self.image {
            args.extend(["--image".to_string(), image.to_string()]);
        }
        if let Some(replicas) = self.replicas {
            args.extend(["--replicas".to_string(), replicas.to_string()]);
        }
        for literal in &self.set {
            args.push(format!("--set={}={}", literal.key, literal.value));
        }
        if let Some(namespace) = &self.namespace {
            args.extend(["--namespace".to_string(), namespace.clone()]);
        }
        args
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

impl DeclarationArg {
    fn load(&self) -> Result<Overlays> {
        Overlays::load(self.overlays.as_deref())
    }

    /// `--overlays FILE` when a declaration file is in use.
    fn args(&self) -> Vec<String> {
        self.overlays
            .as_deref()
            .map(|f| vec!["--overlays".to_string(), path_arg(f)])
            .unwrap_or_default()
    }
}

/// The command the header of the whole tree names.
fn tree_command(declaration: &DeclarationArg, root: &Path) -> String {
    if declaration.overlays.is_none() {
        return REGENERATE.to_string();
    }
    let mut args = vec!["write".to_string(), "--root".to_string(), path_arg(root)];
    args.extend(declaration.args());
    cmdline::command(&args)
}

/// Runs the parsed command line; `Ok` carries the exit code (check reports drift with 1).
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Write { root, declaration }) => {
            let overlays = declaration.load()?;
            let files = tree::tree(&overlays, &tree_command(&declaration, &root))?;
            tree::write(&root, &files, true)?;
            eprintln!("wrote {} files under {}", files.len(), root.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Check { root, declaration }) => {
            let overlays = declaration.load()?;
            let files = tree::tree(&overlays, &tree_command(&declaration, &root))?;
            let report = tree::check(&root, &files)?;
            if report.is_empty() {
                eprintln!("{} is current ({} files)", root.display(), files.len());
                Ok(ExitCode::SUCCESS)
            } else {
                print(&report)?;
                eprintln!(
                    "error: {} differs from what manifest-gen generates; run `{}`",
                    root.display(),
                    tree_command(&declaration, &root)
                );
                Ok(ExitCode::FAILURE)
            }
        }
        Some(Command::Render {
            env,
            secret_env_file,
            root,
            declaration,
            overrides,
        }) => {
            let overlays = declaration.load()?;
            let checked = planned(overlays.find(&env)?, &overrides.into())?;
            print(&render::render(
                &checked,
                &root,
                secret_env_file.as_deref(),
            )?)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Validate {
            env,
            declaration,
            overrides,
        }) => {
            let overlays = declaration.load()?;
            let overrides: Overrides = overrides.into();
            let chosen: Vec<&Overlay> = match &env {
                Some(name) => vec![overlays.find(name)?],
                None => overlays.list.iter().collect(),
            };
            for overlay in chosen {
                planned(overlay, &overrides)?;
                eprintln!("{overlay}: valid");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Overlays { declaration }) => {
            let overlays = declaration.load()?;
            print(
                &overlays
                    .names()
                    .iter()
                    .map(|n| format!("{n}\n"))
                    .collect::<String>(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Docs {
            write,
            check,
            root,
            declaration,
        }) => {
            let overlays = declaration.load()?;
            debug_assert!(write != check);
            docs::run(
                &root,
                &overlays,
                if write {
                    docs::Mode::Write
                } else {
                    docs::Mode::Check
                },
            )
        }
        None => {
            let Some(name) = cli.env else {
                bail!("--env is required without a command");
            };
            let overlays = cli.declaration.load()?;
            let overlay = overlays.find(&name)?;
            let overrides: Overrides = cli.overrides.into();
            let checked = planned(overlay, &overrides)?;
            let mut args = cli.declaration.args();
            args.extend(["--env".to_string(), name.clone()]);
            args.extend(overrides.args());
            match cli.out_dir {
                None => {
                    let regenerate = if args.len() == 2 {
                        REGENERATE.to_string()
                    } else {
                        format!("{} > kustomization.yaml", cmdline::command(&args))
                    };
                    print(&tree::overlay_kustomization_text(
                        &checked,
                        &Refs::committed(),
                        &regenerate,
                    )?)?;
                }
                Some(dir) => {
                    let refs = references(&dir, &cli.root, &overlays, &name)?;
                    args.extend([
                        "--root".to_string(),
                        path_arg(&cli.root),
                        "--out-dir".to_string(),
                        path_arg(&dir),
                    ]);
                    let files =
                        tree::overlay_files(&checked, &refs, &cmdline::command(&args), &dir)?;
                    tree::write(&dir, &files, false)?;
                    eprintln!("wrote {} files under {}", files.len(), dir.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The checked plan of `overlay` with `overrides`; its warnings go to stderr, one line each.
fn planned(overlay: &Overlay, overrides: &Overrides) -> Result<CheckedPlan> {
    let checked = check(Plan::new(overlay, overrides)?)?;
    for warning in checked.warnings() {
        eprintln!("{warning}");
    }
    Ok(checked)
}

/// `path` made absolute with every symlink resolved, whether or not it exists yet: its
/// longest existing ancestor canonicalized, plus the rest, which may not hold `..` (a
/// component that does not exist cannot be a symlink, so the result is where writes land).
fn resolved(path: &Path) -> Result<PathBuf> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let existing = absolute
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let mut out = existing
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", existing.display()))?;
    for component in absolute
        .strip_prefix(existing)
        .unwrap_or(Path::new(""))
        .components()
    {
        match component {
            std::path::Component::Normal(part) => out.push(part),
            std::path::Component::CurDir => {}
            _ => bail!(
                "--out-dir {}: `..` after a directory that does not exist yet; name the directory without it",
                path.display()
            ),
        }
    }
    Ok(out)
}

/// Refuses an `--out-dir` that is a directory of the generated tree under `root` (canonical)
/// other than `own`'s overlay directory: the tree's root, `overlays/`, the base, the
/// components (or anything under them) and the other declared overlays (or anything under
/// them). `make manifests` owns those, and an overlay written there breaks or replaces them.
pub fn check_out_dir(
    dir: &Path,
    target: &Path,
    root: &Path,
    overlays: &Overlays,
    own: &str,
) -> Result<()> {
    let overlays_dir = root.join("overlays");
    let refused = if target == root {
        Some("the root of the generated tree".to_string())
    } else if target == overlays_dir {
        Some("the directory of the generated overlays".to_string())
    } else if target.starts_with(root.join("base")) {
        Some("the generated base (or inside it)".to_string())
    } else if target.starts_with(root.join("components")) {
        Some("the generated components (or inside them)".to_string())
    } else {
        overlays
            .names()
            .into_iter()
            .filter(|n| *n != own)
            .find(|n| target.starts_with(overlays_dir.join(n)))
            .map(|n| format!("the generated overlay {n} (or inside it)"))
    };
    match refused {
        Some(what) => bail!(
            "--out-dir {}: {} is {what} of {}; expected the overlay's own directory {} or a directory outside the generated tree",
            dir.display(),
            target.display(),
            root.display(),
            overlays_dir.join(own).display()
        ),
        None => Ok(()),
    }
}

/// Where an overlay written to `dir` finds `<root>/base` and `<root>/components`, once `dir`
/// is known to be allowed (see [`check_out_dir`]); creates `dir`.
fn references(dir: &Path, root: &Path, overlays: &Overlays, own: &str) -> Result<Refs> {
    let base = root.join("base");
    let base = base.canonicalize().with_context(|| {
        format!(
            "cannot find the base {} (the overlay refers to it; run `manifest-gen write` or pass --root)",
            base.display()
        )
    })?;
    let root = base.parent().unwrap_or(&base).to_path_buf();
    let target = resolved(dir)?;
    if target.exists() && !target.is_dir() {
        bail!(
            "--out-dir {}: {} exists and is not a directory",
            dir.display(),
            target.display()
        );
    }
    check_out_dir(dir, &target, &root, overlays, own)?;
    std::fs::create_dir_all(&target)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let relative = |to: &Path| {
        pathdiff::diff_paths(to, &target)
            .map(|p| p.to_string_lossy().into_owned())
            .with_context(|| {
                format!(
                    "cannot express {} relative to {}",
                    to.display(),
                    target.display()
                )
            })
    };
    Ok(Refs {
        base: relative(&base)?,
        components: relative(&root.join("components"))?,
    })
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}

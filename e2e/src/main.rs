//! `e2e`: runs the kubelet's-eye suites against the release binary and the rendered manifests.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use e2e::cgroup::Cgroups;
use e2e::manifests::{self, Renderer, Tools};
use e2e::report::Report;
use e2e::sandbox::NetMode;
use e2e::suites::{self, Ctx};

/// The suites, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Each overlay's pod: env, probes, load, SIGTERM drain, exit
    Pod,
    /// Rolling update of prod's replicas behind the Service stand-in
    Rollout,
    /// Every contract key missing and malformed
    Config,
    /// Malformed requests, huge bodies, slow and idle clients, memory
    Http,
    /// 10k keep-alive clients, slowloris, churn: one pod and the replicas, at their limits
    Flood,
    /// The API_KEY never leaves the process
    Canary,
    /// The operator readiness switch takes a pod out of the Service
    Switch,
    /// Each broken agreement makes the suite fail
    Mutations,
}

/// Plays the kubelet, kube-proxy and the Deployment controller around the real binary.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Suites to run (default: all)
    #[arg(long = "suite", value_enum)]
    suites: Vec<Suite>,
    /// The release hello-k8s binary
    #[arg(
        long,
        env = "HELLO_K8S_BIN",
        default_value = "target/release/hello-k8s"
    )]
    binary: PathBuf,
    /// The manifest-gen binary (lists the overlays; renderer when kubectl is absent)
    #[arg(
        long,
        env = "MANIFEST_GEN_BIN",
        default_value = "target/debug/manifest-gen"
    )]
    manifest_gen: PathBuf,
    /// Force a renderer instead of kubectl-when-present
    #[arg(long, value_parser = ["kubectl", "manifest-gen"])]
    renderer: Option<String>,
    /// Repository root (holds k8s/)
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Run only the mutations whose name contains this text
    #[arg(long)]
    mutation: Option<String>,
    /// Endpoint propagation delay in milliseconds (readiness change -> load balancer)
    #[arg(long, default_value_t = 1000)]
    propagation_ms: u64,
}

fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == e2e::cgroup::ENTER) {
        // The wrapper a pod's processes start through (see cgroup.rs); returns only on error.
        eprintln!("error: {:#}", e2e::cgroup::enter_and_exec(&raw[2..]));
        return ExitCode::from(127);
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let begin = Instant::now();
    let repo = args.repo.canonicalize().context("repository root")?;
    let absolute = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            repo.join(p)
        }
    };
    let binary = absolute(&args.binary);
    anyhow::ensure!(
        binary.is_file(),
        "the release binary {} does not exist; build it first (make e2e does)",
        binary.display()
    );
    // A private copy: other builds may replace target/ binaries while the suite runs.
    let workdir = tempfile::Builder::new().prefix("e2e-bin-").tempdir()?;
    let pinned = workdir.path().join(contract::APP_NAME);
    std::fs::copy(&binary, &pinned)
        .with_context(|| format!("copying {} for the run", binary.display()))?;
    println!("e2e: binary {} (run from a private copy)", binary.display());
    let binary = pinned;
    let renderer = Renderer::detect(args.renderer.as_deref())?;
    let manifest_gen = absolute(&args.manifest_gen);
    let tools = Tools {
        repo,
        binary,
        manifest_gen,
        renderer,
    };
    raise_open_files();
    let mode = NetMode::detect().await;
    let cgroups = Arc::new(Cgroups::detect());
    let problems = cgroups.problems();
    if !problems.is_empty() {
        let reason = format!(
            "resources.limits not enforced ({}); pods run without their memory and CPU limits",
            problems.join("; ")
        );
        anyhow::ensure!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{reason}; CI=true requires them (run as root with the memory and cpu cgroup \
             controllers)"
        );
        skip("e2e limits", &reason);
    }
    let report = Arc::new(Report::new(false));
    let ctx = Ctx {
        tools,
        cgroups: Arc::clone(&cgroups),
        mode,
        report: Arc::clone(&report),
        propagation: Duration::from_millis(args.propagation_ms),
        pace: Duration::from_millis(5),
        mutation_filter: args.mutation.clone(),
    };
    println!(
        "e2e: objects from `{}` of a temporary copy of k8s/",
        renderer.describe()
    );
    println!("e2e: pods: {}", mode.describe());
    println!("e2e: limits: {}", cgroups.describe());
    println!(
        "e2e: endpoint propagation {} ms; load: 4 clients, {} ms between requests each",
        args.propagation_ms,
        ctx.pace.as_millis()
    );

    let wanted = |s: Suite| args.suites.is_empty() || args.suites.contains(&s);
    let names = manifests::overlays(&ctx.tools)?;
    let mut rendered = Vec::new();
    for name in &names {
        let r = manifests::render(&ctx.tools, name).with_context(|| format!("rendering {name}"))?;
        println!("e2e: {}: {}", r.env, r.objects.join(", "));
        rendered.push(r);
    }
    // The suites after the pod lifecycle run on the overlay with the most replicas (the
    // production-like one: rollouts need several), the last declared on a tie.
    let prod = rendered
        .iter()
        .rev()
        .max_by_key(|r| r.replicas())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no overlay to test"))?;
    println!(
        "e2e: overlays from `manifest-gen overlays`: {}; the suites after the pod lifecycle use {} ({} replicas)",
        names.join(", "),
        prod.env,
        prod.replicas()
    );

    if wanted(Suite::Pod) {
        println!("\n== pod lifecycle (every overlay side by side) ==");
        let results =
            futures::future::join_all(rendered.iter().map(|r| suites::lifecycle::run(&ctx, r)))
                .await;
        for (r, result) in rendered.iter().zip(results) {
            if let Err(e) = result {
                report.error(&format!("pod {}", r.env), "suite runs", &e);
            }
        }
    }
    let sequential: [(Suite, &str); 7] = [
        (Suite::Rollout, "rolling update"),
        (Suite::Config, "configuration battery"),
        (Suite::Http, "bad-HTTP battery"),
        (Suite::Flood, "floods at the pod's limits"),
        (Suite::Canary, "secret canary"),
        (Suite::Switch, "readiness switch"),
        (Suite::Mutations, "mutations"),
    ];
    for (suite, title) in sequential {
        if !wanted(suite) {
            continue;
        }
        println!("\n== {title} ({}) ==", prod.env);
        let started = Instant::now();
        let result = match suite {
            Suite::Rollout => suites::rollout::run(&ctx, &prod).await,
            Suite::Config => suites::config::run(&ctx, &prod).await,
            Suite::Http => suites::http_faults::run(&ctx, &prod).await,
            Suite::Flood => suites::flood::run(&ctx, &prod).await,
            Suite::Canary => suites::canary::run(&ctx, &prod).await,
            Suite::Switch => suites::switch::run(&ctx, &prod).await,
            Suite::Mutations => suites::mutations::run(&ctx, &prod).await,
            Suite::Pod => Ok(()),
        };
        if let Err(e) = result {
            report.error(title, "suite runs", &e);
        }
        println!("  ({title}: {:.1}s)", started.elapsed().as_secs_f64());
    }
    drop(ctx);
    e2e::cgroup::remove_parents(&cgroups);
    print!("{}", report.summary());
    println!("e2e: {:.1}s in all", begin.elapsed().as_secs_f64());
    Ok(report.failed() == 0)
}

/// A loud skip: stderr, and one line in the file SKIP_LOG names (make test sets it).
fn skip(test: &str, reason: &str) {
    eprintln!("SKIP {test}: {reason}");
    if let Some(path) = std::env::var_os("SKIP_LOG") {
        use std::io::Write;
        let line = format!("{test}: {reason}\n");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard one: the floods hold 10,000 connections, and the
/// pods and wrk inherit the limit (a container runtime gives containers a high one too).
fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        eprintln!("warning: cannot raise the open-file limit from {soft} to {hard}: {e}");
    }
}

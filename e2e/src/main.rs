//! `e2e`: the suites of `make e2e-cluster`, against the cluster `make cluster` started.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use e2e::kube::Cluster;
use e2e::report::Report;
use e2e::suites::{self, Ctx};

/// The suites, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Every overlay through the API server's admission (server-side dry run), no warning
    Admission,
    /// make auto-deploy-prod and -dev: rolled out, Ready by the kubelet, greeting via NodePort; the secret canary
    Deploy,
    /// prod's replicas on at least two nodes, within maxSkew after a rollout
    Spread,
    /// NetworkPolicy enforced by kube-router: the truth table of who reaches what
    Netpol,
    /// HPA-scaled replicas kept by a deploy; ConfigMap and Secret changes roll the Deployment
    ConfigRoll,
    /// The generator's values stored unchanged through apply -k and kustomize | apply -f -
    Values,
    /// New image tag, kubectl delete pod, evictions against the PDB at full-rate load: zero failed requests
    Disruption,
    /// kubectl drain of a node under full-rate load, paced by the PDB: zero failed requests
    Drain,
    /// A node cut off under full-rate load: seconds until routed around, until pods run elsewhere
    NodeLoss,
    /// 10k-connection floods via the NodePort judged by the kubelet; HPA scale-out; OOMKilled
    Flood,
}

const ALL: [Suite; 10] = [
    Suite::Admission,
    Suite::Deploy,
    Suite::Spread,
    Suite::Netpol,
    Suite::ConfigRoll,
    Suite::Values,
    Suite::Disruption,
    Suite::Drain,
    Suite::NodeLoss,
    Suite::Flood,
];

/// Runs the project's end-to-end suites on the real cluster of `make cluster` (three nodes).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Suites to run (default: all, in order; deploy first when the app is not deployed)
    #[arg(long = "suite", value_enum)]
    suites: Vec<Suite>,
    /// The env file `make cluster` wrote (KUBECONFIG, KUBE_CONTEXT, KUBECTL, NODE_IP, ...)
    #[arg(long, env = "CLUSTER_ENV", default_value = "/var/lib/kco-cluster/env")]
    cluster_env: PathBuf,
    /// Repository root (k8s/, Makefile, scripts/)
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The manifest-gen binary
    #[arg(
        long,
        env = "MANIFEST_GEN_BIN",
        default_value = "target/debug/manifest-gen"
    )]
    manifest_gen: PathBuf,
    /// Scratch directory of the run
    #[arg(long, default_value = "target/e2e-cluster")]
    work: PathBuf,
    /// The load client (cargo build --profile e2e -p e2e-load)
    #[arg(long, env = "E2E_LOAD_BIN", default_value = "target/e2e/e2e-load")]
    load: PathBuf,
    /// Length of each flood, in seconds
    #[arg(long, default_value_t = 120)]
    flood_seconds: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool> {
    let cluster = Cluster::from_env_file(&args.cluster_env)?;
    std::fs::create_dir_all(&args.work)
        .with_context(|| format!("creating {}", args.work.display()))?;
    let ctx = Ctx {
        cluster,
        repo: std::fs::canonicalize(&args.repo)?,
        manifest_gen: std::fs::canonicalize(&args.manifest_gen).with_context(|| {
            format!(
                "{} (cargo build -p manifest-gen)",
                args.manifest_gen.display()
            )
        })?,
        work: std::fs::canonicalize(&args.work)?,
        load: std::fs::canonicalize(&args.load).with_context(|| {
            format!(
                "{} (cargo build --profile e2e -p e2e-load)",
                args.load.display()
            )
        })?,
        report: Report::new(false),
    };
    let version = ctx.cluster.kubectl(&["version", "-o", "json"])?;
    let server: serde_json::Value = serde_json::from_str(&version)?;
    let nodes: Vec<String> = ctx
        .cluster
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.name, n.ip))
        .collect();
    let server_version = server["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or("?");
    println!(
        "cluster: Kubernetes {server_version} (server), kubectl {}, {} nodes: {}",
        server["clientVersion"]["gitVersion"]
            .as_str()
            .unwrap_or("?"),
        nodes.len(),
        nodes.join(", ")
    );
    // Every verdict below is that version's: the summary names it.
    ctx.report.count("Kubernetes (server)", server_version);
    let chosen: Vec<Suite> = if args.suites.is_empty() {
        ALL.to_vec()
    } else {
        ALL.iter()
            .copied()
            .filter(|s| args.suites.contains(s))
            .collect()
    };
    let mut timings = Vec::new();
    for suite in chosen {
        let name = suite
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        println!("\n=== suite {name}");
        let (started, failed_before) = (Instant::now(), ctx.report.failed());
        let outcome = match suite {
            Suite::Admission => suites::admission::run(&ctx),
            Suite::Deploy => suites::deploy::run(&ctx),
            Suite::Spread => suites::spread::run(&ctx),
            Suite::Disruption => suites::disruption::run(&ctx),
            Suite::Drain => suites::drain::run(&ctx),
            Suite::NodeLoss => suites::node_loss::run(&ctx),
            Suite::ConfigRoll => suites::config_roll::run(&ctx),
            Suite::Values => suites::values::run(&ctx),
            Suite::Flood => suites::flood::run(
                &ctx,
                suites::flood::Floods {
                    seconds: args.flood_seconds,
                },
            ),
            Suite::Netpol => suites::netpol::run(&ctx),
        };
        if let Err(e) = outcome {
            ctx.report.error(&name, "the suite ran to its end", &e);
        }
        let verdict = if ctx.report.failed() == failed_before {
            "passed"
        } else {
            "FAILED"
        };
        let secs = started.elapsed().as_secs_f64();
        println!("=== suite {name}: {verdict} in {secs:.0} s");
        timings.push(format!("{name} {verdict} {secs:.0} s"));
    }
    ctx.report.count("suites", timings.join(", "));
    print!("{}", ctx.report.summary());
    Ok(ctx.report.failed() == 0)
}

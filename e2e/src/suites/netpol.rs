//! NetworkPolicy: the generated policy is admitted and stored as generated, but nothing on this
//! cluster enforces it, and the report says so with the reason read off the running kernel.
//!
//! The one upstream implementation that builds here from the Go module proxy and runs without a
//! CNI of its own, `sigs.k8s.io/kube-network-policies`, needs nftables' `queue` expression
//! (CONFIG_NFT_QUEUE); this machine's kernel lacks it, so it would drop nothing (docs/cluster.md
//! tells the details and what was tried). A policy that is not enforced is named, never counted
//! as a pass.

use anyhow::Result;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::Ctx;

const SUITE: &str = "netpol";

pub fn run(ctx: &Ctx) -> Result<()> {
    let ns = ctx.namespace_of("prod")?;
    let list: crate::kube::Items<NetworkPolicy> =
        ctx.cluster.get(&["networkpolicies", "-n", &ns])?;
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    ctx.report.check(
        SUITE,
        "prod's NetworkPolicy is admitted and stored",
        !names.is_empty(),
        format!("{names:?}"),
    );
    let config = super::run(std::process::Command::new("sh").args([
        "-c",
        "gzip -dc /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r) 2>/dev/null || true",
    ]))?;
    let queue = config
        .lines()
        .find(|l| l.contains("CONFIG_NFT_QUEUE"))
        .unwrap_or("CONFIG_NFT_QUEUE: kernel config not readable");
    ctx.report.note(format!(
        "NOT ENFORCED HERE: no NetworkPolicy implementation runs on this cluster; kube-network-policies needs nftables' queue expression and this kernel says `{}`",
        queue.trim()
    ));
    ctx.report.count(
        "NetworkPolicy enforcement",
        "not enforced on this cluster (docs/cluster.md)",
    );
    Ok(())
}

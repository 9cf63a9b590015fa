//! The secret canary: prod's API_KEY is a unique value generated for this run; it must never
//! appear in the logs (stdout and stderr, at every LOG_LEVEL) nor in any response: pages,
//! HTML, /metrics, /info, errors, and the admin switch's own answers.

use std::sync::Arc;

use anyhow::{Result, anyhow};

use super::{Ctx, get};
use crate::http::Req;
use crate::manifests::Rendered;
use crate::pod::Pod;

const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

pub async fn run(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    let suite = format!("secret canary {}", rendered.env);
    let suite = suite.as_str();
    let r = &ctx.report;
    let canary = rendered
        .generated_api_key
        .clone()
        .ok_or_else(|| anyhow!("no generated API_KEY for {}", rendered.env))?;
    let template = ctx.template(rendered)?;
    let runs = LEVELS.iter().enumerate().map(|(i, level)| {
        let template = Arc::clone(&template);
        let canary = canary.clone();
        async move {
            let pod = ctx
                .start_pod(
                    rendered,
                    &template,
                    "3a2b1c0d9",
                    20 + u8::try_from(i).unwrap_or(0),
                    |l| l.set("LOG_LEVEL", level),
                )
                .await?;
            let result = exercise(&pod, &canary).await;
            let termination = pod.terminate().await;
            pod.sandbox.shutdown();
            let (responses, leaks) = result?;
            Ok::<_, anyhow::Error>((level, pod, responses, leaks, termination))
        }
    });
    let (mut checked, mut leaked) = (0usize, 0usize);
    for outcome in futures::future::join_all(runs).await {
        let (level, pod, responses, leaks, _termination) = match outcome {
            Ok(v) => v,
            Err(e) => {
                r.error(suite, "canary pod runs", &e);
                leaked += 1;
                continue;
            }
        };
        checked += responses;
        leaked += leaks.len();
        r.check(
            suite,
            &format!("LOG_LEVEL={level}: the key is in no response"),
            leaks.is_empty(),
            format!("{responses} responses checked {leaks:?}"),
        );
        let stdout = pod.stdout();
        let stderr = pod.stderr();
        let lines = stdout.lines().count() + stderr.lines().count();
        let encoded = base64_of(&canary);
        let in_logs = stdout.contains(&canary)
            || stderr.contains(&canary)
            || stdout.contains(&encoded)
            || stderr.contains(&encoded);
        checked += 2;
        if in_logs {
            leaked += 1;
        }
        r.check(
            suite,
            &format!("LOG_LEVEL={level}: the key is in no log line"),
            !in_logs && (*level != "trace" || lines > 0),
            format!("{lines} log lines scanned (stdout and stderr)"),
        );
    }
    r.count(
        format!("{suite}: outputs scanned / leaks"),
        format!("{checked}/{leaked}"),
    );
    Ok(())
}

/// Every kind of response, including the ones that carry the key in the request.
async fn exercise(pod: &Pod, canary: &str) -> Result<(usize, Vec<String>)> {
    pod.wait_ready().await?;
    let bearer = format!("Bearer {canary}");
    let admin = contract::paths::ADMIN_READINESS;
    let requests = vec![
        Req::get(contract::paths::ROOT),
        Req::get(contract::paths::ROOT).header("Accept", "text/html,application/xhtml+xml"),
        Req::get(contract::paths::LIVENESS),
        Req::get(contract::paths::READINESS),
        Req::get(contract::paths::METRICS),
        Req::get(contract::paths::INFO),
        Req::get("/no-such-page"),
        Req::get("/no-such-page").header("Authorization", &bearer),
        Req::get(contract::paths::ROOT).header("Authorization", &bearer),
        Req::post(&format!("{admin}/off")),
        Req::post(&format!("{admin}/off")).header("Authorization", "Bearer wrong-token"),
        Req::post(&format!("{admin}/sideways")).header("Authorization", &bearer),
        Req::get(&format!("{admin}/off")).header("Authorization", &bearer),
        Req::post(&format!("{admin}/off")).header("Authorization", &bearer),
        Req::get(contract::paths::READINESS),
        Req::post(&format!("{admin}/on")).header("Authorization", &bearer),
        // After the admin calls: metrics and info now include whatever they recorded.
        Req::get(contract::paths::METRICS),
        Req::get(contract::paths::INFO),
        Req::get(contract::paths::INFO).header("Accept", "text/html"),
    ];
    let mut leaks = Vec::new();
    let mut count = 0;
    for req in requests {
        let what = format!("{} {}", req.method, req.path);
        let resp = get(pod, req).await?;
        count += 1;
        let headers = format!("{:?}", resp.headers);
        if resp.text().contains(canary) || headers.contains(canary) {
            leaks.push(what);
        }
    }
    Ok((count, leaks))
}

fn base64_of(s: &str) -> String {
    // ByteString serializes as standard base64: the form a Secret's data takes.
    serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

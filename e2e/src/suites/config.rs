//! The configuration battery: every key of the contract, missing and malformed, one at a time,
//! starting from the environment the kubelet builds from the rendered prod objects.
//!
//! A key with a default that goes missing must still start (and become Ready); a required key
//! that goes missing, and every malformed value, must end the process with a non-zero code and
//! one stderr line naming the key and the expected form, without ever listening.

use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::Signal;

use super::Ctx;
use crate::manifests::Rendered;
use crate::pod::Pod;

/// How one case ended.
enum Outcome {
    Refused {
        code: Option<i32>,
        stderr: String,
        listened: bool,
    },
    Started {
        ready: Result<Duration>,
    },
}

pub async fn run(ctx: &Ctx, rendered: &Rendered) -> Result<()> {
    let suite = format!("config {}", rendered.env);
    let suite = suite.as_str();
    let r = &ctx.report;
    let template = ctx.template(rendered)?;
    let base = {
        let identity = crate::kubelet::PodIdentity::new(rendered, "cfg", 0)?;
        crate::kubelet::launch(
            rendered,
            &template.container,
            &identity,
            &template.image_entrypoint,
        )?
    };

    // (key, value or None for missing): the declaration's own invalid samples.
    let mut cases: Vec<(&'static str, Option<&'static str>)> = Vec::new();
    for key in contract::KEYS {
        cases.push((key.name, None));
        if key.invalid.is_empty() {
            r.note(format!(
                "{suite}: {} accepts any text: no malformed case",
                key.name
            ));
        }
        cases.extend(key.invalid.iter().map(|v| (key.name, Some(*v))));
    }

    // Bounded parallelism: each case is its own pod in its own sandbox.
    let mut results = Vec::new();
    for chunk in cases.chunks(8) {
        let runs = chunk.iter().enumerate().map(|(i, (key, value))| {
            let template = template.clone();
            async move {
                let default = contract::key(key).and_then(|k| k.default());
                if value.is_none()
                    && *key == "PORT"
                    && ctx.mode == crate::sandbox::NetMode::HostPorts
                {
                    return (*key, *value, None);
                }
                let pod = ctx
                    .start_pod(
                        rendered,
                        &template,
                        "cfg",
                        u8::try_from(i).unwrap_or(0),
                        |l| {
                            // The key arrives as a mounted file (API_KEY_FILE); the API_KEY
                            // cases are about the variable alone, as `docker run -e` gives it.
                            if *key == "API_KEY" {
                                l.remove("API_KEY_FILE");
                            }
                            match value {
                                None => l.remove(key),
                                Some(v) => l.set(key, v),
                            }
                        },
                    )
                    .await;
                let outcome = match pod {
                    Err(e) => Some(Outcome::Started { ready: Err(e) }),
                    Ok(pod) => Some(observe(&pod, value.is_none() && default.is_some()).await),
                };
                (*key, *value, outcome)
            }
        });
        results.extend(futures::future::join_all(runs).await);
    }

    let (mut refused, mut defaults, mut failed) = (0, 0, 0);
    for (key, value, outcome) in results {
        let Some(outcome) = outcome else {
            r.note(format!(
                "{suite}: {key} missing not tried: the host-port fallback must set PORT"
            ));
            continue;
        };
        let required = rendered_requires(&base, key);
        let case = match value {
            None => format!("{key} missing"),
            Some(v) => format!("{key}={v:?}"),
        };
        let expect_refusal = value.is_some() || required;
        let passed = match &outcome {
            Outcome::Refused {
                code,
                stderr,
                listened,
            } => {
                let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                // Without the file, the service reports the key itself as missing.
                let named = if key == "API_KEY_FILE" && value.is_none() {
                    "API_KEY"
                } else {
                    key
                };
                let names_key = lines.len() == 1
                    && lines[0].contains(&format!("invalid configuration: {named} "))
                    && lines[0].contains(key)
                    && lines[0].contains("expected");
                let leaks =
                    key == "API_KEY" && value.is_some_and(|v| !v.is_empty() && stderr.contains(v));
                let ok = expect_refusal
                    && code.is_some_and(|c| c != 0)
                    && names_key
                    && !listened
                    && !leaks;
                r.check(
                    suite,
                    &format!("{case} -> refused"),
                    ok,
                    format!(
                        "exit {code:?}, listened={listened}, stderr {:?}",
                        lines.first().copied().unwrap_or("<empty>")
                    ),
                );
                ok
            }
            Outcome::Started { ready } => {
                let ok = !expect_refusal && ready.is_ok();
                let detail = match ready {
                    Ok(t) => format!("started, Ready after {:.2}s", t.as_secs_f64()),
                    Err(e) => format!("{e:#}"),
                };
                let name = if expect_refusal {
                    format!("{case} -> refused")
                } else {
                    format!("{case} -> default accepted")
                };
                r.check(suite, &name, ok, detail);
                ok
            }
        };
        match (passed, expect_refusal) {
            (false, _) => failed += 1,
            (true, true) => refused += 1,
            (true, false) => defaults += 1,
        }
    }
    r.count(
        format!("{suite}: bad-config cases (refused/defaults accepted/failed)"),
        format!("{refused}/{defaults}/{failed}"),
    );
    Ok(())
}

/// Whether the service must refuse to start without `key`: every key has a default or may
/// stay unset, except the API key (as the variable or the file) in production (the rendered
/// ENV decides), the one rule that involves several keys.
fn rendered_requires(base: &crate::kubelet::ContainerLaunch, key: &str) -> bool {
    let names = [contract::names::api_key, contract::names::api_key_file];
    names.contains(&key) && base.get(contract::names::env) == Some("production")
}

/// Runs one case to its end: refused (exit) or started (Ready, then stopped with SIGINT).
async fn observe(pod: &Pod, may_start: bool) -> Outcome {
    let deadline = Instant::now() + pod.template.ready_budget().max(Duration::from_secs(10));
    let mut listened = false;
    loop {
        if pod.sandbox.is_listening(pod.template.http_port)
            || pod
                .launch
                .get("PORT")
                .and_then(|p| p.parse().ok())
                .is_some_and(|p| pod.sandbox.is_listening(p))
        {
            listened = true;
        }
        if let Some((status, _)) = pod.exited() {
            // Give the stderr reader a moment to drain the pipe.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Outcome::Refused {
                code: status.code(),
                stderr: pod.stderr(),
                listened,
            };
        }
        if *pod.ready.borrow() || Instant::now() > deadline || (listened && may_start) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ready = pod.wait_ready().await;
    // SIGINT: the same shutdown without the drain delay, so the battery stays short.
    let _ = pod.signal(Signal::SIGINT);
    let stopped = tokio::time::timeout(Duration::from_secs(15), async {
        while pod.exited().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let ready = match (ready, stopped) {
        (Ok(t), Ok(())) => Ok(t),
        (Ok(_), Err(_)) => Err(anyhow::anyhow!("did not stop within 15s of SIGINT")),
        (Err(e), _) => Err(e),
    };
    pod.kill().await;
    pod.sandbox.shutdown();
    Outcome::Started { ready }
}

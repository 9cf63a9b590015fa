//! State shared by every worker: readiness, metrics, the operator key and the responses that
//! never change during the life of the process (prepared once at start-up).

use std::sync::Arc;
use std::time::Instant;

use actix_web::web::Bytes;
use askama::Template;
use contract::{ApiKey, Settings};

use crate::connection::admission::{Admission, Limits};
use crate::connection::heartbeat::{Heartbeats, Stalled};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// Non-secret facts about this instance, for `/info` and the HTML page.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    pub environment: &'static str,
    pub pod: String,
    pub namespace: String,
    pub node: String,
}

/// Everything the handlers and the middleware share.
#[derive(Debug)]
pub struct Shared {
    pub readiness: Readiness,
    /// One heartbeat per worker (see `heartbeat`): what liveness and readiness check.
    pub heartbeats: Arc<Heartbeats>,
    pub metrics: Option<Metrics>,
    /// The connection caps and who holds them (see `connection::admission`).
    pub admission: Arc<Admission>,
    pub api_key: Option<ApiKey>,
    pub instance: InstanceInfo,
    pub started: Instant,
    /// The HTML greeting page; every value on it is fixed for the life of the process.
    pub html_page: Bytes,
}

/// The askama template of the HTML greeting page (`templates/index.html`).
#[derive(Debug, Template)]
#[template(path = "index.html")]
pub struct IndexPage<'a> {
    pub greeting: &'a str,
    pub app: &'a str,
    pub environment: &'a str,
    pub version: &'a str,
    pub pod: &'a str,
    pub node: &'a str,
}

impl Shared {
    pub fn new(settings: &Settings) -> Result<Self, askama::Error> {
        let config = &settings.config;
        let metrics = config.metrics_enabled.then(Metrics::new);
        let readiness = Readiness::new(metrics.as_ref().map(Metrics::ready_gauge));
        let instance = InstanceInfo {
            environment: config.env.as_str(),
            pod: config.pod_name.clone(),
            namespace: config.pod_namespace.clone(),
            node: config.node_name.clone(),
        };
        let html_page = IndexPage {
            greeting: contract::GREETING,
            app: contract::APP_NAME,
            environment: instance.environment,
            version: env!("CARGO_PKG_VERSION"),
            pod: &instance.pod,
            node: &instance.node,
        }
        .render()?;
        Ok(Shared {
            readiness,
            heartbeats: Arc::new(Heartbeats::new(crate::configuration::workers(settings))),
            metrics,
            admission: Arc::new(Admission::new(Limits::from_settings(settings))),
            api_key: settings.api_key.clone(),
            instance,
            started: Instant::now(),
            html_page: Bytes::from(html_page),
        })
    }
}

/// What `/healthz` answers: `ok`, or why not.
pub fn liveness(shared: &Shared) -> Result<&'static str, String> {
    shared
        .heartbeats
        .check()
        .map(|()| "ok")
        .map_err(|stalled| stalled.to_string())
}

/// What `/readyz` answers: `ready`, or why not (a stalled worker is not ready either).
pub fn readiness(shared: &Shared) -> Result<&'static str, String> {
    shared
        .readiness
        .check()
        .map_err(|r| r.as_str().to_owned())?;
    shared
        .heartbeats
        .check()
        .map_err(|stalled: Stalled| stalled.to_string())?;
    Ok("ready")
}

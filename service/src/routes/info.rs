//! `GET /info`: non-secret facts about this instance, as JSON.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::state::Shared;

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

#[derive(Debug, Serialize)]
struct Info<'a> {
    name: &'static str,
    version: &'static str,
    environment: &'static str,
    pod: &'a str,
    namespace: &'a str,
    node: &'a str,
    uptime_seconds: u64,
    ready: bool,
    draining: bool,
}

pub async fn info(shared: web::Data<Shared>) -> HttpResponse {
    let instance = &shared.instance;
    let body = Info {
        name: contract::APP_NAME,
        version: env!("CARGO_PKG_VERSION"),
        environment: instance.environment,
        pod: &instance.pod,
        namespace: &instance.namespace,
        node: &instance.node,
        uptime_seconds: shared.started.elapsed().as_secs(),
        ready: crate::state::readiness(&shared).is_ok(),
        draining: shared.readiness.is_draining(),
    };
    match serde_json::to_vec(&body) {
        Ok(json) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, APPLICATION_JSON))
            .body(json),
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize /info");
            HttpResponse::InternalServerError().finish()
        }
    }
}

//! `GET /metrics`: the Prometheus exposition (registered only when metrics are enabled).

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::state::Shared;

const OPENMETRICS: HeaderValue = HeaderValue::from_static(crate::metrics::CONTENT_TYPE);

pub async fn metrics(shared: web::Data<Shared>) -> HttpResponse {
    let Some(metrics) = &shared.metrics else {
        return HttpResponse::NotFound().finish();
    };
    let admission = &shared.admission;
    let now = crate::metrics::Connections {
        held: admission.open(),
        served: admission.serving(),
        silent: admission.silent_now(),
    };
    match metrics.encode(now) {
        Ok(text) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, OPENMETRICS))
            .body(text),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

//! `GET|HEAD /readyz`: readiness. 200 `ready`, or 503 with the reason: `starting`, `draining`
//! or `switched off`.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};

use crate::state::Shared;

pub async fn readyz(shared: web::Data<Shared>) -> HttpResponse {
    let (mut res, body) = match shared.readiness.check() {
        Ok(()) => (HttpResponse::Ok(), "ready"),
        Err(reason) => (HttpResponse::ServiceUnavailable(), reason.as_str()),
    };
    res.insert_header((CONTENT_TYPE, super::TEXT_PLAIN))
        .body(body)
}

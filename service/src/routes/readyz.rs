//! `GET|HEAD /readyz`: readiness. 200 `ready`, or 503 with the reason: `starting`, `draining`,
//! `switched off`, or a stalled worker (see `heartbeat`).

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};

use crate::state::{self, Shared};

pub async fn readyz(shared: web::Data<Shared>) -> HttpResponse {
    let (mut res, body) = match state::readiness(&shared) {
        Ok(body) => (HttpResponse::Ok(), body.to_owned()),
        Err(reason) => (HttpResponse::ServiceUnavailable(), reason),
    };
    res.insert_header((CONTENT_TYPE, super::TEXT_PLAIN))
        .body(body)
}

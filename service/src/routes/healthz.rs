//! `GET|HEAD /healthz`: liveness. 200 `ok` while every worker's event loop turns (see
//! `heartbeat`; the worker answering proves its own); checks no dependency, so that a slow
//! dependency can never make the kubelet restart a healthy process.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};

use crate::state::{self, Shared};

pub async fn healthz(shared: web::Data<Shared>) -> HttpResponse {
    let (mut res, body) = match state::liveness(&shared) {
        Ok(body) => (HttpResponse::Ok(), body.to_owned()),
        Err(reason) => (HttpResponse::ServiceUnavailable(), reason),
    };
    res.insert_header((CONTENT_TYPE, super::TEXT_PLAIN))
        .body(body)
}

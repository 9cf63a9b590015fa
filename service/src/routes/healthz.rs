//! `GET|HEAD /healthz`: liveness. Answers whenever a worker can serve HTTP; checks nothing
//! else, so that a slow dependency can never make the kubelet restart a healthy process.

use actix_web::HttpResponse;
use actix_web::http::header::CONTENT_TYPE;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, super::TEXT_PLAIN))
        .body("ok")
}

//! Every path no route matches: 404.

use actix_web::HttpResponse;
use actix_web::http::header::CONTENT_TYPE;

pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((CONTENT_TYPE, super::TEXT_PLAIN))
        .body("not found")
}

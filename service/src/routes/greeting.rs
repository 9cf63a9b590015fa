//! `GET /`: the origin's plain-text greeting, or the HTML page for browsers.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue, VARY};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::negotiation::prefers_html;
use crate::state::Shared;

const TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const ACCEPT: HeaderValue = HeaderValue::from_static("accept");

/// Built without actix-web's response builder (its header conversions and error slot): the
/// greeting is the request every benchmark and most clients make.
pub async fn greeting(req: HttpRequest) -> HttpResponse {
    // The page is looked up only for a browser: the text greeting needs no state.
    let page = if prefers_html(&req) {
        req.app_data::<web::Data<Shared>>()
    } else {
        None
    };
    let (content_type, body) = match page {
        Some(shared) => (TEXT_HTML, BoxBody::new(shared.html_page.clone())),
        None => (super::TEXT_PLAIN, BoxBody::new(contract::GREETING)),
    };
    let mut res = HttpResponse::with_body(StatusCode::OK, body);
    let headers = res.headers_mut();
    // Caches must key on Accept: the same URL answers text or HTML.
    headers.insert(VARY, ACCEPT);
    headers.insert(CONTENT_TYPE, content_type);
    res
}

//! `GET /`: the origin's plain-text greeting, or the HTML page for browsers.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue, VARY};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::negotiation::prefers_html;
use crate::state::Shared;

const TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const ACCEPT: HeaderValue = HeaderValue::from_static("accept");

pub async fn greeting(req: HttpRequest) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    // Caches must key on Accept: the same URL answers text or HTML.
    res.insert_header((VARY, ACCEPT));
    // The page is looked up only for a browser: the text greeting needs no state.
    if prefers_html(&req)
        && let Some(shared) = req.app_data::<web::Data<Shared>>()
    {
        res.insert_header((CONTENT_TYPE, TEXT_HTML))
            .body(shared.html_page.clone())
    } else {
        res.insert_header((CONTENT_TYPE, super::TEXT_PLAIN))
            .body(contract::GREETING)
    }
}

//! `POST /admin/readiness/off` and `/on`: the operator's readiness switch, to take a pod out
//! of the Service by hand.
//!
//! Guarded by `Authorization: Bearer <API_KEY>`, compared in constant time. Without a token,
//! or with a wrong one: 401 with `WWW-Authenticate: Bearer`. When no `API_KEY` is configured
//! (development without a key) the switch is disabled: 403, whatever the request carries.
//! While draining, `on` is refused with 409: a pod that is shutting down stays out.

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::Shared;

const BEARER_CHALLENGE: HeaderValue = HeaderValue::from_static("Bearer realm=\"hello-k8s\"");

pub async fn readiness_off(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(denied) = refusal(&req, &shared) {
        return denied;
    }
    shared.readiness.switch_off();
    tracing::info!("readiness switched off by an operator: /readyz answers 503");
    text(StatusCode::OK, "readiness off")
}

pub async fn readiness_on(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(denied) = refusal(&req, &shared) {
        return denied;
    }
    match shared.readiness.switch_on() {
        Ok(()) => {
            tracing::info!("readiness switched on by an operator");
            text(StatusCode::OK, "readiness on")
        }
        Err(reason) => {
            tracing::info!(
                reason = reason.as_str(),
                "operator asked to switch readiness on; refused"
            );
            text(
                StatusCode::CONFLICT,
                "draining: readiness cannot be switched on again",
            )
        }
    }
}

/// The response refusing the request, or `None` when it carries the right token.
fn refusal(req: &HttpRequest, shared: &Shared) -> Option<HttpResponse> {
    let Some(key) = &shared.api_key else {
        return Some(text(
            StatusCode::FORBIDDEN,
            "readiness switch disabled: no API_KEY configured",
        ));
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| bearer_token(value.as_bytes()));
    match presented {
        Some(token) if key.matches(token) => None,
        _ => {
            let mut res = text(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
            res.headers_mut().insert(WWW_AUTHENTICATE, BEARER_CHALLENGE);
            Some(res)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, super::TEXT_PLAIN))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_tokens_are_taken_from_the_scheme_case_insensitively() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
    }
}

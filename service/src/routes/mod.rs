//! HTTP routes, one file per handler, and the table that wires them to paths.

mod greeting;
mod healthz;
mod info;
mod metrics;
mod not_found;
mod readiness_switch;
mod readyz;

use std::sync::Arc;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, guard, web};
use contract::paths;

pub use greeting::greeting;
pub use healthz::healthz;
pub use info::info;
pub use metrics::metrics;
pub use not_found::not_found;
pub use readiness_switch::{readiness_off, readiness_on};
pub use readyz::readyz;

use crate::middleware::{Observe, UNMATCHED};
use crate::state::Shared;

pub(crate) const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// The admin paths, spelled out so that each is a route of its own (and a metrics label).
pub const ADMIN_READINESS_OFF: &str = "/admin/readiness/off";
pub const ADMIN_READINESS_ON: &str = "/admin/readiness/on";

/// The methods of a path that reads: GET, and HEAD (its answer without the body).
const READ: &[Method] = &[Method::GET, Method::HEAD];
/// The methods of an admin switch.
const WRITE: &[Method] = &[Method::POST];

/// Registers every production route. `/metrics` exists only when metrics are enabled.
pub fn configure(cfg: &mut web::ServiceConfig, shared: &Arc<Shared>) {
    cfg.service(resource(paths::ROOT, READ, greeting, shared))
        .service(resource(paths::LIVENESS, READ, healthz, shared))
        .service(resource(paths::READINESS, READ, readyz, shared))
        .service(resource(paths::INFO, READ, info, shared))
        .service(resource(ADMIN_READINESS_OFF, WRITE, readiness_off, shared))
        .service(resource(ADMIN_READINESS_ON, WRITE, readiness_on, shared));
    if shared.metrics.is_some() {
        cfg.service(resource(paths::METRICS, READ, metrics, shared));
    }
}

/// The resource of `path`: `handler` for `methods`, `405 Method Not Allowed` with `Allow`
/// for any other, each observed under the path's own label (see `middleware`).
///
/// One guard per resource instead of actix-web's method guards (`web::get()`): each of those
/// records the methods it tried in the request's extensions, for the `Allow` of its own 405,
/// which is an allocation and a hash table for every request.
fn resource<F, Args>(
    path: &'static str,
    methods: &'static [Method],
    handler: F,
    shared: &Arc<Shared>,
) -> Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    > + use<F, Args>,
>
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let allow = allow_header(methods);
    web::resource(path)
        .wrap(Observe::new(path, shared))
        .route(
            web::route()
                .guard(guard::fn_guard(move |ctx| {
                    methods.contains(&ctx.head().method)
                }))
                .to(handler),
        )
        .default_service(web::to(move || {
            let allow = allow.clone();
            async move {
                HttpResponse::MethodNotAllowed()
                    .insert_header((ALLOW, allow))
                    .finish()
            }
        }))
}

/// `GET, HEAD`: the value of `Allow` for `methods`.
fn allow_header(methods: &[Method]) -> HeaderValue {
    let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    HeaderValue::from_str(&names.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The catch-all, registered after every other route (test routes included), so unknown
/// paths are observed too, under one `unmatched` label.
pub fn configure_unmatched(cfg: &mut web::ServiceConfig, shared: &Arc<Shared>) {
    cfg.service(
        web::resource("/{unmatched:.*}")
            .wrap(Observe::new(UNMATCHED, shared))
            .default_service(web::to(not_found)),
    );
}

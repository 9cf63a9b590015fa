//! HTTP routes, one file per handler, and the table that wires them to paths.

mod greeting;
mod healthz;
mod info;
mod metrics;
mod not_found;
mod readiness_switch;
mod readyz;

use std::sync::Arc;

use actix_web::http::header::HeaderValue;
use actix_web::web;
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

/// Registers every production route. `/metrics` exists only when metrics are enabled.
pub fn configure(cfg: &mut web::ServiceConfig, shared: &Arc<Shared>) {
    let observe = |route| Observe::new(route, shared);
    cfg.service(
        web::resource(paths::ROOT)
            .wrap(observe(paths::ROOT))
            .route(web::get().to(greeting))
            .route(web::head().to(greeting)),
    )
    .service(
        web::resource(paths::LIVENESS)
            .wrap(observe(paths::LIVENESS))
            .route(web::get().to(healthz))
            .route(web::head().to(healthz)),
    )
    .service(
        web::resource(paths::READINESS)
            .wrap(observe(paths::READINESS))
            .route(web::get().to(readyz))
            .route(web::head().to(readyz)),
    )
    .service(
        web::resource(paths::INFO)
            .wrap(observe(paths::INFO))
            .route(web::get().to(info))
            .route(web::head().to(info)),
    )
    .service(
        web::resource(ADMIN_READINESS_OFF)
            .wrap(observe(ADMIN_READINESS_OFF))
            .route(web::post().to(readiness_off)),
    )
    .service(
        web::resource(ADMIN_READINESS_ON)
            .wrap(observe(ADMIN_READINESS_ON))
            .route(web::post().to(readiness_on)),
    );
    if shared.metrics.is_some() {
        cfg.service(
            web::resource(paths::METRICS)
                .wrap(observe(paths::METRICS))
                .route(web::get().to(metrics))
                .route(web::head().to(metrics)),
        );
    }
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

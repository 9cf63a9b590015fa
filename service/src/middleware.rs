//! The per-route observer: metrics, the 5xx warning and the debug access line.
//!
//! It wraps each resource separately (not the whole app), so it knows its route pattern
//! without re-matching the path, and each worker resolves that route's metric handles once.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use tracing::Level;

use crate::metrics::{RouteMetrics, method_label};
use crate::state::Shared;

/// Route label of requests that matched no route (bounded cardinality).
pub const UNMATCHED: &str = "unmatched";

/// Middleware factory for one route.
#[derive(Debug, Clone)]
pub struct Observe {
    route: &'static str,
    shared: Arc<Shared>,
}

impl Observe {
    pub fn new(route: &'static str, shared: &Arc<Shared>) -> Self {
        Observe {
            route,
            shared: Arc::clone(shared),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Observe
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = ObserveService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let metrics = self
            .shared
            .metrics
            .as_ref()
            .map(|metrics| metrics.route(self.route));
        ready(Ok(ObserveService {
            service,
            inner: Rc::new(Inner {
                route: self.route,
                metrics,
            }),
        }))
    }
}

#[derive(Debug)]
struct Inner {
    route: &'static str,
    metrics: Option<RouteMetrics>,
}

/// One worker's observer of one route.
#[derive(Debug)]
pub struct ObserveService<S> {
    service: S,
    inner: Rc<Inner>,
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for ObserveService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        let method = method_label(req.method());
        let inner = Rc::clone(&self.inner);
        let fut = self.service.call(req);
        Box::pin(async move {
            let result = fut.await;
            let elapsed = start.elapsed();
            let status = match &result {
                Ok(res) => res.status(),
                Err(err) => err.as_response_error().status_code(),
            };
            if let Some(metrics) = &inner.metrics {
                metrics.record(method, status.as_u16(), elapsed);
            }
            // 503 from /readyz is the answer the kubelet expects while draining, not a fault.
            if status.is_server_error() && inner.route != contract::paths::READINESS {
                tracing::warn!(
                    route = inner.route,
                    method,
                    status = status.as_u16(),
                    elapsed_us = elapsed.as_micros() as u64,
                    "server error response"
                );
            } else if tracing::enabled!(Level::DEBUG) {
                // The access line exists only at debug: the metrics already count every
                // request, and a line per request would cost more than the request itself.
                tracing::debug!(
                    route = inner.route,
                    method,
                    status = status.as_u16(),
                    elapsed_us = elapsed.as_micros() as u64,
                    "request"
                );
            }
            result
        })
    }
}

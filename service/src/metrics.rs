//! Prometheus metrics (prometheus-client): request counts by route, method and status, a
//! latency histogram by route, readiness, build info and process start time.
//!
//! The request path never touches the registry: each worker resolves its metric handles once
//! per route ([`RouteMetrics`]) and caches the counter of every (method, status) it has seen,
//! so recording a request is a few atomic operations, no hashing and no allocation.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Content type of the exposition prometheus-client writes (OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: this service answers in microseconds, so the low end is fine
/// grained; the high end catches stalls.
const BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The registry and the metric families, shared by every worker.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    ready: Gauge,
    refused: Family<RefusalLabels, Counter>,
    connections: Family<StateLabels, Gauge>,
    connection_errors: Counter,
}

/// The connections of the process at one moment (see `connection::admission`).
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// Held at all (served and waiting).
    pub held: usize,
    /// In an exchange, with a served slot.
    pub served: usize,
    /// Waiting for their next request without having sent a byte of it.
    pub silent: usize,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern (unmatched for unknown paths), method and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            new_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from routing a request to its response head, by route pattern",
            durations.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "hello_k8s_ready",
            "1 when /readyz answers 200, else 0",
            ready.clone(),
        );
        registry.register(
            "hello_k8s_build",
            "Build information",
            Info::new(VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let start_time = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        start_time.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            start_time,
        );
        let refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "hello_k8s_connections_refused",
            "Connections refused over the connection caps: shed (503 after waiting for a slot) or closed (over the total cap, closed at once)",
            refused.clone(),
        );
        let connections = Family::<StateLabels, Gauge>::default();
        registry.register(
            "hello_k8s_connections",
            "Connections of the HTTP port now: held at all, served (in an exchange), silent (waiting for a request, no byte of it sent)",
            connections.clone(),
        );
        let connection_errors = Counter::default();
        registry.register(
            "hello_k8s_connection_errors",
            "Connections of the HTTP port that actix-http ended with an error: a malformed request (answered 400), a client gone mid-request, an I/O error",
            connection_errors.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            ready,
            refused,
            connections,
            connection_errors,
        }
    }

    /// The readiness gauge, for [`crate::readiness::Readiness`] to keep up to date.
    pub fn ready_gauge(&self) -> Gauge {
        self.ready.clone()
    }

    /// A request over the served cap answered 503 after waiting for a slot.
    pub fn record_shed(&self) {
        self.refused
            .get_or_create(&RefusalLabels { reason: "shed" })
            .inc();
    }

    /// A connection over the total cap, closed at once.
    pub fn record_closed_at_cap(&self) {
        self.refused
            .get_or_create(&RefusalLabels { reason: "closed" })
            .inc();
    }

    /// A connection ended by an error of actix-http's dispatcher.
    pub fn record_connection_error(&self) {
        self.connection_errors.inc();
    }

    /// Handles for one route, resolved once per worker.
    pub fn route(&self, route: &'static str) -> RouteMetrics {
        RouteMetrics {
            route,
            duration: self.durations.get_or_create(&RouteLabels { route }).clone(),
            requests: self.requests.clone(),
            counters: RefCell::new(Vec::new()),
        }
    }

    /// The text exposition, with the connections of this moment.
    pub fn encode(&self, now: Connections) -> Result<String, std::fmt::Error> {
        for (state, count) in [
            ("held", now.held),
            ("served", now.served),
            ("silent", now.silent),
        ] {
            self.connections
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One worker's metric handles for one route.
#[derive(Debug)]
pub struct RouteMetrics {
    route: &'static str,
    duration: Histogram,
    requests: Family<RequestLabels, Counter>,
    // Per worker (actix services are not shared between threads), so no lock; a handful of
    // entries (methods x statuses seen on this route), so a linear scan beats hashing.
    counters: RefCell<Vec<(&'static str, u16, Counter)>>,
}

impl RouteMetrics {
    pub fn record(&self, method: &'static str, status: u16, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        let mut counters = self.counters.borrow_mut();
        if let Some((_, _, counter)) = counters
            .iter()
            .find(|(m, s, _)| *s == status && *m == method)
        {
            counter.inc();
            return;
        }
        let counter = self
            .requests
            .get_or_create(&RequestLabels {
                route: self.route,
                method,
                status,
            })
            .clone();
        counter.inc();
        counters.push((method, status, counter));
    }
}

/// The method as a label: the standard ones by name, anything else as `other`, so that
/// clients cannot grow the label set.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

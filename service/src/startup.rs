//! Building the server (bound, not yet running) and running it until it has shut down.
//!
//! actix-server accepts; each accepted connection goes through the connection layer (see
//! `connection`: admission, the wait for a request head, the guarded IO) into actix-http's
//! HTTP/1 service, whose parser hands every request through the gate to the application's
//! one route table. This is what `HttpServer` does, plus a hand on each connection before
//! actix-http allocates its buffers.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_http::{HttpService, KeepAlive};
use actix_server::Server;
use actix_service::{ServiceFactory, fn_factory, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::{App, web};
use contract::Settings;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::connection;
use crate::connection::admission::{self, Admission, Limits};
use crate::connection::exchange::Gate;
use crate::connection::guarded_io::Warm;
use crate::connection::probes::{self, ProbeServer};
use crate::routes;
use crate::shutdown::{self, ShutdownHandle, Signal};
use crate::state::Shared;

/// A client must send its whole request head within this time.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// After the response, a client that does not close gets this long (as `HttpServer`).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The accept queue (actix-web's default; the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 1024;
/// The service reads no request bodies; a small limit documents (and enforces) that.
const MAX_PAYLOAD_BYTES: usize = 1024;

/// A bound, not yet running, server.
pub struct Application {
    address: SocketAddr,
    probes: ProbeServer,
    server: Server,
    drain_listener: TcpListener,
    shared: Arc<Shared>,
    admission: Arc<Admission>,
    shutdown: ShutdownHandle,
    signals: mpsc::UnboundedReceiver<Signal>,
    drain_delay: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .field("probe_address", &self.probes.address())
            .field("drain_delay", &self.drain_delay)
            .field("limits", &self.admission.limits)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Binds `HOST:PORT` (port 0 picks a free port, see [`Application::port`]) and prepares
    /// the server. Nothing is served until [`Application::run_until_stopped`].
    pub fn build(settings: Settings) -> io::Result<Self> {
        Self::build_with(settings, |_| {})
    }

    /// [`Application::build`] plus extra routes, registered after the production routes.
    /// For tests only (e.g. a deliberately slow handler to observe draining); the binary
    /// never calls it.
    #[doc(hidden)]
    pub fn build_with<F>(settings: Settings, extra_routes: F) -> io::Result<Self>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let shared = Arc::new(Shared::new(&settings).map_err(io::Error::other)?);
        let requested = SocketAddr::new(settings.config.host, settings.config.port);
        let listener = TcpListener::bind(requested)
            .map_err(|err| io::Error::new(err.kind(), format!("cannot bind {requested}: {err}")))?;
        let address = listener.local_addr()?;
        // std listens with a backlog of 128; under a connection flood a full accept queue
        // drops SYNs, the kubelet's probes' among them (a dropped SYN is retried after 1 s,
        // the probes' whole timeout).
        socket2::SockRef::from(&listener).listen(LISTEN_BACKLOG)?;
        // A second descriptor of the listening socket, for the end of the drain (see
        // `shutdown`): actix-server owns and closes the first.
        let drain_listener = listener.try_clone()?;
        let probe_address = SocketAddr::new(settings.config.host, settings.config.probe_port);
        let probes = ProbeServer::start(probes::bind(probe_address)?, Arc::clone(&shared))?;
        let workers = crate::configuration::workers(&settings);
        let limits = &shared.admission.limits;
        tracing::info!(
            memory_limit_bytes = limits.memory_limit_bytes,
            memory_limit_source = %limits.memory_limit_source,
            served_connections = limits.served,
            total_connections = limits.total,
            over_total = limits.over_total,
            "connection limits"
        );
        let admission = Arc::clone(&shared.admission);
        let (shutdown, signals) = ShutdownHandle::new();

        let builder = Server::build()
            .workers(workers)
            // Signals are ours (see shutdown): actix's own handling would stop at once on
            // SIGTERM, without the drain the kubelet's endpoint removal needs.
            .disable_signals()
            .shutdown_timeout(settings.config.shutdown_timeout_seconds.as_secs());
        let built = Arc::new(AtomicUsize::new(0));
        let worker_shared = Arc::clone(&shared);
        let worker_admission = Arc::clone(&admission);
        let server = builder
            .listen(contract::APP_NAME, listener, move || {
                worker(
                    Arc::clone(&worker_shared),
                    Arc::clone(&worker_admission),
                    extra_routes.clone(),
                    Arc::clone(&built),
                    workers,
                    address,
                )
            })?
            .run();

        Ok(Application {
            address,
            probes,
            server,
            drain_listener,
            shared,
            admission,
            shutdown,
            signals,
            drain_delay: settings.config.drain_delay_seconds,
        })
    }

    /// The state the workers share (readiness among it).
    #[doc(hidden)]
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// The connection limits in force.
    pub fn limits(&self) -> &Limits {
        &self.admission.limits
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The probe listener's port actually bound.
    pub fn probe_port(&self) -> u16 {
        self.probes.address().port()
    }

    /// Starts the shutdown sequence programmatically, exactly as SIGTERM or SIGINT would.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until shut down by SIGTERM, SIGINT or the [`ShutdownHandle`].
    pub async fn run_until_stopped(self) -> io::Result<()> {
        shutdown::forward_os_signals(self.shutdown.clone())?;
        self.run_without_os_signals().await
    }

    /// Serves until shut down by the [`ShutdownHandle`] only: in-process tests must not
    /// take over the signals of the test process.
    #[doc(hidden)]
    pub async fn run_without_os_signals(self) -> io::Result<()> {
        let Application {
            address,
            probes,
            server,
            drain_listener,
            shared,
            admission: _,
            shutdown,
            signals,
            drain_delay,
        } = self;
        tracing::info!(%address, probe_address = %probes.address(), "listening");
        let supervisor = tokio::spawn(shutdown::supervise(
            signals,
            shared,
            server.handle(),
            drain_listener,
            drain_delay,
        ));
        let result = server.await;
        supervisor.abort();
        drop(probes);
        drop(shutdown);
        tracing::info!("stopped");
        result
    }
}

/// One worker's service: the application's route table behind the gate in actix-http's HTTP/1
/// service, behind the connection layer. Built once per worker thread; the last worker built
/// makes the instance ready.
fn worker<F>(
    shared: Arc<Shared>,
    admission: Arc<Admission>,
    extra_routes: F,
    built: Arc<AtomicUsize>,
    workers: usize,
    address: SocketAddr,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = (), InitError = ()>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    fn_factory(move || {
        let data = web::Data::from(Arc::clone(&shared));
        let app_shared = Arc::clone(&shared);
        let app = App::new()
            .app_data(data)
            .app_data(web::PayloadConfig::new(MAX_PAYLOAD_BYTES))
            .configure(|cfg| routes::configure(cfg, &app_shared))
            .configure(extra_routes.clone())
            .configure(|cfg| routes::configure_unmatched(cfg, &app_shared));
        let http = HttpService::build()
            // Keep-alive on, without actix-http's timer (one per request): between requests a
            // connection waits outside actix-http (see `waiting`) or, warm, in it, where the
            // connection layer's own timer closes it (see `guarded_io`); both after 5 s.
            .keep_alive(KeepAlive::Os)
            .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            .local_addr(address)
            // What the give-back relies on (see `guarded_io`): an end of stream read while no
            // request is in flight ends the dispatcher, and one read while a request is in
            // flight lets it answer first. A test fails should a new actix-http change it.
            .h1_allow_half_closed(true)
            .h1_write_buffer_size(admission::WRITE_BUFFER_BYTES)
            // No graceful-shutdown signal: actix-http would close idle keep-alive connections
            // at once, and a client may be sending on one right then. During the drain every
            // answer says `Connection: close` instead (see `exchange`), and an idle connection
            // ends at its keep-alive timeout.
            .h1(Gate::new(
                map_config(app, |_| AppConfig::default()),
                Arc::clone(&shared),
            ));
        let shared = Arc::clone(&shared);
        let admission = Arc::clone(&admission);
        let built = Arc::clone(&built);
        async move {
            let handler = Rc::new(http.new_service(()).await.map_err(|err| {
                tracing::error!(error = ?err, "a worker could not build the application");
            })?);
            // The heartbeat that liveness checks: a timer on this worker's own event loop.
            let index = built.fetch_add(1, Ordering::AcqRel);
            shared.heartbeats.beat(index);
            actix_web::rt::spawn(Arc::clone(&shared.heartbeats).keep(index));
            if index + 1 == workers && shared.readiness.mark_serving() {
                tracing::info!(workers, "ready: every worker is serving");
            }
            let warm = Warm::new(Arc::clone(&admission), workers);
            // The connection's future is the task actix-server spawns, as it is: an async
            // block around it would hold a second copy of it (about 1 KiB per connection).
            Ok(fn_service(move |stream: TcpStream| {
                connection::serve(
                    stream,
                    Rc::clone(&handler),
                    Arc::clone(&admission),
                    Arc::clone(&shared),
                    Rc::clone(&warm),
                )
            }))
        }
    })
}

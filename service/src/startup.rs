//! Building the server (bound, not yet running) and running it until it has shut down.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::KeepAlive;
use actix_web::{App, HttpServer, web};
use contract::Settings;
use tokio::sync::mpsc;

use crate::routes;
use crate::shutdown::{self, ShutdownHandle, Signal};
use crate::state::Shared;

/// Idle keep-alive connections are closed after this long.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A client must send its whole request head within this time.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The service reads no request bodies; a small limit documents (and enforces) that.
const MAX_PAYLOAD_BYTES: usize = 1024;

/// A bound, not yet running, server.
pub struct Application {
    address: SocketAddr,
    server: Server,
    shared: Arc<Shared>,
    shutdown: ShutdownHandle,
    signals: mpsc::UnboundedReceiver<Signal>,
    drain_delay: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .field("drain_delay", &self.drain_delay)
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
        let workers = crate::configuration::workers(&settings);
        let (shutdown, signals) = ShutdownHandle::new();

        let data = web::Data::from(Arc::clone(&shared));
        let app_shared = Arc::clone(&shared);
        let built = Arc::new(AtomicUsize::new(0));
        let server = HttpServer::new(move || {
            // Each worker builds its app once, before it serves; the last one makes the
            // instance ready.
            if built.fetch_add(1, Ordering::AcqRel) + 1 == workers
                && app_shared.readiness.mark_serving()
            {
                tracing::info!(workers, "ready: every worker is serving");
            }
            let shared = Arc::clone(&app_shared);
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_PAYLOAD_BYTES))
                .configure(|cfg| routes::configure(cfg, &shared))
                .configure(extra_routes.clone())
                .configure(|cfg| routes::configure_unmatched(cfg, &shared))
        })
        .workers(workers)
        // Signals are ours (see shutdown): actix's own handling would stop at once on
        // SIGTERM, without the drain the kubelet's endpoint removal needs.
        .disable_signals()
        .shutdown_timeout(settings.config.shutdown_timeout_seconds.as_secs())
        .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .listen(listener)?
        .run();

        Ok(Application {
            address,
            server,
            shared,
            shutdown,
            signals,
            drain_delay: settings.config.drain_delay_seconds,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
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
            server,
            shared,
            shutdown,
            signals,
            drain_delay,
        } = self;
        tracing::info!(%address, "listening");
        let supervisor = tokio::spawn(shutdown::supervise(
            signals,
            shared,
            server.handle(),
            drain_delay,
        ));
        let result = server.await;
        supervisor.abort();
        drop(shutdown);
        tracing::info!("stopped");
        result
    }
}

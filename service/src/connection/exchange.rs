//! What actix-http's parser says about the requests of one exchange, told to the IO below it.
//!
//! Framing and closure are decided by one HTTP/1 parser, actix-http's: the [`Gate`] sits
//! between actix-http's dispatcher and the application, sees every request the parser
//! decoded, and records on the connection's [`Exchange`] what the IO layer (`guarded_io`)
//! needs to know: that a request was decoded, and that the connection ends after it. It never
//! looks at bytes.
//!
//! The connection ends after a request that closes it (`Connection: close`, or HTTP/1.0
//! without `keep-alive`: actix-http's own reading of the head), after a request with a body
//! (the service reads none, and the connection is not reused behind one, so nothing has to
//! know where a body ends), and while the process drains (every answer then says `Connection:
//! close`, so keep-alive clients reconnect elsewhere). Its answer says `Connection: close`,
//! the IO hands actix-http nothing more, and a request actix-http decoded from bytes it
//! already held after such a request is never processed and never answered (RFC 9112, 9.6):
//! the gate parks it, and the IO ends the connection once the answers before it are written.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_http::{ConnectionType, Payload, Request, Response};
use actix_service::{Service, ServiceFactory};
use actix_web::dev::ServiceResponse;
use pin_project_lite::pin_project;

use crate::state::Shared;

tokio::task_local! {
    /// The exchange of the connection whose dispatcher is being polled: the connection layer
    /// polls each dispatcher in its scope (`connection::serve`), and actix-http calls the gate
    /// from within that poll. (Handed on through actix-http's per-connection extensions
    /// instead, every request looked it up in a hash table of its own allocations.)
    pub static EXCHANGE: Rc<Exchange>;
}

/// One exchange's facts, shared by the gate (above actix-http) and the IO (below it).
#[derive(Debug, Default)]
pub struct Exchange {
    /// Requests actix-http decoded and the gate let through to the application.
    requests: Cell<u64>,
    /// Of those, the ones whose answers were written out in full (as of the last write that
    /// left nothing unwritten).
    written: Cell<u64>,
    /// The connection ends after the requests already let through: nothing more is read.
    ends: Cell<bool>,
    /// A request came after the one that ends the connection: it was parked unprocessed, and
    /// the connection is ended once the answers before it are written.
    refused: Cell<bool>,
    /// The IO handed the connection back open at the end of the exchange (see `guarded_io`).
    given_back: Cell<bool>,
}

impl Exchange {
    pub fn new() -> Rc<Self> {
        Rc::new(Exchange::default())
    }

    /// Requests let through so far.
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    /// Requests let through whose answers are not yet written out in full.
    pub fn unwritten(&self) -> u64 {
        self.requests.get() - self.written.get()
    }

    /// The IO wrote out everything it was given: every request let through is answered.
    pub fn written_out(&self) {
        self.written.set(self.requests.get());
    }

    /// True once a request ended the connection.
    pub fn ends(&self) -> bool {
        self.ends.get()
    }

    /// True once a request after the ending one was parked.
    pub fn refused(&self) -> bool {
        self.refused.get()
    }

    /// True when the exchange ended with the connection handed back open.
    pub fn given_back(&self) -> bool {
        self.given_back.get()
    }

    pub(crate) fn give_back(&self) {
        self.given_back.set(true);
    }

    /// Lets `req` through to the application: counted, and the connection marked as ending
    /// when actix-http's reading of it says so (a close, or a body).
    fn let_through(&self, req: &mut Request) {
        self.requests.set(self.requests.get() + 1);
        if req.head().connection_type() == ConnectionType::Close
            || !matches!(req.payload(), Payload::None)
        {
            self.ends.set(true);
        }
    }
}

/// The gate's service factory: wraps the application's (see the module documentation).
#[derive(Debug)]
pub struct Gate<F> {
    app: F,
    shared: Arc<Shared>,
}

impl<F> Gate<F> {
    pub fn new(app: F, shared: Arc<Shared>) -> Self {
        Gate { app, shared }
    }
}

impl<F, B> ServiceFactory<Request> for Gate<F>
where
    F: ServiceFactory<Request, Config = (), Response = ServiceResponse<B>>,
    F::Future: 'static,
    F::Service: 'static,
{
    type Response = Response<B>;
    type Error = F::Error;
    type Config = ();
    type Service = GateService<F::Service>;
    type InitError = F::InitError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Service, Self::InitError>>>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let app = self.app.new_service(());
        let worker = Rc::new(Worker {
            shared: Arc::clone(&self.shared),
        });
        Box::pin(async move {
            Ok(GateService {
                app: app.await?,
                worker,
            })
        })
    }
}

/// One worker's gate.
#[derive(Debug)]
pub struct GateService<S> {
    app: S,
    worker: Rc<Worker>,
}

/// What a worker's gate calls share: behind the worker's own `Rc`, so that a request's way
/// through the gate counts a reference without an atomic operation.
#[derive(Debug)]
pub struct Worker {
    shared: Arc<Shared>,
}

impl<S, B> Service<Request> for GateService<S>
where
    S: Service<Request, Response = ServiceResponse<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = GateCall<S::Future>;

    actix_service::forward_ready!(app);

    fn call(&self, mut req: Request) -> Self::Future {
        let worker = Rc::clone(&self.worker);
        let Ok(exchange) = EXCHANGE.try_with(Rc::clone) else {
            // Not behind the connection layer: the parser alone.
            return GateCall::Serve {
                fut: self.app.call(req),
                exchange: None,
                worker,
            };
        };
        if exchange.ends() {
            exchange.refused.set(true);
            return GateCall::Parked;
        }
        exchange.let_through(&mut req);
        GateCall::Serve {
            fut: self.app.call(req),
            exchange: Some(exchange),
            worker,
        }
    }
}

pin_project! {
    /// A request's way through the gate.
    #[project = GateCallProj]
    pub enum GateCall<F> {
        /// After the request that ends the connection: never processed, never answered.
        Parked,
        Serve {
            #[pin]
            fut: F,
            exchange: Option<Rc<Exchange>>,
            worker: Rc<Worker>,
        },
    }
}

impl<F, E, B> Future for GateCall<F>
where
    F: Future<Output = Result<ServiceResponse<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GateCallProj::Parked => Poll::Pending,
            GateCallProj::Serve {
                fut,
                exchange,
                worker,
            } => {
                let mut res: Response<B> = std::task::ready!(fut.poll(cx))?.into();
                let draining = worker.shared.readiness.is_draining();
                if let Some(exchange) = exchange {
                    if draining {
                        exchange.ends.set(true);
                    }
                    if exchange.ends() {
                        res.head_mut().set_connection_type(ConnectionType::Close);
                    }
                } else if draining {
                    res.head_mut().set_connection_type(ConnectionType::Close);
                }
                Poll::Ready(Ok(res))
            }
        }
    }
}

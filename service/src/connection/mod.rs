//! The connection layer: everything between an accepted socket and actix-http's HTTP/1
//! dispatcher, and the probe listener beside it (docs/service.md, "The connection layer",
//! has its one page of design).
//!
//! - [`admission`]: the caps, sized from the memory limit: served slots (a connection in an
//!   exchange, with actix-http's buffers) and places held at all.
//! - [`waiting`]: a connection without a served slot: silent, reading its head, waiting for a
//!   slot or answered 503, over the total cap; and the lingering close.
//! - [`guarded_io`]: the IO of a served connection, below actix-http: deadlines, backpressure,
//!   the 431, the end of a connection, the give-back between requests.
//! - [`exchange`]: the gate above actix-http's parser, which tells the IO what the parser
//!   decoded (a request, one that ends the connection); framing and closure are decided there
//!   and nowhere else.
//! - [`probes`] and [`heartbeat`]: the kubelet's port, and what lets it speak for the workers.
//!
//! [`serve`] is one connection's life: held (or closed over the caps), waiting for a head,
//! served for one exchange with a slot, given back, waiting again; at its end, closed without
//! a reset.

pub mod admission;
pub mod exchange;
pub mod guarded_io;
pub mod heartbeat;
pub mod probes;
pub mod waiting;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_service::Service;
use tokio::net::TcpStream;

use self::admission::{Admission, Place};
use self::exchange::{EXCHANGE, Exchange};
use self::guarded_io::{GuardedIo, IoLimits, Lent, Warm};
use self::waiting::Outcome;
use crate::state::Shared;

/// The bounds of every served connection (see `guarded_io`): a blocked write gets 5 s; at
/// most 16 KiB are handed to actix-http ahead of unwritten output (which bounds a request head
/// to 16 KiB and what a pipelining client that never reads makes the server hold); between
/// requests a connection is closed after 5 s without one, inside actix-http (warm) as outside
/// it ([`waiting::SILENT_WAIT`]).
pub const IO_LIMITS: IoLimits = IoLimits {
    progress: Duration::from_secs(5),
    read_ahead: 16 * 1024,
    keep_alive: waiting::SILENT_WAIT,
};

/// The IO actix-http serves: a lent socket behind the guards.
pub type Io = GuardedIo<Lent<TcpStream>>;

/// One accepted connection, from admission to close. A served slot is taken only once the
/// client has sent a request head, and given back with actix-http's buffers once that
/// exchange is answered and the client has sent nothing more (slots for clients, not for
/// sockets; see `admission`): between requests a keep-alive connection waits as a silent
/// one, in a few hundred bytes, as nginx's do, unless it is one of the worker's few warm
/// connections (see [`Warm`]).
pub async fn serve<H>(
    mut stream: TcpStream,
    http: Rc<H>,
    admission: Arc<Admission>,
    shared: Arc<Shared>,
    warm: Rc<Warm>,
) -> Result<(), ()>
where
    H: Service<(Io, Option<SocketAddr>)>,
    H::Error: std::fmt::Display,
{
    let (held, mut outcome) = match admission.hold() {
        Some(Place::Under(held)) => {
            let outcome = next_exchange(&mut stream, &admission, &shared).await;
            (held, outcome)
        }
        Some(Place::Over(held)) => {
            let outcome = Box::pin(waiting::over_total(&mut stream, &admission, &shared));
            (held, outcome.await)
        }
        None => {
            if let Some(metrics) = &shared.metrics {
                metrics.record_closed_at_cap();
            }
            return Ok(());
        }
    };
    let peer = stream.peer_addr().ok();
    let mut closing = false;
    while let Outcome::Serve(slot, prefix) = outcome {
        let (lent, back) = Lent::new(stream);
        let exchange = Exchange::new();
        let io = GuardedIo::new(lent, prefix, IO_LIMITS, Rc::clone(&exchange))
            .giving_back(Rc::clone(&warm));
        // Boxed: the dispatcher exists only while a request is served, not while the
        // connection waits. The exchange is the gate's for every poll of it (see `exchange`).
        // An error ends the connection (actix-http answered what it could).
        let served = Box::pin(EXCHANGE.scope(Rc::clone(&exchange), http.call((io, peer)))).await;
        drop(slot);
        let Some(back) = back.take() else {
            return Ok(()); // still lent: cannot happen once the dispatcher is dropped
        };
        stream = back;
        if let Err(error) = &served {
            // actix-http's own line for it is silenced (see `telemetry`): a client can cause
            // as many as it likes.
            tracing::debug!(%error, "connection ended by an error");
            if let Some(metrics) = &shared.metrics {
                metrics.record_connection_error();
            }
        }
        if served.is_err() || !exchange.given_back() {
            closing = true;
            break;
        }
        outcome = next_exchange(&mut stream, &admission, &shared).await;
    }
    if closing {
        // Closed by actix-http (its answer said so) or ended by an error: no reset.
        // Boxed, as every wait but the one for the next request: a connection's future is
        // the size of its largest await, for its whole life.
        Box::pin(waiting::linger(&mut stream)).await;
    }
    drop(held);
    Ok(())
}

/// Waits for the connection's next request head and a served slot for it (see `waiting`).
async fn next_exchange(stream: &mut TcpStream, admission: &Admission, shared: &Shared) -> Outcome {
    let Some(head) = waiting::next_head(stream, admission).await else {
        return Outcome::Done;
    };
    match admission.try_serve() {
        Some(slot) => Outcome::Serve(slot, head),
        None => Box::pin(waiting::wait_for_slot(stream, head, admission, shared)).await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_connection_s_future_is_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let settings = contract::Settings::from_raw(
            contract::RawConfig::from_pairs([("HOST", "127.0.0.1")]).unwrap(),
        )
        .unwrap();
        let shared = Arc::new(Shared::new(&settings).unwrap());
        let http = Rc::new(actix_service::fn_service(
            |_: (Io, Option<SocketAddr>)| async { Ok::<_, String>(()) },
        ));
        let warm = Warm::new(Arc::clone(&shared.admission), 1);
        let served = serve(stream, http, Arc::clone(&shared.admission), shared, warm);
        eprintln!("serve future: {} bytes", std::mem::size_of_val(&served));
        assert!(
            std::mem::size_of_val(&served) <= 1024,
            "{}",
            std::mem::size_of_val(&served)
        );
    }
}

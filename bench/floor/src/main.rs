//! actix-web with nothing of hello-k8s: one worker, jemalloc, the greeting on `/` as the
//! service answers it, `/readyz` for the bench's wait, no method guard, and actix-http's
//! keep-alive timer off (as the service has it). No service on actix-web can cost less than
//! this, so the bench's cpu section measures it beside nginx to say what actix-web itself
//! costs per request (`BENCH_CPU_FLOOR=1 bench/run.sh --only cpu`; docs/benchmarks.md, "The
//! floor").
//!
//! It reads `HOST` and `PORT` from the environment as the service does, and stops on SIGTERM.

use std::io;

use actix_web::http::KeepAlive;
use actix_web::{App, HttpResponse, HttpServer, web};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The service's greeting, with the same headers (`vary: accept`, text/plain).
async fn greeting() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("vary", "accept"))
        .content_type("text/plain; charset=utf-8")
        .body("Hello World from Kubernetes!")
}

fn variable(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[actix_web::main]
async fn main() -> io::Result<()> {
    let host = variable("HOST", "127.0.0.1");
    let port = variable("PORT", "5600");
    let port: u16 = port.parse().map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("PORT={port:?}: {err}; expected a port number (0-65535)"),
        )
    })?;
    HttpServer::new(|| {
        // No method guard: actix-web's guards allocate a table per request (the service has
        // one of its own; docs/benchmarks.md, "A timer and a hash table per request, gone").
        App::new()
            .service(web::resource("/").to(greeting))
            .service(web::resource("/readyz").to(|| async { HttpResponse::Ok().body("ready") }))
    })
    .workers(1)
    .backlog(1024)
    .keep_alive(KeepAlive::Os)
    .bind((host.as_str(), port))?
    .run()
    .await
}

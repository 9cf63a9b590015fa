//! One-shot HTTP/1.1 exchanges over a stream the caller connected (pod sandbox or load
//! balancer), with hyper's client connection API so the harness controls connection reuse.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A response, read fully.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The server asked to close the connection after this response.
    pub fn closes(&self) -> bool {
        self.headers
            .get(hyper::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: hyper::Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

impl Req {
    pub fn get(path: &str) -> Req {
        Req {
            method: hyper::Method::GET,
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn post(path: &str) -> Req {
        Req {
            method: hyper::Method::POST,
            ..Req::get(path)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Sends one request on a fresh connection and closes it.
pub async fn once(stream: TcpStream, host: &str, req: Req, timeout: Duration) -> Result<Response> {
    tokio::time::timeout(timeout, async {
        let mut conn = Conn::handshake(stream).await?;
        conn.send(host, req.header("Connection", "close")).await
    })
    .await
    .map_err(|_| anyhow!("timed out after {timeout:?}"))?
}

/// A client connection that can carry several requests (keep-alive).
#[derive(Debug)]
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Conn {
    pub async fn handshake(stream: TcpStream) -> Result<Conn> {
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender, driver })
    }

    /// Whether another request may be sent (the server has not closed).
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed() && !self.driver.is_finished()
    }

    pub async fn send(&mut self, host: &str, req: Req) -> Result<Response> {
        self.sender.ready().await.context("connection not ready")?;
        let mut builder = Request::builder()
            .method(req.method)
            .uri(&req.path)
            .header(hyper::header::HOST, host);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(Full::new(req.body.unwrap_or_default()))
            .context("building the request")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .context("sending the request")?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.context("reading the body")?.to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

//! The echo upstream server.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::http::{self, Conn, Request};

/// What the [`EchoServer`] answers (as JSON) and records for every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoResponse {
    /// Request method.
    pub method: String,
    /// Request target as received (path and query).
    pub uri: String,
    /// HTTP version from the request line, e.g. `HTTP/1.0`.
    pub http_version: String,
    /// Headers in order as `[lowercase-name, value]`, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// The body as lossy UTF-8.
    pub body: String,
    /// Body length in bytes.
    pub body_len: usize,
    /// Lowercase hex SHA-256 of the body bytes.
    pub body_sha256: String,
}

impl EchoResponse {
    fn from_request(req: &Request) -> EchoResponse {
        let digest = Sha256::digest(&req.body);
        let mut hex = String::with_capacity(64);
        for b in digest {
            let _ = write!(hex, "{b:02x}");
        }
        EchoResponse {
            method: req.method.clone(),
            uri: req.target.clone(),
            http_version: req.version.clone(),
            headers: req.headers.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            body_len: req.body.len(),
            body_sha256: hex,
        }
    }

    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of the header `name` (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The bearer token of the first `Authorization` header, if it uses the
    /// `Bearer` scheme.
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest)
    }
}

struct Shared {
    records: Mutex<Vec<EchoResponse>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<EchoResponse>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An upstream server on `127.0.0.1` answering every request (any method,
/// any path) with `200 application/json` describing it ([`EchoResponse`]);
/// paths ending in `/static` get a fixed `{"ok":true}` instead (not recorded),
/// a cheap upstream for benchmarks.
///
/// Supports `Content-Length` and chunked request bodies, HTTP/1.0 and
/// HTTP/1.1 keep-alive. Dropping it stops accepting connections.
pub struct EchoServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl EchoServer {
    /// Starts a server on an ephemeral port.
    pub fn start() -> EchoServer {
        Self::start_on(0)
    }

    /// Starts a server on `127.0.0.1:port` (0 = ephemeral).
    pub fn start_on(port: u16) -> EchoServer {
        let (listener, addr) = http::bind(port);
        let shared = Arc::new(Shared {
            records: Mutex::new(Vec::new()),
        });
        let task = http::serve(listener, shared.clone(), handle_connection);
        EchoServer { addr, shared, task }
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// All requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<EchoResponse> {
        self.shared.lock().clone()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.lock().len()
    }

    /// The last request received, if any.
    pub fn last_request(&self) -> Option<EchoResponse> {
        self.shared.lock().last().cloned()
    }

    /// Forgets the recorded requests.
    pub fn reset_records(&self) {
        self.shared.lock().clear();
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle_connection(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    loop {
        let req = match conn.read_request().await {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(_) => {
                let _ = conn
                    .write(&http::response(400, &[], b"bad request", false))
                    .await;
                return;
            }
        };
        let keep_alive = req.keep_alive();
        if req
            .target
            .split('?')
            .next()
            .is_some_and(|p| p.ends_with("/static"))
        {
            // A fixed, cheap answer (not recorded): the upstream of benchmarks.
            let headers = [("Content-Type", "application/json".to_string())];
            if conn
                .write(&http::response(200, &headers, b"{\"ok\":true}", keep_alive))
                .await
                .is_err()
                || !keep_alive
            {
                return;
            }
            continue;
        }
        let echo = EchoResponse::from_request(&req);
        let body = serde_json::to_vec(&echo).expect("serialize echo");
        shared.lock().push(echo);
        let headers = [("Content-Type", "application/json".to_string())];
        let bytes = if req.method == "HEAD" {
            http::response_head(200, &headers, body.len(), keep_alive)
        } else {
            http::response(200, &headers, &body, keep_alive)
        };
        if conn.write(&bytes).await.is_err() {
            return;
        }
        if !keep_alive {
            let _ = conn.stream.shutdown().await;
            return;
        }
    }
}

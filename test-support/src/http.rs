//! Minimal HTTP/1.x server plumbing shared by the test servers.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Largest request head (request line + headers) accepted.
const MAX_HEAD: usize = 4 * 1024 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The background runtime shared by all test servers.
pub(crate) fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-support-rt")
            .enable_all()
            .build()
            .expect("failed to build the test-support tokio runtime")
    })
}

/// Binds a listener on `127.0.0.1:port` (0 = ephemeral) inside the shared runtime.
pub(crate) fn bind(port: u16) -> (TcpListener, SocketAddr) {
    let listener = runtime()
        .block_on(TcpListener::bind(("127.0.0.1", port)))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:{port}: {e}"));
    let addr = listener.local_addr().expect("local_addr");
    (listener, addr)
}

/// Serves every connection of `listener` (see [`bind`]) with
/// `handle(shared, stream)` on the shared runtime: the accept loop of all
/// test servers. Aborting the returned task stops accepting.
pub(crate) fn serve<S, F, Fut>(
    listener: TcpListener,
    shared: Arc<S>,
    handle: F,
) -> tokio::task::JoinHandle<()>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    runtime().spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // E.g. out of file descriptors: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            tokio::spawn(handle(shared.clone(), stream));
        }
    })
}

/// A parsed HTTP/1.x request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First header value with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection should stay open after answering.
    pub fn keep_alive(&self) -> bool {
        let conn = self
            .header("connection")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_default();
        if self.version == "HTTP/1.1" {
            !conn.contains("close")
        } else {
            conn.contains("keep-alive")
        }
    }

    /// The request target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// A buffered server-side connection.
pub(crate) struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: Vec::with_capacity(8192),
        }
    }

    /// Reads more bytes into the buffer; `Ok(false)` on EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let line = self.buf[..pos].to_vec();
                self.buf.drain(..pos + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("line too long"));
            }
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn read_n(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one request; `Ok(None)` when the peer closed the connection
    /// before sending anything.
    pub async fn read_request(&mut self) -> io::Result<Option<Request>> {
        let head_end = loop {
            // Tolerate stray CRLFs between pipelined requests (RFC 9112 2.2).
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("request head too large"));
            }
            if !self.fill().await? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let head = &head[..head_end];
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let request_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let mut parts = request_line.split(' ').filter(|p| !p.is_empty());
        let method = parts.next().ok_or_else(|| bad("no method"))?.to_string();
        let target = parts.next().ok_or_else(|| bad("no target"))?.to_string();
        let version = parts.next().unwrap_or("HTTP/0.9").to_string();
        let mut headers = Vec::new();
        for line in lines {
            if line.is_empty() {
                continue;
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or_else(|| bad("header without colon"))?;
            let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
            let value = String::from_utf8_lossy(trim_ows(&line[colon + 1..])).into_owned();
            headers.push((name, value));
        }
        let mut req = Request {
            method,
            target,
            version,
            headers,
            body: Vec::new(),
        };
        if req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            req.body = self.read_chunked().await?;
        } else if let Some(len) = req.header("content-length") {
            let len: usize = len.trim().parse().map_err(|_| bad("bad content-length"))?;
            if len > MAX_BODY {
                return Err(bad("body too large"));
            }
            req.body = self.read_n(len).await?;
        }
        Ok(Some(req))
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let line = String::from_utf8_lossy(&line);
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailer section, terminated by an empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(bad("body too large"));
            }
            body.extend(self.read_n(size).await?);
            if !self.read_line().await?.is_empty() {
                return Err(bad("missing CRLF after chunk"));
            }
        }
    }

    /// Writes all bytes and flushes.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Standard reason phrase for a status code.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Serialises the status line and headers of a response (including
/// `Content-Length` and `Connection`), without the body.
pub(crate) fn response_head(
    status: u16,
    headers: &[(&str, String)],
    body_len: usize,
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    // 204 and 304 responses carry no body and no Content-Length.
    if status != 204 && status != 304 {
        out.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    out.into_bytes()
}

/// A complete response: head followed by body.
pub(crate) fn response(
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = response_head(status, headers, body.len(), keep_alive);
    out.extend_from_slice(body);
    out
}

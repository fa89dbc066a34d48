//! Faults of the authorization server (AS) and of the introspection
//! location's configuration, as the client, the upstream API and the logs
//! see them. Every test is one behaviour: the configuration it runs, the
//! request, the exact answer on the wire, the log lines, and what the AS and
//! the echo upstream received.
//!
//! Most tests run without and with the built-in cache (`::no_cache`,
//! `::cache`) and with the stock `error_page 500 502 503 504 /50x.html;` of
//! a default `nginx.conf` in the server: the module's own JSON answers must
//! reach the client unchanged and alone, whatever `error_page` says.
//!
//! The fault gateway (`fault_gateway`):
//!
//! ```nginx
//! phantom_token_cache_zone tokens:1m;              # cache variant only
//! server {
//!     listen 127.0.0.1:PORT;
//!     http2 on;
//!     error_page 500 502 503 504 /50x.html;
//!     location = /50x.html { return 200 "<html>50x</html>"; }
//!     location = /open { return 200 "open"; }
//!     location = /admin { phantom_token_cache_admin tokens; ... }   # cache variant only
//!     location /api {                              # introspects at the AS
//!         phantom_token on;
//!         phantom_token_introspection_endpoint curity;
//!         phantom_token_cache tokens;              # cache variant only
//!         proxy_pass http://127.0.0.1:ECHO;
//!     }
//!     location /dead {                             # introspects at a closed port
//!         ... phantom_token_introspection_endpoint curity_dead; ...
//!     }
//!     location curity {                            # the 2.0.0 introspection location
//!         internal; <Accept, Content-Type, Basic Authorization headers>;
//!         <per test, e.g. proxy_read_timeout 1s;>
//!         proxy_pass http://127.0.0.1:AS/introspect;
//!     }
//!     location curity_dead { ...; proxy_connect_timeout 1s; proxy_pass http://127.0.0.1:CLOSED/introspect; }
//! }
//! ```

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;
use std::time::{Duration, Instant};

const CHALLENGE: &str = r#"Bearer realm="api""#;
/// What the stock `error_page` location would answer (must never be seen).
const ERROR_PAGE_BODY: &str = "<html>50x</html>";
/// The module's error line for every failed introspection.
const INTROSPECTION_ERROR: &str = "Introspection subrequest returned";

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

impl Cache {
    /// `http`-level lines.
    fn http(self) -> &'static str {
        match self {
            Cache::Off => "",
            Cache::On => "phantom_token_cache_zone tokens:1m;",
        }
    }

    /// Lines of a protected location.
    fn location(self) -> &'static str {
        match self {
            Cache::Off => "",
            Cache::On => "phantom_token_cache tokens;",
        }
    }

    /// The admin API location (cache variant only).
    fn admin(self) -> &'static str {
        match self {
            Cache::Off => "",
            Cache::On => {
                "location = /admin { phantom_token_cache_admin tokens; allow 127.0.0.1; deny all; }"
            }
        }
    }
}

/// The stock error pages of a default `nginx.conf`, and an unprotected location.
const STOCK_ERROR_PAGE: &str = r#"
        error_page 500 502 503 504 /50x.html;
        location = /50x.html { return 200 "<html>50x</html>"; }
        location = /open { return 200 "open"; }"#;

/// `location PATH { phantom_token on; phantom_token_introspection_endpoint ENDPOINT; EXTRA; proxy_pass ECHO; }`.
fn protected_location(echo: &EchoServer, path: &str, endpoint: &str, extra: &str) -> String {
    format!(
        r#"
        location {path} {{
            phantom_token on;
            phantom_token_introspection_endpoint {endpoint};
            {extra}
            proxy_pass http://127.0.0.1:{echo};
        }}"#,
        echo = echo.port()
    )
}

/// Starts the AS, the echo API and nginx with `workers` workers and the
/// `http {}` body `conf(auth, echo, port)`.
fn start_gateway(
    workers: usize,
    conf: impl FnOnce(&AuthServer, &EchoServer, u16) -> String,
) -> Gateway {
    let auth = AuthServer::start();
    let echo = EchoServer::start();
    let port = Nginx::free_port();
    let body = conf(&auth, &echo, port);
    let nginx = Nginx::builder()
        .workers(workers)
        .port(port)
        .http(move |_| body)
        .start();
    Gateway { auth, echo, nginx }
}

/// The fault gateway of this file (see the top): stock error pages, `/api`
/// introspecting at the AS through `curity` (plus `curity_extra`), `/dead`
/// introspecting at a closed port.
fn fault_gateway(cache: Cache, workers: usize, curity_extra: &str) -> FaultGateway {
    // Reserved before nginx's port is picked, and held while nginx runs.
    let down = ClosedPort::reserve();
    let gw = start_gateway(workers, |auth, echo, port| {
        format!(
            r#"
    {http}
    server {{
        listen 127.0.0.1:{port};
        http2 on;
        {STOCK_ERROR_PAGE}
        {admin}
        {api}
        {dead}
        {curity}
        {curity_dead}
    }}"#,
            http = cache.http(),
            admin = cache.admin(),
            api = protected_location(echo, "/api", "curity", cache.location()),
            dead = protected_location(echo, "/dead", "curity_dead", cache.location()),
            curity =
                introspection_location(auth, "curity", &auth.introspection_url(), curity_extra),
            curity_dead = introspection_location(
                auth,
                "curity_dead",
                &down.introspection_url(),
                "proxy_connect_timeout 1s;"
            ),
        )
    });
    FaultGateway { gw, _down: down }
}

/// A [`Gateway`] whose `/dead` introspects at a port kept closed.
struct FaultGateway {
    gw: Gateway,
    _down: ClosedPort,
}

impl std::ops::Deref for FaultGateway {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gw
    }
}

/// A new opaque token at the gateway's AS whose JWT carries `sub`.
fn token_for(gw: &Gateway, sub: &str) -> String {
    gw.auth.issue_token(json!({ "sub": sub }))
}

/// Polls `cond` every 5 ms until it holds; panics with `what` after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Number of `[error]` lines of the module about a failed introspection.
fn introspection_errors(gw: &Gateway) -> usize {
    gw.nginx
        .error_log()
        .lines()
        .filter(|l| l.contains("[error]") && l.contains(INTROSPECTION_ERROR))
        .count()
}

/// Waits (bounded) until the module has logged `n` introspection errors.
fn expect_introspection_errors(gw: &Gateway, n: usize) {
    wait_for(
        &format!("{n} x [error] {INTROSPECTION_ERROR}"),
        Duration::from_secs(5),
        || introspection_errors(gw) >= n,
    );
    assert_eq!(introspection_errors(gw), n, "{}", gw.nginx.error_log());
}

/// The PIDs of the `n` workers once all carry their process title.
fn workers_of(gw: &Gateway, n: usize) -> Vec<u32> {
    let mut pids = Vec::new();
    wait_for("the workers", Duration::from_secs(5), || {
        pids = gw.nginx.worker_pids();
        pids.len() == n
    });
    pids
}

/// Runs `check` on every row even when some fail (each failure prints its
/// own panic message), then fails naming the rows that failed.
fn for_each_row<R>(rows: impl IntoIterator<Item = (String, R)>, mut check: impl FnMut(R)) {
    let failed: Vec<String> = rows
        .into_iter()
        .filter_map(|(name, row)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(row)))
                .err()
                .map(|_| name)
        })
        .collect();
    assert!(failed.is_empty(), "failed rows: {failed:?}");
}

/// Joins a scoped thread, re-raising its panic with its own message.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The `sub` of the JWT the echo upstream received in `echoed`; checks it
/// was the only `Authorization` header and a verified JWT.
fn forwarded_sub(auth: &AuthServer, echoed: &EchoResponse) -> String {
    assert_eq!(echoed.headers_named("authorization").len(), 1, "{echoed:?}");
    let jwt = echoed.bearer().expect("Bearer JWT upstream");
    auth.decode_jwt(jwt)["sub"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------
// The wire: raw HTTP/1.1 byte streams, split strictly
// ---------------------------------------------------------------------------

/// One response as it was found in the byte stream.
#[derive(Debug)]
struct WireResponse {
    /// E.g. `HTTP/1.1 502 Bad Gateway`.
    status_line: String,
    status: u16,
    /// Names lowercased, in order.
    headers: Vec<(String, String)>,
    /// De-chunked.
    body: Vec<u8>,
}

impl WireResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header_names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The echo upstream's description of what it received.
    fn echoed(&self) -> EchoResponse {
        assert_eq!(self.status, 200, "{}", self.text());
        serde_json::from_slice(&self.body).expect("echo JSON")
    }
}

/// Writes `requests` (one or several pipelined HTTP/1.1 requests, the last
/// one `Connection: close`) on one new connection in one write, and reads
/// everything until nginx closes the connection (bounded: 10 s).
fn wire_exchange(port: u16, requests: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    s.set_nodelay(true).unwrap();
    s.write_all(requests.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "nginx did not close the connection");
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("reading from nginx: {e}; so far: {:?}", lossy(&out)),
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Splits a byte stream into HTTP/1.1 responses: each one starts exactly
/// where the previous one ended, with `HTTP/1.1 `, and is framed by
/// `Content-Length` or chunked coding. Panics on any other byte.
fn split_responses(mut stream: &[u8]) -> Vec<WireResponse> {
    let all = lossy(stream);
    let mut out = Vec::new();
    while !stream.is_empty() {
        assert!(
            stream.starts_with(b"HTTP/1.1 "),
            "response {} does not start with a status line: {:?}\nwhole stream: {all:?}",
            out.len() + 1,
            lossy(&stream[..stream.len().min(200)])
        );
        let end = find(stream, b"\r\n\r\n").unwrap_or_else(|| panic!("incomplete head in {all:?}"));
        let head = lossy(&stream[..end]);
        stream = &stream[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_string();
        let status: u16 = status_line[9..12].parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let value = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let body = if value("transfer-encoding").is_some_and(|v| v == "chunked") {
            let mut body = Vec::new();
            loop {
                let eol = find(stream, b"\r\n").expect("chunk size line");
                let size = usize::from_str_radix(&lossy(&stream[..eol]), 16).expect("chunk size");
                stream = &stream[eol + 2..];
                if size == 0 {
                    assert!(stream.starts_with(b"\r\n"), "trailers in {all:?}");
                    stream = &stream[2..];
                    break body;
                }
                body.extend_from_slice(&stream[..size]);
                assert_eq!(&stream[size..size + 2], b"\r\n", "chunk end in {all:?}");
                stream = &stream[size + 2..];
            }
        } else if let Some(len) = value("content-length") {
            let len: usize = len.parse().expect("Content-Length");
            assert!(stream.len() >= len, "body cut short in {all:?}");
            let body = stream[..len].to_vec();
            stream = &stream[len..];
            body
        } else {
            assert!(
                status == 204 || status == 304,
                "unframed response in {all:?}"
            );
            Vec::new()
        };
        out.push(WireResponse {
            status_line,
            status,
            headers,
            body,
        });
    }
    out
}

/// `GET path` with `Authorization: Bearer <token>` on a new connection
/// (`Connection: close`); asserts the stream holds exactly one response.
fn wire_get(gw: &Gateway, path: &str, token: &str) -> WireResponse {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let wire = wire_exchange(gw.nginx.port(), &req);
    let mut responses = split_responses(&wire);
    assert_eq!(responses.len(), 1, "stream: {:?}", lossy(&wire));
    responses.pop().unwrap()
}

/// The module's JSON error: exact status line, `Content-Type`,
/// `Content-Length`, body, and `WWW-Authenticate` only on a 401.
fn assert_module_error(resp: &WireResponse, status: u16, body: &str) {
    let reason = match status {
        401 => "Unauthorized",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        _ => unreachable!(),
    };
    assert_eq!(
        resp.status_line,
        format!("HTTP/1.1 {status} {reason}"),
        "body: {}",
        resp.text()
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.header("content-length"),
        Some(&*body.len().to_string())
    );
    assert_eq!(resp.text(), body);
    if status == 401 {
        assert_eq!(resp.header("www-authenticate"), Some(CHALLENGE));
    } else {
        assert_eq!(resp.header("www-authenticate"), None);
    }
}

// ---------------------------------------------------------------------------
// 1. The stock error_page and an AS that is down: the module's 502, alone
// ---------------------------------------------------------------------------

with_and_without_cache!(
    stock_error_page_leaves_the_modules_502_alone_over_http1,
    stock_error_page_leaves_the_modules_502_alone_over_http2,
);

/// Config: the fault gateway (server-level `error_page 500 502 503 504
/// /50x.html`); `/dead` introspects at a closed port.
///
/// One keep-alive connection, two pipelined requests in one write:
/// `GET /dead/x` with a valid token, then `GET /api/x` with another valid
/// token and `Connection: close`. The byte stream is exactly two responses:
/// from byte 0 `HTTP/1.1 502 Bad Gateway` with the module's JSON (headers
/// Server, Date, Content-Type: application/json, Content-Length: 78,
/// Connection: keep-alive), then `HTTP/1.1 200 OK` with the echo JSON of the
/// second request. No `<html>50x</html>` anywhere. Error log:
/// `[error] ... Introspection subrequest returned response code: 502` and
/// NGINX's `connect() failed (111: Connection refused)`. The echo upstream
/// got only the second request, with the JWT of the second token.
fn stock_error_page_leaves_the_modules_502_alone_over_http1(cache: Cache) {
    let gw = fault_gateway(cache, 2, "");
    let (down, up) = (token_for(&gw, "down"), token_for(&gw, "up"));
    let wire = wire_exchange(
        gw.nginx.port(),
        &format!(
            "GET /dead/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {down}\r\n\r\n\
             GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {up}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(wire.starts_with(b"HTTP/1.1 502 "), "{:?}", lossy(&wire));
    assert_eq!(count(&wire, ERROR_PAGE_BODY.as_bytes()), 0);
    let responses = split_responses(&wire);
    assert_eq!(responses.len(), 2, "{:?}", lossy(&wire));
    assert_module_error(&responses[0], 502, SERVER_ERROR);
    assert_eq!(
        responses[0].header_names(),
        [
            "server",
            "date",
            "content-type",
            "content-length",
            "connection"
        ]
    );
    assert_eq!(responses[0].header("connection"), Some("keep-alive"));
    assert_eq!(responses[1].status_line, "HTTP/1.1 200 OK");
    assert_eq!(forwarded_sub(&gw.auth, &responses[1].echoed()), "up");

    expect_introspection_errors(&gw, 1);
    gw.expect_log("Introspection subrequest returned response code: 502");
    gw.expect_log("(111: Connection refused)");
    assert_eq!(gw.echo.request_count(), 1, "only the second request");
    assert_eq!(gw.echo.requests()[0].uri, "/api/x");
    assert_eq!(gw.auth.introspection_count(), 1, "only the second token");
}

/// Config: the fault gateway (`http2 on`, h2c prior knowledge). On one
/// HTTP/2 connection: `GET /dead/x` → 502, `content-type:
/// application/json`, the exact JSON body; then `GET /api/x` on the same
/// connection → 200 with the second token's JWT upstream (an extra
/// response or DATA after the 502 would break the connection).
fn stock_error_page_leaves_the_modules_502_alone_over_http2(cache: Cache) {
    let gw = fault_gateway(cache, 2, "");
    let (down, up) = (token_for(&gw, "down"), token_for(&gw, "up"));
    let h2 = http2_client();
    let resp = h2
        .get(gw.nginx.url("/dead/x"))
        .bearer_auth(&down)
        .send()
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let headers = assert_error(resp, 502, SERVER_ERROR);
    assert_eq!(headers["content-length"], "78");
    assert!(headers.get("www-authenticate").is_none());
    let resp = h2
        .get(gw.nginx.url("/api/x"))
        .bearer_auth(&up)
        .send()
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(forwarded_sub(&gw.auth, &assert_forwarded(resp)), "up");
    expect_introspection_errors(&gw, 1);
    assert_eq!(gw.echo.request_count(), 1);
}

// ---------------------------------------------------------------------------
// 2. error_page inside the introspection location: a fallback AS
// ---------------------------------------------------------------------------

/// How the primary AS (A) fails in the fallback test.
#[derive(Debug, Clone, Copy)]
enum PrimaryFailure {
    /// A's port is closed (NGINX: 502 of its own).
    Refused,
    /// A answers `502 Bad Gateway` itself (intercepted).
    Answers502,
}

/// Config (AS A = the gateway's AS or a closed port, AS B = a second AS):
///
/// ```nginx
/// location /api { phantom_token on; phantom_token_introspection_endpoint curity; proxy_pass ECHO; }
/// location curity {
///     internal; <introspection headers>
///     proxy_intercept_errors on;
///     error_page 502 504 = @backup_as;
///     proxy_pass <A>/introspect;
/// }
/// location @backup_as {
///     internal; <introspection headers>
///     rewrite ^ /introspect break;     # a named location's proxy_pass has no URI part
///     proxy_pass http://127.0.0.1:<B>;
/// }
/// ```
///
/// The opaque token is registered at A (`sub` "from-a") and at B (`sub`
/// "from-b"). A raw `GET /api/x` gets, from byte 0, exactly one
/// `HTTP/1.1 200 OK` whose body is the echo JSON; the echo upstream got
/// `Authorization: Bearer <B's JWT>` (`sub` "from-b"); B's JWT appears on
/// the wire exactly once, inside that body (never written to the client by
/// itself). B received one `POST /introspect` with `token=<the token>`.
#[test]
fn fallback_as_via_error_page_when_the_primary_refuses_connections() {
    fallback_as_via_error_page(PrimaryFailure::Refused);
}

/// As [`fallback_as_via_error_page_when_the_primary_refuses_connections`],
/// with A answering `502` itself (`proxy_intercept_errors on` hands it to
/// `error_page`).
#[test]
fn fallback_as_via_error_page_when_the_primary_answers_502() {
    fallback_as_via_error_page(PrimaryFailure::Answers502);
}

fn fallback_as_via_error_page(failure: PrimaryFailure) {
    let b = AuthServer::start();
    let a_down = ClosedPort::reserve();
    let gw = start_gateway(2, |auth, echo, port| {
        let a_url = match failure {
            PrimaryFailure::Refused => a_down.introspection_url(),
            PrimaryFailure::Answers502 => auth.introspection_url(),
        };
        format!(
            r#"
server {{
    listen 127.0.0.1:{port};
    {api}
    {curity}
    {backup}
}}"#,
            api = protected_location(echo, "/api", "curity", ""),
            curity = introspection_location(
                auth,
                "curity",
                &a_url,
                "proxy_intercept_errors on; error_page 502 504 = @backup_as;"
            ),
            // A named location's proxy_pass takes no URI part.
            backup = introspection_location(
                auth,
                "@backup_as",
                &format!("http://127.0.0.1:{}", b.port()),
                "rewrite ^ /introspect break;"
            ),
        )
    });
    if let PrimaryFailure::Answers502 = failure {
        gw.auth
            .set_fault(Fault::Status(502, "primary is broken".into()));
    }
    let token = token_for(&gw, "from-a");
    b.issue_token_exact(&token, json!({"sub": "from-b"}));

    let wire = wire_exchange(
        gw.nginx.port(),
        &format!(
            "GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        wire.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{failure:?}: {:?}",
        lossy(&wire)
    );
    let responses = split_responses(&wire);
    assert_eq!(responses.len(), 1, "{failure:?}: {:?}", lossy(&wire));
    let echoed = responses[0].echoed();
    assert_eq!(forwarded_sub(&b, &echoed), "from-b", "{failure:?}");
    let jwt = echoed.bearer().unwrap();
    assert!(b.issued_secrets().iter().any(|s| s == jwt));
    assert_eq!(
        count(&wire, jwt.as_bytes()),
        1,
        "{failure:?}: JWT on the wire"
    );
    assert_eq!(count(&responses[0].body, jwt.as_bytes()), 1);

    let at_b = b.introspection_requests();
    assert_eq!(at_b.len(), 1, "{failure:?}");
    assert_eq!(at_b[0].method, "POST");
    assert_eq!(at_b[0].token.as_deref(), Some(token.as_str()));
    assert_eq!(
        gw.auth.introspection_count(),
        match failure {
            PrimaryFailure::Refused => 0,
            PrimaryFailure::Answers502 => 1,
        }
    );
    assert_eq!(gw.echo.request_count(), 1);
    assert_eq!(introspection_errors(&gw), 0, "{failure:?}");
}

/// Config: `error_page 502 /50x.html;` (a URI, not `=`) inside the
/// introspection location pointing at a closed port, and the server's
/// `location = /50x.html { return 200 "<html>50x</html>"; }`. A raw
/// `GET /api/x` gets exactly one response, the module's 502 JSON from byte 0;
/// the error page's body never reaches the client; nothing goes upstream.
#[test]
fn error_page_uri_in_the_introspection_location_is_the_modules_502() {
    let down = ClosedPort::reserve();
    let gw = start_gateway(2, |auth, echo, port| {
        format!(
            r#"
    server {{
        listen 127.0.0.1:{port};
        location = /50x.html {{ return 200 "<html>50x</html>"; }}
        {api}
        {curity}
    }}"#,
            api = protected_location(echo, "/api", "curity", ""),
            curity = introspection_location(
                auth,
                "curity",
                &down.introspection_url(),
                "error_page 502 /50x.html;"
            ),
        )
    });
    let token = gw.token();
    let wire = wire_exchange(
        gw.nginx.port(),
        &format!(
            "GET /api/x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(wire.starts_with(b"HTTP/1.1 502 "), "{:?}", lossy(&wire));
    assert_eq!(
        count(&wire, ERROR_PAGE_BODY.as_bytes()),
        0,
        "{:?}",
        lossy(&wire)
    );
    let responses = split_responses(&wire);
    assert_eq!(responses.len(), 1, "{:?}", lossy(&wire));
    assert_module_error(&responses[0], 502, SERVER_ERROR);
    assert_eq!(gw.echo.request_count(), 0);
    expect_introspection_errors(&gw, 1);
}

// ---------------------------------------------------------------------------
// 3. A JWT answer cut short: 502, logged, never cached
// ---------------------------------------------------------------------------

with_and_without_cache!(
    jwt_answers_cut_short_are_502_and_not_cached,
    chunked_jwt_answer_is_accepted,
);

/// Config: the fault gateway; the AS answers `Cache-Control: max-age=60`
/// (cacheable, so a cut JWT *would* be cached if it were stored).
///
/// | AS fault | on the wire from the AS |
/// |---|---|
/// | `Truncate(10)` | 200, `Content-Length` of the whole JWT, the JWT minus its last 10 bytes, FIN |
/// | `ResetMidBody` | 200, full `Content-Length`, half the JWT, RST |
/// | `ChunkedTruncated` | 200, chunked: every chunk of the JWT, FIN before the `0` chunk |
///
/// Each: `GET /api/x` → the module's 502 JSON (exactly one response on the
/// connection), nothing forwarded upstream, one more `[error] ...
/// Introspection subrequest returned ...` line. Then `clear_fault` and the
/// same token again → introspected again (the AS count grows by one) and
/// 200 with the token's JWT upstream.
fn jwt_answers_cut_short_are_502_and_not_cached(cache: Cache) {
    let gw = fault_gateway(cache, 2, "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let faults = [
        Fault::Truncate(10),
        Fault::ResetMidBody,
        Fault::ChunkedTruncated,
    ];
    let rows = faults.into_iter().enumerate();
    for_each_row(rows.map(|r| (format!("{:?}", r.1), r)), |(i, fault)| {
        let sub = format!("cut-{i}");
        let token = token_for(&gw, &sub);
        gw.auth.set_fault(fault.clone());
        let (upstream, errors) = (gw.echo.request_count(), introspection_errors(&gw));
        let resp = wire_get(&gw, "/api/x", &token);
        assert_module_error(&resp, 502, SERVER_ERROR);
        assert_eq!(
            gw.echo.request_count(),
            upstream,
            "{fault:?}: forwarded upstream"
        );
        expect_introspection_errors(&gw, errors + 1);

        gw.auth.clear_fault();
        let before = gw.auth.introspection_count();
        let resp = wire_get(&gw, "/api/x", &token);
        assert_eq!(forwarded_sub(&gw.auth, &resp.echoed()), sub, "{fault:?}");
        assert_eq!(
            gw.auth.introspection_count(),
            before + 1,
            "{fault:?}: the cut answer was served from the cache"
        );
    });
    gw.expect_log("upstream prematurely closed connection");
}

/// Config: the fault gateway; the AS sends the JWT with `Transfer-Encoding:
/// chunked` in 3 chunks 20 ms apart (`Fault::Chunked`). `GET /api/x` → 200,
/// the echo upstream got the whole JWT (verified, `sub` "chunky"); no error.
fn chunked_jwt_answer_is_accepted(cache: Cache) {
    let gw = fault_gateway(cache, 2, "");
    gw.auth.set_fault(Fault::Chunked);
    let token = token_for(&gw, "chunky");
    let resp = wire_get(&gw, "/api/x", &token);
    assert_eq!(forwarded_sub(&gw.auth, &resp.echoed()), "chunky");
    assert_eq!(gw.auth.introspection_count(), 1);
    assert_eq!(introspection_errors(&gw), 0);
}

// ---------------------------------------------------------------------------
// 4. The fault matrix
// ---------------------------------------------------------------------------

with_and_without_cache!(
    every_as_fault_gets_its_answer_and_the_gateway_recovers,
    as_slower_than_proxy_read_timeout_is_502_at_the_timeout_and_blocks_nobody,
);

/// What the client gets in a row of the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 200, the token's JWT upstream.
    Forwarded,
    /// The module's JSON error with this status (401: `UNAUTHORIZED`).
    Error(u16),
}

/// Config: the fault gateway with one worker and `proxy_read_timeout 1s;`
/// in `curity`. Each row: a fresh token, the AS fault, a raw `GET` on a new
/// connection (the stream must hold exactly one response), then:
/// * `Forwarded`: 200, the echo upstream got the token's own JWT;
/// * `Error(s)`: the module's exact JSON answer with status `s` (401 with
///   `WWW-Authenticate: Bearer realm="api"`), nothing forwarded upstream, and
///   for 500/502 one more `[error] ... Introspection subrequest returned` line;
/// * then `clear_fault` and the same token → 200 with its JWT (an error is
///   never cached; the 204 row's token is remembered as inactive with the
///   cache, so a fresh token is used there).
fn every_as_fault_gets_its_answer_and_the_gateway_recovers(cache: Cache) {
    let gw = fault_gateway(cache, 1, "proxy_read_timeout 1s;");
    let workers = workers_of(&gw, 1);
    let signed = gw.auth.sign_jwt(&json!({"sub": "mallory"}));
    let (head, tail) = signed.split_at(signed.len() / 2);
    let rows: Vec<(&str, Option<Fault>, &str, Expect)> = vec![
        ("AS port closed", None, "/dead/x", Expect::Error(502)),
        ("reset", Some(Fault::Reset), "/api/x", Expect::Error(502)),
        (
            "closed without answer",
            Some(Fault::CloseWithoutResponse),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "truncated",
            Some(Fault::Truncate(10)),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "reset mid-body",
            Some(Fault::ResetMidBody),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "chunked, cut",
            Some(Fault::ChunkedTruncated),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "headers and body in separate writes",
            Some(Fault::SplitWrite(Duration::from_millis(100))),
            "/api/x",
            Expect::Forwarded,
        ),
        ("chunked", Some(Fault::Chunked), "/api/x", Expect::Forwarded),
        (
            "garbage",
            Some(Fault::Body(b"\x00\xff garbage \x01".to_vec())),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "JSON, not a JWT",
            Some(Fault::Body(br#"{"active":true,"sub":"mallory"}"#.to_vec())),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "CR-LF inside a JWT",
            Some(Fault::Body(format!("{head}\r\n{tail}").into_bytes())),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "10 MB body",
            Some(Fault::Body(vec![b'a'; 10 << 20])),
            "/api/x",
            Expect::Error(502),
        ),
        // "Any other status" of the decision table (README, C module): 500.
        (
            "302 Found",
            Some(Fault::Status(302, String::new())),
            "/api/x",
            Expect::Error(500),
        ),
        (
            "401",
            Some(Fault::Status(401, "{}".into())),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "403",
            Some(Fault::Status(403, "{}".into())),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "404",
            Some(Fault::Status(404, "{}".into())),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "500",
            Some(Fault::Status(500, "{}".into())),
            "/api/x",
            Expect::Error(502),
        ),
        (
            "503",
            Some(Fault::Status(503, "{}".into())),
            "/api/x",
            Expect::Error(503),
        ),
        (
            "418",
            Some(Fault::Status(418, "{}".into())),
            "/api/x",
            Expect::Error(500),
        ),
        (
            "204",
            Some(Fault::Status(204, String::new())),
            "/api/x",
            Expect::Error(401),
        ),
    ];
    let rows = rows
        .into_iter()
        .enumerate()
        .map(|r| (r.1 .0.to_string(), r));
    for_each_row(rows, |(i, (what, fault, path, expect))| {
        let sub = format!("row-{i}");
        let token = token_for(&gw, &sub);
        match &fault {
            Some(f) => gw.auth.set_fault(f.clone()),
            None => gw.auth.clear_fault(),
        }
        let upstream_before = gw.echo.request_count();
        let errors_before = introspection_errors(&gw);
        let resp = wire_get(&gw, path, &token);
        match expect {
            Expect::Forwarded => {
                assert_eq!(forwarded_sub(&gw.auth, &resp.echoed()), sub, "{what}");
            }
            Expect::Error(status) => {
                assert_eq!(resp.status, status, "{what}: {}", resp.text());
                let body = if status == 401 {
                    UNAUTHORIZED
                } else {
                    SERVER_ERROR
                };
                assert_module_error(&resp, status, body);
                assert_eq!(
                    gw.echo.request_count(),
                    upstream_before,
                    "{what}: forwarded"
                );
                if status == 500 || status == 502 {
                    expect_introspection_errors(&gw, errors_before + 1);
                }
            }
        }
        // Recovery: the AS works again.
        gw.auth.clear_fault();
        let token = if expect == Expect::Error(401) {
            token_for(&gw, &sub)
        } else {
            token
        };
        let resp = wire_get(&gw, "/api/x", &token);
        assert_eq!(
            forwarded_sub(&gw.auth, &resp.echoed()),
            sub,
            "{what}: no recovery"
        );
    });
    assert_no_crash(&gw, &workers);
}

/// Config: the fault gateway with ONE worker and `proxy_read_timeout 1s;`
/// in `curity`; the AS waits 3 s before answering. `GET /api/x` → the
/// module's 502 JSON after about 1 s (between 0.9 and 2.9 s), error log
/// `upstream timed out` and `... returned response code: 504`. While it
/// waits, `GET /open` on the same (only) worker answers `open` at once
/// (under 500 ms): the introspection blocks nobody.
fn as_slower_than_proxy_read_timeout_is_502_at_the_timeout_and_blocks_nobody(cache: Cache) {
    let gw = fault_gateway(cache, 1, "proxy_read_timeout 1s;");
    let workers = workers_of(&gw, 1);
    gw.auth.set_fault(Fault::Delay(Duration::from_secs(3)));
    let token = token_for(&gw, "slow");
    std::thread::scope(|s| {
        let slow = s.spawn(|| {
            let started = Instant::now();
            let resp = wire_get(&gw, "/api/x", &token);
            (started.elapsed(), resp)
        });
        wait_for(
            "the introspection at the AS",
            Duration::from_secs(5),
            || gw.auth.introspection_count() == 1,
        );
        let started = Instant::now();
        let open = client().get(gw.nginx.url("/open")).send().unwrap();
        let took = started.elapsed();
        assert_eq!(open.status().as_u16(), 200);
        assert_eq!(open.text().unwrap(), "open");
        assert!(took < Duration::from_millis(500), "/open took {took:?}");
        assert!(!slow.is_finished(), "the slow request ended before /open");

        let (elapsed, resp) = join(slow);
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2900),
            "answered after {elapsed:?}, not at the 1 s timeout"
        );
        assert_module_error(&resp, 502, SERVER_ERROR);
    });
    gw.expect_log("upstream timed out");
    gw.expect_log("Introspection subrequest returned response code: 504");
    assert_eq!(gw.echo.request_count(), 0);
    gw.auth.clear_fault();
    let resp = wire_get(&gw, "/api/x", &token_for(&gw, "after"));
    assert_eq!(forwarded_sub(&gw.auth, &resp.echoed()), "after");
    assert_no_crash(&gw, &workers);
}

// ---------------------------------------------------------------------------
// 5. An AS dropping connections under load
// ---------------------------------------------------------------------------

with_and_without_cache!(as_dropping_every_third_connection_under_64_concurrent_requests);

/// Config: the fault gateway (2 workers) with `proxy_connect_timeout 2s;
/// proxy_read_timeout 2s;` in `curity`; the AS closes every 3rd
/// introspection connection without answering (`DropEvery(3)`). 64 threads
/// at once, each with its own token (`sub` "load-N"): every request ends
/// within 4 s, either 200 with ITS OWN JWT upstream or the module's 502
/// JSON. The AS got 64 introspections and dropped 21: exactly 21 × 502 and
/// 43 × 200. No worker crashed or was respawned.
fn as_dropping_every_third_connection_under_64_concurrent_requests(cache: Cache) {
    const N: usize = 64;
    let gw = fault_gateway(cache, 2, "proxy_connect_timeout 2s; proxy_read_timeout 2s;");
    let workers = workers_of(&gw, 2);
    gw.auth.set_fault(Fault::DropEvery(3));
    let tokens: Vec<(String, String)> = (0..N)
        .map(|i| {
            let sub = format!("load-{i}");
            (token_for(&gw, &sub), sub)
        })
        .collect();
    let barrier = Barrier::new(N);
    let results: Vec<(Duration, u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|(token, sub)| {
                let (gw, barrier) = (&gw, &barrier);
                s.spawn(move || {
                    let http = client();
                    barrier.wait();
                    let started = Instant::now();
                    let resp = http
                        .get(gw.nginx.url(&format!("/api/{sub}")))
                        .bearer_auth(token)
                        .send()
                        .expect("request to nginx");
                    let status = resp.status().as_u16();
                    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
                    let text = resp.text().unwrap();
                    if status == 200 {
                        let echoed: EchoResponse = serde_json::from_str(&text).unwrap();
                        assert_eq!(echoed.uri, format!("/api/{sub}"));
                        assert_eq!(forwarded_sub(&gw.auth, &echoed), *sub, "cross-talk");
                    } else {
                        assert_eq!(content_type, "application/json", "{status}: {text}");
                    }
                    (started.elapsed(), status, text)
                })
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    for (elapsed, status, text) in &results {
        assert!(*elapsed < Duration::from_secs(4), "took {elapsed:?}");
        assert!(
            *status == 200 || (*status == 502 && text == SERVER_ERROR),
            "{status}: {text}"
        );
    }
    let failed = results.iter().filter(|(_, s, _)| *s != 200).count();
    assert_eq!(gw.auth.introspection_count(), N);
    assert_eq!(failed, N / 3, "one 502 per dropped connection");
    assert_eq!(gw.echo.request_count(), N - N / 3);
    expect_introspection_errors(&gw, N / 3);
    assert_no_crash(&gw, &workers);
}

// ---------------------------------------------------------------------------
// 6. One cache zone, two introspection endpoints
// ---------------------------------------------------------------------------

/// Config: one zone shared by two locations with different authorization
/// servers (both answer `Cache-Control: max-age=60`):
///
/// ```nginx
/// phantom_token_cache_zone tokens:1m;
/// location /a { phantom_token on; phantom_token_introspection_endpoint curity_a; phantom_token_cache tokens; ... }
/// location /b { phantom_token on; phantom_token_introspection_endpoint curity_b; phantom_token_cache tokens; ... }
/// location curity_a { ... proxy_pass <AS A>/introspect; }
/// location curity_b { ... proxy_pass <AS B>/introspect; }
/// ```
///
/// * Token T known to both (A: `sub` "a-user", B: `sub` "b-user"):
///   `GET /a` → A's JWT upstream; then `GET /b` → B's JWT upstream (B was
///   asked: an entry of A is no answer for B); again both → cache hits.
/// * Token U unknown to A (204, remembered as inactive) but active at B:
///   `GET /a` → 401; `GET /b` → 200 with B's JWT.
#[test]
fn one_zone_two_endpoints_never_mix_their_answers() {
    let b = AuthServer::start();
    let gw = start_gateway(2, |a, echo, port| {
        format!(
            r#"
    phantom_token_cache_zone tokens:1m;
    server {{
        listen 127.0.0.1:{port};
        {loc_a}
        {loc_b}
        {curity_a}
        {curity_b}
    }}"#,
            loc_a = protected_location(echo, "/a", "curity_a", "phantom_token_cache tokens;"),
            loc_b = protected_location(echo, "/b", "curity_b", "phantom_token_cache tokens;"),
            curity_a = introspection_location(a, "curity_a", &a.introspection_url(), ""),
            curity_b = introspection_location(a, "curity_b", &b.introspection_url(), ""),
        )
    });
    let a = &gw.auth;
    a.set_cache_control(Some("max-age=60".into()));
    b.set_cache_control(Some("max-age=60".into()));

    let t = a.issue_token(json!({"sub": "a-user"}));
    b.issue_token_exact(&t, json!({"sub": "b-user"}));
    let sub_at = |path: &str, token: &str| {
        let resp = gw.get_bearer(path, token);
        forwarded_sub(&b, &assert_forwarded(resp))
    };
    assert_eq!(sub_at("/a/x", &t), "a-user");
    assert_eq!(sub_at("/b/x", &t), "b-user", "/b got A's cached JWT");
    assert_eq!((a.introspection_count(), b.introspection_count()), (1, 1));
    assert_eq!(sub_at("/a/x", &t), "a-user");
    assert_eq!(sub_at("/b/x", &t), "b-user");
    assert_eq!(
        (a.introspection_count(), b.introspection_count()),
        (1, 1),
        "second round from the cache"
    );

    let u = b.issue_token(json!({"sub": "b-only"}));
    assert_unauthorized(gw.get_bearer("/a/x", &u), CHALLENGE);
    assert_eq!(
        sub_at("/b/x", &u),
        "b-only",
        "A's negative entry answered for B"
    );
    assert_eq!((a.introspection_count(), b.introspection_count()), (2, 2));
    assert_eq!(
        b.introspection_requests()[1].token.as_deref(),
        Some(u.as_str())
    );
}

// ---------------------------------------------------------------------------
// 7-8. Single flight
// ---------------------------------------------------------------------------

/// The cache gateway for single flight: `/api` with the zone and
/// `phantom_token_cache_lock_timeout 5s`, and the admin API at `/admin`.
fn single_flight_gateway() -> Gateway {
    gateway_parts(Parts {
        http: "phantom_token_cache_zone tokens:1m;",
        server: Cache::On.admin(),
        api: "phantom_token_cache tokens; phantom_token_cache_lock_timeout 5s;",
        ..Parts::default()
    })
}

/// `n` concurrent `GET /api/flight` with `token`, released together;
/// returns the wall time of the batch and every (status, body).
fn concurrent_gets(gw: &Gateway, n: usize, token: &str) -> (Duration, Vec<(u16, String)>) {
    let barrier = Barrier::new(n + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || {
                    let http = client();
                    barrier.wait();
                    let resp = http
                        .get(gw.nginx.url("/api/flight"))
                        .bearer_auth(token)
                        .send()
                        .unwrap();
                    (resp.status().as_u16(), resp.text().unwrap())
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let results = handles.into_iter().map(join).collect();
        (started.elapsed(), results)
    })
}

/// Config: `single_flight_gateway`; the AS answers after 300 ms with
/// `Cache-Control: no-store` (not cacheable). 20 concurrent requests with ONE
/// token: all 200 with the token's JWT upstream, and the batch takes under
/// 2.5 s: requests waiting for another's uncacheable answer must not queue
/// behind each other (20 × 0.3 s = 6 s).
#[test]
fn single_flight_with_uncacheable_answers_never_queues() {
    single_flight("no-store");
}

/// As [`single_flight_with_uncacheable_answers_never_queues`] with
/// `Cache-Control: max-age=60`: all 200, exactly ONE introspection, same
/// time bound.
#[test]
fn single_flight_with_cacheable_answers_introspects_once() {
    single_flight("max-age=60");
}

fn single_flight(cache_control: &str) {
    let gw = single_flight_gateway();
    gw.auth.set_cache_control(Some(cache_control.into()));
    gw.auth.set_fault(Fault::Delay(Duration::from_millis(300)));
    let token = token_for(&gw, "flight");
    let (wall, results) = concurrent_gets(&gw, 20, &token);
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        let echoed: EchoResponse = serde_json::from_str(body).unwrap();
        assert_eq!(forwarded_sub(&gw.auth, &echoed), "flight");
    }
    assert!(
        wall < Duration::from_millis(2500),
        "20 requests took {wall:?} ({} introspections)",
        gw.auth.introspection_count()
    );
    if cache_control.starts_with("max-age") {
        assert_eq!(gw.auth.introspection_count(), 1);
    }
    assert_eq!(gw.echo.request_count(), 20);
}

/// Config: `single_flight_gateway`; the AS answers `max-age=60` after
/// 600 ms. Request 1 for token T starts; as soon as the AS has received its
/// introspection, `POST /admin {"action":"purge","token":T}` → 200
/// `{"purged":N}`. Request 1 then ends 200 with T's JWT, but the purge,
/// issued after the introspection started, wins: request 2 for T is
/// introspected again (2 introspections) and gets 200.
#[test]
fn purge_during_an_introspection_wins_over_its_answer() {
    let gw = single_flight_gateway();
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw.auth.set_fault(Fault::Delay(Duration::from_millis(600)));
    let token = token_for(&gw, "purged");
    std::thread::scope(|s| {
        let first = s.spawn(|| gw.get_bearer("/api/p", &token));
        wait_for(
            "the introspection at the AS",
            Duration::from_secs(5),
            || gw.auth.introspection_count() == 1,
        );
        let purge = client()
            .post(gw.nginx.url("/admin"))
            .body(json!({"action": "purge", "token": token}).to_string())
            .send()
            .unwrap();
        assert_eq!(purge.status().as_u16(), 200);
        let answer: serde_json::Value = purge.json().unwrap();
        assert!(answer["purged"].is_u64(), "{answer}");
        assert!(
            !first.is_finished(),
            "the purge came too late to test anything"
        );
        let resp = join(first);
        assert_eq!(forwarded_sub(&gw.auth, &assert_forwarded(resp)), "purged");
    });
    gw.auth.clear_fault();
    let resp = gw.get_bearer("/api/p", &token);
    assert_eq!(forwarded_sub(&gw.auth, &assert_forwarded(resp)), "purged");
    assert_eq!(
        gw.auth.introspection_count(),
        2,
        "the purged token was served from the cache"
    );
}

// ---------------------------------------------------------------------------
// The leak check itself (t/common: every Gateway scans its logs on drop)
// ---------------------------------------------------------------------------

/// The scanner on a synthetic log: NGINX's own debug dumps of the client's
/// headers and of the JWT sent upstream are allowed; an opaque token sent
/// upstream, any module line, any non-debug line and any access-log line
/// with a secret are leaks (reported with file and line).
#[test]
fn leak_check_finds_secrets_outside_nginx_header_dumps() {
    let opaque = "opq_SyntheticTokenForTheLeakCheck000".to_string();
    let jwt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".to_string();
    let dir = std::env::temp_dir().join(format!("faults-leak-check-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let t = "2026/01/01 00:00:00";
    let error_log = [
        format!("{t} [debug] 1#1: *2 http header: \"Authorization: Bearer {opaque}\""),
        format!("{t} [debug] 1#1: *2 http proxy header:\n\"GET /api HTTP/1.0\nAuthorization: Bearer {jwt}\n\n\""),
        format!("{t} [debug] 1#1: *2 http proxy header: \"authorization: Bearer {jwt}\""),
        format!("{t} [debug] 1#1: *2 http proxy header: \"authorization: Bearer {opaque}\""),
        format!("{t} [debug] 1#1: *2 phantom token: introspecting {opaque}"),
        format!("{t} [error] 1#1: *2 Introspection subrequest returned a body that is not a compact JWT: {jwt}."),
    ]
    .join("\n");
    std::fs::write(dir.join("error.log"), error_log).unwrap();
    std::fs::write(
        dir.join("logs/access.log"),
        format!("GET /api 200 \"Bearer {jwt}\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join("nginx.conf"), &opaque).unwrap(); // not a log
    let leaks = token_leaks(&dir, &[opaque.clone(), jwt.clone()]);
    let _ = std::fs::remove_dir_all(&dir);
    let found: Vec<(String, usize, &str)> = leaks
        .iter()
        .map(|l| {
            (
                l.file.file_name().unwrap().to_string_lossy().into_owned(),
                l.line,
                if l.secret == opaque { "opaque" } else { "jwt" },
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("error.log".to_string(), 8, "opaque"),
            ("error.log".to_string(), 9, "opaque"),
            ("error.log".to_string(), 10, "jwt"),
            ("access.log".to_string(), 1, "jwt"),
        ]
    );
}

/// The same against a real NGINX: an access log format with
/// `$http_authorization` writes the client's token, which the check finds
/// in that file (and only there: NGINX's debug dump of the header is
/// allowed). The token is not issued by the AS (unknown: 401), so the
/// gateway's own check on drop stays quiet.
#[test]
fn leak_check_finds_a_token_written_by_an_access_log_format() {
    let gw = gateway_parts(Parts {
        http: "log_format leaky '$request $http_authorization';",
        server: "access_log leaky.log leaky;",
        ..Parts::default()
    });
    let token = "opq_NotIssuedByTheAsButLoggedAnyway0".to_string();
    assert_unauthorized(gw.get_bearer("/api/x", &token), CHALLENGE);
    assert!(gw.nginx.wait_for_log(&token, Duration::from_secs(5)));
    wait_for("the access log line", Duration::from_secs(5), || {
        !token_leaks(gw.nginx.prefix(), std::slice::from_ref(&token)).is_empty()
    });
    let leaks = token_leaks(gw.nginx.prefix(), std::slice::from_ref(&token));
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert!(leaks[0].file.ends_with("leaky.log"), "{leaks:?}");
    assert_eq!(
        leaks[0].entry,
        format!("GET /api/x HTTP/1.1 Bearer {token}\n")
    );
    assert!(gw.token_leaks().is_empty());
}

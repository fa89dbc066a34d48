//! Hostile clients against the standard gateway, each with and without the
//! built-in token cache: duplicate and huge headers, every byte value in a
//! token, other authentication schemes, clients leaving while their token
//! is being introspected (HTTP/1 close and reset, HTTP/2 `RST_STREAM` and
//! connection close). Whatever the client does, no worker crashes, the
//! module answers no 5xx of its own, and nothing is left behind that delays
//! the next request for the same token (a stale single-flight marker would
//! make it wait `phantom_token_cache_lock_timeout`, 5 s).

mod common;
use common::*;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const CHALLENGE: &str = r#"Bearer realm="api""#;
/// A request that would wait for a stale single-flight marker takes the
/// lock timeout (5 s); a normal one takes the AS delay (0.5 s).
const NO_STALE_WAIT: Duration = Duration::from_secs(2);
/// The delay the authorization server adds in the abort tests.
const AS_DELAY: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------
// Fixture: every test runs without and with the cache
// ---------------------------------------------------------------------------

with_and_without_cache!(
    duplicate_authorization_is_400_from_nginx_without_introspection,
    a_64k_header_reaches_the_upstream_with_large_buffers,
    a_64k_header_without_large_buffers_is_refused_by_nginx,
    every_byte_value_in_the_token_is_400_or_401_and_reaches_the_as_exactly,
    other_schemes_are_401_without_introspection,
    client_closing_during_introspection_leaves_nothing_behind,
    client_resetting_during_introspection_leaves_nothing_behind,
    waiting_client_leaving_does_not_disturb_the_leader,
    http2_stream_reset_during_introspection_keeps_the_connection_working,
    http2_reset_of_a_single_flight_leader_or_follower,
    http2_connection_closed_during_introspection,
);

/// The standard gateway plus `parts`; with the cache, `/api` uses the zone
/// `tokens` and the AS answers `Cache-Control: max-age=60`.
fn hostile_gateway(cache: Cache, parts: Parts) -> Gateway {
    let (http, api) = match cache {
        Cache::Off => (parts.http.to_string(), parts.api.to_string()),
        Cache::On => (
            format!(
                "phantom_token_cache_zone tokens:1m;
                log_format hostile '$request $status $phantom_token_cache_status';
                access_log cache.log hostile;
                {}",
                parts.http
            ),
            format!("phantom_token_cache tokens;\n{}", parts.api),
        ),
    };
    let server = match cache {
        Cache::Off => parts.server.to_string(),
        Cache::On => format!(
            "location = /cache-admin {{ phantom_token_cache_admin tokens; }}\n{}",
            parts.server
        ),
    };
    let gw = gateway_parts(Parts {
        http: &http,
        api: &api,
        server: &server,
        ..parts
    });
    if cache == Cache::On {
        gw.auth.set_cache_control(Some("max-age=60".into()));
    }
    gw
}

/// Polls `cond` (bounded by `timeout`); false if it never held.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Waits (bounded) until the AS has received `n` introspection requests.
fn wait_introspections(gw: &Gateway, n: usize) {
    assert!(
        wait_for(Duration::from_secs(5), || gw.auth.introspection_count()
            >= n),
        "the AS got {} introspection requests, not {n}",
        gw.auth.introspection_count()
    );
}

/// The `waits` counter of the cache (requests that found another one's
/// introspection of their token running); 0 without the cache.
fn cache_waits(gw: &Gateway, cache: Cache) -> u64 {
    if cache == Cache::Off {
        return 0;
    }
    let stats: serde_json::Value = client()
        .get(gw.nginx.url("/cache-admin"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    stats["waits"].as_u64().unwrap()
}

/// Waits (bounded) until the module has handled a second request for a
/// token whose introspection is running: with the cache it waits for that
/// flight (`waits` grows), without it introspects too.
fn wait_second_request(gw: &Gateway, cache: Cache, introspections: usize, waits: u64) {
    match cache {
        Cache::Off => wait_introspections(gw, introspections + 1),
        Cache::On => assert!(
            wait_for(Duration::from_secs(5), || cache_waits(gw, cache) > waits),
            "the second request never waited for the running flight"
        ),
    }
}

/// `GET /api/<sub>` with the token, timed: must be forwarded with the JWT
/// of `sub` in less than [`NO_STALE_WAIT`].
fn assert_prompt_jwt(gw: &Gateway, token: &str, sub: &str) {
    let started = Instant::now();
    let resp = gw.get_bearer(&format!("/api/{sub}"), token);
    let elapsed = started.elapsed();
    let echoed = assert_forwarded(resp);
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], sub);
    assert!(
        elapsed < NO_STALE_WAIT,
        "{sub}: answered after {elapsed:?} (stale pending marker?)"
    );
}

/// With the cache, no introspection happened since there were `n`: the
/// token answered before is served from the zone.
fn assert_cached_since(gw: &Gateway, cache: Cache, n: usize, what: &str) {
    if cache == Cache::On {
        assert_eq!(
            gw.auth.introspection_count(),
            n,
            "{what}: introspected again, the answer before was not cached; cache log:\n{}",
            std::fs::read_to_string(gw.nginx.prefix().join("cache.log")).unwrap_or_default()
        );
    }
}

// ---------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------

fn duplicate_authorization_is_400_from_nginx_without_introspection(cache: Cache) {
    let gw = hostile_gateway(cache, Parts::default());
    let workers = workers_of(&gw);
    // Not issued by the AS: nginx logs the duplicate lines at `info` level.
    let (a, b) = ("dup-token-a", "dup-token-b");
    let cases = [
        format!("Authorization: Bearer {a}\r\nAuthorization: Bearer {b}\r\n"),
        format!("Authorization: Bearer {a}\r\nAuthorization: Bearer {a}\r\n"),
        format!("authorization: Bearer {a}\r\nAUTHORIZATION: Bearer {b}\r\n"),
        format!("Authorization: Basic dXNlcjpwYXNz\r\nAuthorization: Bearer {a}\r\n"),
        format!("Authorization: Bearer {a}\r\nX-Other: 1\r\nAuthorization: Basic eDp5\r\n"),
        format!("Authorization:\r\nAuthorization: Bearer {a}\r\n"),
    ];
    for (i, lines) in cases.iter().enumerate() {
        let (status, _, _) = raw_get(&gw, lines.as_bytes());
        assert_eq!(status, 400, "case {i}: {lines:?}");
    }
    assert_eq!(gw.auth.introspection_count(), 0);
    assert_eq!(gw.echo.request_count(), 0);
    let log = gw.expect_log("client sent duplicate header line");
    assert_eq!(
        log.matches("client sent duplicate header line").count(),
        cases.len(),
        "one refusal by nginx per request"
    );
    // A single Authorization header works.
    assert_prompt_jwt(&gw, &gw.token(), "alice");
    assert_no_crash(&gw, &workers);
}

/// 64 KiB of printable header-value characters.
fn big_value(seed: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=";
    let mut v = String::from(seed);
    let mut i = 0usize;
    while v.len() < 64 * 1024 {
        v.push(alphabet[(i * 7 + i / 13) % alphabet.len()] as char);
        i += 1;
    }
    v
}

fn a_64k_header_reaches_the_upstream_with_large_buffers(cache: Cache) {
    let gw = hostile_gateway(
        cache,
        Parts {
            server: "large_client_header_buffers 4 128k;",
            ..Parts::default()
        },
    );
    let workers = workers_of(&gw);
    // A 64 KiB header next to a normal token.
    let big = big_value("big-");
    let token = gw.auth.issue_token(json!({"sub": "big-header"}));
    let resp = client()
        .get(gw.nginx.url("/api/big"))
        .bearer_auth(&token)
        .header("X-Big", &big)
        .send()
        .unwrap();
    let echoed = assert_forwarded(resp);
    assert_eq!(echoed.headers_named("x-big"), [big.as_str()]);
    assert_eq!(
        gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"],
        "big-header"
    );
    // A 64 KiB token: introspected exactly, forwarded as a JWT.
    let big_token = big_value("tok-");
    gw.auth
        .issue_token_exact(&big_token, json!({"sub": "big-token"}));
    for _ in 0..2 {
        let echoed = assert_forwarded(gw.get_bearer("/api/bigtoken", &big_token));
        assert_eq!(
            gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"],
            "big-token"
        );
        assert!(
            !echoed.headers.iter().any(|(_, v)| v.contains(&big_token)),
            "the opaque token reached the upstream"
        );
    }
    let intro = gw.auth.introspection_requests();
    let expected = if cache == Cache::On { 2 } else { 3 };
    assert_eq!(intro.len(), expected);
    assert_eq!(intro[1].token.as_deref(), Some(big_token.as_str()));
    assert_no_crash(&gw, &workers);
}

fn a_64k_header_without_large_buffers_is_refused_by_nginx(cache: Cache) {
    let gw = hostile_gateway(cache, Parts::default());
    let workers = workers_of(&gw);
    let token = gw.token();
    let big = big_value("big-");
    let cases = [
        format!("Authorization: Bearer {token}\r\nX-Big: {big}\r\n"),
        format!("Authorization: Bearer {big}\r\n"),
        format!("X-Big: {big}\r\nAuthorization: Bearer {token}\r\n"),
    ];
    for (i, lines) in cases.iter().enumerate() {
        let (status, _, _) = raw_get(&gw, lines.as_bytes());
        assert!(
            status == 400 || status == 494,
            "case {i}: {status} (expected nginx's 494/400)"
        );
    }
    // Refused while reading the header, before any phase handler runs.
    let log = gw.expect_log("client sent too long header line");
    assert_eq!(
        log.matches("client sent too long header line").count(),
        cases.len()
    );
    assert_eq!(gw.auth.introspection_count(), 0);
    assert_eq!(gw.echo.request_count(), 0);
    assert_prompt_jwt(&gw, &token, "alice");
    assert_no_crash(&gw, &workers);
}

/// `Authorization: Bearer tok<b>end` for every byte `b` but NUL: NGINX
/// refuses some itself (400, before the module runs); all others are
/// introspected with exactly these bytes, form-urlencoded, and are 401.
fn every_byte_value_in_the_token_is_400_or_401_and_reaches_the_as_exactly(cache: Cache) {
    let gw = hostile_gateway(cache, Parts::default());
    let workers = workers_of(&gw);
    let mut refused_by_nginx = Vec::new();
    for b in 0x01u8..=0xFF {
        let token = [b"tok".as_slice(), &[b], b"end"].concat();
        let mut line = b"Authorization: Bearer ".to_vec();
        line.extend_from_slice(&token);
        line.extend_from_slice(b"\r\n");
        let before = gw.auth.introspection_count();
        let (status, headers, body) = raw_get(&gw, &line);
        let intro = gw.auth.introspection_requests();
        let new = &intro[before..];
        match status {
            400 => {
                assert!(new.is_empty(), "byte {b:#04x}: 400 after introspection");
                refused_by_nginx.push(b);
            }
            401 => {
                assert_eq!(body, UNAUTHORIZED, "byte {b:#04x}");
                assert_eq!(header(&headers, "www-authenticate"), Some(CHALLENGE));
                assert_eq!(new.len(), 1, "byte {b:#04x}: introspections");
                let form = new[0]
                    .body
                    .strip_prefix(b"token=")
                    .unwrap_or_else(|| panic!("byte {b:#04x}: body {:?}", new[0].body_str()));
                assert!(
                    form.iter().all(|c| c.is_ascii_graphic()),
                    "byte {b:#04x}: body not form-urlencoded: {:?}",
                    new[0].body_str()
                );
                // nginx ends a header line at a bare LF: the token is "tok".
                let expected: &[u8] = if b == b'\n' { b"tok" } else { &token };
                assert_eq!(
                    form_decode(form),
                    expected,
                    "byte {b:#04x}: the AS got {:?}",
                    new[0].body_str()
                );
            }
            other => panic!("byte {b:#04x}: status {other}: {body}"),
        }
    }
    eprintln!("bytes refused by nginx itself: {refused_by_nginx:02x?}");
    // NGINX itself refuses some control bytes (CR); it must not refuse
    // printable or high bytes.
    assert!(
        refused_by_nginx.iter().all(|&b| b < 0x20 || b == 0x7F),
        "refused by nginx: {refused_by_nginx:02x?}"
    );
    assert_eq!(gw.echo.request_count(), 0);
    // With the cache, the inactive answers were remembered: asking again
    // costs no introspection.
    if cache == Cache::On {
        let before = gw.auth.introspection_count();
        let (status, _, _) = raw_get(&gw, b"Authorization: Bearer tok\xffend\r\n");
        assert_eq!(status, 401);
        assert_eq!(gw.auth.introspection_count(), before);
    }
    assert_prompt_jwt(&gw, &gw.token(), "alice");
    assert_no_crash(&gw, &workers);
}

fn other_schemes_are_401_without_introspection(cache: Cache) {
    let gw = hostile_gateway(cache, Parts::default());
    let workers = workers_of(&gw);
    let token = gw.token();
    let values = [
        "Basic dXNlcjpwYXNz".to_string(),
        format!("Basic {token}"),
        r#"Digest username="u", realm="api", nonce="dcd98b", uri="/api/x", response="6629fae4""#
            .to_string(),
        format!("DPoP {token}"),
        format!("dpop {token}"),
        format!("Token {token}"),
        format!("MAC id=\"{token}\", nonce=\"1\", mac=\"x\""),
        "Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXeg".to_string(),
        format!("Bearer-{token}"),
        format!("Bearer,{token}"),
        format!("Bearers {token}"),
        format!("Bear {token}"),
        token.clone(),
    ];
    for v in &values {
        let resp = client()
            .get(gw.nginx.url("/api/x"))
            .header("Authorization", v)
            .header("DPoP", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig")
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{v}");
        assert_unauthorized(resp, CHALLENGE);
    }
    assert_eq!(gw.auth.introspection_count(), 0);
    assert_eq!(gw.echo.request_count(), 0);
    assert_prompt_jwt(&gw, &token, "alice");
    assert_no_crash(&gw, &workers);
}

// ---------------------------------------------------------------------------
// Clients leaving while their token is being introspected (HTTP/1)
// ---------------------------------------------------------------------------

/// Connects and sends `GET path` with the token (keep-alive).
fn open_request(gw: &Gateway, path: &str, token: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", gw.nginx.port())).unwrap();
    s.set_nodelay(true).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s
}

/// Reads one response with a `Content-Length` body from `s` (bounded: 10 s).
fn read_answer(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let (_, headers, _) = parse_raw_response(&String::from_utf8_lossy(&raw[..end + 4]));
        let len = header(&headers, "content-length").and_then(|l| l.parse::<usize>().ok());
        if len.is_some_and(|len| raw.len() >= end + 4 + len) {
            break;
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// Closes `s` with a TCP reset (`SO_LINGER` 0) instead of a FIN.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Linger {
        onoff: i32,
        linger: i32,
    }
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const Linger, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let l = Linger {
        onoff: 1,
        linger: 0,
    };
    // SAFETY: a valid socket and a properly sized `struct linger`.
    let rc = unsafe {
        setsockopt(
            s.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            &l,
            std::mem::size_of::<Linger>() as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    drop(s);
}

fn client_leaving_during_introspection(cache: Cache, rst: bool) {
    let gw = hostile_gateway(cache, Parts::default());
    let workers = workers_of(&gw);
    gw.auth.set_fault(Fault::Delay(AS_DELAY));
    let token = gw.auth.issue_token(json!({"sub": "abort"}));
    let s = open_request(&gw, "/api/gone", &token);
    wait_introspections(&gw, 1);
    if rst {
        reset(s);
    } else {
        drop(s);
    }
    // At once, while the abandoned introspection is still running.
    assert_prompt_jwt(&gw, &token, "abort");
    // The abandoned request is finalized.
    assert_finalized_with_499(&gw, "/api/gone");
    // Again, once everything is settled: with the cache, the token is then
    // served from the zone (after at most one more introspection, should
    // the abandoned flight not have stored its answer); and a fresh token.
    assert_prompt_jwt(&gw, &token, "abort");
    let n = gw.auth.introspection_count();
    assert_prompt_jwt(&gw, &token, "abort");
    assert_cached_since(&gw, cache, n, "abort");
    assert_prompt_jwt(&gw, &gw.auth.issue_token(json!({"sub": "fresh"})), "fresh");
    let echoed = gw.echo.requests();
    assert!(
        echoed.iter().all(|e| e.uri != "/api/gone"),
        "the abandoned request went upstream"
    );
    let n = gw.auth.introspection_count();
    match cache {
        // The abandoned flight's answer may serve the others.
        Cache::On => assert!((2..=4).contains(&n), "{n} introspections"),
        Cache::Off => assert_eq!(n, 5),
    }
    assert_no_crash(&gw, &workers);
}

fn client_closing_during_introspection_leaves_nothing_behind(cache: Cache) {
    client_leaving_during_introspection(cache, false);
}

fn client_resetting_during_introspection_leaves_nothing_behind(cache: Cache) {
    client_leaving_during_introspection(cache, true);
}

/// A second client for the same token leaves while it waits (with the cache:
/// parked on the first one's flight); the first one is answered normally.
fn waiting_client_leaving_does_not_disturb_the_leader(cache: Cache) {
    let gw = hostile_gateway(cache, Parts::default());
    let workers = workers_of(&gw);
    gw.auth.set_fault(Fault::Delay(AS_DELAY));
    let token = gw.auth.issue_token(json!({"sub": "leader"}));
    let mut leader = open_request(&gw, "/api/leader", &token);
    wait_introspections(&gw, 1);
    let waits = cache_waits(&gw, cache);
    let follower = open_request(&gw, "/api/follower", &token);
    wait_second_request(&gw, cache, 1, waits);
    reset(follower);
    let raw = read_answer(&mut leader);
    let (status, _, body) = parse_raw_response(&raw);
    assert_eq!(status, 200, "leader: {body}");
    let echoed: EchoResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(
        gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"],
        "leader"
    );
    let n = gw.auth.introspection_count();
    assert_prompt_jwt(&gw, &token, "leader");
    assert_cached_since(&gw, cache, n, "leader");
    assert!(
        gw.nginx
            .wait_for_access_log("GET /api/follower", Duration::from_secs(5)),
        "follower never finalized"
    );
    assert!(gw.echo.requests().iter().all(|e| e.uri != "/api/follower"));
    assert_no_crash(&gw, &workers);
}

// ---------------------------------------------------------------------------
// HTTP/2: a minimal cleartext (prior knowledge) client that can reset streams
// ---------------------------------------------------------------------------

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK integer with an `n`-bit prefix and the given high bits.
fn hpack_int(out: &mut Vec<u8>, high: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// HPACK "literal header field without indexing" with the name taken from
/// static table entry `index`, value as a raw string.
fn hpack_literal(out: &mut Vec<u8>, index: usize, value: &[u8]) {
    hpack_int(out, 0x00, 4, index);
    hpack_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

/// `:status` of a response header block as NGINX encodes it (an indexed
/// static entry, or the `:status` name with a raw 3-digit value).
fn hpack_status(block: &[u8]) -> Option<u16> {
    match *block.first()? {
        0x88 => Some(200),
        0x89 => Some(204),
        0x8a => Some(206),
        0x8b => Some(304),
        0x8c => Some(400),
        0x8d => Some(404),
        0x8e => Some(500),
        0x48 if block.get(1) == Some(&3) => {
            std::str::from_utf8(block.get(2..5)?).ok()?.parse().ok()
        }
        _ => None,
    }
}

#[derive(Clone, Debug, Default)]
struct H2Stream {
    status: Option<u16>,
    body: Vec<u8>,
    done: bool,
    reset: Option<u32>,
}

struct H2 {
    s: TcpStream,
    port: u16,
    buf: Vec<u8>,
    streams: HashMap<u32, H2Stream>,
    goaway: Option<Vec<u8>>,
}

impl H2 {
    fn connect(port: u16) -> H2 {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        let mut h = H2 {
            s,
            port,
            buf: Vec::new(),
            streams: HashMap::new(),
            goaway: None,
        };
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(4, 0, 0, &[]));
        h.send(&hello);
        h
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("h2 write");
    }

    /// Opens stream `id` with `GET path` and `Authorization: Bearer token`.
    fn get(&mut self, id: u32, path: &str, token: &str) {
        let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
        hpack_literal(&mut block, 4, path.as_bytes()); // :path
        hpack_literal(&mut block, 1, format!("127.0.0.1:{}", self.port).as_bytes());
        hpack_literal(&mut block, 23, format!("Bearer {token}").as_bytes());
        // END_STREAM | END_HEADERS
        self.send(&frame(1, 0x5, id, &block));
        self.streams.insert(id, H2Stream::default());
    }

    /// Sends `RST_STREAM(CANCEL)` for stream `id`.
    fn cancel(&mut self, id: u32) {
        self.send(&frame(3, 0, id, &8u32.to_be_bytes()));
    }

    /// Reads until stream `id` is complete (or reset); panics after `timeout`.
    fn wait(&mut self, id: u32, timeout: Duration) -> H2Stream {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self
                .streams
                .get(&id)
                .filter(|s| s.done || s.reset.is_some())
            {
                return st.clone();
            }
            assert!(self.goaway.is_none(), "GOAWAY {:?}", self.goaway);
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "stream {id}: no answer within {timeout:?}");
            self.read_some(left);
        }
    }

    /// Stream `id`'s answer: a 200 from the echo API; returns the JWT `sub`.
    fn wait_sub(&mut self, gw: &Gateway, id: u32, timeout: Duration) -> String {
        let st = self.wait(id, timeout);
        assert_eq!(st.reset, None, "stream {id} reset by nginx");
        let body = String::from_utf8_lossy(&st.body);
        assert_eq!(st.status, Some(200), "stream {id}: {body}");
        let echoed: EchoResponse = serde_json::from_str(&body).unwrap();
        gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn read_some(&mut self, left: Duration) {
        self.s.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 16384];
        match self.s.read(&mut chunk) {
            Ok(0) => panic!("nginx closed the HTTP/2 connection"),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return,
            Err(e) => panic!("h2 read: {e}"),
        }
        while self.buf.len() >= 9 {
            let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
            if self.buf.len() < 9 + len {
                break;
            }
            let f: Vec<u8> = self.buf.drain(..9 + len).collect();
            let id = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7FFF_FFFF;
            self.handle(f[3], f[4], id, &f[9..]);
        }
    }

    fn handle(&mut self, kind: u8, flags: u8, id: u32, payload: &[u8]) {
        const END_STREAM: u8 = 0x1;
        match kind {
            0 => {
                // DATA (NGINX does not pad)
                let st = self.streams.entry(id).or_default();
                st.body.extend_from_slice(payload);
                st.done |= flags & END_STREAM != 0;
                if !payload.is_empty() {
                    let inc = (payload.len() as u32).to_be_bytes();
                    self.send(&frame(8, 0, 0, &inc));
                }
            }
            1 => {
                // HEADERS: skip padding length and priority fields
                let mut block = payload;
                if flags & 0x8 != 0 {
                    block = &block[1..];
                }
                if flags & 0x20 != 0 {
                    block = &block[5..];
                }
                let st = self.streams.entry(id).or_default();
                if st.status.is_none() {
                    st.status = hpack_status(block);
                }
                st.done |= flags & END_STREAM != 0;
            }
            3 => {
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                self.streams.entry(id).or_default().reset = Some(code);
            }
            4 if flags & 0x1 == 0 => self.send(&frame(4, 0x1, 0, &[])),
            6 if flags & 0x1 == 0 => {
                let pong = frame(6, 0x1, 0, payload);
                self.send(&pong);
            }
            7 => self.goaway = Some(payload.to_vec()),
            _ => {}
        }
    }
}

fn h2_gateway(cache: Cache) -> Gateway {
    let gw = hostile_gateway(
        cache,
        Parts {
            server: "http2 on;",
            ..Parts::default()
        },
    );
    gw.auth.set_fault(Fault::Delay(AS_DELAY));
    gw
}

fn http2_stream_reset_during_introspection_keeps_the_connection_working(cache: Cache) {
    let gw = h2_gateway(cache);
    let workers = workers_of(&gw);
    let a = gw.auth.issue_token(json!({"sub": "a"}));
    let b = gw.auth.issue_token(json!({"sub": "b"}));
    let mut h2 = H2::connect(gw.nginx.port());
    h2.get(1, "/api/reset-a", &a);
    h2.get(3, "/api/b", &b);
    wait_introspections(&gw, 2);
    h2.cancel(1);
    // The other stream of the connection is answered.
    assert_eq!(h2.wait_sub(&gw, 3, Duration::from_secs(5)), "b");
    // The reset token, again on the same connection: no stale wait.
    let started = Instant::now();
    h2.get(5, "/api/a", &a);
    assert_eq!(h2.wait_sub(&gw, 5, NO_STALE_WAIT), "a");
    assert!(started.elapsed() < NO_STALE_WAIT);
    // A fresh token, and the reset one over HTTP/1.
    let c = gw.auth.issue_token(json!({"sub": "c"}));
    h2.get(7, "/api/c", &c);
    assert_eq!(h2.wait_sub(&gw, 7, Duration::from_secs(5)), "c");
    assert_prompt_jwt(&gw, &a, "a");
    assert!(
        gw.echo.requests().iter().all(|e| e.uri != "/api/reset-a"),
        "the reset stream went upstream"
    );
    assert_no_crash(&gw, &workers);
}

/// Two streams for one token (with the cache: a leader and a follower
/// parked on its flight); one of them is reset mid-introspection, the other
/// is answered promptly.
fn http2_reset_of_a_single_flight_leader_or_follower(cache: Cache) {
    let gw = h2_gateway(cache);
    let workers = workers_of(&gw);
    let mut h2 = H2::connect(gw.nginx.port());
    let mut id = 1;
    for reset_leader in [true, false] {
        let sub = if reset_leader { "lead" } else { "follow" };
        let token = gw.auth.issue_token(json!({ "sub": sub }));
        let before = gw.auth.introspection_count();
        let (first, second) = (id, id + 2);
        id += 4;
        h2.get(first, &format!("/api/first-{sub}"), &token);
        wait_introspections(&gw, before + 1);
        let waits = cache_waits(&gw, cache);
        h2.get(second, &format!("/api/second-{sub}"), &token);
        wait_second_request(&gw, cache, before + 1, waits);
        let started = Instant::now();
        let (cancelled, kept) = if reset_leader {
            (first, second)
        } else {
            (second, first)
        };
        h2.cancel(cancelled);
        assert_eq!(h2.wait_sub(&gw, kept, NO_STALE_WAIT), sub);
        assert!(
            started.elapsed() < NO_STALE_WAIT,
            "{sub}: {:?}",
            started.elapsed()
        );
        // And once more, on a new stream of the same connection (the kept
        // stream's answer may not have been stored when it took over from
        // a reset leader: then this one is introspected and stored), and
        // then over HTTP/1: with the cache, from the zone.
        h2.get(id, &format!("/api/again-{sub}"), &token);
        assert_eq!(h2.wait_sub(&gw, id, NO_STALE_WAIT), sub);
        id += 2;
        let n = gw.auth.introspection_count();
        assert_prompt_jwt(&gw, &token, sub);
        assert_cached_since(&gw, cache, n, sub);
    }
    assert_no_crash(&gw, &workers);
}

fn http2_connection_closed_during_introspection(cache: Cache) {
    let gw = h2_gateway(cache);
    let workers = workers_of(&gw);
    let token = gw.auth.issue_token(json!({"sub": "closed"}));
    let other = gw.auth.issue_token(json!({"sub": "other"}));
    let mut h2 = H2::connect(gw.nginx.port());
    h2.get(1, "/api/gone", &token);
    h2.get(3, "/api/gone", &token);
    h2.get(5, "/api/gone", &other);
    wait_introspections(&gw, 2);
    drop(h2);
    // At once, while the abandoned introspections may still be running.
    assert_prompt_jwt(&gw, &token, "closed");
    assert_prompt_jwt(&gw, &other, "other");
    // All three streams are finalized (499), none went upstream.
    assert!(
        wait_for(Duration::from_secs(5), || gw
            .nginx
            .access_log()
            .matches("\"GET /api/gone HTTP/2.0\" 499")
            .count()
            == 3),
        "{}",
        gw.nginx.access_log()
    );
    assert!(gw.echo.requests().iter().all(|e| e.uri != "/api/gone"));
    // Settled: on a new connection the token works; with the cache it is
    // then served from the zone.
    let mut h2 = H2::connect(gw.nginx.port());
    h2.get(1, "/api/again", &token);
    assert_eq!(h2.wait_sub(&gw, 1, NO_STALE_WAIT), "closed");
    let n = gw.auth.introspection_count();
    h2.get(3, "/api/again", &token);
    assert_eq!(h2.wait_sub(&gw, 3, NO_STALE_WAIT), "closed");
    assert_cached_since(&gw, cache, n, "closed");
    assert_no_crash(&gw, &workers);
}

//! Shared fixture for the integration tests: a real nginx with the module,
//! the test authorization server and the echo API.
#![allow(dead_code)]

use std::time::Duration;

pub use reqwest::blocking::Response;
pub use serde_json::json;
pub use test_support::*;

/// 401 body of the C module.
pub const UNAUTHORIZED: &str = r#"{"code":"unauthorized_request","message":"Access denied due to missing, invalid or expired credentials"}"#;
/// 5xx body of the C module.
pub const SERVER_ERROR: &str =
    r#"{"code":"server_error","message":"Problem encountered processing the request"}"#;

/// The three servers of a test.
pub struct Gateway {
    pub auth: AuthServer,
    pub echo: EchoServer,
    pub nginx: Nginx,
}

/// The 2.0.0-style introspection location `location curity { ... }`.
pub fn curity_location(auth: &AuthServer, extra: &str) -> String {
    introspection_location(auth, "curity", &auth.introspection_url(), extra)
}

/// `location NAME { internal; <the 2.0.0 introspection headers>; EXTRA; proxy_pass URL; }`.
pub fn introspection_location(auth: &AuthServer, name: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
        location {name} {{
            internal;
            proxy_pass_request_headers off;
            proxy_set_header Accept "application/jwt";
            proxy_set_header Content-Type "application/x-www-form-urlencoded";
            proxy_set_header Authorization "{basic}";
            {extra}
            proxy_pass {url};
        }}"#,
        basic = auth.basic_auth_header()
    )
}

/// Whether a test runs without or with the built-in cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// No cache directives.
    Off,
    /// `phantom_token_cache_zone` and `phantom_token_cache`.
    On,
}

/// Generates `<name>::no_cache` and `<name>::cache` tests calling
/// `name(Cache::Off)` and `name(Cache::On)`.
#[allow(unused_macros)] // not every test file runs both variants
macro_rules! with_and_without_cache {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn no_cache() {
                super::$name(super::Cache::Off)
            }
            #[test]
            fn cache() {
                super::$name(super::Cache::On)
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use with_and_without_cache;

/// The access log shows `GET <request>` ended with 499 (client gone);
/// bounded wait.
pub fn assert_finalized_with_499(gw: &Gateway, request: &str) {
    assert!(
        gw.nginx
            .wait_for_access_log(&format!("GET {request}"), Duration::from_secs(5)),
        "{request}: never finished:\n{}",
        gw.nginx.error_log()
    );
    assert!(
        gw.nginx
            .access_log()
            .contains(&format!(r#""GET {request} HTTP/1.1" 499 "#)),
        "{}",
        gw.nginx.access_log()
    );
}

/// `nginx -t` on a server with `location /api { <api> }` (and an
/// introspection location `curity`).
pub fn check_location(api: &str) -> ConfigTest {
    let api = api.to_string();
    Nginx::builder()
        .http(move |port| {
            format!(
                "server {{\n listen 127.0.0.1:{port};\n location /api {{\n{api}\n proxy_pass http://127.0.0.1:1;\n }}\n location curity {{ internal; proxy_pass http://127.0.0.1:1; }}\n}}"
            )
        })
        .test_config()
}

/// `nginx -t` on an `http` block body (and an empty server).
pub fn check_http(body: &str) -> ConfigTest {
    let body = body.to_string();
    Nginx::builder()
        .http(move |port| format!("{body}\nserver {{\n listen 127.0.0.1:{port};\n}}"))
        .test_config()
}

/// Asserts that `nginx -t` failed with `[emerg] <message> in <file>:<line>`,
/// the line being the first one holding `offending`.
pub fn assert_emerg_at(t: &ConfigTest, offending: &str, message: &str) {
    assert!(!t.ok, "nginx -t accepted:\n{}", t.conf_text);
    let expected = format!("[emerg] {message} in {}", t.location_of(offending));
    assert!(
        t.output.contains(&expected),
        "expected {expected:?} in:\n{}",
        t.output
    );
}

/// Extra configuration text for the standard gateway.
#[derive(Default, Clone, Copy)]
pub struct Parts<'a> {
    /// Lines at `http` level, before the server.
    pub http: &'a str,
    /// Lines inside the server.
    pub server: &'a str,
    /// Lines inside `location /api`.
    pub api: &'a str,
    /// Lines inside `location curity`.
    pub curity: &'a str,
}

/// The standard 2.0.0-style config: `location /api` protected and proxying to
/// the echo API, `location curity` introspecting at the test AS.
pub fn standard_conf(auth: &AuthServer, echo: &EchoServer, port: u16, parts: Parts) -> String {
    format!(
        r#"
    {http}
    server {{
        listen 127.0.0.1:{port};
        {server}
        location /api {{
            phantom_token on;
            phantom_token_introspection_endpoint curity;
            {api}
            proxy_pass http://127.0.0.1:{echo};
        }}
        {curity}
    }}"#,
        http = parts.http,
        server = parts.server,
        api = parts.api,
        echo = echo.port(),
        curity = curity_location(auth, parts.curity)
    )
}

/// A gateway with the standard config and `parts` added.
pub fn gateway_parts(parts: Parts) -> Gateway {
    gateway_custom(|auth, echo, port| standard_conf(auth, echo, port, parts))
}

/// A 2.0.0-style gateway: `location /api` protected, proxying to the echo
/// API, with `api_extra` added to `/api` and `server_extra` to the server.
pub fn gateway(api_extra: &str, server_extra: &str) -> Gateway {
    gateway_parts(Parts {
        api: api_extra,
        server: server_extra,
        ..Parts::default()
    })
}

/// A gateway whose whole `http` body is produced by `conf(auth, echo, port)`.
pub fn gateway_custom(conf: impl FnOnce(&AuthServer, &EchoServer, u16) -> String) -> Gateway {
    let auth = AuthServer::start();
    let echo = EchoServer::start();
    let text = {
        let port = Nginx::free_port();
        (port, conf(&auth, &echo, port))
    };
    let (port, body) = text;
    let nginx = Nginx::builder().port(port).http_body(&body).start();
    Gateway { auth, echo, nginx }
}

impl Gateway {
    /// An active opaque token for alice.
    pub fn token(&self) -> String {
        self.auth.issue_token(json!({}))
    }

    /// GET `path` with `Authorization: <value>` (none when `None`).
    pub fn get(&self, path: &str, authorization: Option<&str>) -> Response {
        let mut req = client().get(self.nginx.url(path));
        if let Some(v) = authorization {
            req = req.header("Authorization", v);
        }
        req.send().expect("request to nginx")
    }

    /// GET `path` with `Authorization: Bearer <token>`.
    pub fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.get(path, Some(&format!("Bearer {token}")))
    }

    /// Waits for `needle` in the error log (bounded), then returns the log.
    pub fn expect_log(&self, needle: &str) -> String {
        assert!(
            self.nginx.wait_for_log(needle, Duration::from_secs(5)),
            "{needle:?} not in error log:\n{}",
            self.nginx.error_log()
        );
        self.nginx.error_log()
    }
}

/// Asserts a JSON error answer: status, content type, exact body.
pub fn assert_error(resp: Response, status: u16, body: &str) -> reqwest::header::HeaderMap {
    assert_eq!(resp.status().as_u16(), status);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(resp.text().unwrap(), body);
    headers
}

/// Asserts a 401 with the given `WWW-Authenticate` and the 401 JSON body.
pub fn assert_unauthorized(resp: Response, challenge: &str) {
    let headers = assert_error(resp, 401, UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], challenge);
}

/// Asserts the request reached the echo API; returns what it received.
pub fn assert_forwarded(resp: Response) -> EchoResponse {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    assert_eq!(status, 200, "body: {text}");
    serde_json::from_str(&text).expect("echo JSON")
}

// ---------------------------------------------------------------------------
// No token leaks: every gateway checks its logs when it goes away.
// ---------------------------------------------------------------------------

/// `[debug]` messages of NGINX itself (not of the module) that print header
/// lines verbatim, so with `error_log ... debug` on a `--with-debug` build
/// NGINX writes tokens there by design:
/// * the client's request headers (`http header: "authorization: Bearer <opaque>"`,
///   over HTTP/2 `http2 header: "..."` and the HPACK `http2 table add: "..."`),
///   exempt for every secret (the client sent it);
/// * the headers NGINX sends upstream (`http proxy header: "..."` one by one,
///   and the whole request head as `http proxy header:` + a multi-line dump),
///   exempt for JWTs only: forwarding the JWT is the module's job, while an
///   opaque token in a header sent upstream (to the API or the AS) is a leak.
///
/// Nothing else is exempt: no module line at any level, no `[error]`, `[warn]`
/// or `[info]` line and no access-log line may contain a token or a JWT.
const NGINX_CLIENT_HEADER_DUMPS: &[&str] =
    &["http header: \"", "http2 header: \"", "http2 table add: \""];
const NGINX_UPSTREAM_HEADER_DUMPS: &[&str] = &["http proxy header:"];
/// NGINX's own debug dumps of variable values and cache keys: the C
/// module's documented `proxy_cache_key $request_body;` puts `token=…` there
/// (debug level only; see SECURITY.md).
const NGINX_VARIABLE_DUMPS: &[&str] = &["http script var: \"", "http cache key: \""];

/// One secret found in a log file.
#[derive(Debug)]
pub struct TokenLeak {
    /// The log file.
    pub file: std::path::PathBuf,
    /// 1-based line of the secret.
    pub line: usize,
    /// The secret (opaque token or JWT).
    pub secret: String,
    /// The log entry (possibly several lines) holding it.
    pub entry: String,
}

/// Whether a log line starts an NGINX error-log entry (`YYYY/MM/DD HH:MM:SS [`).
fn is_entry_start(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 21
        && b[..4].iter().all(u8::is_ascii_digit)
        && (b[4], b[7], b[10], b[13], b[16], b[19], b[20])
            == (b'/', b'/', b' ', b':', b':', b' ', b'[')
}

/// The whole log entry (an error-log entry can span several lines) around
/// byte `pos` of `text`.
fn entry_at(text: &str, pos: usize) -> &str {
    let line_start = |p: usize| text[..p].rfind('\n').map_or(0, |i| i + 1);
    let own_line = line_start(pos);
    let mut start = own_line;
    while start > 0 && !is_entry_start(&text[start..]) {
        start = line_start(start - 1);
    }
    if !is_entry_start(&text[start..]) {
        // Not an error log (e.g. an access log): the entry is the line.
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
        return &text[own_line..end];
    }
    let mut end = pos;
    let end = loop {
        match text[end..].find('\n') {
            None => break text.len(),
            Some(i) => {
                end += i + 1;
                if end >= text.len() || is_entry_start(&text[end..]) {
                    break end;
                }
            }
        }
    };
    &text[start..end]
}

/// The message of a `[debug]` error-log entry, after `pid#tid: ` and the
/// optional `*connection ` number.
fn debug_message(entry: &str) -> Option<&str> {
    if !is_entry_start(entry) {
        return None;
    }
    let rest = entry[20..].strip_prefix("[debug] ")?;
    let (_, msg) = rest.split_once(": ")?;
    Some(match msg.strip_prefix('*') {
        Some(m) => m.split_once(' ').map_or("", |(_, r)| r),
        None => msg,
    })
}

fn is_jwt_shaped(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3
}

/// Whether NGINX itself legitimately printed `secret` in `entry`.
fn exempt(entry: &str, secret: &str) -> bool {
    let Some(msg) = debug_message(entry) else {
        return false;
    };
    NGINX_CLIENT_HEADER_DUMPS.iter().any(|p| msg.starts_with(p))
        || NGINX_VARIABLE_DUMPS.iter().any(|p| msg.starts_with(p))
        || (is_jwt_shaped(secret)
            && NGINX_UPSTREAM_HEADER_DUMPS
                .iter()
                .any(|p| msg.starts_with(p)))
}

/// Length of the run of bytes of `text` from `from` that `keep` accepts.
fn run_len(text: &str, from: usize, keep: impl Fn(u8) -> bool) -> usize {
    text.as_bytes()[from..]
        .iter()
        .take_while(|&&b| keep(b))
        .count()
}

/// Every occurrence (byte offset, secret) of a secret in `text`. Standard
/// opaque tokens (`opq_` + alphanumerics) and JWTs are found through their
/// prefix (fast on large debug logs); other secrets by plain search.
fn secret_occurrences(text: &str, secrets: &[String]) -> Vec<(usize, String)> {
    use std::collections::HashSet;
    let is_opaque = |s: &str| {
        s.len() > 4 && s.starts_with("opq_") && s[4..].bytes().all(|b| b.is_ascii_alphanumeric())
    };
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let mut opaque = HashSet::new();
    let mut jwts = HashSet::new();
    let mut others = Vec::new();
    for s in secrets {
        if is_opaque(s) {
            opaque.insert(s.as_str());
        } else if is_jwt_shaped(s) && s.bytes().all(|b| b64(b) || b == b'.') {
            jwts.insert(s.as_str());
        } else if !s.is_empty() {
            others.push(s.as_str());
        }
    }
    let mut found = Vec::new();
    for (pos, _) in text.match_indices("opq_") {
        let len = 4 + run_len(text, pos + 4, |b| b.is_ascii_alphanumeric());
        if opaque.contains(&text[pos..pos + len]) {
            found.push((pos, text[pos..pos + len].to_string()));
        }
    }
    for (pos, _) in text.match_indices("eyJ") {
        let mut end = pos;
        for segment in 0..3 {
            if segment > 0 {
                if text.as_bytes().get(end) != Some(&b'.') {
                    break;
                }
                end += 1;
            }
            end += run_len(text, end, b64);
        }
        if jwts.contains(&text[pos..end]) {
            found.push((pos, text[pos..end].to_string()));
        }
    }
    for s in others {
        found.extend(text.match_indices(s).map(|(pos, _)| (pos, s.to_string())));
    }
    found.sort();
    found
}

/// The secrets (opaque tokens, JWTs) found in the `*.log` files of an NGINX
/// prefix (the prefix itself and its `logs/`), except where NGINX's own
/// debug header dumps print them (see [`NGINX_CLIENT_HEADER_DUMPS`]).
pub fn token_leaks(prefix: &std::path::Path, secrets: &[String]) -> Vec<TokenLeak> {
    let mut leaks = Vec::new();
    for dir in [prefix.to_path_buf(), prefix.join("logs")] {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        for file in files {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            for (pos, secret) in secret_occurrences(&text, secrets) {
                let entry = entry_at(&text, pos);
                if !exempt(entry, &secret) {
                    leaks.push(TokenLeak {
                        line: text[..pos].matches('\n').count() + 1,
                        file: file.clone(),
                        secret,
                        entry: entry.to_string(),
                    });
                }
            }
        }
    }
    leaks
}

impl Gateway {
    /// Token leaks in this gateway's logs, for every secret issued by any
    /// [`AuthServer`] of the process (tests may run several).
    pub fn token_leaks(&self) -> Vec<TokenLeak> {
        token_leaks(self.nginx.prefix(), &AuthServer::all_issued_secrets())
    }
}

impl Drop for Gateway {
    /// Fails the test if an opaque token or a JWT reached a log file.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // A crashed worker or a sanitizer report (NGINX redirects stderr into
        // its error log, so AddressSanitizer reports land there) fails the
        // test that caused it, whatever it asserted.
        let log = self.nginx.error_log();
        for marker in ["exited on signal", "AddressSanitizer", "runtime error:"] {
            if let Some(line) = log.lines().find(|l| l.contains(marker)) {
                panic!("{marker:?} in the error log: {line:.300}");
            }
        }
        let leaks = self.token_leaks();
        if let Some(first) = leaks.first() {
            let shown: Vec<String> = leaks
                .iter()
                .take(5)
                .map(|l| {
                    format!(
                        "{}:{}: {:.300}",
                        l.file.display(),
                        l.line,
                        l.entry.trim_end()
                    )
                })
                .collect();
            panic!(
                "{} token leak(s) in the logs, first secret {:.60}…:\n{}",
                leaks.len(),
                first.secret,
                shown.join("\n")
            );
        }
    }
}

/// The PIDs of the (two, the runner's default) workers once they all carry
/// their process title: right after start-up a freshly forked worker may
/// not be listed yet.
pub fn workers_of(gw: &Gateway) -> Vec<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let pids = gw.nginx.worker_pids();
        if pids.len() == 2 {
            return pids;
        }
        assert!(std::time::Instant::now() < deadline, "workers: {pids:?}");
        std::thread::yield_now();
    }
}

/// No worker crashed or was respawned, nothing alarming was logged.
pub fn assert_no_crash(gw: &Gateway, workers_before: &[u32]) {
    let log = gw.nginx.error_log();
    assert!(!log.contains("exited on signal"), "worker crashed:\n{log}");
    assert!(!log.contains("[alert]"), "alert logged:\n{log}");
    assert!(!log.contains("[emerg]"), "emerg logged:\n{log}");
    assert!(!log.contains("panicked"), "panic logged:\n{log}");
    assert_eq!(
        gw.nginx.worker_pids(),
        workers_before,
        "workers were respawned"
    );
}

/// `GET /api/x` over a fresh raw connection with these extra header lines
/// (each ending in CRLF); returns status, headers and body.
pub fn raw_get(gw: &Gateway, header_lines: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let mut req = b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    req.extend_from_slice(header_lines);
    req.extend_from_slice(b"\r\n");
    parse_raw_response(&raw_request(gw.nginx.port(), &req))
}

/// The value of header `name` (lower case) in a parsed raw response.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Decodes an `application/x-www-form-urlencoded` value into raw bytes.
pub fn form_decode(value: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    value.get(i + 1).copied().and_then(hex),
                    value.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

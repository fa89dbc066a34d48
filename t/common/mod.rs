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
    format!(
        r#"
        location curity {{
            internal;
            proxy_pass_request_headers off;
            proxy_set_header Accept "application/jwt";
            proxy_set_header Content-Type "application/x-www-form-urlencoded";
            proxy_set_header Authorization "{basic}";
            {extra}
            proxy_pass {url};
        }}"#,
        basic = auth.basic_auth_header(),
        url = auth.introspection_url()
    )
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

//! Integration-test support for the phantom-token NGINX module.
//!
//! This crate provides three building blocks, all usable from plain
//! (non-async) `#[test]` functions:
//!
//! * [`AuthServer`]: a test OAuth authorization server with an RFC 7662
//!   introspection endpoint answering `application/jwt` (or plain JSON), a
//!   `client_credentials` token endpoint, a JWKS endpoint publishing a
//!   choice of [`SigningKey`]s ([`jwks_json`]), request recording and
//!   runtime fault injection ([`Fault`]).
//! * [`EchoServer`]: an upstream API that answers every request with a JSON
//!   description of what it received ([`EchoResponse`]).
//! * [`Nginx`]: runs a real nginx binary with the module loaded, on a fresh
//!   temporary prefix, and offers log/reload/process helpers.
//!
//! Servers run on a shared background tokio runtime; every `start` call
//! returns once the listening socket is bound.
//!
//! # Example
//!
//! ```no_run
//! use test_support::{AuthServer, EchoServer, Nginx, EchoResponse, client};
//!
//! let auth = AuthServer::start();
//! let echo = EchoServer::start();
//! let token = auth.issue_token(serde_json::json!({"scope": "read"}));
//! let nginx = Nginx::builder()
//!     .http(|port| format!(r#"
//!         server {{
//!             listen 127.0.0.1:{port};
//!             location /api {{
//!                 phantom_token on;
//!                 phantom_token_introspection_endpoint curity;
//!                 proxy_pass http://127.0.0.1:{echo};
//!             }}
//!             location curity {{
//!                 internal;
//!                 proxy_pass_request_headers off;
//!                 proxy_set_header Authorization "{basic}";
//!                 proxy_set_header Accept "application/jwt";
//!                 proxy_set_header Content-Type "application/x-www-form-urlencoded";
//!                 proxy_pass {introspect};
//!             }}
//!         }}"#,
//!         echo = echo.port(),
//!         basic = auth.basic_auth_header(),
//!         introspect = auth.introspection_url()))
//!     .start();
//! let resp = client()
//!     .get(nginx.url("/api/x"))
//!     .bearer_auth(&token)
//!     .send()
//!     .unwrap();
//! let echoed: EchoResponse = resp.json().unwrap();
//! let jwt = echoed.header("authorization").unwrap().strip_prefix("Bearer ").unwrap();
//! assert_eq!(auth.decode_jwt(jwt)["sub"], "alice");
//! ```

#![warn(missing_docs)]

mod auth_server;
mod echo;
mod http;
mod keys;
mod nginx;
mod raw;

pub use auth_server::{
    AuthServer, ClosedPort, Fault, RecordedRequest, CLIENT_ID, CLIENT_SECRET, JWT_KID,
};
pub use echo::{EchoResponse, EchoServer};
pub use keys::{jwks_json, SigningKey};
pub use nginx::{
    client, http2_client, module_path, nginx_binary, workspace_root, ConfigTest, Nginx,
    NginxBuilder,
};
pub use raw::{parse_raw_response, raw_request, raw_request_timeout, read_until_closed};

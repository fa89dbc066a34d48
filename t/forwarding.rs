//! What the upstream receives: only `Authorization` changes; headers, query
//! and bodies pass intact over HTTP/1.0, 1.1 and 2; internal redirects do
//! not introspect twice.

mod common;
use common::*;
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn forty_headers_with_long_values_reach_the_upstream_unchanged() {
    let gw = gateway("", "large_client_header_buffers 8 16k;");
    let token = gw.token();
    let mut req = client().get(gw.nginx.url("/api/h")).bearer_auth(&token);
    let mut sent = Vec::new();
    for i in 0..45 {
        let value = format!("v{i}-{}", "x".repeat(if i % 5 == 0 { 3000 } else { 40 }));
        sent.push((format!("x-custom-{i}"), value.clone()));
        req = req.header(format!("X-Custom-{i}"), value);
    }
    let echoed = assert_forwarded(req.send().unwrap());
    for (name, value) in &sent {
        assert_eq!(echoed.headers_named(name), vec![value.as_str()], "{name}");
    }
    assert_eq!(echoed.headers_named("authorization").len(), 1);
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "alice");
}

#[test]
fn introspection_headers_never_reach_the_upstream_or_the_client() {
    let gw = gateway("", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let resp = gw.get_bearer("/api/x", &gw.token());
    assert_eq!(resp.headers().get("cache-control"), None);
    assert_ne!(resp.headers()["content-type"], "application/jwt");
    let echoed = assert_forwarded(resp);
    assert_eq!(echoed.header("accept"), Some("*/*"));
    assert_eq!(echoed.header("content-type"), None);
    assert!(echoed.bearer().unwrap().starts_with("ey"));
    for (name, value) in &echoed.headers {
        assert!(!value.starts_with("Basic "), "{name}: {value}");
        assert!(!value.contains("x-www-form-urlencoded"), "{name}: {value}");
    }
}

#[test]
fn request_bodies_reach_the_upstream_intact() {
    let gw = gateway("client_max_body_size 4m;", "");
    let token = gw.token();
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();

    let small = client()
        .post(gw.nginx.url("/api/small"))
        .bearer_auth(&token)
        .body("hello=world")
        .send()
        .unwrap();
    let echoed = assert_forwarded(small);
    assert_eq!(
        (echoed.method.as_str(), echoed.body.as_str()),
        ("POST", "hello=world")
    );

    let put = client()
        .put(gw.nginx.url("/api/big?x=1&y=%20z"))
        .bearer_auth(&token)
        .body(big.clone())
        .send()
        .unwrap();
    let echoed = assert_forwarded(put);
    assert_eq!(echoed.method, "PUT");
    assert_eq!(echoed.uri, "/api/big?x=1&y=%20z");
    assert_eq!(echoed.body_len, big.len());
    assert_eq!(echoed.body_sha256, sha256_hex(&big));

    // Chunked request body over a raw socket.
    let raw = format!(
        "POST /api/chunked HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
    let (status, _, body) = parse_raw_response(&raw_request(gw.nginx.port(), raw.as_bytes()));
    assert_eq!(status, 200, "{body}");
    let echoed: EchoResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed.body, "hello world");
    assert!(echoed.bearer().unwrap().starts_with("ey"));
}

#[test]
fn http_1_0_requests_work() {
    let gw = gateway("", "");
    let raw = format!(
        "GET /api/old?q=1 HTTP/1.0\r\nAuthorization: Bearer {}\r\n\r\n",
        gw.token()
    );
    let (status, _, body) = parse_raw_response(&raw_request(gw.nginx.port(), raw.as_bytes()));
    assert_eq!(status, 200, "{body}");
    let echoed: EchoResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed.uri, "/api/old?q=1");
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "alice");
}

#[test]
fn http2_requests_work() {
    let gw = gateway("", "http2 on;");
    let h2 = http2_client();
    let resp = h2
        .post(gw.nginx.url("/api/h2"))
        .bearer_auth(gw.token())
        .body("h2 body")
        .send()
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let echoed = assert_forwarded(resp);
    assert_eq!(echoed.body, "h2 body");
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "alice");

    let resp = h2.get(gw.nginx.url("/api/h2")).send().unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_unauthorized(resp, r#"Bearer realm="api""#);
}

#[test]
fn rewrite_into_a_protected_location_introspects_once() {
    // The rewrite runs before the access phase: the target location
    // introspects (once).
    let gw = gateway("", r"rewrite ^/old/(.*)$ /api/$1 last;");
    let echoed = assert_forwarded(gw.get_bearer("/old/thing", &gw.token()));
    assert_eq!(echoed.uri, "/api/thing");
    assert!(echoed.bearer().unwrap().starts_with("ey"));
    assert_eq!(gw.auth.introspection_count(), 1);
}

#[test]
fn upstream_error_redirected_into_a_protected_location_keeps_the_jwt() {
    // After the access phase: the upstream answers 404, error_page sends
    // the request (Authorization already replaced by the JWT) into another
    // protected location. The guard must keep the JWT, not introspect it.
    let gw = gateway_custom(|auth, echo, port| {
        format!(
            r#"
    server {{
        listen 127.0.0.1:{port};
        phantom_token on;
        location /via-as {{
            phantom_token_introspection_endpoint curity;
            proxy_intercept_errors on;
            error_page 404 = /api/after-404;
            proxy_pass http://127.0.0.1:{as_port}/no-such-path;
        }}
        location /api {{
            phantom_token_introspection_endpoint curity;
            proxy_pass http://127.0.0.1:{echo};
        }}
        {curity}
    }}"#,
            as_port = auth.port(),
            echo = echo.port(),
            curity = curity_location(auth, "")
        )
    });
    let echoed = assert_forwarded(gw.get_bearer("/via-as/x", &gw.token()));
    assert_eq!(echoed.uri, "/api/after-404");
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "alice");
    assert_eq!(gw.auth.introspection_count(), 1);
}

#[test]
fn internal_redirects_after_access_do_not_introspect_again() {
    // try_files redirects to a named location and error_page redirects into
    // another protected location: both after the access phase ran.
    let gw = gateway_custom(|auth, echo, port| {
        format!(
            r#"
    server {{
        listen 127.0.0.1:{port};
        phantom_token on;
        location /files {{
            phantom_token_introspection_endpoint curity;
            root /nonexistent-dir;
            error_page 404 = /api/from-404;
        }}
        location /tried {{
            phantom_token_introspection_endpoint curity;
            try_files /nonexistent @backend;
        }}
        location @backend {{
            phantom_token_introspection_endpoint curity;
            proxy_pass http://127.0.0.1:{echo};
        }}
        location /api {{
            phantom_token_introspection_endpoint curity;
            proxy_pass http://127.0.0.1:{echo};
        }}
        {curity}
    }}"#,
            echo = echo.port(),
            curity = curity_location(auth, "")
        )
    });
    let token = gw.token();
    let echoed = assert_forwarded(gw.get_bearer("/files/missing", &token));
    assert_eq!(echoed.uri, "/api/from-404");
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "alice");
    assert_eq!(gw.auth.introspection_count(), 1);

    let echoed = assert_forwarded(gw.get_bearer("/tried/x", &token));
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "alice");
    assert_eq!(gw.auth.introspection_count(), 2);
}

#[test]
fn keepalive_connections_introspect_each_request() {
    let gw = gateway("", "");
    let c = client();
    let (a, b) = (
        gw.auth.issue_token(json!({"sub": "a"})),
        gw.auth.issue_token(json!({"sub": "b"})),
    );
    for (token, sub) in [(&a, "a"), (&b, "b"), (&a, "a")] {
        let echoed = assert_forwarded(
            c.get(gw.nginx.url("/api/k"))
                .bearer_auth(token)
                .send()
                .unwrap(),
        );
        assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], sub);
    }
    assert_unauthorized(
        c.get(gw.nginx.url("/api/k")).send().unwrap(),
        r#"Bearer realm="api""#,
    );
    assert_eq!(gw.auth.introspection_count(), 3);
}

//! docs/behaviour.md's decision table, row by row, with the 2.0.0 config style.

mod common;
use common::*;

#[test]
fn module_off_passes_the_request_untouched() {
    // location /api { phantom_token off; ... }
    let gw = gateway_custom(|_, echo, port| {
        format!(
            "server {{ listen 127.0.0.1:{port};
                location /api {{ phantom_token off; proxy_pass http://127.0.0.1:{}; }} }}",
            echo.port()
        )
    });
    let echoed = assert_forwarded(gw.get("/api/x", Some("Bearer opaque-value")));
    assert_eq!(echoed.header("authorization"), Some("Bearer opaque-value"));
    assert_eq!(gw.auth.introspection_count(), 0);
    gw.expect_log("[debug]");
    // Once per request, as the C module writes it (the preaccess handler
    // stays silent).
    assert_eq!(gw.nginx.error_log().matches("Module disabled").count(), 1);
}

#[test]
fn options_is_answered_204_without_introspection() {
    let gw = gateway("", "");
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.nginx.url("/api/x"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(resp.text().unwrap(), "");
    assert_eq!(gw.auth.introspection_count(), 0);
    assert_eq!(gw.echo.request_count(), 0);
}

#[test]
fn missing_endpoint_fails_closed_with_500() {
    let gw = gateway_custom(|_, echo, port| {
        format!(
            "server {{ listen 127.0.0.1:{port};
                location /api {{ phantom_token on; proxy_pass http://127.0.0.1:{}; }} }}",
            echo.port()
        )
    });
    let token = gw.token();
    assert_error(gw.get_bearer("/api/x", &token), 500, SERVER_ERROR);
    assert_eq!(gw.echo.request_count(), 0);
    let log = gw.expect_log("Module not configured properly: missing introspection endpoint");
    assert!(log.contains("[warn]"), "{log}");
}

#[test]
fn missing_authorization_header_is_401() {
    let gw = gateway("", "");
    assert_unauthorized(gw.get("/api/x", None), r#"Bearer realm="api""#);
    assert_eq!(gw.auth.introspection_count(), 0);
    gw.expect_log("Authorization header not present");
}

#[test]
fn non_bearer_authorization_is_401() {
    let gw = gateway("", "");
    for value in [
        "Basic dXNlcjpwYXNz",
        "DPoP abc",
        "Bearer",
        "Bearer ",
        "Bearer\tabc",
    ] {
        assert_unauthorized(gw.get("/api/x", Some(value)), r#"Bearer realm="api""#);
    }
    assert_eq!(gw.auth.introspection_count(), 0);
    gw.expect_log("Authorization header does not contain a bearer token");
}

#[test]
fn active_token_is_exchanged_for_the_jwt() {
    let gw = gateway("", "");
    let token = gw.auth.issue_token(json!({"sub": "bob", "scope": "read"}));
    let echoed = assert_forwarded(gw.get_bearer("/api/orders?id=7", &token));

    let jwt = echoed.bearer().expect("Bearer JWT upstream");
    let claims = gw.auth.decode_jwt(jwt);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["scope"], "read");
    assert_eq!(echoed.uri, "/api/orders?id=7");
    assert_eq!(echoed.headers_named("authorization").len(), 1);

    // What the authorization server received: one form POST with the token.
    let intro = gw.auth.introspection_requests();
    assert_eq!(intro.len(), 1);
    assert_eq!(intro[0].method, "POST");
    assert_eq!(intro[0].token.as_deref(), Some(token.as_str()));
    assert_eq!(intro[0].body_str(), format!("token={token}"));
    assert_eq!(
        intro[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(intro[0].header("accept"), Some("application/jwt"));
    assert_eq!(
        intro[0].header("authorization"),
        Some(gw.auth.basic_auth_header().as_str())
    );
}

#[test]
fn inactive_token_is_401() {
    let gw = gateway("", "");
    assert_unauthorized(
        gw.get_bearer("/api/x", "unknown-token"),
        r#"Bearer realm="api""#,
    );
    assert_eq!(gw.auth.introspection_count(), 1);
    assert_eq!(gw.echo.request_count(), 0);
}

#[test]
fn introspection_503_is_503() {
    let gw = gateway("", "");
    gw.auth.set_fault(Fault::Status(503, String::new()));
    assert_error(gw.get_bearer("/api/x", &gw.token()), 503, SERVER_ERROR);
    assert_eq!(gw.echo.request_count(), 0);
}

#[test]
fn introspection_client_and_server_errors_are_502_and_logged() {
    let gw = gateway("", "");
    for status in [401, 403, 404, 500, 502, 504] {
        gw.auth.set_fault(Fault::Status(status, "{}".into()));
        assert_error(gw.get_bearer("/api/x", &gw.token()), 502, SERVER_ERROR);
        let log = gw.expect_log(&format!(
            "Introspection subrequest returned response code: {status}"
        ));
        assert!(log.contains("[error]"));
    }
    assert_eq!(gw.echo.request_count(), 0);
}

#[test]
fn other_introspection_statuses_are_500() {
    let gw = gateway("", "");
    for status in [201, 302, 400, 418] {
        gw.auth.set_fault(Fault::Status(status, String::new()));
        assert_error(gw.get_bearer("/api/x", &gw.token()), 500, SERVER_ERROR);
    }
    assert_eq!(gw.echo.request_count(), 0);
}

#[test]
fn empty_200_body_is_502_not_an_empty_bearer() {
    let gw = gateway("", "");
    gw.auth.set_fault(Fault::Body(Vec::new()));
    assert_error(gw.get_bearer("/api/x", &gw.token()), 502, SERVER_ERROR);
    assert_eq!(gw.echo.request_count(), 0);
    gw.expect_log("Introspection subrequest returned an empty body");
}

#[test]
fn head_gets_status_and_headers_only() {
    let gw = gateway("", "");
    let resp = client().head(gw.nginx.url("/api/x")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["www-authenticate"], r#"Bearer realm="api""#);
    assert_eq!(resp.text().unwrap(), "");

    // Same over a raw socket: no body bytes after the headers.
    let raw = raw_request(
        gw.nginx.port(),
        b"HEAD /api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nConnection: close\r\n\r\n",
    );
    let (status, _, body) = parse_raw_response(&raw);
    assert_eq!((status, body.as_str()), (401, ""));
}

#[test]
fn realm_and_scopes_are_advertised() {
    let gw = gateway(
        r#"phantom_token_realm "r"; phantom_token_scopes "a b";"#,
        "",
    );
    assert_unauthorized(gw.get("/api/x", None), r#"Bearer realm="r", scope="a b""#);
}

#[test]
fn repeated_scope_directives_are_joined() {
    let gw = gateway("phantom_token_scope read; phantom_token_scope write;", "");
    assert_unauthorized(
        gw.get("/api/x", None),
        r#"Bearer realm="api", scope="read write""#,
    );
}

#[test]
fn scopes_supersede_scope() {
    let gw = gateway(r#"phantom_token_scope x; phantom_token_scopes "a b";"#, "");
    assert_unauthorized(gw.get("/api/x", None), r#"Bearer realm="api", scope="a b""#);
}

#[test]
fn error_page_does_not_replace_the_modules_401() {
    let gw = gateway(
        "error_page 401 = /fallback;",
        "location /fallback { return 200 'fallback'; }",
    );
    assert_unauthorized(gw.get("/api/x", None), r#"Bearer realm="api""#);
}

#[test]
fn phantom_token_is_inherited_from_the_server_level() {
    let gw = gateway_custom(|auth, echo, port| {
        format!(
            r#"
    server {{
        listen 127.0.0.1:{port};
        phantom_token on;
        location /api {{
            phantom_token_introspection_endpoint curity;
            proxy_pass http://127.0.0.1:{echo};
        }}
        location /public {{
            phantom_token off;
            proxy_pass http://127.0.0.1:{echo};
        }}
        {curity}
    }}"#,
            echo = echo.port(),
            curity = curity_location(auth, "")
        )
    });
    assert_unauthorized(gw.get("/api/x", None), r#"Bearer realm="api""#);
    let echoed = assert_forwarded(gw.get("/public/x", None));
    assert_eq!(echoed.header("authorization"), None);
    let echoed = assert_forwarded(gw.get_bearer("/api/x", &gw.token()));
    assert!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"] == "alice");
}

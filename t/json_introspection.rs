//! `phantom_token_introspection_format json`: for authorization servers
//! that answer RFC 7662 JSON instead of a JWT. `active: true` lets the
//! request proceed with the JSON claims (rules, variables); `active: false`
//! is a 401. No JWT is minted, and the opaque token does not go upstream:
//! the `Authorization` line arrives empty (or not at all with
//! `proxy_set_header Authorization "";`).

mod common;
use common::*;

/// The 2.0.0-style introspection location asking for JSON.
fn json_location(auth: &AuthServer) -> String {
    format!(
        r#"
        location curity {{
            internal;
            proxy_pass_request_headers off;
            proxy_set_header Accept "application/json";
            proxy_set_header Content-Type "application/x-www-form-urlencoded";
            proxy_set_header Authorization "{basic}";
            proxy_pass {url};
        }}"#,
        basic = auth.basic_auth_header(),
        url = auth.introspection_url()
    )
}

fn json_gateway(cache: Cache, api: &str) -> Gateway {
    let (zone, use_cache) = match cache {
        Cache::Off => ("", ""),
        Cache::On => (
            "phantom_token_cache_zone tokens:1m;",
            "phantom_token_cache tokens;",
        ),
    };
    let api = api.to_string();
    let gw = gateway_custom(move |auth, echo, port| {
        format!(
            r#"{zone}
            server {{
                listen 127.0.0.1:{port};
                location /api {{
                    phantom_token on;
                    phantom_token_introspection_endpoint curity;
                    phantom_token_introspection_format json;
                    {use_cache}
                    {api}
                    proxy_set_header X-Subject $phantom_token_claim_sub;
                    proxy_set_header X-Jwt "[$phantom_token_jwt]";
                    proxy_pass http://127.0.0.1:{echo};
                }}
                {location}
            }}"#,
            echo = echo.port(),
            location = json_location(auth)
        )
    });
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw
}

fn active_and_inactive(cache: Cache) {
    let gw = json_gateway(cache, r#"phantom_token_require GET "read";"#);
    let token = gw
        .auth
        .issue_token(json!({"sub": "carol", "scope": "read"}));
    for _ in 0..2 {
        let echoed = assert_forwarded(gw.get_bearer("/api", &token));
        assert_eq!(echoed.header("authorization"), Some(""));
        assert_eq!(echoed.header("x-subject"), Some("carol"));
        assert_eq!(echoed.header("x-jwt"), Some("[]"));
    }
    let writer = gw.auth.issue_token(json!({"scope": "write"}));
    let headers = assert_error(
        gw.get_bearer("/api", &writer),
        403,
        r#"{"code":"forbidden","message":"The access token does not grant access to this resource"}"#,
    );
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer realm="api", error="insufficient_scope", scope="read""#
    );
    gw.auth.revoke(&writer);
    let revoked = gw.auth.issue_token(json!({}));
    gw.auth.revoke(&revoked);
    for _ in 0..2 {
        assert_unauthorized(gw.get_bearer("/api", &revoked), r#"Bearer realm="api""#);
    }
    let requests = gw.auth.introspection_requests();
    assert!(requests
        .iter()
        .all(|r| r.header("accept") == Some("application/json")));
    let expected = if cache == Cache::On { 3 } else { 5 };
    assert_eq!(requests.len(), expected);
}

with_and_without_cache!(active_and_inactive);

/// An AS that answers `204` for inactive tokens in JSON mode: still `401`.
#[test]
fn a_204_is_inactive_too() {
    let gw = json_gateway(Cache::Off, "");
    gw.auth.set_fault(Fault::Status(204, String::new()));
    assert_unauthorized(gw.get_bearer("/api", &gw.token()), r#"Bearer realm="api""#);
}

#[test]
fn answers_without_active_are_bad_gateway() {
    let gw = json_gateway(Cache::Off, "");
    for body in [
        &br#"{"sub":"x"}"#[..],
        b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        br#"{"active":"yes"}"#,
    ] {
        gw.auth.set_fault(Fault::Body(body.to_vec()));
        assert_error(gw.get_bearer("/api", &gw.token()), 502, SERVER_ERROR);
    }
    let log = gw
        .expect_log("Introspection subrequest returned a JSON answer without a boolean \"active\"");
    assert!(log.contains("Introspection subrequest returned an answer that is not a JSON object"));
    assert_eq!(gw.echo.request_count(), 0);
}

/// 1.x style: the module's own subrequest headers ask for JSON.
#[test]
fn client_credential_style_asks_for_json() {
    let gw = gateway_custom(|auth, echo, port| {
        format!(
            r#"server {{
                listen 127.0.0.1:{port};
                location /api {{
                    phantom_token on;
                    phantom_token_introspection_endpoint /introspect;
                    phantom_token_client_credential {id} {secret};
                    phantom_token_introspection_format json;
                    proxy_pass http://127.0.0.1:{echo};
                }}
                location = /introspect {{
                    internal;
                    proxy_pass {url};
                }}
            }}"#,
            id = CLIENT_ID,
            secret = CLIENT_SECRET,
            echo = echo.port(),
            url = auth.introspection_url()
        )
    });
    let token = gw.token();
    assert_forwarded(gw.get_bearer("/api", &token));
    let requests = gw.auth.introspection_requests();
    assert_eq!(
        gw.echo.last_request().unwrap().header("authorization"),
        Some("")
    );
    assert_eq!(requests[0].header("accept"), Some("application/json"));
}

/// `proxy_set_header Authorization "";` drops the emptied line.
#[test]
fn authorization_can_be_dropped() {
    let gw = json_gateway(Cache::Off, r#"proxy_set_header Authorization "";"#);
    let echoed = assert_forwarded(gw.get_bearer("/api", &gw.token()));
    assert_eq!(echoed.header("authorization"), None);
    assert_eq!(echoed.header("x-subject"), Some("alice"));
}

#[test]
fn bad_format_fails_nginx_t() {
    assert_emerg_at(
        &check_http("phantom_token_introspection_format xml;"),
        "phantom_token_introspection_format",
        r#"invalid value "xml" in "phantom_token_introspection_format" directive, it must be "jwt" or "json""#,
    );
}

//! The C module's documented configurations, unchanged but for addresses:
//! 2.0.0 style, 1.x style (`phantom_token_client_credential`) and the
//! `proxy_cache` setup on the introspection location.

mod common;
use common::*;

/// C module 1.x README style: the module sends the introspection headers.
fn gateway_1x(api_extra: &str) -> Gateway {
    let api_extra = api_extra.to_string();
    gateway_custom(move |auth, echo, port| {
        format!(
            r#"
    server {{
        listen 127.0.0.1:{port};
        location /api {{
            phantom_token on;
            phantom_token_client_credential "{id}" "{secret}";
            phantom_token_introspection_endpoint curity;
            phantom_token_realm "myGoodAPI";
            phantom_token_scopes "scope_a scope_b scope_c";
            {api_extra}
            proxy_pass http://127.0.0.1:{echo};
        }}
        location curity {{
            proxy_pass "{introspect}";
        }}
    }}"#,
            id = CLIENT_ID,
            secret = CLIENT_SECRET,
            echo = echo.port(),
            introspect = auth.introspection_url()
        )
    })
}

#[test]
fn v1_style_sends_credential_accept_and_content_type_itself() {
    let gw = gateway_1x("");
    let token = gw
        .auth
        .issue_token_exact("a+b&c=d%/", json!({"sub": "carol"}));
    assert_eq!(token["sub"], "carol");
    let echoed = assert_forwarded(
        client()
            .get(gw.nginx.url("/api/v1"))
            .header("Authorization", "Bearer a+b&c=d%/")
            .header("Cookie", "session=secret")
            .send()
            .unwrap(),
    );
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "carol");
    assert_eq!(echoed.headers_named("authorization").len(), 1);
    assert_eq!(echoed.header("cookie"), Some("session=secret"));

    let intro = &gw.auth.introspection_requests()[0];
    assert_eq!(intro.token.as_deref(), Some("a+b&c=d%/"));
    assert_eq!(
        intro.headers_named("authorization"),
        vec![gw.auth.basic_auth_header().as_str()]
    );
    assert_eq!(intro.header("accept"), Some("application/jwt"));
    assert_eq!(
        intro.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // The client's own headers are not sent to the authorization server.
    assert_eq!(intro.header("cookie"), None);
}

#[test]
fn v1_style_401_advertises_realm_and_scopes() {
    let gw = gateway_1x("");
    assert_unauthorized(
        gw.get("/api/x", None),
        r#"Bearer realm="myGoodAPI", scope="scope_a scope_b scope_c""#,
    );
}

#[test]
fn v1_style_options_is_204_like_2_0() {
    let gw = gateway_1x("");
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.nginx.url("/api/x"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(gw.auth.introspection_count(), 0);
}

#[test]
fn v1_style_large_jwt_is_whole_and_never_leaks_the_credential() {
    let gw = gateway_1x("");
    gw.auth.set_fault(Fault::BigJwt(20_000));
    let echoed = assert_forwarded(gw.get_bearer("/api/big", &gw.token()));
    let jwt = echoed.bearer().unwrap();
    assert!(jwt.len() > 19_000, "{}", jwt.len());
    gw.auth.decode_jwt(jwt);
    assert_eq!(echoed.headers_named("authorization").len(), 1);
    assert!(echoed.headers.iter().all(|(_, v)| !v.starts_with("Basic ")));
}

#[test]
fn endpoint_with_leading_slash_works_too() {
    let gw = gateway_custom(|auth, echo, port| {
        format!(
            r#"
    server {{
        listen 127.0.0.1:{port};
        location /api {{
            phantom_token on;
            phantom_token_introspection_endpoint /introspect;
            proxy_pass http://127.0.0.1:{echo};
        }}
        location /introspect {{
            internal;
            proxy_pass_request_headers off;
            proxy_set_header Accept "application/jwt";
            proxy_set_header Content-Type "application/x-www-form-urlencoded";
            proxy_set_header Authorization "{basic}";
            proxy_pass {url};
        }}
    }}"#,
            echo = echo.port(),
            basic = auth.basic_auth_header(),
            url = auth.introspection_url()
        )
    });
    let echoed = assert_forwarded(gw.get_bearer("/api/x", &gw.token()));
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "alice");
    // The internal location cannot be called from outside.
    assert_eq!(gw.get("/introspect", None).status().as_u16(), 404);
}

#[test]
fn proxy_cache_on_the_introspection_location_serves_the_jwt_from_cache() {
    let gw = gateway_parts(Parts {
        http: "proxy_cache_path cache levels=1:2 keys_zone=api_cache:10m max_size=10m inactive=60m use_temp_path=off;",
        curity: concat!("proxy_cache_methods POST;
            proxy_cache api_cache;
            proxy_cache_key $request_body;
            proxy_ignore_headers Set-Cookie;
            proxy_cache_valid 200 1m;", "add_header X-Cache-Status $upstream_cache_status;"),
        ..Parts::default()
    });
    let (a, b) = (
        gw.auth.issue_token(json!({"sub": "a"})),
        gw.auth.issue_token(json!({"sub": "b"})),
    );
    let mut jwts = Vec::new();
    for (token, sub) in [(&a, "a"), (&a, "a"), (&b, "b"), (&a, "a"), (&b, "b")] {
        let echoed = assert_forwarded(gw.get_bearer("/api/c", token));
        let jwt = echoed.bearer().unwrap().to_string();
        assert_eq!(gw.auth.decode_jwt(&jwt)["sub"], sub);
        assert!(echoed.headers.iter().all(|(n, _)| n != "x-cache-status"));
        jwts.push(jwt);
    }
    // One introspection per distinct token; cached answers are identical.
    assert_eq!(gw.auth.introspection_count(), 2);
    assert_eq!(jwts[0], jwts[1]);
    assert_eq!(jwts[0], jwts[3]);
}

#[test]
fn proxy_cache_keeps_serving_large_cached_jwts() {
    let gw = gateway_parts(Parts {
        http: "proxy_cache_path cache levels=1:2 keys_zone=api_cache:10m use_temp_path=off;",
        curity: "proxy_cache_methods POST;
            proxy_cache api_cache;
            proxy_cache_key $request_body;
            proxy_ignore_headers Set-Cookie;
            proxy_cache_valid 200 1m;",
        ..Parts::default()
    });
    gw.auth.set_fault(Fault::BigJwt(30_000));
    let token = gw.token();
    let first = assert_forwarded(gw.get_bearer("/api/c", &token));
    let second = assert_forwarded(gw.get_bearer("/api/c", &token));
    assert_eq!(first.bearer(), second.bearer());
    assert!(second.bearer().unwrap().len() > 29_000);
    gw.auth.decode_jwt(second.bearer().unwrap());
    assert_eq!(gw.auth.introspection_count(), 1);
}

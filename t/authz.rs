//! `phantom_token_require`: scope and claim rules at the gateway, by method,
//! inherited like other location settings, the same for fresh and cached
//! JWTs; 403 with an `insufficient_scope` challenge otherwise.

mod common;
use common::*;

/// 403 body of an unmet rule.
const FORBIDDEN: &str =
    r#"{"code":"forbidden","message":"The access token does not grant access to this resource"}"#;

fn cache_parts(cache: Cache) -> (&'static str, &'static str) {
    match cache {
        Cache::Off => ("", ""),
        Cache::On => (
            "phantom_token_cache_zone tokens:1m;",
            "phantom_token_cache tokens;",
        ),
    }
}

/// `/api` with the method rules of the issue's example.
fn method_gateway(cache: Cache, extra: &str) -> Gateway {
    let (http, use_cache) = cache_parts(cache);
    let api = format!(
        r#"{use_cache} {extra}
            phantom_token_require GET HEAD "read";
            phantom_token_require POST PUT DELETE "write and (admin or role=editor)";"#
    );
    let gw = gateway_parts(Parts {
        http,
        api: &api,
        ..Parts::default()
    });
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw
}

fn send(gw: &Gateway, method: &str, path: &str, token: &str) -> Response {
    client()
        .request(method.parse().unwrap(), gw.nginx.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .unwrap()
}

fn assert_forbidden(resp: Response, challenge: &str) {
    let headers = assert_error(resp, 403, FORBIDDEN);
    assert_eq!(headers["www-authenticate"], challenge);
}

fn method_rules(cache: Cache) {
    method_rules_with(cache, "")
}

/// The same in the preaccess phase (`phantom_token_phase preaccess`).
fn method_rules_in_preaccess(cache: Cache) {
    method_rules_with(cache, "phantom_token_phase preaccess;")
}

fn method_rules_with(cache: Cache, extra: &str) {
    let gw = method_gateway(cache, extra);
    let reader = gw.auth.issue_token(json!({"scope": "read"}));
    let editor = gw
        .auth
        .issue_token(json!({"scope": "read write", "role": "editor"}));
    let writer = gw.auth.issue_token(json!({"scope": "write"}));
    // Twice: the second answer comes from the cache when it is on.
    for _ in 0..2 {
        assert_forwarded(send(&gw, "GET", "/api/x", &reader));
        assert_forbidden(
            send(&gw, "POST", "/api/x", &reader),
            r#"Bearer realm="api", error="insufficient_scope", scope="write admin""#,
        );
        assert_forwarded(send(&gw, "POST", "/api/x", &editor));
        assert_forwarded(send(&gw, "DELETE", "/api/x", &editor));
        assert_forbidden(
            send(&gw, "PUT", "/api/x", &writer),
            r#"Bearer realm="api", error="insufficient_scope", scope="write admin""#,
        );
        assert_forbidden(
            send(&gw, "GET", "/api/x", &writer),
            r#"Bearer realm="api", error="insufficient_scope", scope="read""#,
        );
        // No rule for PATCH: allowed.
        assert_forwarded(send(&gw, "PATCH", "/api/x", &writer));
        // HEAD: the same decision, no body.
        let head = send(&gw, "HEAD", "/api/x", &writer);
        assert_eq!(head.status().as_u16(), 403);
        assert_eq!(
            head.headers()["www-authenticate"],
            r#"Bearer realm="api", error="insufficient_scope", scope="read""#
        );
        assert_eq!(head.text().unwrap(), "");
        assert_eq!(send(&gw, "HEAD", "/api/x", &reader).status().as_u16(), 200);
    }
    // The API never saw a forbidden request.
    let methods: Vec<String> = gw
        .echo
        .requests()
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(
        methods,
        ["GET", "POST", "DELETE", "PATCH", "HEAD", "GET", "POST", "DELETE", "PATCH", "HEAD"]
    );
    let introspections = gw.auth.introspection_count();
    assert_eq!(introspections, if cache == Cache::On { 3 } else { 18 });
    let log = gw.expect_log("access forbidden by phantom_token_require rule");
    assert!(
        log.contains(r#"[info]"#) && log.contains(r#"rule "write and (admin or role=editor)""#),
        "{log}"
    );
}

with_and_without_cache!(method_rules, method_rules_in_preaccess);

/// Every operator of the language, one location per rule.
#[test]
fn every_operator() {
    let rules: &[&str] = &[
        "read",
        "read and write",
        "read or admin",
        "not admin",
        "read and not (admin or role=guest)",
        "role=editor",
        "groups=ops",
        "org.id=acme",
        "org.tier=3",
        "verified=true",
        r#""https://example.com/team"="blue team""#,
        "(admin or read) and (role=editor or role=owner)",
    ];
    let locations: String = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            format!(
                "location /r{i} {{ phantom_token on; phantom_token_introspection_endpoint curity; \
                 phantom_token_require '{rule}'; proxy_pass http://127.0.0.1:ECHO; }}\n"
            )
        })
        .collect();
    let gw = gateway_custom(|auth, echo, port| {
        let locations = locations.replace("ECHO", &echo.port().to_string());
        format!(
            "server {{ listen 127.0.0.1:{port}; {locations} {curity} }}",
            curity = curity_location(auth, "")
        )
    });
    let tokens = [
        gw.auth.issue_token(json!({
            "scope": "read write",
            "role": "editor",
            "groups": ["dev", "ops"],
            "org": {"id": "acme", "tier": 3},
            "verified": true,
            "https://example.com/team": "blue team"
        })),
        gw.auth.issue_token(json!({
            "scope": ["admin"],
            "role": "guest",
            "groups": "ops",
            "org": {"id": "other", "tier": "3"},
            "verified": "false"
        })),
        gw.auth.issue_token(json!({"scope": null})),
    ];
    // Expected verdict per rule, for each token.
    let expected: &[[bool; 3]] = &[
        [true, false, false],
        [true, false, false],
        [true, true, false],
        [true, false, true],
        [true, false, false],
        [true, false, false],
        [true, true, false],
        [true, false, false],
        [true, true, false],
        [true, false, false],
        [true, false, false],
        [true, false, false],
    ];
    for (i, rule) in rules.iter().enumerate() {
        for (t, token) in tokens.iter().enumerate() {
            let status = gw.get_bearer(&format!("/r{i}"), token).status().as_u16();
            let want = if expected[i][t] { 200 } else { 403 };
            assert_eq!(status, want, "rule {rule:?}, token {t}");
        }
    }
}

/// Rules are inherited from the server level; a location with its own
/// `phantom_token_require` lines replaces them.
#[test]
fn rules_are_inherited_and_replaced() {
    let gw = gateway_custom(|auth, echo, port| {
        format!(
            r#"server {{
                listen 127.0.0.1:{port};
                phantom_token_require "admin";
                location /inherits {{
                    phantom_token on;
                    phantom_token_introspection_endpoint curity;
                    proxy_pass http://127.0.0.1:{echo};
                }}
                location /own {{
                    phantom_token on;
                    phantom_token_introspection_endpoint curity;
                    phantom_token_realm shop;
                    phantom_token_require GET "read";
                    proxy_pass http://127.0.0.1:{echo};
                }}
                {curity}
            }}"#,
            echo = echo.port(),
            curity = curity_location(auth, "")
        )
    });
    let reader = gw.auth.issue_token(json!({"scope": "read"}));
    assert_forbidden(
        gw.get_bearer("/inherits", &reader),
        r#"Bearer realm="api", error="insufficient_scope", scope="admin""#,
    );
    assert_forwarded(gw.get_bearer("/own", &reader));
    let admin = gw.auth.issue_token(json!({"scope": "admin"}));
    assert_forwarded(gw.get_bearer("/inherits", &admin));
    assert_forbidden(
        gw.get_bearer("/own", &admin),
        r#"Bearer realm="shop", error="insufficient_scope", scope="read""#,
    );
}

/// A rule with only claims: the challenge names no scope.
#[test]
fn claim_only_rule_challenge_has_no_scope() {
    let gw = gateway(r#"phantom_token_require "role=admin";"#, "");
    let token = gw.token();
    assert_forbidden(
        gw.get_bearer("/api", &token),
        r#"Bearer realm="api", error="insufficient_scope""#,
    );
}

/// The claim variables see the same claims the rules used.
#[test]
fn rules_and_claim_variables_together() {
    let gw = gateway(
        r#"phantom_token_require "read and sub=alice";
           proxy_set_header X-Subject $phantom_token_claim_sub;"#,
        "",
    );
    let token = gw.auth.issue_token(json!({"scope": "read"}));
    let echoed = assert_forwarded(gw.get_bearer("/api", &token));
    assert_eq!(echoed.header("x-subject"), Some("alice"));
    let bob = gw.auth.issue_token(json!({"scope": "read", "sub": "bob"}));
    assert_eq!(gw.get_bearer("/api", &bob).status().as_u16(), 403);
}

#[test]
fn syntax_errors_fail_nginx_t_with_file_line_and_position() {
    let cases = [
        (
            r#"phantom_token_require GET "read and )";"#,
            r#"invalid rule "read and )" in "phantom_token_require" directive: expected a scope, a claim or "(", found ")" at position 10"#,
        ),
        (
            r#"phantom_token_require "(read or write";"#,
            r#"invalid rule "(read or write" in "phantom_token_require" directive: expected ")", found end of rule at position 15"#,
        ),
        (
            r#"phantom_token_require "role=";"#,
            r#"invalid rule "role=" in "phantom_token_require" directive: expected a value after "=", found end of rule at position 6"#,
        ),
        (
            r#"phantom_token_require get "read";"#,
            r#"invalid method "get" in "phantom_token_require" directive, expected an upper-case HTTP method such as GET"#,
        ),
    ];
    for (directive, message) in cases {
        assert_emerg_at(&check_location(directive), "phantom_token_require", message);
    }
    assert!(check_location(r#"phantom_token_require GET HEAD "read"; phantom_token_require "a or (b and not c=d)";"#).ok);
    let t = check_location("phantom_token_require;");
    assert!(!t.ok);
    assert!(
        t.output
            .contains(r#"invalid number of arguments in "phantom_token_require" directive"#),
        "{}",
        t.output
    );
}

/// Over HTTP/2: the same 403, header and body; HEAD without body.
#[test]
fn http2_forbidden_answers() {
    let gw = gateway_parts(Parts {
        server: "http2 on;",
        api: r#"phantom_token_require GET HEAD "admin";"#,
        ..Parts::default()
    });
    let token = gw.token();
    let h2 = http2_client();
    for method in ["GET", "HEAD"] {
        let resp = h2
            .request(method.parse().unwrap(), gw.nginx.url("/api/h2"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status().as_u16(), 403);
        assert_eq!(
            resp.headers()["www-authenticate"],
            r#"Bearer realm="api", error="insufficient_scope", scope="admin""#
        );
        let body = resp.text().unwrap();
        if method == "GET" {
            assert_eq!(body, FORBIDDEN);
        } else {
            assert_eq!(body, "");
        }
    }
    assert_eq!(gw.echo.request_count(), 0);
}

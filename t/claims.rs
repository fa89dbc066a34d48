//! `$phantom_token_jwt` and `$phantom_token_claim_<name>`: the forwarded
//! JWT and its claims as NGINX variables (access log, `proxy_set_header`,
//! `map`), with and without the built-in cache.

mod common;
use common::*;

/// A gateway logging the claim variables, forwarding two of them upstream
/// and mapping one; `cache` adds the built-in cache.
fn claims_gateway(cache: bool) -> Gateway {
    let http = format!(
        r#"{zone}
        log_format claims escape=none '$uri sub=$phantom_token_claim_sub aud=[$phantom_token_claim_aud] obj=$phantom_token_claim_obj n=$phantom_token_claim_n missing=[$phantom_token_claim_missing] cache=$phantom_token_cache_status';
        map $phantom_token_claim_sub $is_alice {{ alice yes; default no; }}"#,
        zone = if cache {
            "phantom_token_cache_zone tokens:1m;"
        } else {
            ""
        }
    );
    let api = format!(
        r#"{cache}
            proxy_set_header X-Subject $phantom_token_claim_sub;
            proxy_set_header X-Scope $phantom_token_claim_scope;
            proxy_set_header X-Is-Alice $is_alice;
            proxy_set_header X-Jwt $phantom_token_jwt;"#,
        cache = if cache {
            "phantom_token_cache tokens;"
        } else {
            ""
        }
    );
    let gw = gateway_parts(Parts {
        http: &http,
        server: "access_log claims.log claims;",
        api: &api,
        ..Parts::default()
    });
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw
}

/// The access log lines, waiting (bounded) until `n` are there.
fn claim_lines(gw: &Gateway, n: usize) -> Vec<String> {
    let path = gw.nginx.prefix().join("claims.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::yield_now();
    }
}

#[test]
fn claims_reach_the_log_the_upstream_and_map() {
    for cache in [false, true] {
        let gw = claims_gateway(cache);
        let token = gw.auth.issue_token(json!({
            "sub": "alice",
            "scope": "read write",
            "aud": ["api", "web"],
            "obj": {"a": [1, 2], "b": "c"},
            "n": 5
        }));
        for _ in 0..2 {
            let echoed = assert_forwarded(gw.get_bearer("/api/c", &token));
            let jwt = echoed.bearer().unwrap().to_string();
            assert_eq!(echoed.header("x-subject"), Some("alice"));
            assert_eq!(echoed.header("x-scope"), Some("read write"));
            assert_eq!(echoed.header("x-is-alice"), Some("yes"));
            assert_eq!(echoed.header("x-jwt"), Some(jwt.as_str()));
        }
        let (first, second) = if cache {
            ("MISS", "HIT")
        } else {
            ("BYPASS", "BYPASS")
        };
        let line = |status| {
            format!(
                r#"/api/c sub=alice aud=[api web] obj={{"a":[1,2],"b":"c"}} n=5 missing=[] cache={status}"#
            )
        };
        assert_eq!(
            claim_lines(&gw, 2),
            [line(first), line(second)],
            "cache {cache}"
        );
    }
}

#[test]
fn without_a_jwt_the_claims_are_empty() {
    let gw = claims_gateway(false);
    assert_unauthorized(gw.get("/api/none", None), r#"Bearer realm="api""#);
    assert_unauthorized(
        gw.get_bearer("/api/none", "not-a-token"),
        r#"Bearer realm="api""#,
    );
    // (`escape=none` logs a not-found variable as nothing, not `-`.)
    assert_eq!(
        claim_lines(&gw, 2),
        [
            "/api/none sub= aud=[] obj= n= missing=[] cache=",
            "/api/none sub= aud=[] obj= n= missing=[] cache=BYPASS",
        ]
    );
}

/// `phantom_token_phase preaccess`: the token is exchanged before
/// `limit_req`, so a claim can be its key (per-user rate limits).
#[test]
fn claims_as_limit_req_keys_in_preaccess() {
    for preaccess in [true, false] {
        let gw = gateway_parts(Parts {
            http: "limit_req_zone $phantom_token_claim_sub zone=per_user:1m rate=1r/m;",
            api: &format!(
                "{} limit_req zone=per_user nodelay; limit_req_status 429;",
                if preaccess {
                    "phantom_token_phase preaccess;"
                } else {
                    ""
                }
            ),
            ..Parts::default()
        });
        let alice = gw.auth.issue_token(json!({"sub": "alice"}));
        let bob = gw.auth.issue_token(json!({"sub": "bob"}));
        assert_forwarded(gw.get_bearer("/api", &alice));
        let second = gw.get_bearer("/api", &alice).status().as_u16();
        assert_forwarded(gw.get_bearer("/api", &bob));
        if preaccess {
            assert_eq!(second, 429, "alice's second request within the minute");
        } else {
            // In the access phase the key is still empty: limit_req skips it.
            assert_eq!(second, 200);
        }
        // Errors stay the module's own, in either phase.
        assert_unauthorized(gw.get("/api", None), r#"Bearer realm="api""#);
    }
}

/// In either phase the module runs before `allow`/`deny`: a denied client
/// without a token gets the module's 401, one with a token NGINX's 403
/// after the exchange.
#[test]
fn the_module_runs_before_allow_and_deny() {
    for phase in ["access", "preaccess"] {
        let gw = gateway(&format!("phantom_token_phase {phase}; deny all;"), "");
        assert_unauthorized(gw.get("/api", None), r#"Bearer realm="api""#);
        let resp = gw.get_bearer("/api", &gw.token());
        assert_eq!(resp.status().as_u16(), 403, "{phase}");
        assert_eq!(gw.auth.introspection_count(), 1, "{phase}");
        assert_eq!(gw.echo.request_count(), 0);
    }
}

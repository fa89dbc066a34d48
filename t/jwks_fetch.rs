//! JWT verification with keys fetched from the authorization server
//! (`phantom_token_jwks_request`): one fetch for all workers, a re-fetch
//! when the AS rolls its keys (bounded by the refetch interval, whatever
//! the JWTs claim), cached keys kept when the JWKS endpoint is down.

mod common;
use common::*;

/// A gateway (2 workers) fetching keys through `location = /jwks`; `extra`
/// goes to the `http` level.
fn fetching_gateway(extra: &str) -> Gateway {
    fetching_gateway_with(
        Parts {
            http: extra,
            ..Parts::default()
        },
        |auth| {
            format!(
                "location = /jwks {{ internal; proxy_pass {}; }}",
                auth.jwks_url()
            )
        },
    )
}

/// The gateway of these tests: `/api` protected, keys fetched through
/// `/jwks`, served by the location(s) `jwks_location(auth)`; `parts` adds
/// lines at the `http`, `server` and `/api` levels.
fn fetching_gateway_with(
    parts: Parts,
    jwks_location: impl FnOnce(&AuthServer) -> String,
) -> Gateway {
    gateway_custom(move |auth, echo, port| {
        format!(
            r#"{http}
            phantom_token_jwks_request /jwks;
            server {{
                listen 127.0.0.1:{port};
                {server}
                location /api {{
                    phantom_token on;
                    phantom_token_introspection_endpoint curity;
                    {api}
                    proxy_pass http://127.0.0.1:{echo};
                }}
                {jwks}
                {curity}
            }}"#,
            http = parts.http,
            server = parts.server,
            api = parts.api,
            echo = echo.port(),
            jwks = jwks_location(auth),
            curity = curity_location(auth, "")
        )
    })
}

fn jwks_requests(gw: &Gateway) -> Vec<RecordedRequest> {
    gw.auth
        .requests()
        .into_iter()
        .filter(|r| r.path == "/jwks")
        .collect()
}

#[test]
fn keys_are_fetched_once_for_all_workers() {
    let gw = fetching_gateway("");
    for _ in 0..10 {
        assert_forwarded(gw.get_bearer("/api", &gw.token()));
    }
    assert_eq!(gw.auth.jwks_count(), 1);
    let fetch = &jwks_requests(&gw)[0];
    assert_eq!(fetch.method, "GET");
    assert_eq!(
        fetch.header("authorization"),
        None,
        "no token reaches the JWKS endpoint"
    );
    assert_eq!(fetch.header("accept"), Some("application/json"));
}

#[test]
fn concurrent_first_requests_share_one_fetch() {
    for phase in ["access", "preaccess"] {
        concurrent_first_requests_in(phase);
    }
}

fn concurrent_first_requests_in(phase: &str) {
    let gw = fetching_gateway(&format!("phantom_token_phase {phase};"));
    // A slow JWKS endpoint: the requests overlap the one fetch and wait.
    gw.auth
        .set_jwks_delay(std::time::Duration::from_millis(300));
    let tokens: Vec<String> = (0..20).map(|_| gw.token()).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|t| s.spawn(|| gw.get_bearer("/api", t).status().as_u16()))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 200);
        }
    });
    assert_eq!(gw.auth.jwks_count(), 1);
}

/// The AS rolls its key: the first JWT with the new `kid` causes one
/// re-fetch and is accepted, without a reload.
#[test]
fn rolled_key_is_fetched_without_reload() {
    let gw = fetching_gateway("phantom_token_jwks_refetch_interval 0s;");
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
    gw.auth.set_jwks(&[SigningKey::Rsa1, SigningKey::Rsa2]);
    gw.auth.set_signing_key(SigningKey::Rsa2);
    for _ in 0..3 {
        let echoed = assert_forwarded(gw.get_bearer("/api", &gw.token()));
        let header = jsonwebtoken::decode_header(echoed.bearer().unwrap()).unwrap();
        assert_eq!(header.kid.as_deref(), Some("test-key-2"));
    }
    assert_eq!(gw.auth.jwks_count(), 2);
}

/// Forged `kid`s cannot make the gateway hammer the AS: at most one fetch
/// per refetch interval.
#[test]
fn a_flood_of_unknown_kids_is_bounded() {
    let gw = fetching_gateway("phantom_token_jwks_refetch_interval 1h;");
    for i in 0..20 {
        let forged = gw.auth.sign_jwt_with(
            SigningKey::Rsa1,
            Some(&format!("forged-{i}")),
            &gw.auth.claims_of(&gw.token()).unwrap(),
        );
        gw.auth.set_fault(Fault::Body(forged.into_bytes()));
        assert_error(gw.get_bearer("/api", &gw.token()), 502, SERVER_ERROR);
    }
    gw.expect_log("failed verification: no key with kid \"forged-19\"");
    assert_eq!(gw.auth.jwks_count(), 1);
    gw.auth.clear_fault();
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
}

/// The JWKS endpoint goes down: the keys at hand keep verifying (refresh
/// attempts fail and are logged).
#[test]
fn cached_keys_survive_an_unavailable_jwks_endpoint() {
    let gw =
        fetching_gateway("phantom_token_jwks_refresh 1ms; phantom_token_jwks_refetch_interval 0s;");
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
    gw.auth.set_jwks_status(Some(500));
    for _ in 0..3 {
        assert_forwarded(gw.get_bearer("/api", &gw.token()));
    }
    assert!(gw.auth.jwks_count() >= 2, "refresh was attempted");
    gw.expect_log("JWKS request returned an unusable response (status: 500");
}

#[test]
fn no_keys_at_all_is_bad_gateway() {
    let gw = fetching_gateway("");
    gw.auth.set_jwks_status(Some(503));
    assert_error(gw.get_bearer("/api", &gw.token()), 502, SERVER_ERROR);
    gw.expect_log("failed verification: no keys (the JWKS could not be fetched)");
    assert_eq!(gw.echo.request_count(), 0);
}

#[test]
fn jwks_request_needs_a_uri() {
    assert_emerg_at(
        &check_http("phantom_token_jwks_request jwks;"),
        "phantom_token_jwks_request",
        r#"invalid location "jwks" in "phantom_token_jwks_request" directive, a URI ("/...") is required"#,
    );
}

/// Fetched keys live in shared memory that a reload keeps: after a reload
/// the new workers verify without fetching again.
#[test]
fn fetched_keys_survive_a_reload() {
    let gw = fetching_gateway("");
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
    gw.nginx.reload();
    gw.auth.set_jwks_status(Some(500));
    for _ in 0..4 {
        assert_forwarded(gw.get_bearer("/api", &gw.token()));
    }
    assert_eq!(gw.auth.jwks_count(), 1);
}

/// The admin warm-up uses the keys at hand and never fetches.
#[test]
fn warm_up_uses_the_keys_at_hand() {
    let gw = fetching_gateway_with(
        Parts {
            http: "phantom_token_cache_zone tokens:1m;",
            server: "location = /admin { phantom_token_cache_admin tokens; }",
            api: "phantom_token_cache tokens;",
            ..Parts::default()
        },
        |auth| {
            format!(
                "location = /jwks {{ internal; proxy_pass {}; }}",
                auth.jwks_url()
            )
        },
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let jwt = gw.auth.sign_jwt(&json!({"sub": "warmed", "exp": exp}));
    let warm = || {
        client()
            .post(gw.nginx.url("/admin"))
            .body(json!({"action": "warm", "token": "w1", "jwt": jwt, "ttl": 60}).to_string())
            .send()
            .unwrap()
    };
    let before = warm();
    assert_eq!(before.status().as_u16(), 422);
    assert_eq!(
        before.text().unwrap(),
        r#"{"error":"the JWT is refused: no keys (the JWKS could not be fetched)"}"#
    );
    assert_eq!(gw.auth.jwks_count(), 0);
    // A request fetches the keys; then the warm-up verifies.
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
    assert_eq!(warm().status().as_u16(), 200);
    let echoed = assert_forwarded(gw.get_bearer("/api", "w1"));
    assert_eq!(echoed.bearer(), Some(jwt.as_str()));
}

#[test]
fn a_block_has_one_key_source() {
    assert_emerg_at(
        &check_http("phantom_token_jwks_request /jwks;\nphantom_token_jwks off;"),
        "phantom_token_jwks off",
        r#""phantom_token_jwks" directive is duplicate"#,
    );
}

#[test]
fn the_key_zone_name_is_reserved() {
    assert_emerg_at(
        &check_http("phantom_token_cache_zone phantom_token_jwks:1m;"),
        "phantom_token_cache_zone",
        r#"the zone name "phantom_token_jwks" is reserved for JWT verification keys"#,
    );
}

/// A server-level `error_page` and a fallback JWKS location: nothing of the
/// JWKS subrequest reaches the client, and the fallback's keys are used.
#[test]
fn jwks_subrequest_redirects_stay_inside() {
    for fallback in [false, true] {
        let down = ClosedPort::reserve();
        let gw = fetching_gateway_with(
            Parts {
                server: r#"error_page 500 502 503 504 /50x.html;
                    location = /50x.html { return 200 "<html>50x</html>"; }"#,
                ..Parts::default()
            },
            |auth| {
                if fallback {
                    format!(
                        "location = /jwks {{ internal; error_page 502 = @backup_jwks; proxy_pass http://127.0.0.1:{}/jwks; }}
                         location @backup_jwks {{ rewrite ^ /jwks break; proxy_pass http://127.0.0.1:{}; }}",
                        down.port(),
                        auth.port()
                    )
                } else {
                    format!(
                        "location = /jwks {{ internal; proxy_pass http://127.0.0.1:{}/jwks; }}",
                        down.port()
                    )
                }
            },
        );
        let token = gw.token();
        let raw = raw_request(
            gw.nginx.port(),
            format!("GET /api HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n")
                .as_bytes(),
        );
        if fallback {
            assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
            assert!(
                !raw.contains("\"kty\""),
                "no JWKS byte in the answer: {raw}"
            );
        } else {
            assert!(raw.starts_with("HTTP/1.1 502 "), "{raw}");
            assert!(raw.ends_with(SERVER_ERROR), "{raw}");
            assert!(!raw.contains("<html>"), "{raw}");
            gw.expect_log("JWKS request returned an unusable response");
        }
    }
}

/// The JWKS location may serve a file (file buffers, sendfile); an answer
/// over 128 KB is refused without touching the keys.
#[test]
fn jwks_from_a_static_file_and_size_limit() {
    let dir = std::env::temp_dir().join(format!("phantom-jwks-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(&good, jwks_json(&[SigningKey::Rsa1])).unwrap();
    let big = dir.join("big.json");
    // A valid JWKS padded past the limit with an ignored member.
    let padded = jwks_json(&[SigningKey::Rsa1]).replacen(
        '{',
        &format!("{{\"pad\":\"{}\",", "x".repeat(140 * 1024)),
        1,
    );
    std::fs::write(&big, padded).unwrap();
    for (file, ok) in [(&good, true), (&big, false)] {
        let file = file.display().to_string();
        let gw = fetching_gateway_with(
            Parts {
                http: "sendfile on;",
                ..Parts::default()
            },
            |_| {
                format!(
                    "location = /jwks {{ internal; default_type application/json; alias {file}; }}"
                )
            },
        );
        let resp = gw.get_bearer("/api", &gw.token());
        if ok {
            assert_forwarded(resp);
        } else {
            assert_error(resp, 502, SERVER_ERROR);
            gw.expect_log("JWKS request returned a JWKS larger than 131072 bytes");
        }
    }
}

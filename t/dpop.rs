//! `phantom_token_dpop on`: `Authorization: DPoP <token>` (RFC 9449) is
//! introspected like a Bearer token and forwarded as `DPoP <jwt>`, with the
//! client's `DPoP` proof passed through for the API to verify. Off (the
//! default), a DPoP token gets 401 as with the C module.

mod common;
use common::*;

const CHALLENGE: &str = r#"Bearer realm="api""#;
const PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2In0.eyJodG0iOiJHRVQifQ.c2ln";

fn get_dpop(gw: &Gateway, token: &str) -> Response {
    client()
        .get(gw.nginx.url("/api/dpop"))
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", PROOF)
        .send()
        .unwrap()
}

#[test]
fn dpop_is_refused_by_default() {
    let gw = gateway("", "");
    let token = gw.token();
    assert_unauthorized(get_dpop(&gw, &token), CHALLENGE);
    assert_eq!(gw.auth.introspection_count(), 0);
}

fn dpop_tokens_are_exchanged(cache: Cache) {
    let (http, api) = match cache {
        Cache::Off => ("", "phantom_token_dpop on;"),
        Cache::On => (
            "phantom_token_cache_zone tokens:1m;",
            "phantom_token_dpop on; phantom_token_cache tokens;",
        ),
    };
    let api = format!("{api} proxy_set_header X-Jwt $phantom_token_jwt;");
    let gw = gateway_parts(Parts {
        http,
        api: &api,
        ..Parts::default()
    });
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let token = gw
        .auth
        .issue_token(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}));
    for _ in 0..2 {
        let echoed = assert_forwarded(get_dpop(&gw, &token));
        let value = echoed.header("authorization").unwrap();
        let jwt = value.strip_prefix("DPoP ").expect("forwarded as DPoP");
        assert_eq!(
            gw.auth.decode_jwt(jwt)["cnf"]["jkt"],
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        assert_eq!(
            echoed.header("dpop"),
            Some(PROOF),
            "the proof passes through"
        );
        assert_eq!(echoed.header("x-jwt"), Some(jwt));
    }
    // A DPoP-bound token presented as Bearer is refused (RFC 9449 §7.2).
    assert_unauthorized(gw.get_bearer("/api", &token), CHALLENGE);
    gw.expect_log("DPoP-bound token presented as a bearer token");
    // An unbound token still works as Bearer.
    let plain = gw.token();
    let echoed = assert_forwarded(gw.get_bearer("/api", &plain));
    assert!(echoed.bearer().is_some());
    let expected = if cache == Cache::On { 2 } else { 4 };
    assert_eq!(gw.auth.introspection_count(), expected);
}

with_and_without_cache!(dpop_tokens_are_exchanged);

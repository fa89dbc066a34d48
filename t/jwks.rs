//! JWT verification with `phantom_token_jwks <file>`: every JWT, fresh or
//! warmed, is verified (signature, `exp`/`nbf` with leeway, `iss`, `aud`)
//! before it is forwarded or stored; a bad key file fails `nginx -t`.

mod common;
use common::*;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh file path for a JWKS (removed by the OS temp cleaner; tiny).
fn jwks_file(keys: &[SigningKey]) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("phantom-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("jwks-{}.json", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, jwks_json(keys)).unwrap();
    path
}

/// The standard gateway with `phantom_token_jwks <file>` and `extra` at
/// `http` level, and the cache when `cache` is on.
fn verifying_gateway(keys: &[SigningKey], extra: &str, cache: Cache) -> Gateway {
    let (zone, use_cache, admin) = match cache {
        Cache::Off => ("", "", ""),
        Cache::On => (
            "phantom_token_cache_zone tokens:1m;",
            "phantom_token_cache tokens;",
            "location = /admin { phantom_token_cache_admin tokens; }",
        ),
    };
    let http = format!(
        "phantom_token_jwks {};\n{extra}\n{zone}",
        jwks_file(keys).display()
    );
    let gw = gateway_parts(Parts {
        http: &http,
        api: use_cache,
        server: admin,
        ..Parts::default()
    });
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw
}

/// The AS answers every introspection with this JWT.
fn answer_with(gw: &Gateway, jwt: &str) {
    gw.auth.set_fault(Fault::Body(jwt.as_bytes().to_vec()));
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"sub": "alice", "scope": "read", "aud": "api", "exp": now_secs() + 300});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn assert_refused(gw: &Gateway, reason: &str) {
    let token = gw.token();
    let forwarded = gw.echo.request_count();
    assert_error(gw.get_bearer("/api", &token), 502, SERVER_ERROR);
    gw.expect_log(&format!(
        "Introspection subrequest returned a JWT that failed verification: {reason} while introspecting token"
    ));
    assert_eq!(
        gw.echo.request_count(),
        forwarded,
        "nothing reached the API"
    );
}

fn every_key_type_verifies(cache: Cache) {
    let all = [
        SigningKey::Rsa1,
        SigningKey::Rsa2,
        SigningKey::Ec,
        SigningKey::Ed,
    ];
    let gw = verifying_gateway(&all, "", cache);
    for key in all {
        gw.auth.set_signing_key(key);
        let token = gw.token();
        for _ in 0..2 {
            let echoed = assert_forwarded(gw.get_bearer("/api", &token));
            let jwt = echoed.bearer().unwrap();
            let header = jsonwebtoken::decode_header(jwt).unwrap();
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
        }
    }
    let introspections = gw.auth.introspection_count();
    assert_eq!(introspections, if cache == Cache::On { 4 } else { 8 });
}

with_and_without_cache!(every_key_type_verifies);

#[test]
fn wrong_key_is_refused_and_not_cached() {
    let gw = verifying_gateway(&[SigningKey::Rsa1], "", Cache::On);
    gw.auth.set_signing_key(SigningKey::Foreign);
    assert_refused(&gw, "bad signature");
    let token = gw.token();
    assert_error(gw.get_bearer("/api", &token), 502, SERVER_ERROR);
    assert_error(gw.get_bearer("/api", &token), 502, SERVER_ERROR);
    assert_eq!(
        gw.auth.introspection_count(),
        3,
        "a refused JWT is never stored"
    );
}

#[test]
fn unknown_kid_is_refused() {
    let gw = verifying_gateway(&[SigningKey::Rsa1], "", Cache::Off);
    gw.auth.set_signing_key(SigningKey::Rsa2);
    assert_refused(&gw, "no key with kid \"test-key-2\"");
}

#[test]
fn unsigned_jwt_is_refused() {
    let gw = verifying_gateway(&[SigningKey::Rsa1], "", Cache::Off);
    // `alg: none` with a (meaningless) signature segment: well-formed.
    let jwt = format!("{}c2ln", gw.auth.unsigned_jwt(&claims(json!({}))));
    answer_with(&gw, &jwt);
    assert_refused(&gw, "unsigned JWT (alg \"none\") refused");
}

#[test]
fn expired_and_not_yet_valid_with_leeway() {
    // Default leeway: 60 s.
    let gw = verifying_gateway(&[SigningKey::Rsa1], "", Cache::Off);
    let stale = gw.auth.sign_jwt(&claims(json!({"exp": now_secs() - 30})));
    answer_with(&gw, &stale);
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
    let expired = gw.auth.sign_jwt(&claims(json!({"exp": now_secs() - 120})));
    answer_with(&gw, &expired);
    assert_refused(&gw, "expired (\"exp\")");

    let gw = verifying_gateway(
        &[SigningKey::Rsa1],
        "phantom_token_jwt_leeway 0s;",
        Cache::Off,
    );
    answer_with(
        &gw,
        &gw.auth.sign_jwt(&claims(json!({"exp": now_secs() - 30}))),
    );
    assert_refused(&gw, "expired (\"exp\")");
    let future = gw.auth.sign_jwt(&claims(json!({"nbf": now_secs() + 120})));
    answer_with(&gw, &future);
    assert_refused(&gw, "not yet valid (\"nbf\")");
    let no_exp = gw.auth.sign_jwt(&claims(json!({"exp": null})));
    answer_with(&gw, &no_exp);
    assert_refused(&gw, "no \"exp\" claim");
}

#[test]
fn issuer_and_audience() {
    let gw = verifying_gateway(
        &[SigningKey::Rsa1],
        "phantom_token_jwt_audience web; phantom_token_jwt_audience api;",
        Cache::Off,
    );
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
    let other_aud = gw.auth.issue_token(json!({"aud": "other"}));
    assert_error(gw.get_bearer("/api", &other_aud), 502, SERVER_ERROR);
    gw.expect_log("failed verification: wrong audience (\"aud\")");

    let gw = verifying_gateway(
        &[SigningKey::Rsa1],
        "phantom_token_jwt_issuer https://login.example.com;",
        Cache::Off,
    );
    assert_refused(&gw, "wrong issuer (\"iss\")");
    let good = gw
        .auth
        .sign_jwt(&claims(json!({"iss": "https://login.example.com"})));
    answer_with(&gw, &good);
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
}

/// The AS rolls its key: with a key file, the new `kid` is accepted after
/// the file is updated and NGINX reloaded.
#[test]
fn rotated_key_after_reload() {
    let mut gw = verifying_gateway(&[SigningKey::Rsa1], "", Cache::On);
    let token = gw.token();
    assert_forwarded(gw.get_bearer("/api", &token));
    gw.auth.set_signing_key(SigningKey::Rsa2);
    assert_refused(&gw, "no key with kid \"test-key-2\"");
    let rolled = format!(
        "phantom_token_jwks {};\nphantom_token_cache_zone tokens:1m;",
        jwks_file(&[SigningKey::Rsa1, SigningKey::Rsa2]).display()
    );
    let conf = standard_conf(
        &gw.auth,
        &gw.echo,
        gw.nginx.port(),
        Parts {
            http: &rolled,
            api: "phantom_token_cache tokens;",
            ..Parts::default()
        },
    );
    gw.nginx.write_config(&conf);
    gw.nginx.reload();
    let fresh = gw.token();
    let echoed = assert_forwarded(gw.get_bearer("/api", &fresh));
    let header = jsonwebtoken::decode_header(echoed.bearer().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some("test-key-2"));
}

#[test]
fn warm_up_is_verified() {
    let gw = verifying_gateway(&[SigningKey::Rsa1], "", Cache::On);
    let warm = |token: &str, jwt: &str| {
        client()
            .post(gw.nginx.url("/admin"))
            .body(json!({"action": "warm", "token": token, "jwt": jwt, "ttl": 60}).to_string())
            .send()
            .unwrap()
    };
    // `alg: none` with a (meaningless) signature segment: well-formed.
    let unsigned = format!("{}c2ln", gw.auth.unsigned_jwt(&claims(json!({}))));
    let resp = warm("warm-token-1", &unsigned);
    assert_eq!(resp.status().as_u16(), 422);
    assert_eq!(
        resp.text().unwrap(),
        r#"{"error":"the JWT is refused: unsigned JWT (alg \"none\") refused"}"#
    );
    let foreign = gw
        .auth
        .sign_jwt_with(SigningKey::Foreign, None, &claims(json!({})));
    let resp = warm("warm-token-1", &foreign);
    assert_eq!(resp.status().as_u16(), 422);
    assert_eq!(
        resp.text().unwrap(),
        r#"{"error":"the JWT is refused: bad signature"}"#
    );
    assert_eq!(gw.get_bearer("/api", "warm-token-1").status().as_u16(), 401);
    let good = gw.auth.sign_jwt(&claims(json!({"sub": "warmed"})));
    assert_eq!(warm("warm-token-2", &good).status().as_u16(), 200);
    let echoed = assert_forwarded(gw.get_bearer("/api", "warm-token-2"));
    assert_eq!(echoed.bearer(), Some(good.as_str()));
}

/// Without verification configured, the warm-up still refuses `alg: none`.
#[test]
fn warm_up_refuses_unsigned_without_keys() {
    let gw = gateway_parts(Parts {
        http: "phantom_token_cache_zone tokens:1m;",
        server: "location = /admin { phantom_token_cache_admin tokens; }",
        api: "phantom_token_cache tokens;",
        ..Parts::default()
    });
    let unsigned = format!("{}c2ln", gw.auth.unsigned_jwt(&claims(json!({}))));
    let resp = client()
        .post(gw.nginx.url("/admin"))
        .body(json!({"action": "warm", "token": "t", "jwt": unsigned, "ttl": 60}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert_eq!(gw.get_bearer("/api", "t").status().as_u16(), 401);
}

#[test]
fn bad_key_files_fail_nginx_t() {
    let dir = jwks_file(&[SigningKey::Rsa1])
        .parent()
        .unwrap()
        .to_path_buf();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cases = [
        (
            dir.join("missing.json"),
            "cannot read JWKS file \"PATH\" in \"phantom_token_jwks\" directive: No such file or directory (os error 2)".to_string(),
        ),
        (
            write("garbage.json", "{not json"),
            "invalid JWKS file \"PATH\" in \"phantom_token_jwks\" directive: not a JWKS: key must be a string at line 1 column 2".to_string(),
        ),
        (
            write("empty.json", r#"{"keys":[]}"#),
            "invalid JWKS file \"PATH\" in \"phantom_token_jwks\" directive: no signature keys".to_string(),
        ),
        (
            write("oct.json", r#"{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}"#),
            "invalid JWKS file \"PATH\" in \"phantom_token_jwks\" directive: key s: symmetric (\"oct\") keys are not accepted".to_string(),
        ),
    ];
    for (path, message) in cases {
        let t = check_http(&format!("phantom_token_jwks {};", path.display()));
        let message = message.replace("PATH", &path.display().to_string());
        assert_emerg_at(&t, "phantom_token_jwks", &message);
    }
}

/// `phantom_token_jwks off` in a location turns inherited verification off.
#[test]
fn off_turns_inherited_verification_off() {
    let gw = verifying_gateway(&[SigningKey::Rsa2], "", Cache::Off);
    assert_error(gw.get_bearer("/api", &gw.token()), 502, SERVER_ERROR);
    let gw = gateway_parts(Parts {
        http: &format!(
            "phantom_token_jwks {};",
            jwks_file(&[SigningKey::Rsa2]).display()
        ),
        api: "phantom_token_jwks off;",
        ..Parts::default()
    });
    assert_forwarded(gw.get_bearer("/api", &gw.token()));
}

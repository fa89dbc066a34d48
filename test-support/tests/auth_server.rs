//! Self-tests of the test authorization server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use test_support::{
    client, jwks_json, parse_raw_response, raw_request, read_until_closed, AuthServer, Fault,
    SigningKey, CLIENT_ID, CLIENT_SECRET, JWT_KID,
};

fn introspect(auth: &AuthServer, body: &str) -> reqwest::blocking::Response {
    client()
        .post(auth.introspection_url())
        .header("Authorization", auth.basic_auth_header())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/jwt")
        .body(body.to_string())
        .send()
        .expect("introspection request")
}

fn form_token(token: &str) -> String {
    format!(
        "token={}",
        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    )
}

/// A raw HTTP/1.0 introspection request, as nginx's proxy module sends it.
fn raw_introspection(auth: &AuthServer, token: &str) -> Vec<u8> {
    let body = form_token(token);
    format!(
        "POST /introspect HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        auth.basic_auth_header(),
        body.len()
    )
    .into_bytes()
}

#[test]
fn active_token_gives_signed_jwt() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({"scope": "read", "custom": 7}));
    assert!(token.starts_with("opq_") && token.len() == 36, "{token}");
    let resp = introspect(&auth, &form_token(&token));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/jwt");
    assert!(resp.headers().get("cache-control").is_none());
    let jwt = resp.text().unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.kid.as_deref(), Some(JWT_KID));
    let claims = auth.decode_jwt(&jwt);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["custom"], 7);
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["iss"], auth.issuer());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    assert!(claims["jti"].is_string());
    assert_eq!(auth.introspection_count(), 1);
    let rec = &auth.requests()[0];
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.path, "/introspect");
    assert_eq!(rec.token.as_deref(), Some(token.as_str()));
    assert_eq!(rec.header("accept"), Some("application/jwt"));
    assert!(rec.headers.iter().all(|(n, _)| n == &n.to_lowercase()));
}

#[test]
fn null_claim_removes_default() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({"exp": null, "aud": ["a", "b"]}));
    let jwt = introspect(&auth, &form_token(&token)).text().unwrap();
    let claims = auth.decode_jwt(&jwt);
    assert!(claims.get("exp").is_none());
    assert_eq!(claims["aud"], json!(["a", "b"]));
}

#[test]
#[should_panic(expected = "does not verify")]
fn decode_jwt_rejects_bad_signature() {
    let auth = AuthServer::start();
    let jwt = auth.sign_jwt(&json!({"sub": "alice"}));
    let (rest, sig) = jwt.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    auth.decode_jwt(&format!("{rest}.{flipped}{}", &sig[1..]));
}

#[test]
fn client_authentication_is_required() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({}));
    let c = client();
    let missing = c
        .post(auth.introspection_url())
        .body(form_token(&token))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().unwrap();
    assert_eq!(body["error"], "invalid_client");
    let wrong = c
        .post(auth.introspection_url())
        .basic_auth(CLIENT_ID, Some("nope"))
        .body(form_token(&token))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let good = c
        .post(auth.introspection_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .body(form_token(&token))
        .send()
        .unwrap();
    assert_eq!(good.status(), 200);
}

#[test]
fn unknown_revoked_and_expired_tokens_give_204() {
    let auth = AuthServer::start();
    let resp = introspect(&auth, "token=opq_unknown");
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().unwrap().is_empty());

    let token = auth.issue_token(json!({}));
    assert_eq!(introspect(&auth, &form_token(&token)).status(), 200);
    auth.revoke(&token);
    assert_eq!(introspect(&auth, &form_token(&token)).status(), 204);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = auth.issue_token(json!({"exp": now - 10}));
    assert_eq!(introspect(&auth, &form_token(&expired)).status(), 204);
    assert_eq!(auth.introspection_count(), 4);
    auth.reset_records();
    assert_eq!(auth.introspection_count(), 0);
}

#[test]
fn form_decoding_of_special_characters() {
    let auth = AuthServer::start();
    auth.issue_token_exact("a b+c&d", json!({"sub": "special"}));
    let resp = introspect(&auth, "token=a+b%2Bc%26d");
    assert_eq!(resp.status(), 200);
    assert_eq!(auth.decode_jwt(&resp.text().unwrap())["sub"], "special");
    let rec = auth.requests().pop().unwrap();
    assert_eq!(rec.token.as_deref(), Some("a b+c&d"));
    assert_eq!(rec.body, b"token=a+b%2Bc%26d");

    for token in ["x+y/z=%&", "jeton-été-✓", &"L".repeat(16 * 1024)] {
        auth.issue_token_exact(token, json!({"sub": token.len()}));
        let resp = introspect(&auth, &form_token(token));
        assert_eq!(resp.status(), 200, "token {token:?}");
        assert_eq!(auth.decode_jwt(&resp.text().unwrap())["sub"], token.len());
    }
}

#[test]
fn chunked_request_body_and_keep_alive() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({}));
    let body = form_token(&token);
    let (a, b) = body.split_at(5);
    let mut s = TcpStream::connect(("127.0.0.1", auth.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "POST /introspect HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        auth.basic_auth_header(),
        a.len(),
        b.len()
    );
    // Two requests on the same keep-alive connection.
    for _ in 0..2 {
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = vec![0u8; 8192];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n")
            || parse_raw_response(&String::from_utf8_lossy(&got)).2.len() < 300
        {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed early");
            got.extend_from_slice(&buf[..n]);
        }
        let (status, headers, jwt) = parse_raw_response(&String::from_utf8_lossy(&got));
        assert_eq!(status, 200);
        assert!(headers.contains(&("connection".into(), "keep-alive".into())));
        auth.decode_jwt(&jwt);
    }
    assert_eq!(auth.requests()[0].token.as_deref(), Some(token.as_str()));
    assert_eq!(auth.requests()[1].version, "HTTP/1.1");
}

#[test]
fn http10_request_closes_connection() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({}));
    let raw = raw_request(auth.port(), &raw_introspection(&auth, &token));
    let (status, headers, body) = parse_raw_response(&raw);
    assert_eq!(status, 200);
    assert!(headers.contains(&("connection".into(), "close".into())));
    auth.decode_jwt(&body);
    assert_eq!(auth.requests()[0].version, "HTTP/1.0");
}

#[test]
fn cache_control_header() {
    let auth = AuthServer::start();
    auth.set_cache_control(Some("max-age=60".into()));
    let token = auth.issue_token(json!({}));
    let resp = introspect(&auth, &form_token(&token));
    assert_eq!(resp.headers()["cache-control"], "max-age=60");
    auth.set_cache_control(None);
    let resp = introspect(&auth, &form_token(&token));
    assert!(resp.headers().get("cache-control").is_none());
}

#[test]
fn token_endpoint_client_credentials() {
    let auth = AuthServer::start();
    let c = client();
    let resp: Value = c
        .post(auth.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=read")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp["token_type"], "bearer");
    assert_eq!(resp["expires_in"], 300);
    assert_eq!(resp["scope"], "read");
    let token = resp["access_token"].as_str().unwrap();
    let jwt = introspect(&auth, &form_token(token)).text().unwrap();
    assert_eq!(auth.decode_jwt(&jwt)["scope"], "read");

    let form_auth = c
        .post(auth.token_url())
        .body(format!(
            "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        ))
        .send()
        .unwrap();
    assert_eq!(form_auth.status(), 200);
    let bad = c
        .post(auth.token_url())
        .body("grant_type=client_credentials&client_id=x&client_secret=y")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 401);
    let not_found = c.get(auth.introspection_url() + "x").send().unwrap();
    assert_eq!(not_found.status(), 404);
    assert_eq!(auth.requests().len(), 5);
}

#[test]
fn fault_status() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({}));
    for (status, body) in [(503, "down"), (418, "{\"error\":\"teapot\"}"), (302, "")] {
        auth.set_fault(Fault::Status(status, body.into()));
        let resp = introspect(&auth, &form_token(&token));
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.text().unwrap(), body);
    }
    auth.clear_fault();
    assert_eq!(introspect(&auth, &form_token(&token)).status(), 200);
}

#[test]
fn fault_delay() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({}));
    auth.set_fault(Fault::Delay(Duration::from_millis(300)));
    let start = Instant::now();
    let resp = introspect(&auth, &form_token(&token));
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(resp.status(), 200);
    auth.decode_jwt(&resp.text().unwrap());
}

/// Sends an introspection request on a raw socket and reads until EOF or
/// error; returns the bytes and the final read result.
fn raw_exchange(auth: &AuthServer) -> (Vec<u8>, std::io::Result<usize>) {
    let token = auth.issue_token(json!({}));
    let mut s = TcpStream::connect(("127.0.0.1", auth.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&raw_introspection(auth, &token)).unwrap();
    read_until_closed(&mut s)
}

#[test]
fn fault_reset() {
    let auth = AuthServer::start();
    auth.set_fault(Fault::Reset);
    let (got, last) = raw_exchange(&auth);
    assert!(got.is_empty());
    let err = last.expect_err("expected a connection reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(auth.introspection_count(), 1);
}

#[test]
fn fault_close_without_response() {
    let auth = AuthServer::start();
    auth.set_fault(Fault::CloseWithoutResponse);
    let (got, last) = raw_exchange(&auth);
    assert!(got.is_empty());
    assert_eq!(last.unwrap(), 0);
}

#[test]
fn fault_body() {
    let auth = AuthServer::start();
    for body in [
        &b"not.a.jwt"[..],
        b"",
        b"abc\r\ndef\n",
        &vec![b'x'; 100_000],
    ] {
        auth.set_fault(Fault::Body(body.to_vec()));
        let resp = introspect(&auth, "token=whatever");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/jwt");
        assert_eq!(resp.bytes().unwrap().as_ref(), body);
    }
}

#[test]
fn fault_big_jwt() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({"sub": "big"}));
    for size in [5_000, 40_000] {
        auth.set_fault(Fault::BigJwt(size));
        let jwt = introspect(&auth, &form_token(&token)).text().unwrap();
        assert!(jwt.len().abs_diff(size) <= 8, "{} vs {size}", jwt.len());
        let claims = auth.decode_jwt(&jwt);
        assert_eq!(claims["sub"], "big");
        assert!(claims["padding"].is_string());
    }
}

#[test]
fn fault_split_write() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({}));
    auth.set_fault(Fault::SplitWrite(Duration::from_millis(300)));
    let mut s = TcpStream::connect(("127.0.0.1", auth.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    s.write_all(&raw_introspection(&auth, &token)).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        head.ends_with("\r\n\r\n"),
        "first write is only the head: {head:?}"
    );
    assert!(head.starts_with("HTTP/1.1 200 "));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    auth.decode_jwt(&String::from_utf8(rest).unwrap());
}

#[test]
fn basic_auth_header_value() {
    let auth = AuthServer::start();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("api-gateway:gateway-secret")
    );
    assert_eq!(auth.basic_auth_header(), expected);
    assert!(auth.public_key_pem().contains("BEGIN PUBLIC KEY"));
}

/// Verifies `jwt` with the JWK of its `kid` in `jwks` (a JWKS document) and
/// returns its claims.
fn verify_with_jwks(jwks: &str, jwt: &str) -> jsonwebtoken::errors::Result<Value> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks).unwrap();
    let header = jsonwebtoken::decode_header(jwt)?;
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(jwt, &key, &validation).map(|d| d.claims)
}

fn introspect_accept(auth: &AuthServer, token: &str, accept: &str) -> reqwest::blocking::Response {
    client()
        .post(auth.introspection_url())
        .header("Authorization", auth.basic_auth_header())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", accept)
        .body(form_token(token))
        .send()
        .expect("introspection request")
}

#[test]
fn signing_key_choice_applies_to_introspection_answers() {
    let auth = AuthServer::start();
    let token = auth.issue_token(json!({"sub": "keyed"}));
    let all = [
        SigningKey::Rsa1,
        SigningKey::Rsa2,
        SigningKey::Ec,
        SigningKey::Ed,
    ];
    let jwks = jwks_json(&all);
    for key in all {
        auth.set_signing_key(key);
        let jwt = introspect(&auth, &form_token(&token)).text().unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, key.alg());
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(verify_with_jwks(&jwks, &jwt).unwrap()["sub"], "keyed");
        assert_eq!(auth.issued_secrets().last(), Some(&jwt));
    }
    // Faults that sign use the chosen key too.
    auth.set_signing_key(SigningKey::Ec);
    auth.set_fault(Fault::BigJwt(6_000));
    let jwt = introspect(&auth, &form_token(&token)).text().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&jwt).unwrap().alg,
        Algorithm::ES256
    );
    assert!(jwt.len().abs_diff(6_000) <= 8, "{}", jwt.len());
    assert_eq!(verify_with_jwks(&jwks, &jwt).unwrap()["sub"], "keyed");
    auth.set_fault(Fault::Chunked);
    auth.set_signing_key(SigningKey::Ed);
    let jwt = introspect(&auth, &form_token(&token)).text().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&jwt).unwrap().alg,
        Algorithm::EdDSA
    );
    assert!(verify_with_jwks(&jwks, &jwt).is_ok());
    // Foreign: Rsa1's kid, but not Rsa1's signature.
    auth.clear_fault();
    auth.set_signing_key(SigningKey::Foreign);
    let jwt = introspect(&auth, &form_token(&token)).text().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&jwt).unwrap().kid.as_deref(),
        Some(JWT_KID)
    );
    assert!(verify_with_jwks(&jwks, &jwt).is_err());
    // sign_jwt and decode_jwt stay on Rsa1 whatever the signing key.
    let own = auth.sign_jwt(&json!({"sub": "rsa1"}));
    assert_eq!(auth.decode_jwt(&own)["sub"], "rsa1");
}

#[test]
fn sign_jwt_with_and_unsigned_jwt() {
    let auth = AuthServer::start();
    let claims = json!({"sub": "manual"});
    let jwt = auth.sign_jwt_with(SigningKey::Rsa2, None, &claims);
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.kid.as_deref(), Some("test-key-2"));
    assert_eq!(header.alg, Algorithm::RS256);
    let jwks = jwks_json(&[SigningKey::Rsa2]);
    assert_eq!(verify_with_jwks(&jwks, &jwt).unwrap(), claims);
    // A kid override names another key: verification with it fails.
    let lying = auth.sign_jwt_with(SigningKey::Rsa2, Some("test-key-1"), &claims);
    assert_eq!(
        jsonwebtoken::decode_header(&lying).unwrap().kid.as_deref(),
        Some("test-key-1")
    );
    assert!(verify_with_jwks(&jwks_json(&[SigningKey::Rsa1]), &lying).is_err());
    let rsa1 = auth.sign_jwt_with(SigningKey::Rsa1, None, &claims);
    assert_eq!(auth.decode_jwt(&rsa1), claims);
    let none = auth.unsigned_jwt(&claims);
    let parts: Vec<&str> = none.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2], "");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(head, json!({"alg": "none", "typ": "JWT"}));
    let body: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(body, claims);
    assert_eq!(auth.issued_secrets(), [jwt, lying, rsa1, none]);
}

#[test]
fn jwks_endpoint() {
    let auth = AuthServer::start();
    assert_eq!(auth.jwks_url(), format!("{}/jwks", auth.issuer()));
    let resp = client().get(auth.jwks_url()).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.text().unwrap();
    assert_eq!(body, jwks_json(&[SigningKey::Rsa1]));
    let jwt = auth.sign_jwt(&json!({"sub": "a"}));
    assert!(verify_with_jwks(&body, &jwt).is_ok());

    auth.set_jwks(&[SigningKey::Rsa2, SigningKey::Ec, SigningKey::Ed]);
    let set: Value = client()
        .get(auth.jwks_url())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["test-key-2", "test-ec-1", "test-ed-1"]);

    auth.set_jwks_status(Some(503));
    let resp = client().get(auth.jwks_url()).send().unwrap();
    assert_eq!(resp.status(), 503);
    assert!(!resp.text().unwrap().contains("keys"));
    auth.set_jwks_status(None);
    assert_eq!(client().get(auth.jwks_url()).send().unwrap().status(), 200);
    // Other paths and methods do not count.
    client().post(auth.jwks_url()).send().unwrap();
    introspect(&auth, "token=x");
    assert_eq!(auth.jwks_count(), 4);
}

#[test]
fn json_introspection_answers() {
    let auth = AuthServer::start();
    auth.set_signing_key(SigningKey::Ec);
    let token = auth.issue_token(json!({"scope": "read", "custom": 7}));
    let secrets_before = auth.issued_secrets().len();
    let resp = introspect_accept(&auth, &token, "application/json");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let answer: Value = resp.json().unwrap();
    assert_eq!(answer["active"], true);
    let mut expected = auth.claims_of(&token).unwrap();
    expected["active"] = json!(true);
    assert_eq!(answer, expected);
    assert_eq!(auth.issued_secrets().len(), secrets_before, "no JWT signed");

    for inactive in ["unknown", &auth.issue_token(json!({"exp": 1}))] {
        let resp = introspect_accept(&auth, inactive, "application/json");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.text().unwrap(), r#"{"active":false}"#);
    }
    auth.revoke(&token);
    let answer: Value = introspect_accept(&auth, &token, "text/plain, Application/JSON;q=0.9")
        .json()
        .unwrap();
    assert_eq!(answer, json!({"active": false}));

    // application/jwt anywhere in Accept: JWT mode.
    let token = auth.issue_token(json!({}));
    for accept in [
        "application/jwt, application/json",
        "application/jwt",
        "*/*",
    ] {
        let resp = introspect_accept(&auth, &token, accept);
        assert_eq!(
            resp.headers()["content-type"],
            "application/jwt",
            "{accept}"
        );
        let resp = introspect_accept(&auth, "unknown", accept);
        assert_eq!(resp.status(), 204, "{accept}");
    }

    // Client authentication as in JWT mode.
    let resp = client()
        .post(auth.introspection_url())
        .header("Authorization", "Basic d3Jvbmc6d3Jvbmc=")
        .header("Accept", "application/json")
        .body(form_token(&token))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));

    // Faults apply; body faults mangle active answers only.
    auth.set_cache_control(Some("max-age=60".into()));
    let resp = introspect_accept(&auth, &token, "application/json");
    assert_eq!(resp.headers()["cache-control"], "max-age=60");
    auth.set_fault(Fault::Status(503, "down".into()));
    assert_eq!(
        introspect_accept(&auth, &token, "application/json").status(),
        503
    );
    auth.set_fault(Fault::Chunked);
    let resp = introspect_accept(&auth, &token, "application/json");
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    assert_eq!(resp.json::<Value>().unwrap()["active"], true);
    auth.set_fault(Fault::Truncate(5));
    let resp = introspect_accept(&auth, "unknown", "application/json");
    assert_eq!(resp.text().unwrap(), r#"{"active":false}"#);
}

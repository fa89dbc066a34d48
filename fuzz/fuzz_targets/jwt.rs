//! The compact JWT shape check and its `exp` claim, on arbitrary bodies and
//! on arbitrary payloads wrapped in a well-formed JWT.

#![no_main]

#[allow(dead_code)]
#[path = "../../src/jwt.rs"]
mod jwt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// `exp` as a parsed `serde_json::Value` gives it (its maps keep the last
/// of duplicate keys, like the module): whole seconds, negatives as 0.
fn expected_exp(payload: &Value) -> Option<u64> {
    let n = payload.get("exp")?.as_number()?;
    n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
}

fuzz_target!(|data: &[u8]| {
    // The input as a whole body.
    match jwt::check_compact_jwt(data) {
        Err(jwt::JwtShapeError::Empty) => assert!(data.is_empty()),
        Err(jwt::JwtShapeError::Malformed) => assert!(!data.is_empty()),
        Ok(claims) => {
            let segments: Vec<&[u8]> = data.split(|&b| b == b'.').collect();
            assert_eq!(segments.len(), 3);
            for segment in &segments {
                assert!(!segment.is_empty());
                assert!(segment
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
            let payload = URL_SAFE_NO_PAD.decode(segments[1]).unwrap();
            assert!(payload.trim_ascii_start().starts_with(b"{"));
            // serde_json may reject what the module accepts (see below).
            if let Ok(payload) = serde_json::from_slice::<Value>(&payload) {
                assert_eq!(claims.exp, expected_exp(&payload));
            }
        }
    }

    // The input as the payload of a well-formed JWT: accepted whenever
    // serde_json parses it as an object, with the same `exp`. (The converse
    // does not hold yet: members the module skips unparsed may hold invalid
    // UTF-8, lone surrogates or nest deeper than serde_json's limit; see
    // `jwt_check_rejects_what_serde_json_rejects` in t/props.rs.)
    let body = format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(data));
    let result = jwt::check_compact_jwt(body.as_bytes());
    match serde_json::from_slice::<Value>(data) {
        Ok(payload) if payload.is_object() => {
            assert_eq!(result.map(|c| c.exp), Ok(expected_exp(&payload)));
        }
        Ok(_) => assert_eq!(result.map(|c| c.exp), Err(jwt::JwtShapeError::Malformed)),
        Err(_) => {}
    }
});

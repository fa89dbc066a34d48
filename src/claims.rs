//! The JWT's claims as NGINX variables (pure logic): decoding the payload
//! once, and the text of one claim (`$phantom_token_claim_<name>`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The claims of a compact JWT (its payload object), or `None` when it is
/// not one.
pub fn decode_claims(jwt: &[u8]) -> Option<Map<String, Value>> {
    let payload = jwt.split(|&b| b == b'.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    match serde_json::from_slice(&json).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The text of claim `name`: a string as it is, an array as its elements
/// joined by spaces (strings as they are, others as JSON), an object or
/// any other value as compact JSON; empty when absent or `null`.
pub fn claim_text(claims: &Map<String, Value>, name: &str) -> String {
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }
    match claims.get(name) {
        None => String::new(),
        Some(Value::Array(items)) => items.iter().map(scalar).collect::<Vec<_>>().join(" "),
        Some(v) => scalar(v),
    }
}

/// A JSON introspection answer (RFC 7662 §2.2): `Ok(Some(claims))` for
/// `"active": true`, `Ok(None)` for `"active": false`, else why it is not
/// one (for the error line).
pub fn introspection_answer(body: &[u8]) -> Result<Option<Map<String, Value>>, &'static str> {
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(body) else {
        return Err("an answer that is not a JSON object");
    };
    match claims.get("active") {
        Some(Value::Bool(true)) => Ok(Some(claims)),
        Some(Value::Bool(false)) => Ok(None),
        _ => Err("a JSON answer without a boolean \"active\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt_of(claims: &Value) -> String {
        format!(
            "e30.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn claims_as_text() {
        let jwt = jwt_of(&json!({
            "sub": "alice", "n": 5, "ok": true, "none": null,
            "aud": ["api", "web"], "mixed": ["a", 1, {"b": 2}],
            "obj": {"a": [1, 2], "b": "c"}
        }));
        let claims = decode_claims(jwt.as_bytes()).unwrap();
        let text = |name| claim_text(&claims, name);
        assert_eq!(text("sub"), "alice");
        assert_eq!(text("n"), "5");
        assert_eq!(text("ok"), "true");
        assert_eq!(text("none"), "");
        assert_eq!(text("missing"), "");
        assert_eq!(text("aud"), "api web");
        assert_eq!(text("mixed"), r#"a 1 {"b":2}"#);
        assert_eq!(text("obj"), r#"{"a":[1,2],"b":"c"}"#);
    }

    #[test]
    fn json_introspection_answers() {
        let active = introspection_answer(br#"{"active":true,"sub":"a"}"#).unwrap();
        assert_eq!(active.unwrap()["sub"], "a");
        assert_eq!(introspection_answer(br#"{"active":false}"#), Ok(None));
        assert!(introspection_answer(br#"{"active":"true"}"#).is_err());
        assert!(introspection_answer(br#"{"sub":"a"}"#).is_err());
        assert!(introspection_answer(b"[]").is_err());
        assert!(introspection_answer(b"eyJ.eyJ.sig").is_err());
    }

    #[test]
    fn not_a_jwt_has_no_claims() {
        assert_eq!(decode_claims(b"garbage"), None);
        assert_eq!(decode_claims(b"e30.W10.c2ln"), None); // payload `[]`
        assert_eq!(decode_claims(b"e30.!!.c2ln"), None);
    }
}

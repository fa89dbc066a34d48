//! Checks on the JWT returned by the authorization server (pure logic).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why an introspection answer cannot be forwarded as a JWT.
#[derive(Debug, PartialEq, Eq)]
pub enum JwtShapeError {
    /// The 200 response had no body.
    Empty,
    /// Not three base64url segments, or header/payload not JSON objects.
    Malformed,
}

impl core::fmt::Display for JwtShapeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            JwtShapeError::Empty => f.write_str("an empty body"),
            JwtShapeError::Malformed => f.write_str("a body that is not a compact JWT"),
        }
    }
}

/// What the module reads from a well-formed JWT (for the cache TTL).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JwtClaims {
    /// The `exp` claim in seconds since the epoch, if it is a number.
    pub exp: Option<u64>,
}

/// Accepts only a well-formed compact JWS (`header.payload.signature`,
/// base64url without padding, header and payload JSON objects) and returns
/// the claims the cache needs. The signature is not verified: the upstream
/// API does that.
pub fn check_compact_jwt(body: &[u8]) -> Result<JwtClaims, JwtShapeError> {
    if body.is_empty() {
        return Err(JwtShapeError::Empty);
    }
    let mut parts = body.split(|&b| b == b'.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtShapeError::Malformed);
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() || !is_base64url(signature) {
        return Err(JwtShapeError::Malformed);
    }
    // The decoder rejects any byte outside the base64url alphabet, padding
    // included, so header and payload need no separate alphabet check.
    let decode_object = |segment: &[u8]| {
        let json = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| JwtShapeError::Malformed)?;
        serde_json::from_slice::<JsonObject>(&json).map_err(|_| JwtShapeError::Malformed)
    };
    decode_object(header)?;
    let JsonObject { exp } = decode_object(payload)?;
    Ok(JwtClaims { exp })
}

/// Whether every byte is in the base64url alphabet (`A-Z a-z 0-9 - _`).
fn is_base64url(segment: &[u8]) -> bool {
    const ALPHABET: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
            b += 1;
        }
        table
    };
    segment.iter().all(|&b| ALPHABET[b as usize])
}

/// A JSON object, checked for syntax without building it: every member is
/// skipped except `exp` (the last one wins, as in a parsed object).
struct JsonObject {
    exp: Option<u64>,
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut exp = None;
                while let Some(ExpKey(is_exp)) = map.next_key()? {
                    if is_exp {
                        exp = numeric_date(&map.next_value::<serde_json::Value>()?);
                    } else {
                        map.next_value::<Checked>()?;
                    }
                }
                Ok(JsonObject { exp })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Any JSON value, checked as a full parse would (UTF-8, escapes and
/// surrogates in strings, serde_json's nesting limit) without building it.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CheckedVisitor;
        impl<'de> Visitor<'de> for CheckedVisitor {
            type Value = Checked;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                while map.next_entry::<Checked, Checked>()?.is_some() {}
                Ok(Checked)
            }
        }
        deserializer.deserialize_any(CheckedVisitor)
    }
}

/// An object key, remembered only as "is it `exp`".
struct ExpKey(bool);

impl<'de> Deserialize<'de> for ExpKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = ExpKey;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<ExpKey, E> {
                Ok(ExpKey(key == "exp"))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// A JWT NumericDate as whole seconds (fractions cut, negatives as 0);
/// `None` when the claim is not a number.
fn numeric_date(value: &serde_json::Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_f64().map(|f| f.max(0.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn jwt() -> String {
        format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"sub":"a"}"#)
        )
    }

    #[test]
    fn accepts_compact_jwt() {
        assert_eq!(
            check_compact_jwt(jwt().as_bytes()),
            Ok(JwtClaims { exp: None })
        );
    }

    #[test]
    fn reads_exp_claim() {
        let claims =
            |payload: &str| check_compact_jwt(format!("e30.{}.c2ln", b64(payload)).as_bytes());
        assert_eq!(
            claims(r#"{"exp":1700000000}"#),
            Ok(JwtClaims {
                exp: Some(1_700_000_000)
            })
        );
        assert_eq!(
            claims(r#"{"exp":1700000000.9}"#),
            Ok(JwtClaims {
                exp: Some(1_700_000_000)
            })
        );
        assert_eq!(claims(r#"{"exp":-5}"#), Ok(JwtClaims { exp: Some(0) }));
        assert_eq!(
            claims(r#"{"sub":"a","exp":"soon"}"#),
            Ok(JwtClaims { exp: None })
        );
        assert_eq!(
            claims(r#"{"exp":1,"e\u0078p":2}"#),
            Ok(JwtClaims { exp: Some(2) })
        );
        assert_eq!(
            claims(r#"{"sub":{"exp":3},"x":[1,{"exp":4}]}"#),
            Ok(JwtClaims { exp: None })
        );
        assert_eq!(claims(r#"{"sub":"a"}"#), Ok(JwtClaims { exp: None }));
    }

    #[test]
    fn errors_name_the_problem_for_the_log_line() {
        // Completes "Introspection subrequest returned ..." in the error log.
        assert_eq!(JwtShapeError::Empty.to_string(), "an empty body");
        assert_eq!(
            JwtShapeError::Malformed.to_string(),
            "a body that is not a compact JWT"
        );
    }

    #[test]
    fn rejects_empty_body() {
        assert_eq!(check_compact_jwt(b""), Err(JwtShapeError::Empty));
    }

    #[test]
    fn rejects_garbage_crlf_and_wrong_segment_count() {
        let with_crlf = format!("{}\r\nX-Injected: 1", jwt());
        let trailing_newline = format!("{}\n", jwt());
        let two_parts = format!("{}.{}", b64("{}"), b64("{}"));
        let four_parts = format!("{}.x", jwt());
        let not_json = format!("{}.{}.c2ln", b64("nope"), b64("{}"));
        let array_payload = format!("{}.{}.c2ln", b64("{}"), b64("[1]"));
        let array_header = format!("{}.{}.c2ln", b64("[]"), b64("{}"));
        let trailing_json = format!("{}.{}.c2ln", b64("{}"), b64("{} {}"));
        let broken_member = format!("{}.{}.c2ln", b64("{}"), b64(r#"{"a":tru}"#));
        let bad_utf8 = format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(b"{\"a\":\"\x80\"}"));
        let lone_surrogate = format!("e30.{}.c2ln", b64(r#"{"a":"\ud800"}"#));
        let too_deep = format!(
            "e30.{}.c2ln",
            b64(&format!(
                r#"{{"a":{}{}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            ))
        );
        let empty_signature = format!("{}.{}.", b64("{}"), b64("{}"));
        for body in [
            "garbage",
            "{\"active\":true}",
            with_crlf.as_str(),
            trailing_newline.as_str(),
            two_parts.as_str(),
            four_parts.as_str(),
            not_json.as_str(),
            array_payload.as_str(),
            array_header.as_str(),
            trailing_json.as_str(),
            broken_member.as_str(),
            bad_utf8.as_str(),
            lone_surrogate.as_str(),
            too_deep.as_str(),
            empty_signature.as_str(),
            "e30=.e30.c2ln",
            "e30.e3/9.c2ln",
            "e30.e3+9.c2ln",
            "e30.e30.c2ln=",
            "e30.e30.c2+n",
            "..",
        ] {
            assert_eq!(
                check_compact_jwt(body.as_bytes()),
                Err(JwtShapeError::Malformed),
                "{body:?}"
            );
        }
    }
}

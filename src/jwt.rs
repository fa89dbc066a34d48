//! Checks on the JWT returned by the authorization server (pure logic).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

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

/// Accepts only a well-formed compact JWS (`header.payload.signature`,
/// base64url without padding, header and payload JSON objects). The
/// signature is not verified: the upstream API does that.
pub fn check_compact_jwt(body: &[u8]) -> Result<(), JwtShapeError> {
    if body.is_empty() {
        return Err(JwtShapeError::Empty);
    }
    let mut parts = body.split(|&b| b == b'.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtShapeError::Malformed);
    };
    let is_b64url = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    };
    if header.is_empty() || payload.is_empty() || !is_b64url(signature) {
        return Err(JwtShapeError::Malformed);
    }
    for segment in [header, payload] {
        if !is_b64url(segment) {
            return Err(JwtShapeError::Malformed);
        }
        let json = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| JwtShapeError::Malformed)?;
        match serde_json::from_slice::<serde_json::Value>(&json) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Err(JwtShapeError::Malformed),
        }
    }
    Ok(())
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
        assert_eq!(check_compact_jwt(jwt().as_bytes()), Ok(()));
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
        for body in [
            "garbage",
            "{\"active\":true}",
            with_crlf.as_str(),
            trailing_newline.as_str(),
            two_parts.as_str(),
            four_parts.as_str(),
            not_json.as_str(),
            array_payload.as_str(),
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

//! Parsing of the client's `Authorization` header (pure logic, no FFI).

/// Extracts the token from an `Authorization` header value if it carries a
/// Bearer token.
///
/// Mirrors the C module: the scheme is compared case-insensitively and any
/// number of spaces (not tabs) between the scheme and the token are skipped.
/// Everything after those spaces is the token, byte for byte (junk included:
/// the authorization server decides). `Bearer` alone or followed only by
/// spaces carries no token.
pub fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer";
    if header.len() <= SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let rest = &header[SCHEME.len()..];
    if rest.first() != Some(&b' ') {
        return None;
    }
    let token_start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[token_start..])
}

/// The form body of the introspection request: `token=<form-urlencoded token>`.
pub fn introspection_body(token: &[u8]) -> String {
    let mut body = String::with_capacity(6 + token.len() * 3);
    body.push_str("token=");
    body.extend(form_urlencoded::byte_serialize(token));
    body
}

/// A short, non-reversible identifier of a token for log lines: the first
/// 8 hex digits of its SHA-256. Never log the token itself.
pub fn token_fingerprint(token: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token);
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bearer_in_any_case() {
        for h in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR abc"] {
            assert_eq!(bearer_token(h.as_bytes()), Some(&b"abc"[..]), "{h}");
        }
    }

    #[test]
    fn skips_extra_spaces_before_the_token() {
        assert_eq!(bearer_token(b"Bearer     abc"), Some(&b"abc"[..]));
    }

    #[test]
    fn keeps_trailing_junk_as_part_of_the_token() {
        assert_eq!(bearer_token(b"Bearer abc z"), Some(&b"abc z"[..]));
    }

    #[test]
    fn rejects_missing_token_tab_and_other_schemes() {
        for h in [
            "Bearer",
            "Bearer ",
            "Bearer    ",
            "Bearer\tabc",
            "Bearerabc",
            "Basic dXNlcjpwYXNz",
            "DPoP abc",
            "",
            "Bear abc",
        ] {
            assert_eq!(bearer_token(h.as_bytes()), None, "{h:?}");
        }
    }

    #[test]
    fn non_ascii_bytes_pass_through() {
        assert_eq!(
            bearer_token(b"Bearer \xc3\xa9t\xff"),
            Some(&b"\xc3\xa9t\xff"[..])
        );
    }

    #[test]
    fn form_encodes_reserved_characters() {
        assert_eq!(
            introspection_body(b"a+b&c=d%e f/"),
            "token=a%2Bb%26c%3Dd%25e+f%2F"
        );
        assert_eq!(introspection_body(b"\xff"), "token=%FF");
        assert_eq!(introspection_body(b"abc-._*~"), "token=abc-._*%7E");
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        assert_eq!(token_fingerprint(b"abc"), "ba7816bf");
    }
}

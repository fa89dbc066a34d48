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
    scheme_token(header, b"bearer")
}

/// The token after `scheme` (lower case), with [`bearer_token`]'s rules.
fn scheme_token<'a>(header: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    if header.len() <= scheme.len() || !header[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = &header[scheme.len()..];
    if rest.first() != Some(&b' ') {
        return None;
    }
    let token_start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[token_start..])
}

/// The scheme an access token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP <token>` (RFC 9449), with `phantom_token_dpop on`.
    DPoP,
}

impl Scheme {
    /// How the JWT is forwarded upstream: `Bearer ` or `DPoP `.
    pub fn prefix(self) -> &'static [u8] {
        match self {
            Scheme::Bearer => b"Bearer ",
            Scheme::DPoP => b"DPoP ",
        }
    }
}

/// The access token of an `Authorization` header value: a Bearer token
/// ([`bearer_token`]), or with `dpop` also a DPoP token (same rules).
pub fn access_token(header: &[u8], dpop: bool) -> Option<(Scheme, &[u8])> {
    if let Some(token) = bearer_token(header) {
        return Some((Scheme::Bearer, token));
    }
    if !dpop {
        return None;
    }
    scheme_token(header, b"dpop").map(|token| (Scheme::DPoP, token))
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
    fn dpop_only_when_allowed() {
        assert_eq!(access_token(b"DPoP abc", false), None);
        assert_eq!(
            access_token(b"DPoP abc", true),
            Some((Scheme::DPoP, &b"abc"[..]))
        );
        assert_eq!(
            access_token(b"dpop  abc", true),
            Some((Scheme::DPoP, &b"abc"[..]))
        );
        assert_eq!(
            access_token(b"Bearer abc", true),
            Some((Scheme::Bearer, &b"abc"[..]))
        );
        assert_eq!(access_token(b"DPoPabc", true), None);
        assert_eq!(access_token(b"DPoP ", true), None);
        assert_eq!(Scheme::DPoP.prefix(), b"DPoP ");
    }

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

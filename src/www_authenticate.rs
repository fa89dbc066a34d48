//! The `WWW-Authenticate` challenge and JSON error bodies (pure logic).

/// Body of every 401 answer.
pub const UNAUTHORIZED_BODY: &str = r#"{"code":"unauthorized_request","message":"Access denied due to missing, invalid or expired credentials"}"#;

/// Body of every 5xx answer.
pub const SERVER_ERROR_BODY: &str =
    r#"{"code":"server_error","message":"Problem encountered processing the request"}"#;

/// Builds `Bearer realm="<realm>", scope="<scopes>"`, leaving out each empty
/// part (`Bearer` alone when both are empty). No trailing comma (the C
/// module's defect).
pub fn bearer_challenge(realm: &[u8], scopes: &[u8]) -> Vec<u8> {
    let mut v = b"Bearer".to_vec();
    let mut sep: &[u8] = b" ";
    if !realm.is_empty() {
        v.extend_from_slice(sep);
        v.extend_from_slice(b"realm=\"");
        v.extend_from_slice(realm);
        v.push(b'"');
        sep = b", ";
    }
    if !scopes.is_empty() {
        v.extend_from_slice(sep);
        v.extend_from_slice(b"scope=\"");
        v.extend_from_slice(scopes);
        v.push(b'"');
    }
    v
}

/// JSON body for an error status.
pub fn error_body(status: usize) -> &'static str {
    if status == 401 {
        UNAUTHORIZED_BODY
    } else {
        SERVER_ERROR_BODY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_and_scopes() {
        assert_eq!(
            bearer_challenge(b"api", b"read write"),
            b"Bearer realm=\"api\", scope=\"read write\""
        );
    }

    #[test]
    fn realm_only() {
        assert_eq!(bearer_challenge(b"api", b""), b"Bearer realm=\"api\"");
    }

    #[test]
    fn scopes_only_and_neither() {
        assert_eq!(bearer_challenge(b"", b"a"), b"Bearer scope=\"a\"");
        assert_eq!(bearer_challenge(b"", b""), b"Bearer");
    }

    #[test]
    fn bodies() {
        assert!(error_body(401).contains("unauthorized_request"));
        assert!(error_body(502).contains("server_error"));
    }
}

//! The decision table for introspection outcomes (pure logic).

/// What the client request gets for an introspection response status.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200: forward the JWT in the body.
    ForwardJwt,
    /// 204: the token is not active → 401.
    Inactive,
    /// 503 from the authorization server → 503.
    Unavailable,
    /// 401/403/404/5xx (or no response at all) → 502, logged.
    BadGateway,
    /// Any other status → 500, logged.
    Unexpected,
}

/// Maps the introspection response status to the client's outcome.
pub fn verdict(status: usize) -> Verdict {
    match status {
        200 => Verdict::ForwardJwt,
        204 => Verdict::Inactive,
        503 => Verdict::Unavailable,
        0 | 401 | 403 | 404 => Verdict::BadGateway,
        s if s >= 500 => Verdict::BadGateway,
        _ => Verdict::Unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        assert_eq!(verdict(200), Verdict::ForwardJwt);
        assert_eq!(verdict(204), Verdict::Inactive);
        assert_eq!(verdict(503), Verdict::Unavailable);
        for s in [0, 401, 403, 404, 500, 502, 504, 599] {
            assert_eq!(verdict(s), Verdict::BadGateway, "{s}");
        }
        for s in [201, 301, 302, 400, 418, 429] {
            assert_eq!(verdict(s), Verdict::Unexpected, "{s}");
        }
    }
}

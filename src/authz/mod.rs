//! Authorization at the gateway (pure logic): the `phantom_token_require`
//! rules of a location, checked on the claims of every forwarded token.
//! Specification: docs/behaviour.md, "Authorization rules".

pub mod rule;

use serde_json::{Map, Value};

use rule::Rule;

/// JSON body of a 403 answer.
pub const FORBIDDEN_BODY: &str =
    r#"{"code":"forbidden","message":"The access token does not grant access to this resource"}"#;

/// One `phantom_token_require [METHOD ...] "<rule>"` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The methods it applies to (empty: every method).
    pub methods: Vec<Vec<u8>>,
    /// The parsed rule.
    pub rule: Rule,
    /// `scope="..."` of the challenge when the rule fails: its required
    /// scopes, space-separated.
    pub scopes: String,
}

impl Requirement {
    /// A requirement for `methods` (empty: all).
    pub fn new(methods: Vec<Vec<u8>>, rule: Rule) -> Requirement {
        let scopes = rule.required_scopes().join(" ");
        Requirement {
            methods,
            rule,
            scopes,
        }
    }

    /// Whether this line applies to a request with `method`.
    pub fn applies_to(&self, method: &[u8]) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
    }
}

/// Whether `method` is an acceptable method name in a rule: an HTTP token
/// in upper case (`GET`, `PROPFIND`, `M-SEARCH`).
pub fn valid_method(method: &[u8]) -> bool {
    !method.is_empty()
        && method
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Every line applying to `method` must hold; the first one that does not
/// is returned.
pub fn first_unmet<'a>(
    requirements: &'a [Requirement],
    method: &[u8],
    claims: &Map<String, Value>,
) -> Option<&'a Requirement> {
    requirements
        .iter()
        .find(|req| req.applies_to(method) && !req.rule.holds(claims))
}

/// Whether any line applies to `method` (the claims must then be decoded).
pub fn any_applies(requirements: &[Requirement], method: &[u8]) -> bool {
    requirements.iter().any(|req| req.applies_to(method))
}

/// `Bearer realm="<realm>", error="insufficient_scope", scope="<scopes>"`
/// (RFC 6750 §3.1), leaving out an empty realm or scope list.
pub fn insufficient_scope_challenge(realm: &[u8], scopes: &str) -> Vec<u8> {
    let mut v = b"Bearer ".to_vec();
    if !realm.is_empty() {
        v.extend_from_slice(b"realm=\"");
        v.extend_from_slice(realm);
        v.extend_from_slice(b"\", ");
    }
    v.extend_from_slice(b"error=\"insufficient_scope\"");
    if !scopes.is_empty() {
        v.extend_from_slice(b", scope=\"");
        v.extend_from_slice(scopes.as_bytes());
        v.push(b'"');
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(methods: &[&str], rule: &str) -> Requirement {
        Requirement::new(
            methods.iter().map(|m| m.as_bytes().to_vec()).collect(),
            rule::parse(rule).unwrap(),
        )
    }

    #[test]
    fn lines_apply_by_method_and_all_must_hold() {
        let reqs = [
            req(&["GET", "HEAD"], "read"),
            req(&["POST"], "write and (admin or role=editor)"),
            req(&[], "not banned"),
        ];
        let claims = |v: Value| v.as_object().unwrap().clone();
        let reader = claims(json!({"scope": "read"}));
        assert_eq!(first_unmet(&reqs, b"GET", &reader), None);
        assert_eq!(first_unmet(&reqs, b"POST", &reader), Some(&reqs[1]));
        assert_eq!(
            first_unmet(&reqs, b"DELETE", &reader),
            None,
            "no rule for DELETE but the all-methods line"
        );
        let banned = claims(json!({"scope": "read banned"}));
        assert_eq!(first_unmet(&reqs, b"GET", &banned), Some(&reqs[2]));
        let editor = claims(json!({"scope": "write", "role": "editor"}));
        assert_eq!(first_unmet(&reqs, b"POST", &editor), None);
        assert_eq!(reqs[1].scopes, "write admin");
        assert!(any_applies(&reqs[..2], b"HEAD"));
        assert!(!any_applies(&reqs[..2], b"PUT"));
    }

    #[test]
    fn challenge() {
        assert_eq!(
            insufficient_scope_challenge(b"api", "write admin"),
            b"Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"write admin\""
        );
        assert_eq!(
            insufficient_scope_challenge(b"", ""),
            b"Bearer error=\"insufficient_scope\""
        );
    }

    #[test]
    fn methods() {
        assert!(valid_method(b"GET"));
        assert!(valid_method(b"M-SEARCH"));
        assert!(!valid_method(b"get"));
        assert!(!valid_method(b""));
        assert!(!valid_method(b"GE T"));
    }
}

//! The `phantom_token_require` rule parser on arbitrary text: it never
//! panics, an error points inside the rule, a parsed rule prints to text
//! that parses to the same rule, and evaluation never panics.

#![no_main]

#[allow(dead_code)]
#[path = "../../src/authz/mod.rs"]
mod authz;

use authz::rule;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match rule::parse(text) {
        Err(e) => assert!(e.position >= 1 && e.position <= text.chars().count() + 1),
        Ok(parsed) => {
            assert_eq!(rule::parse(&parsed.to_source()), Ok(parsed.clone()));
            let claims = json!({"scope": "a b", "role": ["x", "y"], "o": {"p": 1}});
            let _ = parsed.holds(claims.as_object().unwrap());
            let _ = parsed.required_scopes();
        }
    }
});

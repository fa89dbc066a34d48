//! `Authorization: Bearer` parsing, the introspection form body and the
//! token fingerprint, on arbitrary bytes.

#![no_main]

#[allow(dead_code)]
#[path = "../../src/bearer.rs"]
mod bearer;

use libfuzzer_sys::fuzz_target;

/// `application/x-www-form-urlencoded` back to raw bytes.
fn form_decode(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        match encoded[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&encoded[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fuzz_target!(|header: &[u8]| {
    if let Some(token) = bearer::bearer_token(header) {
        assert!(header[..6].eq_ignore_ascii_case(b"bearer") && header[6] == b' ');
        assert!(!token.is_empty() && token[0] != b' ');
        assert!(header.ends_with(token));
        assert!(header[6..header.len() - token.len()]
            .iter()
            .all(|&b| b == b' '));
    }

    // The whole input as a token: one form pair that decodes to it.
    let body = bearer::introspection_body(header);
    let value = body.strip_prefix("token=").unwrap().as_bytes();
    assert!(value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"*-._+%".contains(&b)));
    assert_eq!(form_decode(value), header);

    let fingerprint = bearer::token_fingerprint(header);
    assert_eq!(fingerprint.len(), 8);
    assert!(fingerprint
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
});

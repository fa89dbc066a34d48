//! `Cache-Control` parsing (one header line per input line) and the cache
//! TTL of an introspected JWT, on arbitrary input.

#![no_main]

#[allow(dead_code)]
#[path = "../../src/cache/policy.rs"]
mod cache;

use cache::{jwt_ttl_ms, CacheControl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, Option<u64>, u64, &[u8])| {
    let (now_ms, exp, max_ttl_ms, value) = input;

    let mut cc = CacheControl::default();
    for line in value.split(|&b| b == b'\n') {
        cc.parse_into(line);
    }
    // Folding the same lines again changes nothing.
    let mut again = cc;
    for line in value.split(|&b| b == b'\n') {
        again.parse_into(line);
    }
    assert_eq!(again, cc);

    let ttl = jwt_ttl_ms(now_ms, cc, exp, max_ttl_ms);
    assert!(ttl <= max_ttl_ms);
    if cc.forbidden {
        assert_eq!(ttl, 0);
    }
    if let Some(max_age) = cc.max_age {
        assert!(ttl <= max_age.saturating_mul(1000));
    }
    if let Some(exp) = exp {
        assert!(u128::from(ttl) <= (u128::from(exp) * 1000).saturating_sub(u128::from(now_ms)));
    }
});

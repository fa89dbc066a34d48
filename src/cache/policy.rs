//! Cache rules (pure logic): `Cache-Control` parsing and the TTL of an
//! introspection result (`docs/behaviour.md`, "Built-in cache").

/// What the authorization server's `Cache-Control` allows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheControl {
    /// The smallest `max-age=N`, in seconds.
    pub max_age: Option<u64>,
    /// The last valid `s-maxage=N`, in seconds: wins over `max-age`.
    pub s_maxage: Option<u64>,
    /// `no-store`, `no-cache`, `private`, or a `max-age` that is not a
    /// number: do not cache.
    pub forbidden: bool,
}

impl CacheControl {
    /// A lifetime of `max_age` seconds, as the admin warm-up asks.
    pub fn with_max_age(max_age: Option<u64>) -> CacheControl {
        CacheControl {
            max_age,
            ..CacheControl::default()
        }
    }

    /// The lifetime the answer allows, in seconds (`s-maxage` over `max-age`).
    pub fn lifetime(&self) -> Option<u64> {
        self.s_maxage.or(self.max_age)
    }

    /// Folds one `Cache-Control` header value into `self`; several header
    /// lines fold like one line with their values joined by commas.
    pub fn parse_into(&mut self, value: &[u8]) {
        let text = String::from_utf8_lossy(value);
        for directive in text.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let name = name.to_ascii_lowercase();
            match (name.as_str(), arg) {
                ("no-store" | "no-cache" | "private", _) => self.forbidden = true,
                ("max-age", Some(a)) => match a.parse::<u64>() {
                    Ok(v) => self.max_age = Some(self.max_age.map_or(v, |m| m.min(v))),
                    Err(_) => self.forbidden = true,
                },
                ("s-maxage", Some(a)) => {
                    if let Ok(v) = a.parse::<u64>() {
                        self.s_maxage = Some(v);
                    }
                }
                _ => {}
            }
        }
    }
}

/// How long (ms) an introspected JWT may be served from the cache: the
/// smallest of `max-age`, the JWT's `exp` minus now and `max_ttl`; zero when
/// the answer forbids caching or the JWT is already expired.
pub fn jwt_ttl_ms(now_ms: u64, cc: CacheControl, exp_secs: Option<u64>, max_ttl_ms: u64) -> u64 {
    if cc.forbidden {
        return 0;
    }
    let mut ttl = max_ttl_ms;
    if let Some(max_age) = cc.lifetime() {
        ttl = ttl.min(max_age.saturating_mul(1000));
    }
    if let Some(exp) = exp_secs {
        ttl = ttl.min(exp.saturating_mul(1000).saturating_sub(now_ms));
    }
    ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(v: &str) -> CacheControl {
        let mut c = CacheControl::default();
        c.parse_into(v.as_bytes());
        c
    }

    #[test]
    fn parses_cache_control() {
        assert_eq!(cc("max-age=60").max_age, Some(60));
        assert_eq!(cc("public, max-age=\"30\"").max_age, Some(30));
        assert_eq!(cc("max-age=60, s-maxage=10").lifetime(), Some(10));
        let mut two_lines = cc("s-maxage=100");
        two_lines.parse_into(b"max-age=0");
        assert_eq!(two_lines.lifetime(), Some(100));
        assert!(cc("no-store").forbidden);
        assert!(cc("No-Cache").forbidden);
        assert!(cc("private, max-age=5").forbidden);
        assert!(cc("max-age=abc").forbidden);
        assert_eq!(cc(""), CacheControl::default());
    }

    #[test]
    fn ttl_is_the_smallest_bound() {
        let now = 1_000_000_000;
        let none = CacheControl::default();
        let age = |s| CacheControl::with_max_age(Some(s));
        assert_eq!(jwt_ttl_ms(now, none, None, 300_000), 300_000);
        assert_eq!(jwt_ttl_ms(now, age(60), None, 300_000), 60_000);
        assert_eq!(
            jwt_ttl_ms(now, age(600), Some(now / 1000 + 20), 300_000),
            20_000
        );
        assert_eq!(
            jwt_ttl_ms(now, age(5), Some(now / 1000 + 20), 300_000),
            5_000
        );
        assert_eq!(jwt_ttl_ms(now, none, Some(now / 1000 - 1), 300_000), 0);
        assert_eq!(jwt_ttl_ms(now, cc("no-store"), None, 300_000), 0);
        assert_eq!(jwt_ttl_ms(now, age(0), None, 300_000), 0);
    }
}

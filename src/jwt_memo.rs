//! A small per-worker memo of JWTs that passed [`check_compact_jwt`]
//! (pure logic, no FFI).
//!
//! With `proxy_cache` on the introspection location (the C module's
//! documented setup) every request for a token brings the same JWT bytes
//! again; checking them costs more than the rest of the module's work on
//! that path. The check is a pure function of the bytes, so a JWT equal,
//! byte for byte, to one checked before gets the same answer without
//! decoding it again. Only accepted JWTs up to [`MAX_MEMO_JWT`] bytes are
//! kept, in [`SLOTS`] slots chosen by the signature's last bytes: at most
//! 64 KB per worker.

use crate::jwt::{check_compact_jwt, JwtClaims, JwtShapeError};

/// Number of memo slots.
pub const SLOTS: usize = 32;
/// Largest JWT kept in the memo.
pub const MAX_MEMO_JWT: usize = 2048;

/// A per-worker memo of values computed from JWT bytes: each of [`SLOTS`]
/// slots, chosen by the JWT's last bytes, holds one JWT (up to
/// [`MAX_MEMO_JWT`] bytes) and its value.
pub struct Memo<V> {
    slots: Vec<Option<(Box<[u8]>, V)>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo { slots: Vec::new() }
    }
}

impl<V: Clone> Memo<V> {
    /// The value remembered for `jwt`, else `compute(jwt)`, remembered when
    /// it is `Ok` and `jwt` is small enough.
    pub fn get_or_try<E>(
        &mut self,
        jwt: &[u8],
        compute: impl FnOnce(&[u8]) -> Result<V, E>,
    ) -> Result<V, E> {
        if jwt.len() > MAX_MEMO_JWT || jwt.len() < 8 {
            return compute(jwt);
        }
        let slot = slot_of(jwt);
        if let Some(Some((held, value))) = self.slots.get(slot) {
            if **held == *jwt {
                return Ok(value.clone());
            }
        }
        let value = compute(jwt)?;
        if self.slots.len() < SLOTS {
            self.slots.resize_with(SLOTS, || None);
        }
        self.slots[slot] = Some((jwt.into(), value.clone()));
        Ok(value)
    }

    /// Whether `jwt` is remembered (for tests of the memory bound).
    pub fn holds(&self, jwt: &[u8]) -> bool {
        jwt.len() >= 8
            && self
                .slots
                .get(slot_of(jwt))
                .is_some_and(|s| s.as_ref().is_some_and(|(held, _)| **held == *jwt))
    }
}

/// The memo of accepted JWTs: each slot holds one JWT that passed
/// [`check_compact_jwt`] and its `exp`.
#[derive(Default)]
pub struct JwtMemo {
    memo: Memo<Option<u64>>,
}

impl JwtMemo {
    /// An empty memo.
    pub fn new() -> JwtMemo {
        JwtMemo::default()
    }

    /// [`check_compact_jwt`], answered from the memo when `body` was
    /// accepted before.
    pub fn check(&mut self, body: &[u8]) -> Result<JwtClaims, JwtShapeError> {
        let exp = self
            .memo
            .get_or_try(body, |body| check_compact_jwt(body).map(|c| c.exp))?;
        Ok(JwtClaims { exp })
    }

    /// Whether `body` is remembered (for tests of the memory bound).
    pub fn holds(&self, body: &[u8]) -> bool {
        self.memo.holds(body)
    }
}

/// The slot of `body`: its last 8 bytes (the signature's end), mixed.
fn slot_of(body: &[u8]) -> usize {
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&body[body.len() - 8..]);
    let mixed = u64::from_le_bytes(tail).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 59) as usize % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl";

    #[test]
    fn answers_like_the_check_and_remembers_accepted_jwts() {
        let mut memo = JwtMemo::new();
        let expected = check_compact_jwt(JWT);
        assert_eq!(memo.check(JWT), expected);
        assert_eq!(memo.check(JWT), expected, "from the memo");
        assert_eq!(
            expected,
            Ok(JwtClaims {
                exp: Some(1_700_000_000)
            })
        );
    }

    #[test]
    fn keeps_only_accepted_jwts_up_to_the_size_bound() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let jwt_of = |size: usize| {
            let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"p":"{}"}}"#, "x".repeat(size)));
            format!("e30.{payload}.c2ln")
        };
        let mut memo = JwtMemo::new();
        memo.check(JWT).unwrap();
        assert!(memo.holds(JWT));
        // Find payload sizes giving JWTs of exactly MAX_MEMO_JWT and one more.
        let (mut at_bound, mut over) = (None, None);
        for size in 1400..1600 {
            let jwt = jwt_of(size);
            if jwt.len() == MAX_MEMO_JWT {
                at_bound = Some(jwt.clone());
            }
            if jwt.len() == MAX_MEMO_JWT + 1 {
                over = Some(jwt);
            }
        }
        let (at_bound, over) = (at_bound.unwrap(), over.unwrap());
        memo.check(at_bound.as_bytes()).unwrap();
        assert!(
            memo.holds(at_bound.as_bytes()),
            "a JWT of exactly the bound is kept"
        );
        memo.check(over.as_bytes()).unwrap();
        assert!(!memo.holds(over.as_bytes()), "a bigger one is not");
        assert!(memo.check(b"garbage!").is_err());
        assert!(!memo.holds(b"garbage!"), "rejected bodies are not kept");
        assert!(memo.check(b"e30.e30").is_err());
    }

    #[test]
    fn different_jwts_spread_over_the_slots() {
        let jwts: Vec<String> = (0..64).map(|i| format!("e30.e30.c2ln{i:04}")).collect();
        let mut memo = JwtMemo::new();
        for jwt in &jwts {
            memo.check(jwt.as_bytes()).unwrap();
        }
        let held = jwts.iter().filter(|j| memo.holds(j.as_bytes())).count();
        assert!(held >= SLOTS / 2, "only {held} of 64 JWTs held at once");
    }

    #[test]
    fn never_accepts_what_the_check_rejects() {
        let mut memo = JwtMemo::new();
        memo.check(JWT).unwrap();
        // Same slot material (last 8 bytes), different JWT: checked afresh.
        let mut forged = JWT.to_vec();
        forged[3] = b'!';
        assert_eq!(memo.check(&forged), check_compact_jwt(&forged));
        assert!(memo.check(&forged).is_err());
        assert!(memo.check(b"garbage garbage").is_err());
        assert!(memo.check(b"").is_err());
    }
}

//! JWT verification (zero trust): every JWT is verified before it is
//! forwarded or stored, with keys from a JWKS file (`phantom_token_jwks`).
//! Specification: docs/behaviour.md, "JWT verification".
//!
//! - [`keys`]: the JWKS, the claim policy and `verify` (pure logic);
//! - [`Verifier`]: a location's keys and policy, and a per-worker memo of
//!   JWTs that verified, so a JWT coming back (from `proxy_cache` on the
//!   introspection location) is not verified again until it expires.

pub mod keys;

use core::cell::RefCell;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::jwt_memo::Memo;
use keys::{verify, KeySet, Policy, VerifyError};

/// A location's verification settings.
#[derive(Debug)]
pub struct Verifier {
    /// Tells verifiers apart in the per-worker memo.
    serial: u64,
    /// The keys.
    pub keys: Arc<KeySet>,
    /// The claim checks.
    pub policy: Policy,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

std::thread_local! {
    /// JWTs this worker verified: (verifier serial, `exp`).
    static VERIFIED: RefCell<Memo<(u64, u64)>> = RefCell::new(Memo::default());
}

impl Verifier {
    /// A verifier of `keys` with `policy`.
    pub fn new(keys: Arc<KeySet>, policy: Policy) -> Verifier {
        Verifier {
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            keys,
            policy,
        }
    }

    /// Verifies `jwt` (see [`verify`]); a JWT this worker verified before
    /// with this verifier only has its `exp` checked again. `now` is the
    /// wall clock in seconds.
    pub fn check(&self, jwt: &[u8], now: u64) -> Result<u64, VerifyError> {
        let serial = self.serial;
        let fresh = |jwt: &[u8]| verify(jwt, &self.keys, &self.policy).map(|exp| (serial, exp));
        let remembered = VERIFIED
            .try_with(|memo| match memo.try_borrow_mut() {
                Ok(mut memo) => memo.get_or_try(jwt, fresh),
                Err(_) => fresh(jwt),
            })
            .unwrap_or_else(|_| fresh(jwt));
        let (by, exp) = match remembered {
            // Remembered for another location's verifier: verify afresh.
            Ok((by, _)) if by != serial => fresh(jwt)?,
            other => other?,
        };
        debug_assert_eq!(by, serial);
        if exp.saturating_add(self.policy.leeway) < now {
            return Err(VerifyError::Expired);
        }
        Ok(exp)
    }
}

//! JWT verification (zero trust): every JWT is verified before it is
//! forwarded or stored, with keys from a JWKS file (`phantom_token_jwks`)
//! or fetched from the authorization server (`phantom_token_jwks_request`).
//! Specification: docs/behaviour.md, "JWT verification".
//!
//! - [`keys`]: the JWKS, the claim policy and `verify` (pure logic);
//! - [`store`]: fetched JWKS documents in shared memory, for every worker;
//! - [`Verifier`]: a location's keys and policy, deciding for one JWT
//!   whether it verifies, or whether keys must be fetched (or awaited)
//!   first; a per-worker memo of JWTs that verified, so a JWT coming back
//!   (from `proxy_cache` on the introspection location) is not verified
//!   again until it expires.

pub mod keys;
pub mod store;

use core::cell::RefCell;
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::Arc;

use nginx_sys::{ngx_shm_zone_t, ngx_str_t};

use crate::jwt_memo::Memo;
use keys::{names_unknown_key, verify, KeySet, Policy, VerifyError};
use store::Store;

/// Where a verifier's keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// `phantom_token_jwks <file>`, read at configuration time.
    File(Arc<KeySet>),
    /// `phantom_token_jwks_request <uri>`, fetched at run time.
    Fetched(FetchedSource),
}

/// A JWKS fetched through an internal location.
#[derive(Debug)]
pub struct FetchedSource {
    /// The key zone.
    pub zone: *mut ngx_shm_zone_t,
    /// The location's slot in the zone (server block and URI).
    pub id: u64,
    /// The internal location the `GET` subrequest goes to.
    pub uri: ngx_str_t,
    /// `phantom_token_jwks_refresh`: keys older than this are re-fetched.
    pub refresh_ms: u64,
    /// `phantom_token_jwks_refetch_interval`: fetches are at least this far apart.
    pub interval_ms: u64,
}

/// How long a fetch may run before others stop waiting for it.
pub const FETCH_TIMEOUT_MS: u64 = 10_000;

/// A location's verification settings.
#[derive(Debug)]
pub struct Verifier {
    /// Tells verifiers apart in the per-worker memo.
    serial: u64,
    /// The keys.
    pub source: KeySource,
    /// The claim checks.
    pub policy: Policy,
}

/// What to do with one JWT.
pub enum Step {
    /// It verified; its `exp`.
    Verified(u64),
    /// It is refused.
    Refused(VerifyError),
    /// This request fetches the keys first (it holds the fetch).
    Fetch(FetchClaim),
    /// Another request is fetching the keys: wait for it.
    Wait,
}

/// The right to run the one fetch of a key slot; dropping it unfinished
/// (the request went away) ends the fetch without a document.
pub struct FetchClaim {
    store: Store,
    id: u64,
    finished: bool,
}

impl FetchClaim {
    /// Ends the fetch with `document`: stored for every worker when it is a
    /// JWKS with a signature key (this worker keeps the keys it parsed);
    /// otherwise the error line saying why, and the keys stay as they were.
    pub fn store(mut self, document: &[u8], now: u64) -> Result<(), String> {
        self.finished = true;
        let keys = match KeySet::from_jwks(document) {
            Ok(keys) => Arc::new(keys),
            Err(e) => {
                self.store.finish_fetch(self.id, None, now);
                return Err(format!("JWKS request returned {e}"));
            }
        };
        let generation = self
            .store
            .finish_fetch(self.id, Some(document), now)
            .ok_or("the JWKS does not fit in the key zone")?;
        let _ = FETCHED.try_with(|m| m.borrow_mut().insert(self.id, (generation, keys)));
        Ok(())
    }

    /// Ends the fetch without a document (the keys stay as they were).
    pub fn fail(self) {
        // Dropping an unfinished claim ends its fetch.
        drop(self);
    }
}

impl Drop for FetchClaim {
    fn drop(&mut self) {
        if !self.finished {
            self.store.finish_fetch(self.id, None, 0);
        }
    }
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

std::thread_local! {
    /// JWTs this worker verified: (verifier serial, key generation, `exp`).
    static VERIFIED: RefCell<Memo<(u64, u64, u64)>> = RefCell::new(Memo::default());
    /// Fetched key sets as this worker parsed them: slot id → (generation, keys).
    static FETCHED: RefCell<HashMap<u64, (u64, Arc<KeySet>)>> = RefCell::new(HashMap::new());
}

impl Verifier {
    /// A verifier of `source` with `policy`.
    pub fn new(source: KeySource, policy: Policy) -> Verifier {
        Verifier {
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            source,
            policy,
        }
    }

    /// Whether `other` verifies exactly like this one (same keys, checks).
    pub fn same_as(&self, source: &KeySource, policy: &Policy) -> bool {
        self.policy == *policy
            && match (&self.source, source) {
                (KeySource::File(a), KeySource::File(b)) => Arc::ptr_eq(a, b),
                (KeySource::Fetched(a), KeySource::Fetched(b)) => {
                    a.id == b.id && a.refresh_ms == b.refresh_ms && a.interval_ms == b.interval_ms
                }
                _ => false,
            }
    }

    /// What identifies the keys and checks (part of cache keys).
    pub fn identity(&self) -> Vec<u8> {
        let mut id = match &self.source {
            KeySource::File(keys) => keys.digest.to_vec(),
            KeySource::Fetched(f) => f.id.to_le_bytes().to_vec(),
        };
        id.extend_from_slice(format!("{:?}", self.policy).as_bytes());
        id
    }

    /// Verifies `jwt` with `keys` (generation `generation`); a JWT this
    /// worker verified before with the same verifier and keys only has its
    /// `exp` checked again. `now` is the wall clock in seconds.
    fn check_with(
        &self,
        keys: &KeySet,
        generation: u64,
        jwt: &[u8],
        now: u64,
    ) -> Result<u64, VerifyError> {
        let serial = self.serial;
        let fresh =
            |jwt: &[u8]| verify(jwt, keys, &self.policy).map(|exp| (serial, generation, exp));
        let remembered = VERIFIED
            .try_with(|memo| match memo.try_borrow_mut() {
                Ok(mut memo) => memo.get_or_try(jwt, fresh),
                Err(_) => fresh(jwt),
            })
            .unwrap_or_else(|_| fresh(jwt));
        let (_, _, exp) = match remembered {
            // Remembered for other keys or checks: verify afresh.
            Ok((s, g, _)) if s != serial || g != generation => fresh(jwt)?,
            other => other?,
        };
        if exp.saturating_add(self.policy.leeway) < now {
            return Err(VerifyError::Expired);
        }
        Ok(exp)
    }

    /// The keys usable now, without fetching: the file's, or the fetched
    /// ones (none before the first fetch). Used by the admin warm-up.
    pub fn check(&self, jwt: &[u8], now: u64) -> Result<u64, VerifyError> {
        match &self.source {
            KeySource::File(keys) => self.check_with(keys, 0, jwt, now),
            KeySource::Fetched(f) => {
                // SAFETY: see `step`.
                let store = unsafe { Store::from_shm_zone(f.zone) };
                let generation = store.as_ref().map_or(0, |s| s.state(f.id, 0).generation);
                match store.and_then(|store| fetched_keys(f, &store, generation)) {
                    Some((generation, keys)) => self.check_with(&keys, generation, jwt, now),
                    None => Err(VerifyError::NoKeys),
                }
            }
        }
    }

    /// Decides for `jwt`: verify it with the keys at hand, or fetch keys
    /// first when there are none, they are older than the refresh period,
    /// or the JWT names a `kid` they lack, and the fetch may run now
    /// (`may_fetch`, one at a time, at most one per interval). `now_wall`
    /// is in seconds, `now` monotonic ms.
    pub fn step(&self, jwt: &[u8], now_wall: u64, now: u64, may_fetch: bool) -> Step {
        let fetched = match &self.source {
            KeySource::File(keys) => {
                return match self.check_with(keys, 0, jwt, now_wall) {
                    Ok(exp) => Step::Verified(exp),
                    Err(e) => Step::Refused(e),
                }
            }
            KeySource::Fetched(f) => f,
        };
        // SAFETY: the zone was added at configuration time and initialized
        // before workers run.
        let Some(store) = (unsafe { Store::from_shm_zone(fetched.zone) }) else {
            return Step::Refused(VerifyError::NoKeys);
        };
        let state = store.state(fetched.id, now);
        let keys = fetched_keys(fetched, &store, state.generation);
        let usable = keys.as_ref().filter(|(_, keys)| {
            !names_unknown_key(jwt, keys)
                && now.saturating_sub(state.fetched_at) < fetched.refresh_ms
        });
        let verify_with = |keys: &Option<(u64, Arc<KeySet>)>| match keys {
            Some((generation, keys)) => match self.check_with(keys, *generation, jwt, now_wall) {
                Ok(exp) => Step::Verified(exp),
                Err(e) => Step::Refused(e),
            },
            None => Step::Refused(VerifyError::NoKeys),
        };
        if usable.is_some() {
            return verify_with(&keys);
        }
        if may_fetch
            && store.try_claim_fetch(fetched.id, now, fetched.interval_ms, FETCH_TIMEOUT_MS)
        {
            return Step::Fetch(FetchClaim {
                store,
                id: fetched.id,
                finished: false,
            });
        }
        if state.fetching {
            return Step::Wait;
        }
        // Rate-limited: the keys at hand decide (stale keys still verify).
        verify_with(&keys)
    }
}

/// The fetched keys of `source` at `generation` (the store's current one),
/// parsed once per generation by this worker.
fn fetched_keys(
    source: &FetchedSource,
    store: &Store,
    generation: u64,
) -> Option<(u64, Arc<KeySet>)> {
    if generation == 0 {
        return None;
    }
    let held = FETCHED
        .try_with(|m| m.borrow().get(&source.id).cloned())
        .ok()
        .flatten();
    if let Some((g, keys)) = held {
        if g == generation {
            return Some((g, keys));
        }
    }
    let (generation, document) = store.document(source.id)?;
    let keys = Arc::new(KeySet::from_jwks(&document).ok()?);
    let _ = FETCHED.try_with(|m| m.borrow_mut().insert(source.id, (generation, keys.clone())));
    Some((generation, keys))
}

//! The shared key store of `phantom_token_jwks_request`: the JWKS documents
//! fetched from the authorization server, in one shared-memory zone for
//! every worker (`phantom_token_jwks`, created by the first
//! `phantom_token_jwks_request`), one slot per JWKS location. Specification:
//! docs/behaviour.md, "JWT verification".
//!
//! Each slot holds the document, its generation (bumped on every store),
//! when it was fetched, and the fetch bookkeeping that keeps the
//! authorization server safe: one fetch at a time, and at most one per
//! `phantom_token_jwks_refetch_interval`, whatever the JWTs claim. Workers
//! parse a document once per generation (see `super::fetched_keys`).

use core::alloc::Layout;
use core::ffi::c_void;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::Allocator;
use nginx_sys::{ngx_int_t, ngx_shm_zone_t, ngx_slab_pool_t};
use ngx::core::slab::LockedSlabPool;
use ngx::core::{SlabPool, Status};

/// Name of the zone.
pub const ZONE_NAME: &[u8] = b"phantom_token_jwks";
/// Size of the zone.
pub const ZONE_SIZE: usize = 1024 * 1024;
/// Largest JWKS document accepted.
pub const MAX_JWKS_SIZE: usize = 128 * 1024;
/// JWKS locations one zone serves.
const SLOTS: usize = 32;

const MAGIC: u64 = 0x6a77_6b73_7374_6f72;

/// One JWKS location's keys and fetch bookkeeping.
#[derive(Clone, Copy)]
struct Slot {
    /// The location's identity (0: free).
    id: u64,
    /// Bumped on every store (0: never stored).
    generation: u64,
    /// Monotonic ms of the last store.
    fetched_at: u64,
    /// Monotonic ms the last fetch started.
    last_attempt: u64,
    /// A fetch runs until this monotonic ms (0: none).
    fetching_until: u64,
    /// The document.
    data: *mut u8,
    len: usize,
}

#[repr(C)]
struct Root {
    magic: u64,
    slots: [Slot; SLOTS],
}

/// What a worker sees of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotState {
    /// Generation of the stored document (0: none yet).
    pub generation: u64,
    /// Monotonic ms of the last store.
    pub fetched_at: u64,
    /// A fetch is running now.
    pub fetching: bool,
}

/// The store behind an initialized zone.
pub struct Store {
    pool: SlabPool,
    root: NonNull<Root>,
}

/// Zone init: a fresh root, or the previous cycle's (keys survive reloads).
///
/// # Safety
/// Called by NGINX with the zone and the previous cycle's zone data.
pub unsafe extern "C" fn init_store(shm_zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    let old = data.cast::<Root>();
    if !old.is_null() && (*old).magic == MAGIC {
        (*shm_zone).data = old.cast();
        return Status::NGX_OK.into();
    }
    let shpool = (*shm_zone).shm.addr.cast::<ngx_slab_pool_t>();
    let Some(pool) = SlabPool::from_shm_zone(&*shm_zone) else {
        return Status::NGX_ERROR.into();
    };
    let locked = pool.lock();
    let Ok(root) = locked.allocate(Layout::new::<Root>()) else {
        return Status::NGX_ERROR.into();
    };
    let root = root.as_ptr().cast::<Root>();
    ptr::write_bytes(root, 0, 1);
    (*root).magic = MAGIC;
    (*shpool).data = root.cast();
    (*shm_zone).data = root.cast();
    Status::NGX_OK.into()
}

impl Store {
    /// The store of an initialized zone.
    ///
    /// # Safety
    /// `shm_zone` must be this module's key zone, used in a worker.
    pub unsafe fn from_shm_zone(shm_zone: *mut ngx_shm_zone_t) -> Option<Store> {
        let shm_zone = shm_zone.as_ref()?;
        Some(Store {
            pool: SlabPool::from_shm_zone(shm_zone)?,
            root: NonNull::new(shm_zone.data.cast())?,
        })
    }

    /// Runs `f` on slot `id` (taken when free) under the zone's lock.
    fn with_slot<T>(&self, id: u64, f: impl FnOnce(&mut Slot, &LockedSlabPool) -> T) -> Option<T> {
        let guard = self.pool.lock();
        // SAFETY: the root was initialized by `init_store`; the slab mutex,
        // held until the end of this function, serializes every access.
        let root = unsafe { &mut *self.root.as_ptr() };
        let index = root
            .slots
            .iter()
            .position(|s| s.id == id)
            .or_else(|| root.slots.iter().position(|s| s.id == 0))?;
        let slot = &mut root.slots[index];
        slot.id = id;
        Some(f(slot, &guard))
    }

    /// The state of slot `id` at `now`.
    pub fn state(&self, id: u64, now: u64) -> SlotState {
        self.with_slot(id, |s, _| SlotState {
            generation: s.generation,
            fetched_at: s.fetched_at,
            fetching: s.fetching_until > now,
        })
        .unwrap_or_default()
    }

    /// A copy of the stored document and its generation.
    pub fn document(&self, id: u64) -> Option<(u64, Vec<u8>)> {
        self.with_slot(id, |s, _| {
            if s.data.is_null() {
                return None;
            }
            let mut copy = Vec::new();
            copy.try_reserve_exact(s.len).ok()?;
            // SAFETY: `data` holds `len` bytes written by `store`, freed only
            // under this lock.
            copy.extend_from_slice(unsafe { core::slice::from_raw_parts(s.data, s.len) });
            Some((s.generation, copy))
        })
        .flatten()
    }

    /// Claims the next fetch for slot `id`: granted when none runs and the
    /// last one started at least `interval_ms` ago (or never); the fetch
    /// then counts as running for `timeout_ms`.
    pub fn try_claim_fetch(&self, id: u64, now: u64, interval_ms: u64, timeout_ms: u64) -> bool {
        self.with_slot(id, |s, _| {
            let never = s.last_attempt == 0;
            if s.fetching_until > now
                || (!never && now.saturating_sub(s.last_attempt) < interval_ms)
            {
                return false;
            }
            s.last_attempt = now.max(1);
            s.fetching_until = now + timeout_ms;
            true
        })
        .unwrap_or(false)
    }

    /// Ends the running fetch of slot `id`, storing `document` when given;
    /// the stored document's generation, `None` when nothing was stored
    /// (no document, or it does not fit in the zone).
    pub fn finish_fetch(&self, id: u64, document: Option<&[u8]>, now: u64) -> Option<u64> {
        self.with_slot(id, |s, pool| {
            s.fetching_until = 0;
            let document = document?;
            let layout = Layout::array::<u8>(document.len().max(1)).ok()?;
            let data = pool.allocate(layout).ok()?.as_ptr().cast::<u8>();
            // SAFETY: `data` was just allocated with room for the document.
            unsafe { ptr::copy_nonoverlapping(document.as_ptr(), data, document.len()) };
            if let Some(old) = NonNull::new(s.data) {
                if let Ok(old_layout) = Layout::array::<u8>(s.len.max(1)) {
                    // SAFETY: `old` was allocated by this function with that layout.
                    unsafe { pool.deallocate(old, old_layout) };
                }
            }
            s.data = data;
            s.len = document.len();
            s.generation += 1;
            s.fetched_at = now;
            Some(s.generation)
        })
        .flatten()
    }
}

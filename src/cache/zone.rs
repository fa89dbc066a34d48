//! The token cache in one NGINX shared-memory zone.
//!
//! Layout (all inside the zone's slab pool, all access under its mutex):
//! a [`ZoneHeader`] with a hash table of [`Entry`] chains and an LRU queue
//! (most recently used at the head).
//!
//! - **Keys** ([`CacheKey`]): a *keyed* SHA-256 of the opaque token (the
//!   key is a random secret of the zone, kept across reloads) plus the
//!   identity of the introspection endpoint that answered, so two locations
//!   introspecting at different authorization servers never share entries.
//!   The zone never holds a token, and a dump of it cannot even confirm a
//!   guessed one.
//! - **Buckets**: the first bytes of the keyed digest, so nobody can
//!   precompute tokens that collide; chains are also bounded
//!   ([`MAX_CHAIN`]): a full chain evicts its entry closest to expiry.
//! - **Time**: expiry and lock deadlines are on NGINX's monotonic clock
//!   (`ngx_current_msec`, the same clock in every worker); only the JWT's
//!   `exp` is wall-clock, turned into a TTL when the entry is stored.
//! - **Sweeping**: every lookup also frees the expired entries of the next
//!   [`SWEEP_BUCKETS`] buckets, so expired entries leave even when nobody
//!   asks for them, with a bounded cost per request.
//! - **Single flight**: a miss inserts a `Pending` marker carrying a flight
//!   number; only the lease of that flight may settle it ([`Zone::settle`]),
//!   and a purge removes markers too, so a purge always wins over an
//!   in-flight introspection.
//!
//! When the slab allocator is full, least recently used entries are evicted
//! until the allocation succeeds: a full zone never fails a request.
//! Counters are kept per worker (one cache line each) and summed when read.

use core::alloc::Layout;
use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::{self, NonNull};
use std::time::Instant;

use nginx_sys::{ngx_int_t, ngx_queue_t, ngx_shm_zone_t, ngx_slab_pool_t};
use nginx_sys::{ngx_queue_init, ngx_queue_insert_after, ngx_queue_remove};
use ngx::allocator::Allocator;
use ngx::core::slab::LockedSlabPool;
use ngx::core::SlabPool;
use ngx::core::Status;
use sha2::{Digest, Sha256};

/// Layout version; a zone of another layout is never reused.
const MAGIC: u64 = u64::from_le_bytes(*b"PHTOK\x00\x03\x00");

/// Counter slots (workers beyond this share slots).
const STAT_SLOTS: usize = 64;

/// One bucket per this many bytes of zone.
const BYTES_PER_BUCKET: usize = 512;

/// Longest bucket chain: inserting into a full chain evicts from it.
pub const MAX_CHAIN: usize = 8;

/// Buckets swept for expired entries on every lookup.
pub const SWEEP_BUCKETS: usize = 2;

/// Buckets walked per lock hold when the admin API counts entries.
const COUNT_CHUNK: usize = 1024;

/// Endpoint identity of entries stored by the admin warm-up: usable by
/// every location that uses the zone.
pub const ANY_ENDPOINT: u64 = 0;

/// The keyed digest of an opaque token (see [`Zone::token_digest`]).
pub type TokenDigest = [u8; 32];

/// What an entry is stored under.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey {
    /// Keyed digest of the opaque token.
    pub token: TokenDigest,
    /// Identity of the introspection endpoint (see `LocationConf::endpoint_id`).
    pub endpoint: u64,
}

/// Counters reported by the admin handler.
#[repr(C, align(64))]
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// JWTs served from the zone.
    pub hits: u64,
    /// Lookups that found nothing (an introspection followed).
    pub misses: u64,
    /// Lookups that found an expired entry.
    pub expired: u64,
    /// Requests answered 401 from a remembered inactive token.
    pub negative_hits: u64,
    /// Entries removed to make room (zone full or chain full).
    pub evictions: u64,
    /// Introspections started through the cache (flights).
    pub introspections: u64,
    /// Entries removed by the admin handler.
    pub purges: u64,
    /// Entries stored (introspection results and warm-ups).
    pub stores: u64,
    /// Requests that waited for another request's introspection.
    pub waits: u64,
    /// Waiting requests released to introspect by themselves (the flight's
    /// answer could not be shared, or their deadline passed).
    pub released: u64,
    /// Expired entries freed by the incremental sweep.
    pub swept: u64,
    /// Longest time the zone lock was held, in nanoseconds (a maximum).
    pub lock_hold_max_ns: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.expired += o.expired;
        self.negative_hits += o.negative_hits;
        self.evictions += o.evictions;
        self.introspections += o.introspections;
        self.purges += o.purges;
        self.stores += o.stores;
        self.waits += o.waits;
        self.released += o.released;
        self.swept += o.swept;
        self.lock_hold_max_ns = self.lock_hold_max_ns.max(o.lock_hold_max_ns);
    }
}

/// Header of the zone.
#[repr(C)]
pub struct ZoneHeader {
    magic: u64,
    /// Key of the token digests and so of the bucket index.
    secret: [u8; 32],
    buckets: *mut *mut Entry,
    bucket_mask: usize,
    lru: ngx_queue_t,
    /// Number of entries (all kinds, expired ones included).
    entries: u64,
    /// Bytes allocated for entries.
    bytes: u64,
    /// Last flight number handed out.
    last_flight: u64,
    /// Next bucket the sweep looks at.
    sweep_cursor: usize,
    /// Counters, per worker.
    stats: [Stats; STAT_SLOTS],
}

/// What an entry says about a token.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A JWT to forward.
    Jwt = 0,
    /// The token is not active (negative caching).
    Inactive = 1,
    /// An introspection is in flight (single flight marker).
    Pending = 2,
}

#[repr(C)]
struct Entry {
    /// Next entry of the same bucket.
    next: *mut Entry,
    lru: ngx_queue_t,
    key: CacheKey,
    /// Monotonic ms (`ngx_current_msec`), shared by all workers.
    expires: u64,
    /// Flight number of a `Pending` marker.
    flight: u64,
    kind: EntryKind,
    jwt_len: u32,
    // followed by `jwt_len` bytes
}

/// Result of looking a token up before introspection.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    /// A JWT is cached: what the caller's `on_hit` made of it (under the lock).
    Jwt(T),
    /// The token is known to be inactive.
    Inactive,
    /// Another request is introspecting this token (flight `flight`):
    /// wait and [`poll`](Zone::poll).
    Wait {
        /// The flight waited for.
        flight: u64,
    },
    /// This request introspects and leads flight `flight`; `expired` tells
    /// whether an old entry was found (for `$phantom_token_cache_status`).
    Lead {
        /// The flight to settle with [`Zone::settle`] (0: no marker could
        /// be stored; the result will not be cached).
        flight: u64,
        /// An expired entry was replaced.
        expired: bool,
    },
}

/// What a waiting request finds when it looks again.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll<T> {
    /// The flight stored a JWT (or one was warmed): `on_hit`'s result.
    Jwt(T),
    /// The flight found the token inactive.
    Inactive,
    /// The flight is still running.
    Pending,
    /// The flight ended without a result to share (not cacheable, failed,
    /// abandoned or purged): introspect by yourself, now.
    Released,
}

/// NGINX's monotonic clock in ms (cached per event loop iteration).
pub fn now_mono() -> u64 {
    // SAFETY: ngx_current_msec is updated by the worker's own event loop.
    unsafe { nginx_sys::ngx_current_msec as u64 }
}

fn bucket_of(digest: &TokenDigest, mask: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(first) as usize) & mask
}

/// # Safety
/// `q` must be the `lru` field of an [`Entry`].
unsafe fn entry_of_lru(q: *mut ngx_queue_t) -> *mut Entry {
    q.byte_sub(offset_of!(Entry, lru)).cast()
}

/// A handle on an initialized zone, valid in a worker for its lifetime.
#[derive(Clone)]
pub struct Zone {
    pool: SlabPool,
    header: NonNull<ZoneHeader>,
}

/// Zone init callback (`shm_zone->init`): reuses the previous cycle's
/// header when the layout matches (reload keeps the entries and the secret).
///
/// # Safety
/// Called by NGINX with an attached zone.
pub unsafe extern "C" fn init_zone(shm_zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    let old = data.cast::<ZoneHeader>();
    if !old.is_null() && (*old).magic == MAGIC {
        (*shm_zone).data = old.cast();
        return Status::NGX_OK.into();
    }
    // The zone memory begins with the slab pool NGINX initialized.
    let shpool = (*shm_zone).shm.addr.cast::<ngx_slab_pool_t>();
    let Some(pool) = SlabPool::from_shm_zone(&*shm_zone) else {
        return Status::NGX_ERROR.into();
    };
    let mut secret = [0u8; 32];
    if getrandom::getrandom(&mut secret).is_err() {
        return Status::NGX_ERROR.into();
    }
    let locked = pool.lock();
    // Layouts with the header's alignment (64, for the counters): the slab
    // allocator checks it.
    let Ok(header) = locked.allocate(Layout::new::<ZoneHeader>()) else {
        return Status::NGX_ERROR.into();
    };
    let header = header.as_ptr().cast::<ZoneHeader>();
    ptr::write_bytes(header, 0, 1);
    let zone_bytes = (*shm_zone).shm.size;
    let nbuckets = (zone_bytes / BYTES_PER_BUCKET).next_power_of_two().max(64);
    let Ok(buckets) = Layout::array::<*mut Entry>(nbuckets)
        .map_err(|_| ())
        .and_then(|layout| locked.allocate(layout).map_err(|_| ()))
    else {
        return Status::NGX_ERROR.into();
    };
    let buckets = buckets.as_ptr().cast::<*mut Entry>();
    ptr::write_bytes(buckets, 0, nbuckets);
    (*header).secret = secret;
    (*header).buckets = buckets;
    (*header).bucket_mask = nbuckets - 1;
    (*header).magic = MAGIC;
    ngx_queue_init(&mut (*header).lru);
    (*shpool).data = header.cast();
    // Allocation failures are handled by eviction: don't log them as crit.
    (*shpool).set_log_nomem(0);
    (*shm_zone).data = header.cast();
    Status::NGX_OK.into()
}

/// This worker's counter slot.
fn stat_slot() -> usize {
    // SAFETY: ngx_worker is set once when the worker starts.
    unsafe { nginx_sys::ngx_worker % STAT_SLOTS }
}

/// The zone while its slab pool's mutex (a spinlock across workers) is
/// held: keep it briefly. Records the hold time when dropped.
struct Locked<'a> {
    pool: &'a SlabPool,
    h: &'a mut ZoneHeader,
    since: Instant,
    // Declared last: released after the hold time is recorded.
    guard: LockedSlabPool,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let held = self.since.elapsed().as_nanos() as u64;
        let slot = self.stats();
        slot.lock_hold_max_ns = slot.lock_hold_max_ns.max(held);
    }
}

impl Zone {
    /// The zone behind an initialized `ngx_shm_zone_t`, if any.
    ///
    /// # Safety
    /// `shm_zone` must be a zone of this module, used in a worker.
    pub unsafe fn from_shm_zone(shm_zone: *mut ngx_shm_zone_t) -> Option<Zone> {
        let shm_zone = shm_zone.as_ref()?;
        Some(Zone {
            pool: SlabPool::from_shm_zone(shm_zone)?,
            header: NonNull::new(shm_zone.data.cast())?,
        })
    }

    fn lock(&self) -> Locked<'_> {
        let guard = self.pool.lock();
        Locked {
            pool: &self.pool,
            // SAFETY: the zone was initialized by `init_zone`; the slab mutex,
            // held from here on, serializes every access to the header.
            h: unsafe { &mut *self.header.as_ptr() },
            since: Instant::now(),
            guard,
        }
    }

    /// The zone's keyed digest of `token`: SHA-256(secret ‖ token).
    pub fn token_digest(&self, token: &[u8]) -> TokenDigest {
        // SAFETY: the secret is written once in `init_zone`, before any
        // worker runs, and never changes: reading it needs no lock.
        let secret = unsafe { &(*self.header.as_ptr()).secret };
        let mut sha = Sha256::new();
        sha.update(secret);
        sha.update(token);
        sha.finalize().into()
    }

    /// Looks `key` up; on a hit, `on_hit` copies the JWT out while the lock
    /// is held; on a miss (or an expired entry) inserts a pending marker
    /// valid until `now + lock_ms` and tells the caller to lead.
    pub fn begin<T>(
        &self,
        key: &CacheKey,
        now: u64,
        lock_ms: u64,
        on_hit: impl FnOnce(&[u8]) -> T,
    ) -> Lookup<T> {
        let mut z = self.lock();
        z.sweep(now);
        let (exact, any) = z.find(key);
        let mut expired = false;
        let mut pending = None;
        if let Some(e) = exact {
            // SAFETY: `find` returns live entries of this zone.
            let entry = unsafe { &*e.as_ptr() };
            if entry.expires > now {
                match entry.kind {
                    EntryKind::Jwt => return Lookup::Jwt(z.hit(e, on_hit)),
                    EntryKind::Inactive => {
                        z.touch(e);
                        z.stats().negative_hits += 1;
                        return Lookup::Inactive;
                    }
                    EntryKind::Pending => pending = Some(entry.flight),
                }
            } else {
                expired = entry.kind != EntryKind::Pending;
                z.remove(e);
            }
        }
        if let Some(a) = any.filter(|&a| z.is_live_jwt(a, now)) {
            return Lookup::Jwt(z.hit(a, on_hit));
        }
        if let Some(flight) = pending {
            z.stats().waits += 1;
            return Lookup::Wait { flight };
        }
        if expired {
            z.stats().expired += 1;
        } else {
            z.stats().misses += 1;
        }
        Lookup::Lead {
            flight: z.start_flight(key, now, lock_ms),
            expired,
        }
    }

    /// Looks again for the outcome of `flight` (a waiting request).
    pub fn poll<T>(
        &self,
        key: &CacheKey,
        flight: u64,
        now: u64,
        on_hit: impl FnOnce(&[u8]) -> T,
    ) -> Poll<T> {
        let mut z = self.lock();
        let (exact, any) = z.find(key);
        let mut still_pending = false;
        if let Some(e) = exact {
            // SAFETY: live entry of this zone.
            let entry = unsafe { &*e.as_ptr() };
            if entry.expires > now {
                match entry.kind {
                    EntryKind::Jwt => return Poll::Jwt(z.hit(e, on_hit)),
                    EntryKind::Inactive => {
                        z.stats().negative_hits += 1;
                        return Poll::Inactive;
                    }
                    EntryKind::Pending => still_pending = entry.flight == flight,
                }
            }
        }
        if let Some(a) = any.filter(|&a| z.is_live_jwt(a, now)) {
            return Poll::Jwt(z.hit(a, on_hit));
        }
        if still_pending {
            return Poll::Pending;
        }
        z.stats().released += 1;
        Poll::Released
    }

    /// Starts a flight for `key` if the zone holds nothing for it (a
    /// released waiter takes over an abandoned flight this way: the first
    /// one leads, the others introspect alone). Returns the flight.
    pub fn try_lead(&self, key: &CacheKey, now: u64, lock_ms: u64) -> Option<u64> {
        let mut z = self.lock();
        if let Some(e) = z.find(key).0 {
            // SAFETY: live entry of this zone.
            if unsafe { e.as_ref() }.expires > now {
                return None;
            }
            z.remove(e);
        }
        Some(z.start_flight(key, now, lock_ms)).filter(|&flight| flight != 0)
    }

    /// Counts a waiting request that gave up at its deadline.
    pub fn count_released(&self) {
        self.lock().stats().released += 1;
    }

    /// Ends flight `flight` of `key`: removes its marker and, with
    /// `result = Some((kind, jwt, ttl_ms))` and a non-zero TTL, stores the
    /// result. Does nothing (returns false) when the marker is not this
    /// flight's any more: purged, or taken over by a newer flight.
    pub fn settle(
        &self,
        key: &CacheKey,
        flight: u64,
        result: Option<(EntryKind, &[u8], u64)>,
        now: u64,
    ) -> bool {
        if flight == 0 {
            return false;
        }
        let mut z = self.lock();
        let Some(e) = z.find(key).0 else {
            return false;
        };
        // SAFETY: live entry of this zone.
        let entry = unsafe { e.as_ref() };
        if entry.kind != EntryKind::Pending || entry.flight != flight {
            return false;
        }
        z.remove(e);
        match result {
            Some((kind, jwt, ttl_ms)) if ttl_ms > 0 && kind != EntryKind::Pending => {
                z.stats().stores += 1;
                z.insert(key, kind, jwt, now + ttl_ms, 0)
            }
            _ => false,
        }
    }

    /// Stores a warmed JWT for every endpoint (replacing a previous one).
    /// Returns false when it could not be stored even after eviction.
    pub fn warm(&self, token: &TokenDigest, jwt: &[u8], now: u64, ttl_ms: u64) -> bool {
        let key = CacheKey {
            token: *token,
            endpoint: ANY_ENDPOINT,
        };
        let mut z = self.lock();
        if let Some(e) = z.find(&key).0 {
            z.remove(e);
        }
        z.stats().stores += 1;
        z.insert(&key, EntryKind::Jwt, jwt, now + ttl_ms, 0)
    }

    /// Removes every entry of `token` (all endpoints, in-flight markers
    /// included, so that no running introspection stores it again);
    /// returns how many results were removed.
    pub fn purge_token(&self, token: &TokenDigest) -> u64 {
        let mut z = self.lock();
        let mut purged = 0;
        while let Some(e) = z.first_of_token(token) {
            // SAFETY: live entry of this zone.
            if unsafe { e.as_ref() }.kind != EntryKind::Pending {
                purged += 1;
            }
            z.remove(e);
        }
        z.stats().purges += purged;
        purged
    }

    /// Removes every entry (in-flight markers included); returns how many
    /// results were removed.
    pub fn purge_all(&self) -> u64 {
        let mut z = self.lock();
        let mut purged = 0;
        while let Some(e) = z.oldest() {
            // SAFETY: live entry of this zone.
            if unsafe { e.as_ref() }.kind != EntryKind::Pending {
                purged += 1;
            }
            z.remove(e);
        }
        z.stats().purges += purged;
        purged
    }

    /// A snapshot of the counters. Live entries are counted bucket by
    /// bucket, releasing the lock every [`COUNT_CHUNK`] buckets, so a big
    /// zone never holds other requests up for long.
    pub fn snapshot(&self) -> Snapshot {
        let now = now_mono();
        let (mut entries, mut pending, mut start, mut longest_chain) = (0, 0, 0, 0);
        loop {
            let z = self.lock();
            let nbuckets = z.h.bucket_mask + 1;
            let end = (start + COUNT_CHUNK).min(nbuckets);
            for i in start..end {
                // SAFETY: chains link live entries, read under the lock.
                unsafe {
                    let mut e = *z.h.buckets.add(i);
                    let mut chain = 0;
                    while let Some(entry) = e.as_ref() {
                        chain += 1;
                        if entry.expires > now {
                            if entry.kind == EntryKind::Pending {
                                pending += 1;
                            } else {
                                entries += 1;
                            }
                        }
                        e = entry.next;
                    }
                    longest_chain = longest_chain.max(chain);
                }
            }
            start = end;
            if start < nbuckets {
                continue;
            }
            let pool: &ngx_slab_pool_t = z.pool.as_ref();
            let (pstart, pend, pfree) = (pool.start, pool.end, pool.pfree);
            let total = (pend as usize).saturating_sub(pstart as usize);
            let free = pfree * page_size();
            let stats = z.h.stats.iter().fold(Stats::default(), |mut sum, s| {
                sum.add(s);
                sum
            });
            return Snapshot {
                entries,
                pending,
                longest_chain,
                entry_bytes: z.h.bytes,
                stats,
                zone_bytes_used: total.saturating_sub(free) as u64,
                zone_bytes_free: free as u64,
            };
        }
    }
}

/// Zone figures for the admin handler.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Live (unexpired) JWT and inactive-token entries.
    pub entries: u64,
    /// Introspections in flight (single-flight markers).
    pub pending: u64,
    /// The longest bucket chain (at most [`MAX_CHAIN`]).
    pub longest_chain: u64,
    /// Bytes requested for entries (headers + JWTs), expired ones included.
    pub entry_bytes: u64,
    /// Counters.
    pub stats: Stats,
    /// Slab pages in use, in bytes.
    pub zone_bytes_used: u64,
    /// Free slab pages, in bytes.
    pub zone_bytes_free: u64,
}

fn page_size() -> usize {
    // SAFETY: ngx_pagesize is set once at startup.
    unsafe { nginx_sys::ngx_pagesize }
}

/// The slab layout of an entry of `size` bytes (header + JWT).
fn entry_layout(size: usize) -> Layout {
    // Size and alignment are small and valid: `Entry`'s alignment, a size
    // bounded by an eighth of the zone.
    Layout::from_size_align(size, align_of::<Entry>()).unwrap_or(Layout::new::<Entry>())
}

/// # Safety
/// `e` must be a live entry.
unsafe fn entry_jwt<'a>(e: NonNull<Entry>) -> &'a [u8] {
    let base = e.as_ptr().cast::<u8>().add(size_of::<Entry>());
    core::slice::from_raw_parts(base, (*e.as_ptr()).jwt_len as usize)
}

impl Locked<'_> {
    fn stats(&mut self) -> &mut Stats {
        &mut self.h.stats[stat_slot()]
    }

    fn bucket(&mut self, digest: &TokenDigest) -> *mut *mut Entry {
        // SAFETY: the index is masked to the table's size.
        unsafe { self.h.buckets.add(bucket_of(digest, self.h.bucket_mask)) }
    }

    /// The entry of exactly `key`, and a warmed entry of the same token
    /// (endpoint [`ANY_ENDPOINT`]) if there is one.
    fn find(&mut self, key: &CacheKey) -> (Option<NonNull<Entry>>, Option<NonNull<Entry>>) {
        let (mut exact, mut any) = (None, None);
        // SAFETY: chains link live entries of this zone, read under the lock.
        unsafe {
            let mut e = *self.bucket(&key.token);
            while let Some(entry) = e.as_ref() {
                if entry.key.token == key.token {
                    if entry.key.endpoint == key.endpoint {
                        exact = NonNull::new(e);
                    } else if entry.key.endpoint == ANY_ENDPOINT {
                        any = NonNull::new(e);
                    }
                }
                e = entry.next;
            }
        }
        (exact, any)
    }

    fn first_of_token(&mut self, token: &TokenDigest) -> Option<NonNull<Entry>> {
        // SAFETY: chains link live entries of this zone, read under the lock.
        unsafe {
            let mut e = *self.bucket(token);
            while let Some(entry) = e.as_ref() {
                if entry.key.token == *token {
                    return NonNull::new(e);
                }
                e = entry.next;
            }
        }
        None
    }

    fn is_live_jwt(&self, e: NonNull<Entry>, now: u64) -> bool {
        // SAFETY: live entry of this zone.
        let entry = unsafe { e.as_ref() };
        entry.kind == EntryKind::Jwt && entry.expires > now
    }

    /// Inserts the pending marker of a new flight for `key`, valid until
    /// `now + lock_ms`; returns its number (0: the marker could not be
    /// stored, so the flight's result will not be either).
    fn start_flight(&mut self, key: &CacheKey, now: u64, lock_ms: u64) -> u64 {
        self.stats().introspections += 1;
        self.h.last_flight += 1;
        let flight = self.h.last_flight;
        if self.insert(key, EntryKind::Pending, b"", now + lock_ms, flight) {
            flight
        } else {
            0
        }
    }

    /// Counts a hit on `e` and lets `on_hit` copy its JWT out.
    fn hit<T>(&mut self, e: NonNull<Entry>, on_hit: impl FnOnce(&[u8]) -> T) -> T {
        self.touch(e);
        self.stats().hits += 1;
        // SAFETY: live entry; its JWT bytes follow the header.
        on_hit(unsafe { entry_jwt(e) })
    }

    /// Frees the expired entries of the next [`SWEEP_BUCKETS`] buckets.
    fn sweep(&mut self, now: u64) {
        for _ in 0..SWEEP_BUCKETS {
            let i = self.h.sweep_cursor & self.h.bucket_mask;
            self.h.sweep_cursor = i + 1;
            // SAFETY: the index is masked; chains link live entries.
            unsafe {
                let mut e = *self.h.buckets.add(i);
                while let Some(entry) = e.as_ref() {
                    let next = entry.next;
                    if entry.expires <= now {
                        self.remove(NonNull::new_unchecked(e));
                        self.stats().swept += 1;
                    }
                    e = next;
                }
            }
        }
    }

    fn touch(&mut self, e: NonNull<Entry>) {
        // SAFETY: live entry, queue manipulated under the lock.
        unsafe {
            let lru: *mut ngx_queue_t = &mut (*e.as_ptr()).lru;
            if self.h.lru.next == lru {
                return; // already the most recent: no shared writes
            }
            ngx_queue_remove(lru);
            ngx_queue_insert_after(&mut self.h.lru, &mut (*e.as_ptr()).lru);
        }
    }

    fn oldest(&mut self) -> Option<NonNull<Entry>> {
        let head: *mut ngx_queue_t = &mut self.h.lru;
        // SAFETY: the queue links entries of this zone.
        unsafe {
            let last = (*head).prev;
            if last == head {
                return None;
            }
            NonNull::new(entry_of_lru(last))
        }
    }

    fn remove(&mut self, e: NonNull<Entry>) {
        // SAFETY: live entry, unlinked from both structures, then freed.
        unsafe {
            let entry = e.as_ptr();
            ngx_queue_remove(&mut (*entry).lru);
            let mut link = self.bucket(&(*entry).key.token);
            while !(*link).is_null() && *link != entry {
                link = &mut (**link).next;
            }
            if *link == entry {
                *link = (*entry).next;
            }
            let size = size_of::<Entry>() + (*entry).jwt_len as usize;
            self.h.entries -= 1;
            self.h.bytes -= size as u64;
            self.guard.deallocate(e.cast(), entry_layout(size));
        }
    }

    /// Makes room in `digest`'s bucket: while its chain is full, evicts
    /// the entry closest to expiry.
    fn bound_chain(&mut self, digest: &TokenDigest) {
        loop {
            let (mut len, mut victim): (usize, Option<NonNull<Entry>>) = (0, None);
            // SAFETY: chains link live entries of this zone.
            unsafe {
                let mut e = *self.bucket(digest);
                while let Some(entry) = e.as_ref() {
                    len += 1;
                    if victim.is_none_or(|v| entry.expires < v.as_ref().expires) {
                        victim = NonNull::new(e);
                    }
                    e = entry.next;
                }
            }
            match victim {
                Some(v) if len >= MAX_CHAIN => {
                    self.remove(v);
                    self.stats().evictions += 1;
                }
                _ => return,
            }
        }
    }

    /// Allocates, evicting least recently used entries while the zone is
    /// full. Returns None if nothing is left to evict.
    fn alloc(&mut self, size: usize) -> Option<NonNull<Entry>> {
        // An entry bigger than an eighth of the zone would flush it: skip it.
        let pool: &ngx_slab_pool_t = self.pool.as_ref();
        let zone_bytes = (pool.end as usize).saturating_sub(pool.start as usize);
        if size > zone_bytes / 8 {
            return None;
        }
        loop {
            if let Ok(p) = self.guard.allocate(entry_layout(size)) {
                return Some(p.cast::<Entry>());
            }
            let victim = self.oldest()?;
            self.remove(victim);
            self.stats().evictions += 1;
        }
    }

    fn insert(
        &mut self,
        key: &CacheKey,
        kind: EntryKind,
        jwt: &[u8],
        expires: u64,
        flight: u64,
    ) -> bool {
        let Ok(jwt_len) = u32::try_from(jwt.len()) else {
            return false;
        };
        self.bound_chain(&key.token);
        let size = size_of::<Entry>() + jwt.len();
        let Some(e) = self.alloc(size) else {
            return false;
        };
        // SAFETY: `e` is a fresh allocation of `size` bytes.
        unsafe {
            let entry = e.as_ptr();
            ptr::write_bytes(entry.cast::<u8>(), 0, size_of::<Entry>());
            (*entry).key = *key;
            (*entry).expires = expires;
            (*entry).flight = flight;
            (*entry).kind = kind;
            (*entry).jwt_len = jwt_len;
            ptr::copy_nonoverlapping(
                jwt.as_ptr(),
                entry.cast::<u8>().add(size_of::<Entry>()),
                jwt.len(),
            );
            let bucket = self.bucket(&key.token);
            (*entry).next = *bucket;
            *bucket = entry;
            ngx_queue_insert_after(&mut self.h.lru, &mut (*entry).lru);
        }
        self.h.entries += 1;
        self.h.bytes += size as u64;
        true
    }
}

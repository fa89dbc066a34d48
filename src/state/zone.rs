//! The token cache in one NGINX shared-memory zone.
//!
//! Layout (all inside the zone's slab pool, all access under its mutex):
//! a [`ZoneHeader`] with a hash table of [`Entry`] chains (bucket: the first
//! 8 bytes of the token hash; the full hash is compared) and an LRU queue
//! (most recently used at the head). A lookup touches the bucket and the
//! entry only, however many entries the zone holds. Entries are allocated
//! with the slab allocator; when it is full, the least recently used entries
//! are evicted until the allocation succeeds, so a full zone never fails a
//! request. Counters are kept per worker (one cache line each) and summed
//! when read, so that hits don't make workers fight over one line.

use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use core::ptr::{self, NonNull};

use nginx_sys::{
    ngx_int_t, ngx_queue_t, ngx_shm_zone_t, ngx_shmtx_lock, ngx_shmtx_unlock,
    ngx_slab_alloc_locked, ngx_slab_free_locked, ngx_slab_pool_t, ngx_timeofday, NGX_ERROR, NGX_OK,
};
use nginx_sys::{ngx_queue_init, ngx_queue_insert_after, ngx_queue_remove};

use crate::cache::TokenHash;

/// Layout version; a zone of another layout is never reused.
const MAGIC: u64 = u64::from_le_bytes(*b"PHTOK\x00\x02\x00");

/// Counter slots (workers beyond this share slots).
const STAT_SLOTS: usize = 64;

/// One bucket per this many bytes of zone.
const BYTES_PER_BUCKET: usize = 512;

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
    /// Entries removed to make room.
    pub evictions: u64,
    /// Introspections started through the cache.
    pub introspections: u64,
    /// Entries removed by the admin handler.
    pub purges: u64,
    /// Entries stored (introspection results and warm-ups).
    pub stores: u64,
    /// Requests that waited for another request's introspection.
    pub waits: u64,
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
    }
}

/// Header of the zone.
#[repr(C)]
pub struct ZoneHeader {
    magic: u64,
    buckets: *mut *mut Entry,
    bucket_mask: usize,
    lru: ngx_queue_t,
    /// Number of entries (all kinds).
    pub entries: u64,
    /// Bytes allocated for entries.
    pub bytes: u64,
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
    hash: TokenHash,
    /// Wall clock, ms since the epoch, shared by all workers.
    expires_ms: u64,
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
    /// Another request is introspecting this token: wait and look again.
    Wait,
    /// This request introspects; `expired` tells whether an old entry was
    /// found (for `$phantom_token_cache_status`).
    Lead {
        /// An expired entry was replaced.
        expired: bool,
    },
}

/// Current wall-clock time in ms (NGINX's cached time).
pub fn now_ms() -> u64 {
    let tp = ngx_timeofday();
    (tp.sec as u64) * 1000 + tp.msec as u64
}

fn bucket_of(hash: &TokenHash, mask: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    (u64::from_le_bytes(first) as usize) & mask
}

/// # Safety
/// `q` must be the `lru` field of an [`Entry`].
unsafe fn entry_of_lru(q: *mut ngx_queue_t) -> *mut Entry {
    q.byte_sub(offset_of!(Entry, lru)).cast()
}

/// A handle on an initialized zone, valid in a worker for its lifetime.
#[derive(Clone, Copy)]
pub struct Zone {
    pool: NonNull<ngx_slab_pool_t>,
    header: NonNull<ZoneHeader>,
}

/// Zone init callback (`shm_zone->init`): reuses the previous cycle's
/// header when the layout matches (reload keeps the entries).
///
/// # Safety
/// Called by NGINX with an attached zone.
pub unsafe extern "C" fn init_zone(shm_zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: the zone memory begins with the slab pool NGINX initialized.
    let shpool = (*shm_zone).shm.addr.cast::<ngx_slab_pool_t>();
    let old = data.cast::<ZoneHeader>();
    if !old.is_null() && (*old).magic == MAGIC {
        (*shm_zone).data = old.cast();
        return NGX_OK as ngx_int_t;
    }
    let Some(pool) = NonNull::new(shpool) else {
        return NGX_ERROR as ngx_int_t;
    };
    let _locked = MutexGuard::lock(pool);
    let header = ngx_slab_alloc_locked(shpool, size_of::<ZoneHeader>()).cast::<ZoneHeader>();
    // The slab aligns small allocations to their power-of-two size; the
    // header needs 64 for the counters.
    if header.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    ptr::write_bytes(header, 0, 1);
    let zone_bytes = (*shm_zone).shm.size;
    let nbuckets = (zone_bytes / BYTES_PER_BUCKET).next_power_of_two().max(64);
    let buckets =
        ngx_slab_alloc_locked(shpool, nbuckets * size_of::<*mut Entry>()).cast::<*mut Entry>();
    if buckets.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    ptr::write_bytes(buckets, 0, nbuckets);
    (*header).buckets = buckets;
    (*header).bucket_mask = nbuckets - 1;
    (*header).magic = MAGIC;
    ngx_queue_init(&mut (*header).lru);
    (*shpool).data = header.cast();
    // Allocation failures are handled by eviction: don't log them as crit.
    (*shpool).set_log_nomem(0);
    (*shm_zone).data = header.cast();
    NGX_OK as ngx_int_t
}

/// Holds the slab pool's mutex (a spinlock across workers): keep it briefly.
struct MutexGuard(NonNull<ngx_slab_pool_t>);

impl MutexGuard {
    fn lock(pool: NonNull<ngx_slab_pool_t>) -> MutexGuard {
        // SAFETY: the pool's mutex was created by NGINX with the zone.
        unsafe { ngx_shmtx_lock(&mut (*pool.as_ptr()).mutex) };
        MutexGuard(pool)
    }
}

impl Drop for MutexGuard {
    fn drop(&mut self) {
        // SAFETY: locked in `lock` by this guard.
        unsafe { ngx_shmtx_unlock(&mut (*self.0.as_ptr()).mutex) };
    }
}

/// This worker's counter slot.
fn stat_slot() -> usize {
    // SAFETY: ngx_worker is set once when the worker starts.
    unsafe { nginx_sys::ngx_worker % STAT_SLOTS }
}

struct Locked<'a> {
    _guard: MutexGuard,
    pool: *mut ngx_slab_pool_t,
    h: &'a mut ZoneHeader,
}

impl Zone {
    /// The zone behind an initialized `ngx_shm_zone_t`, if any.
    ///
    /// # Safety
    /// `shm_zone` must be a zone of this module, used in a worker.
    pub unsafe fn from_shm_zone(shm_zone: *mut ngx_shm_zone_t) -> Option<Zone> {
        let shm_zone = shm_zone.as_ref()?;
        Some(Zone {
            pool: NonNull::new(shm_zone.shm.addr.cast())?,
            header: NonNull::new(shm_zone.data.cast())?,
        })
    }

    fn lock(&self) -> Locked<'_> {
        // SAFETY: the zone was initialized by `init_zone`; the slab mutex
        // serializes every access to the header and the entries.
        unsafe {
            let guard = MutexGuard::lock(self.pool);
            Locked {
                _guard: guard,
                pool: self.pool.as_ptr(),
                h: &mut *self.header.as_ptr(),
            }
        }
    }

    /// Looks `hash` up; on a hit, `on_hit` copies the JWT out while the lock
    /// is held; on a miss (or an expired entry) inserts a pending marker
    /// valid until `now + lock_ms` and tells the caller to lead.
    pub fn begin<T>(
        &self,
        hash: &TokenHash,
        now: u64,
        lock_ms: u64,
        on_hit: impl FnOnce(&[u8]) -> T,
    ) -> Lookup<T> {
        let mut z = self.lock();
        let found = z.find(hash);
        let mut expired = false;
        if let Some(e) = found {
            // SAFETY: `find` returns live entries of this zone.
            let entry = unsafe { &mut *e.as_ptr() };
            if entry.expires_ms > now {
                z.touch(e);
                return match entry.kind {
                    EntryKind::Jwt => {
                        z.stats().hits += 1;
                        // SAFETY: live entry; its JWT bytes follow the header.
                        Lookup::Jwt(on_hit(unsafe { entry_jwt(e) }))
                    }
                    EntryKind::Inactive => {
                        z.stats().negative_hits += 1;
                        Lookup::Inactive
                    }
                    EntryKind::Pending => {
                        z.stats().waits += 1;
                        Lookup::Wait
                    }
                };
            }
            expired = entry.kind != EntryKind::Pending;
            z.remove(e);
        }
        if expired {
            z.stats().expired += 1;
        } else {
            z.stats().misses += 1;
        }
        z.stats().introspections += 1;
        z.insert(hash, EntryKind::Pending, b"", now + lock_ms);
        Lookup::Lead { expired }
    }

    /// Stores a result for `hash` (replacing any entry) for `ttl_ms`.
    /// Returns false when the entry could not be stored even after eviction.
    pub fn store(
        &self,
        hash: &TokenHash,
        kind: EntryKind,
        jwt: &[u8],
        now: u64,
        ttl_ms: u64,
    ) -> bool {
        let mut z = self.lock();
        if let Some(e) = z.find(hash) {
            z.remove(e);
        }
        if ttl_ms == 0 {
            return true;
        }
        z.stats().stores += 1;
        z.insert(hash, kind, jwt, now + ttl_ms)
    }

    /// Drops a pending marker of `hash` (introspection failed or abandoned).
    pub fn abandon(&self, hash: &TokenHash) {
        let mut z = self.lock();
        if let Some(e) = z.find(hash) {
            // SAFETY: live entry of this zone.
            if unsafe { e.as_ref() }.kind == EntryKind::Pending {
                z.remove(e);
            }
        }
    }

    /// Removes the entry of `hash`; true if there was one.
    pub fn purge(&self, hash: &TokenHash) -> bool {
        let mut z = self.lock();
        match z.find(hash) {
            Some(e) => {
                z.remove(e);
                z.stats().purges += 1;
                true
            }
            None => false,
        }
    }

    /// Removes every entry; returns how many.
    pub fn purge_all(&self) -> u64 {
        let mut z = self.lock();
        let mut n = 0;
        while let Some(e) = z.oldest() {
            z.remove(e);
            n += 1;
        }
        z.stats().purges += n;
        n
    }

    /// A snapshot of the counters: (entries, entry bytes, stats, pool bytes
    /// used, pool bytes free).
    pub fn snapshot(&self) -> Snapshot {
        let z = self.lock();
        // SAFETY: the pool header is readable under the lock.
        let (start, end, pfree) = unsafe { ((*z.pool).start, (*z.pool).end, (*z.pool).pfree) };
        let total = (end as usize).saturating_sub(start as usize);
        let free = pfree * page_size();
        Snapshot {
            entries: z.h.entries,
            entry_bytes: z.h.bytes,
            stats: z.h.stats.iter().fold(Stats::default(), |mut sum, s| {
                sum.add(s);
                sum
            }),
            zone_bytes_used: total.saturating_sub(free) as u64,
            zone_bytes_free: free as u64,
        }
    }
}

/// Zone figures for the admin handler.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Entries of all kinds.
    pub entries: u64,
    /// Bytes requested for entries (headers + JWTs).
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

    fn bucket(&mut self, hash: &TokenHash) -> *mut *mut Entry {
        // SAFETY: the index is masked to the table's size.
        unsafe { self.h.buckets.add(bucket_of(hash, self.h.bucket_mask)) }
    }

    fn find(&mut self, hash: &TokenHash) -> Option<NonNull<Entry>> {
        // SAFETY: chains link live entries of this zone, read under the lock.
        unsafe {
            let mut e = *self.bucket(hash);
            while let Some(entry) = e.as_ref() {
                if entry.hash == *hash {
                    return NonNull::new(e);
                }
                e = entry.next;
            }
        }
        None
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
            let mut link = self.bucket(&(*entry).hash);
            while !(*link).is_null() && *link != entry {
                link = &mut (**link).next;
            }
            if *link == entry {
                *link = (*entry).next;
            }
            self.h.entries -= 1;
            self.h.bytes -= (size_of::<Entry>() + (*entry).jwt_len as usize) as u64;
            ngx_slab_free_locked(self.pool, entry.cast());
        }
    }

    /// Allocates, evicting least recently used entries while the zone is
    /// full. Returns false if nothing is left to evict.
    fn alloc(&mut self, size: usize) -> Option<NonNull<Entry>> {
        // An entry bigger than an eighth of the zone would flush it: skip it.
        // SAFETY: the pool header is readable under the lock.
        let zone_bytes =
            unsafe { ((*self.pool).end as usize).saturating_sub((*self.pool).start as usize) };
        if size > zone_bytes / 8 {
            return None;
        }
        loop {
            // SAFETY: slab allocation under the pool's lock.
            let p = unsafe { ngx_slab_alloc_locked(self.pool, size) };
            if let Some(p) = NonNull::new(p.cast::<Entry>()) {
                return Some(p);
            }
            let victim = self.oldest()?;
            self.remove(victim);
            self.stats().evictions += 1;
        }
    }

    fn insert(&mut self, hash: &TokenHash, kind: EntryKind, jwt: &[u8], expires_ms: u64) -> bool {
        let Ok(jwt_len) = u32::try_from(jwt.len()) else {
            return false;
        };
        let size = size_of::<Entry>() + jwt.len();
        let Some(e) = self.alloc(size) else {
            return false;
        };
        // SAFETY: `e` is a fresh allocation of `size` bytes.
        unsafe {
            let entry = e.as_ptr();
            ptr::write_bytes(entry.cast::<u8>(), 0, size_of::<Entry>());
            (*entry).hash = *hash;
            (*entry).expires_ms = expires_ms;
            (*entry).kind = kind;
            (*entry).jwt_len = jwt_len;
            ptr::copy_nonoverlapping(
                jwt.as_ptr(),
                entry.cast::<u8>().add(size_of::<Entry>()),
                jwt.len(),
            );
            let bucket = self.bucket(hash);
            (*entry).next = *bucket;
            *bucket = entry;
            ngx_queue_insert_after(&mut self.h.lru, &mut (*entry).lru);
        }
        self.h.entries += 1;
        self.h.bytes += size as u64;
        true
    }
}

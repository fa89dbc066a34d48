//! The state of one client request, kept in its module context (see
//! `docs/behaviour.md`, "Request states"):
//!
//! ```text
//! (no context) ──miss──▶ Introspecting ──subrequest ends──▶ Done ──▶ answer
//!      │                      ▲
//!      └──flight running──▶ Waiting ──released / deadline──┘
//!                             └──result stored by the flight──▶ answer (HIT)
//! ```
//!
//! Module contexts are cleared by internal redirects; what must survive
//! them (the request was already authorized, `$phantom_token_cache_status`)
//! lives in a [`RequestNote`] attached to the request's pool.

use core::ffi::c_void;
use core::ptr;

use allocator_api2::vec::Vec as PoolVec;
use nginx_sys::{
    ngx_http_request_t, ngx_int_t, ngx_msec_t, ngx_pool_cleanup_add, ngx_pool_t, ngx_str_t,
    ngx_uint_t, NGX_OK,
};
use ngx::core::Pool;
use ngx::http::HttpModule;

use crate::cache::policy::CacheControl;
use crate::cache::zone::{now_mono, CacheKey, EntryKind, Zone};
use crate::verify::FetchClaim;
use crate::Module;

/// Where a client request is in its journey.
pub enum RequestState {
    /// Waiting for another request's introspection of the same token
    /// (flight `flight`); polled with back-off until `deadline`.
    Waiting {
        /// The token's cache key.
        key: CacheKey,
        /// The flight waited for.
        flight: u64,
        /// Monotonic ms after which the request introspects by itself.
        deadline: u64,
        /// The next poll delay (doubles up to a ceiling).
        delay: ngx_msec_t,
    },
    /// Our introspection subrequest runs; `lease` (when leading a cache
    /// flight) settles the flight.
    Introspecting {
        /// The cache flight this request leads, if any.
        lease: Option<Lease>,
    },
    /// The subrequest finished; [`RequestCtx::response`] holds its answer.
    Done {
        /// The cache flight this request leads, if any.
        lease: Option<Lease>,
    },
    /// The JWT waits for keys: our JWKS subrequest runs.
    FetchingKeys {
        /// The JWT and its flight.
        pending: PendingJwt,
        /// This request's right to the one fetch.
        claim: FetchClaim,
    },
    /// The JWKS subrequest finished; [`RequestCtx::response`] holds its answer.
    KeysFetched {
        /// The JWT and its flight.
        pending: PendingJwt,
        /// This request's right to the one fetch.
        claim: FetchClaim,
    },
    /// The JWT waits for another request's JWKS fetch; polled with
    /// back-off until `deadline`.
    WaitingForKeys {
        /// The JWT and its flight.
        pending: PendingJwt,
        /// Monotonic ms after which the JWT is refused.
        deadline: u64,
        /// The next poll delay.
        delay: ngx_msec_t,
    },
}

impl RequestState {
    /// The poll delay of a waiting state.
    pub fn delay_mut(&mut self) -> Option<&mut ngx_msec_t> {
        match self {
            RequestState::Waiting { delay, .. } | RequestState::WaitingForKeys { delay, .. } => {
                Some(delay)
            }
            _ => None,
        }
    }
}

/// An introspected JWT held while its keys are fetched.
pub struct PendingJwt {
    /// The cache flight this request leads, if any.
    pub lease: Option<Lease>,
    /// The JWT (checked well-formed).
    pub jwt: PoolVec<u8, Pool>,
    /// The introspection answer's `Cache-Control`.
    pub cache_control: CacheControl,
    /// The JWT's `exp`.
    pub exp: Option<u64>,
}

/// The introspection response as captured by the body filter and the
/// post-subrequest handler.
pub struct CapturedResponse {
    /// HTTP status (0: none was received).
    pub status: ngx_uint_t,
    /// Return code NGINX finalized the subrequest with.
    pub rc: ngx_int_t,
    /// The response body, up to `max`.
    pub body: PoolVec<u8, Pool>,
    /// Ceiling for `body` (`phantom_token_max_jwt_size`).
    pub max: usize,
    /// The last buffer of the response was seen (it ended cleanly).
    pub ended: bool,
    /// The body went over `max` (and was dropped).
    pub too_large: bool,
    /// Part of the body could not be read (file read error, no memory).
    pub read_failed: bool,
    /// NGINX failed the subrequest (`NGX_ERROR`).
    pub failed: bool,
    /// An internal error (a caught panic) while finishing the subrequest.
    pub internal_error: bool,
    /// The response's `Cache-Control`.
    pub cache_control: CacheControl,
}

impl CapturedResponse {
    /// Forgets what was captured: NGINX is about to produce another answer
    /// for the subrequest (an `error_page` redirect or its own error page).
    pub fn restart(&mut self) {
        self.body.clear();
        self.ended = false;
        self.too_large = false;
        self.read_failed = false;
    }
}

/// The module context of a client request.
pub struct RequestCtx {
    /// Where the request is.
    pub state: RequestState,
    /// The answer of its introspection subrequest.
    pub response: CapturedResponse,
}

/// The right (and duty) to settle one cache flight: store its result, or
/// (when dropped unsettled: failure, abort) remove its marker so that the
/// waiting requests are released at once. Only this flight's marker is
/// ever touched.
pub struct Lease {
    zone: Zone,
    key: CacheKey,
    flight: u64,
    settled: bool,
}

impl Lease {
    /// A lease on flight `flight` of `key`.
    pub fn new(zone: Zone, key: CacheKey, flight: u64) -> Lease {
        Lease {
            zone,
            key,
            flight,
            settled: false,
        }
    }

    /// Ends the flight, storing `kind`/`jwt` for `ttl_ms` (0: nothing is
    /// stored and the waiters introspect by themselves).
    pub fn settle(mut self, kind: EntryKind, jwt: &[u8], ttl_ms: u64) {
        self.zone.settle(
            &self.key,
            self.flight,
            Some((kind, jwt, ttl_ms)),
            now_mono(),
        );
        self.settled = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.settled {
            self.zone.settle(&self.key, self.flight, None, now_mono());
        }
    }
}

/// The module context of `r`, if this module set one. (`ngx`'s
/// `Request::get_module_ctx` hands out a shared reference; the request's
/// state changes in place, so the slot is read here.)
///
/// # Safety
/// `r` must be a valid request; no other reference to its context may live.
pub unsafe fn context<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut RequestCtx> {
    let slot = (*r).ctx.add(Module::module().ctx_index);
    (*slot).cast::<RequestCtx>().as_mut()
}

/// Creates the context of `r` in `state` (replacing any), allocated in its
/// pool and dropped with it. `None` when out of memory.
///
/// # Safety
/// `r` must be a valid main request.
pub unsafe fn set_context<'a>(
    r: *mut ngx_http_request_t,
    state: RequestState,
    max_body: usize,
) -> Option<&'a mut RequestCtx> {
    if let Some(ctx) = context(r) {
        ctx.state = state;
        return Some(ctx);
    }
    let ctx = RequestCtx {
        state,
        response: CapturedResponse {
            status: 0,
            rc: NGX_OK as ngx_int_t,
            body: PoolVec::new_in(Pool::from_ngx_pool((*r).pool)),
            max: max_body,
            ended: false,
            too_large: false,
            read_failed: false,
            failed: false,
            internal_error: false,
            cache_control: CacheControl::default(),
        },
    };
    let ctx = pool_box((*r).pool, ctx)?;
    ngx::http::Request::from_ngx_http_request(r).set_module_ctx(ctx.cast(), Module::module());
    ctx.as_mut()
}

/// Moves `value` into `pool`, to be dropped when the pool is destroyed.
///
/// # Safety
/// `pool` must be a valid pool; `T` must not need more than 8-byte alignment.
unsafe fn pool_box<T>(pool: *mut ngx_pool_t, value: T) -> Option<*mut T> {
    unsafe extern "C" fn drop_value<T>(data: *mut c_void) {
        // SAFETY: `data` is the value written by `pool_box`, dropped once
        // when the pool is destroyed.
        unsafe { ptr::drop_in_place(data.cast::<T>()) }
    }
    const { assert!(align_of::<T>() <= 8) };
    let cleanup = ngx_pool_cleanup_add(pool, size_of::<T>()).as_mut()?;
    let p = cleanup.data.cast::<T>();
    ptr::write(p, value);
    cleanup.handler = Some(drop_value::<T>);
    Some(p)
}

/// The claims of a token, shared with the worker's memo.
pub type Claims = std::rc::Rc<serde_json::Map<String, serde_json::Value>>;

/// Facts about a client request that must survive internal redirects
/// (which clear module contexts): kept in a pool cleanup entry of the
/// request, found again by its handler.
#[derive(Debug, Default)]
pub struct RequestNote {
    /// The token was already exchanged for a JWT (don't introspect again).
    pub authorized: bool,
    /// Value of `$phantom_token_cache_status`.
    pub cache_status: Option<&'static str>,
    /// The forwarded JWT (in the request pool), once authorized.
    pub jwt: Option<ngx_str_t>,
    /// Its claims, decoded on first use (rules, `$phantom_token_claim_*`),
    /// or given by a JSON introspection answer.
    pub claims: Option<Claims>,
}

/// Pool cleanup of the note: drops it (and marks the cleanup entry as the note's).
unsafe extern "C" fn note_marker(data: *mut c_void) {
    // SAFETY: `data` is the note written by `note_mut`, dropped once when
    // the request's pool is destroyed.
    unsafe { ptr::drop_in_place(data.cast::<RequestNote>()) }
}

/// The request's note, if one was made.
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn note<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut RequestNote> {
    let marker: unsafe extern "C" fn(*mut c_void) = note_marker;
    let mut c = (*(*r).pool).cleanup;
    while let Some(cleanup) = c.as_ref() {
        if cleanup
            .handler
            .is_some_and(|h| core::ptr::fn_addr_eq(h, marker))
        {
            return cleanup.data.cast::<RequestNote>().as_mut();
        }
        c = cleanup.next;
    }
    None
}

/// The request's note, created on first use (None if out of memory).
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn note_mut<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut RequestNote> {
    if let Some(n) = note(r) {
        return Some(n);
    }
    let c = ngx_pool_cleanup_add((*r).pool, size_of::<RequestNote>()).as_mut()?;
    let data = c.data.cast::<RequestNote>();
    ptr::write(data, RequestNote::default());
    c.handler = Some(note_marker);
    data.as_mut()
}

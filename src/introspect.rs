//! The introspection subrequest: creating it, capturing its whole response
//! body with a body filter, and recording its outcome for the parent.

use core::ffi::c_void;
use core::ptr;

use allocator_api2::vec::Vec as PoolVec;
use nginx_sys::{
    ngx_alloc_chain_link, ngx_chain_t, ngx_create_temp_buf, ngx_http_output_body_filter_pt,
    ngx_http_post_subrequest_t, ngx_http_request_body_t, ngx_http_request_t, ngx_http_subrequest,
    ngx_http_top_body_filter, ngx_int_t, ngx_list_init, ngx_list_push, ngx_pcalloc,
    ngx_pool_cleanup_add, ngx_read_file, ngx_str_t, ngx_table_elt_t, ngx_uint_t, NGX_ERROR,
    NGX_HTTP_POST, NGX_HTTP_SUBREQUEST_WAITED, NGX_OK,
};
use ngx::core::Pool;
use ngx::http::HttpModule;

use crate::cache::{CacheControl, TokenHash};
use crate::conf::LocationConf;
use crate::ffi_guard::guard;
use crate::state::zone::{now_ms, EntryKind, Zone};
use crate::Module;

/// State shared by the client request and its introspection subrequest,
/// allocated in the client request's pool.
pub struct Introspection {
    /// The subrequest has finished (its post-subrequest handler ran).
    pub done: bool,
    /// HTTP status of the introspection response (0: none was received).
    pub status: ngx_uint_t,
    /// Return code NGINX finalized the subrequest with.
    pub rc: ngx_int_t,
    /// The response body, up to `max`.
    pub body: PoolVec<u8, Pool>,
    /// Ceiling for `body` (`phantom_token_max_jwt_size`).
    pub max: usize,
    /// The body went over `max` (and was dropped).
    pub too_large: bool,
    /// Part of the body could not be read back from a cache or temp file.
    pub read_failed: bool,
    /// The introspection response's `Cache-Control`.
    pub cache_control: CacheControl,
    /// Waiting for another request's introspection of the same token.
    pub waiting: bool,
    /// This request leads the introspection of a token for the cache.
    pub lease: Option<Lease>,
}

/// The right (and duty) to store the result of one token's introspection
/// in the cache; dropping it unstored removes the pending marker, so that
/// waiting requests take over at once.
pub struct Lease {
    zone: Zone,
    hash: TokenHash,
    done: bool,
}

impl Lease {
    /// Stores the outcome for `ttl_ms` (0: nothing is stored).
    pub fn complete(mut self, kind: EntryKind, jwt: &[u8], ttl_ms: u64) {
        self.zone.store(&self.hash, kind, jwt, now_ms(), ttl_ms);
        self.done = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.done {
            self.zone.abandon(&self.hash);
        }
    }
}

/// Why the subrequest could not be started.
#[derive(Debug)]
pub struct StartError(&'static str);

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// The module context of `r`, if this module set one.
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn context<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut Introspection> {
    let slot = (*r).ctx.add(Module::module().ctx_index);
    (*slot).cast::<Introspection>().as_mut()
}

/// # Safety
/// `r` must be a valid request; `ctx` must live as long as it.
unsafe fn set_context(r: *mut ngx_http_request_t, ctx: *mut Introspection) {
    *(*r).ctx.add(Module::module().ctx_index) = ctx.cast();
}

static POST_METHOD: &[u8] = b"POST";
const ACCEPT: (&[u8], &[u8]) = (b"Accept", b"application/jwt");
const CONTENT_TYPE: (&[u8], &[u8]) = (b"Content-Type", b"application/x-www-form-urlencoded");

/// The request's context, created (in its pool, dropped with it) if needed.
///
/// # Safety
/// `r` must be a valid main request.
pub unsafe fn context_or_create<'a>(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
) -> Option<&'a mut Introspection> {
    if let Some(ctx) = context(r) {
        return Some(ctx);
    }
    let pool = Pool::from_ngx_pool((*r).pool);
    let ctx = pool.allocate(Introspection {
        done: false,
        status: 0,
        rc: NGX_OK as ngx_int_t,
        body: PoolVec::new_in(pool.clone()),
        max: conf.max_jwt_size,
        too_large: false,
        read_failed: false,
        cache_control: CacheControl::default(),
        waiting: false,
        lease: None,
    });
    set_context(r, ctx);
    ctx.as_mut()
}

/// Starts the `POST <endpoint>` subrequest with body `token=<token>`;
/// `lease` (if any) is kept to store the result in the cache.
///
/// # Safety
/// `r` must be a valid main request in the access phase.
pub unsafe fn start(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    endpoint: &[u8],
    body: &[u8],
    lease: Option<(Zone, TokenHash)>,
) -> Result<(), StartError> {
    let ctx: *mut Introspection =
        context_or_create(r, conf).ok_or(StartError("context allocation failed"))?;
    (*ctx).lease = lease.map(|(zone, hash)| Lease {
        zone,
        hash,
        done: false,
    });

    let request_body = form_body(r, body).ok_or(StartError("body allocation failed"))?;
    let ps = ngx_pcalloc((*r).pool, size_of::<ngx_http_post_subrequest_t>())
        .cast::<ngx_http_post_subrequest_t>();
    if ps.is_null() {
        return Err(StartError("allocation failed"));
    }
    (*ps).handler = Some(post_subrequest);
    (*ps).data = ctx.cast();

    let mut uri = ngx_str_t {
        len: endpoint.len(),
        data: endpoint.as_ptr().cast_mut(),
    };
    let mut sr: *mut ngx_http_request_t = ptr::null_mut();
    let rc = ngx_http_subrequest(
        r,
        &mut uri,
        ptr::null_mut(),
        &mut sr,
        ps,
        NGX_HTTP_SUBREQUEST_WAITED as ngx_uint_t,
    );
    if rc != NGX_OK as ngx_int_t || sr.is_null() {
        return Err(StartError("ngx_http_subrequest failed"));
    }

    // The subrequest gets its own body and method; the client's body stays
    // untouched (and unread) for the upstream.
    (*sr).request_body = request_body;
    (*sr).method = NGX_HTTP_POST as ngx_uint_t;
    (*sr).method_name = ngx_str_t {
        len: POST_METHOD.len(),
        data: POST_METHOD.as_ptr().cast_mut(),
    };
    (*sr).headers_in.content_length_n = body.len() as _;
    (*sr).headers_in.set_chunked(0);

    if let Some(credential) = conf.basic_credential() {
        // 1.x style: a header list of its own, so that nothing we add can
        // reach the client request's list (the C module leaked its Basic
        // credential to the upstream that way).
        let headers = [(&b"Authorization"[..], credential), ACCEPT, CONTENT_TYPE];
        if !own_headers(sr, &headers) {
            return Err(StartError("header allocation failed"));
        }
    }
    set_context(sr, ctx);
    Ok(())
}

/// Builds the in-memory request body `bytes` in `r`'s pool.
unsafe fn form_body(
    r: *mut ngx_http_request_t,
    bytes: &[u8],
) -> Option<*mut ngx_http_request_body_t> {
    let pool = (*r).pool;
    let b = ngx_create_temp_buf(pool, bytes.len().max(1)).as_mut()?;
    ptr::copy_nonoverlapping(bytes.as_ptr(), b.pos, bytes.len());
    b.last = b.pos.add(bytes.len());
    b.set_last_buf(1);
    b.set_last_in_chain(1);
    let cl = ngx_alloc_chain_link(pool).as_mut()?;
    cl.buf = b;
    cl.next = ptr::null_mut();
    let rb = ngx_pcalloc(pool, size_of::<ngx_http_request_body_t>())
        .cast::<ngx_http_request_body_t>()
        .as_mut()?;
    rb.bufs = cl;
    Some(rb)
}

/// Gives the subrequest a fresh header list holding only `headers`.
unsafe fn own_headers(sr: *mut ngx_http_request_t, headers: &[(&[u8], &[u8])]) -> bool {
    let pool = (*sr).pool;
    let list = &mut (*sr).headers_in.headers;
    if ngx_list_init(list, pool, headers.len(), size_of::<ngx_table_elt_t>()) != NGX_OK as ngx_int_t
    {
        return false;
    }
    for (key, value) in headers {
        let h = ngx_list_push(list).cast::<ngx_table_elt_t>();
        if h.is_null() {
            return false;
        }
        ptr::write_bytes(h, 0, 1);
        if nginx_sys::add_to_ngx_table(h, pool, key, value).is_none() {
            return false;
        }
    }
    (*sr).headers_in.authorization = ptr::null_mut();
    true
}

/// Post-subrequest handler: records the status for the client request,
/// which NGINX then wakes up (the subrequest is `WAITED`).
unsafe extern "C" fn post_subrequest(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    // SAFETY: `data` is the context allocated in `start`, alive for the
    // whole client request; `sr` is the finishing subrequest.
    let log = (*(*sr).connection).log;
    guard(log, "finishing the introspection subrequest", rc, || {
        let ctx = &mut *data.cast::<Introspection>();
        let mut status = (*sr).headers_out.status;
        if status == 0 && (300..600).contains(&rc) {
            // No response was received: NGINX finalizes with 502/504.
            status = rc as ngx_uint_t;
        }
        ctx.status = status;
        ctx.rc = rc;
        ctx.done = true;
        ctx.cache_control = response_cache_control(sr);
        rc
    })
}

/// Folds every `Cache-Control` header of the subrequest's response.
unsafe fn response_cache_control(sr: *mut ngx_http_request_t) -> CacheControl {
    let mut cc = CacheControl::default();
    let request = ngx::http::Request::from_ngx_http_request(sr);
    for (name, value) in request.headers_out_iterator() {
        if name.as_bytes().eq_ignore_ascii_case(b"cache-control") {
            cc.parse_into(value.as_bytes());
        }
    }
    cc
}

static mut NEXT_BODY_FILTER: ngx_http_output_body_filter_pt = None;

/// Puts [`body_filter`] at the top of the body filter chain.
///
/// # Safety
/// Only from `postconfiguration`, while NGINX builds its filter chain.
pub unsafe fn install_body_filter() {
    NEXT_BODY_FILTER = ngx_http_top_body_filter;
    ngx_http_top_body_filter = Some(body_filter);
}

/// Collects every buffer of our introspection subrequests (memory or file,
/// however many reads it took) and passes everything else on.
unsafe extern "C" fn body_filter(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    if r != (*r).main {
        if let Some(ctx) = context(r) {
            let log = (*(*r).connection).log;
            return guard(
                log,
                "reading the introspection response",
                NGX_ERROR as ngx_int_t,
                || {
                    collect(ctx, chain);
                    NGX_OK as ngx_int_t
                },
            );
        }
    }
    match NEXT_BODY_FILTER {
        Some(next) => next(r, chain),
        None => NGX_ERROR as ngx_int_t,
    }
}

/// Appends the data of `chain` to `ctx.body` and marks every buffer consumed.
unsafe fn collect(ctx: &mut Introspection, mut chain: *mut ngx_chain_t) {
    while let Some(cl) = chain.as_mut() {
        chain = cl.next;
        let Some(b) = cl.buf.as_mut() else { continue };
        if b.temporary() != 0 || b.memory() != 0 || b.mmap() != 0 {
            let len = b.last.offset_from(b.pos) as usize;
            if len > 0 {
                append(ctx, len, |dst| {
                    ptr::copy_nonoverlapping(b.pos, dst.as_mut_ptr(), len);
                    true
                });
            }
            b.pos = b.last;
            if b.in_file() != 0 {
                b.file_pos = b.file_last;
            }
        } else if b.in_file() != 0 {
            let len = (b.file_last - b.file_pos) as usize;
            if len > 0 {
                let (file, offset) = (b.file, b.file_pos);
                append(ctx, len, |dst| {
                    ngx_read_file(file, dst.as_mut_ptr(), len, offset) == len as isize
                });
            }
            b.file_pos = b.file_last;
        }
    }
}

/// Grows `ctx.body` by `len` bytes filled by `fill`, unless that would pass
/// the ceiling (then the body is dropped and flagged too large).
fn append(ctx: &mut Introspection, len: usize, fill: impl FnOnce(&mut [u8]) -> bool) {
    if ctx.too_large || ctx.body.len() + len > ctx.max {
        ctx.too_large = true;
        ctx.body.clear();
        return;
    }
    let start = ctx.body.len();
    ctx.body.resize(start + len, 0);
    if !fill(&mut ctx.body[start..]) {
        ctx.read_failed = true;
        ctx.body.truncate(start);
    }
}

/// Facts about a client request that must survive internal redirects
/// (which clear module contexts): kept in a pool cleanup entry of the
/// request, found again by its handler.
#[derive(Debug, Default)]
pub struct RequestNote {
    /// The token was already exchanged for a JWT (don't introspect again).
    pub authorized: bool,
    /// Value of `$phantom_token_cache_status`.
    pub cache_status: Option<&'static str>,
}

unsafe extern "C" fn note_marker(_data: *mut c_void) {}

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

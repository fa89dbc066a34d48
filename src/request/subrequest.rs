//! The introspection subrequest: `POST <endpoint>` with `token=<token>`,
//! and its post-subrequest handler, which records the outcome for the
//! client request (`docs/behaviour.md`, "Introspection subrequest").

use core::ffi::c_void;
use core::ptr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use nginx_sys::{
    ngx_alloc_chain_link, ngx_create_temp_buf, ngx_http_post_subrequest_t, ngx_http_request_body_t,
    ngx_http_request_t, ngx_http_subrequest, ngx_int_t, ngx_list_init, ngx_list_push, ngx_pcalloc,
    ngx_str_t, ngx_table_elt_t, ngx_uint_t, NGX_HTTP_GET, NGX_HTTP_POST, NGX_HTTP_SPECIAL_RESPONSE,
    NGX_HTTP_SUBREQUEST_WAITED, NGX_LOG_ALERT,
};
use ngx::core::Status;
use ngx::{ngx_log_error, ngx_string};

use super::state::{RequestCtx, RequestState};
use crate::cache::policy::CacheControl;
use crate::conf::LocationConf;

/// Why the subrequest could not be started.
#[derive(Debug)]
pub struct StartError(&'static str);

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

const ACCEPT_JWT: (&[u8], &[u8]) = (b"Accept", b"application/jwt");
const ACCEPT_JSON: (&[u8], &[u8]) = (b"Accept", b"application/json");
const CONTENT_TYPE: (&[u8], &[u8]) = (b"Content-Type", b"application/x-www-form-urlencoded");

/// Starts the `POST <endpoint>` subrequest with `body` (`token=...`) for
/// the client request whose context is `ctx` (in state `Introspecting`).
///
/// # Safety
/// `r` must be a valid main request in the access phase; `ctx` its context.
pub unsafe fn start(
    r: *mut ngx_http_request_t,
    ctx: *mut RequestCtx,
    conf: &LocationConf,
    endpoint: &[u8],
    body: &[u8],
) -> Result<(), StartError> {
    let request_body = form_body(r, body).ok_or(StartError("body allocation failed"))?;
    let sr = launch(r, ctx, endpoint)?;

    // The subrequest gets its own body and method; the client's body stays
    // untouched (and unread) for the upstream.
    (*sr).request_body = request_body;
    (*sr).method = NGX_HTTP_POST as ngx_uint_t;
    (*sr).method_name = ngx_string!("POST");
    (*sr).headers_in.content_length_n = body.len() as _;
    (*sr).headers_in.set_chunked(0);

    if let Some(credential) = conf.basic_credential() {
        // 1.x style: a header list of its own, so that nothing we add can
        // reach the client request's list (the C module leaked its Basic
        // credential to the upstream that way).
        let accept = if conf.json_introspection() {
            ACCEPT_JSON
        } else {
            ACCEPT_JWT
        };
        let headers = [(&b"Authorization"[..], credential), accept, CONTENT_TYPE];
        if !own_headers(sr, &headers) {
            return Err(StartError("header allocation failed"));
        }
    }
    Ok(())
}

/// Starts the `GET <uri>` subrequest fetching the JWKS, for the client
/// request whose context is `ctx` (in state `FetchingKeys`). It carries
/// none of the client's headers (no token reaches the JWKS endpoint).
///
/// # Safety
/// `r` must be a valid main request in the access phase; `ctx` its context.
pub unsafe fn start_key_fetch(
    r: *mut ngx_http_request_t,
    ctx: *mut RequestCtx,
    uri: &[u8],
) -> Result<(), StartError> {
    let sr = launch(r, ctx, uri)?;
    (*sr).request_body = ptr::null_mut();
    (*sr).method = NGX_HTTP_GET as ngx_uint_t;
    (*sr).method_name = ngx_string!("GET");
    (*sr).headers_in.content_length_n = -1;
    (*sr).headers_in.set_chunked(0);
    if !own_headers(sr, &[ACCEPT_JSON]) {
        return Err(StartError("header allocation failed"));
    }
    Ok(())
}

/// Creates a waited subrequest to `uri` reporting to `ctx` through
/// [`post_subrequest`].
unsafe fn launch(
    r: *mut ngx_http_request_t,
    ctx: *mut RequestCtx,
    uri: &[u8],
) -> Result<*mut ngx_http_request_t, StartError> {
    let ps = ngx_pcalloc((*r).pool, size_of::<ngx_http_post_subrequest_t>())
        .cast::<ngx_http_post_subrequest_t>();
    if ps.is_null() {
        return Err(StartError("allocation failed"));
    }
    (*ps).handler = Some(post_subrequest);
    (*ps).data = ctx.cast();
    let mut uri = ngx_str_t {
        len: uri.len(),
        data: uri.as_ptr().cast_mut(),
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
    if rc != Status::NGX_OK.0 || sr.is_null() {
        return Err(StartError("ngx_http_subrequest failed"));
    }
    Ok(sr)
}

/// The context of the client request if `r` is one of our introspection
/// subrequests, however often it was redirected since.
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn is_ours(r: *mut ngx_http_request_t) -> Option<*mut RequestCtx> {
    let ps = (*r).post_subrequest.as_ref()?;
    let ours: unsafe extern "C" fn(*mut ngx_http_request_t, *mut c_void, ngx_int_t) -> ngx_int_t =
        post_subrequest;
    let handler = ps.handler?;
    core::ptr::fn_addr_eq(handler, ours).then_some(ps.data.cast())
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
    if ngx_list_init(list, pool, headers.len(), size_of::<ngx_table_elt_t>()) != Status::NGX_OK.0 {
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

/// Post-subrequest handler. NGINX calls it each time the subrequest is
/// finalized: once with an error code that an `error_page` then turns into
/// a redirect, again when the redirected request ends. The last call
/// holds the final answer; the client request is woken after it (the
/// subrequest is `WAITED`).
unsafe extern "C" fn post_subrequest(
    sr: *mut ngx_http_request_t,
    data: *mut c_void,
    rc: ngx_int_t,
) -> ngx_int_t {
    let ctx = data.cast::<RequestCtx>();
    // SAFETY: `data` is the client request's context (alive as long as the
    // client request); `sr` is the finishing subrequest.
    match catch_unwind(AssertUnwindSafe(|| record(sr, &mut *ctx, rc))) {
        Ok(rc) => rc,
        Err(_) => {
            let log = (*(*sr).connection).log;
            ngx_log_error!(
                NGX_LOG_ALERT,
                log,
                "phantom token: internal error while finishing the introspection subrequest"
            );
            // The client request must still end: it answers 500 when woken.
            (*ctx).response.internal_error = true;
            mark_done(&mut *ctx);
            if rc == Status::NGX_ERROR.0 {
                Status::NGX_OK.into()
            } else {
                rc
            }
        }
    }
}

/// Moves the client request to `Done` (or `KeysFetched`), keeping what it holds.
fn mark_done(ctx: &mut RequestCtx) {
    let state = core::mem::replace(&mut ctx.state, RequestState::Done { lease: None });
    ctx.state = match state {
        RequestState::Introspecting { lease } => RequestState::Done { lease },
        RequestState::FetchingKeys { pending, claim } => {
            RequestState::KeysFetched { pending, claim }
        }
        other => other,
    };
}

/// Records status, return code and `Cache-Control` of the subrequest.
unsafe fn record(sr: *mut ngx_http_request_t, ctx: &mut RequestCtx, rc: ngx_int_t) -> ngx_int_t {
    mark_done(ctx);
    let resp = &mut ctx.response;
    let mut status = (*sr).headers_out.status;
    if status == 0 && (300..600).contains(&rc) {
        // No response was received: NGINX finalizes with 502/504.
        status = rc as ngx_uint_t;
    }
    resp.status = status;
    resp.rc = rc;
    resp.cache_control = response_cache_control(sr);
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        // NGINX now produces another answer for the subrequest (an
        // error_page redirect or its own error page): capture that one.
        resp.restart();
    }
    if rc == Status::NGX_ERROR.0 && (*(*sr).connection).error() == 0 {
        // Left as is, NGX_ERROR from a subrequest terminates the client
        // request without any answer. Record the failure (502) and let the
        // subrequest end normally instead.
        resp.failed = true;
        return Status::NGX_OK.into();
    }
    rc
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

//! Capturing the introspection response: a body filter at the top of the
//! chain takes every buffer of our subrequests (memory or file, however
//! many reads it took) so that **no byte of an introspection ever reaches
//! the client** (`docs/behaviour.md`, "Introspection subrequest").
//!
//! A subrequest is recognised by its post-subrequest handler, not by its
//! module context: NGINX clears contexts on every internal redirect
//! (`error_page`, `try_files`, named locations), but keeps
//! `r->post_subrequest`. Whatever answer the subrequest ends with (the
//! authorization server's, a fallback location's, an error page) is
//! captured; requests started by a redirected subrequest (nested
//! subrequests, e.g. SSI) are swallowed.

use nginx_sys::{
    ngx_chain_t, ngx_http_output_body_filter_pt, ngx_http_request_t, ngx_http_top_body_filter,
    ngx_int_t,
};
use ngx::core::Status;

use super::state::{CapturedResponse, RequestCtx};
use super::subrequest::is_ours;
use crate::buffers::{buf_data, consume, BufData};
use crate::ffi_guard::guard;

static mut NEXT_BODY_FILTER: ngx_http_output_body_filter_pt = None;

/// Puts [`body_filter`] at the top of the body filter chain.
///
/// # Safety
/// Only from `postconfiguration`, while NGINX builds its filter chain.
pub unsafe fn install_body_filter() {
    NEXT_BODY_FILTER = ngx_http_top_body_filter;
    ngx_http_top_body_filter = Some(body_filter);
}

/// How a request relates to our introspection subrequests.
enum Origin {
    /// Not an introspection: pass through.
    Other,
    /// Our introspection subrequest (possibly redirected): capture.
    Introspection(*mut RequestCtx),
    /// A subrequest started inside an introspection: swallow.
    Nested,
}

/// Walks from `r` up to the main request looking for our subrequest.
///
/// # Safety
/// `r` must be a valid subrequest.
unsafe fn origin(r: *mut ngx_http_request_t) -> Origin {
    let mut cur = r;
    while let Some(req) = cur.as_ref() {
        if cur == req.main {
            break;
        }
        if let Some(ctx) = is_ours(cur) {
            return if cur == r {
                Origin::Introspection(ctx)
            } else {
                Origin::Nested
            };
        }
        cur = req.parent;
    }
    Origin::Other
}

unsafe extern "C" fn body_filter(r: *mut ngx_http_request_t, chain: *mut ngx_chain_t) -> ngx_int_t {
    if r != (*r).main {
        let origin = origin(r);
        if !matches!(origin, Origin::Other) {
            let log = (*(*r).connection).log;
            return guard(
                log,
                "reading the introspection response",
                Status::NGX_ERROR.into(),
                || {
                    match origin {
                        Origin::Introspection(ctx) => collect(r, &mut (*ctx).response, chain),
                        _ => collect_nothing(chain),
                    }
                    Status::NGX_OK.into()
                },
            );
        }
    }
    match NEXT_BODY_FILTER {
        Some(next) => next(r, chain),
        None => Status::NGX_ERROR.into(),
    }
}

/// Appends the data of `chain` to `resp.body`, marks every buffer consumed
/// and notes a clean end (the last buffer of the subrequest's answer).
unsafe fn collect(
    r: *mut ngx_http_request_t,
    resp: &mut CapturedResponse,
    mut chain: *mut ngx_chain_t,
) {
    while let Some(cl) = chain.as_mut() {
        chain = cl.next;
        let Some(b) = cl.buf.as_mut() else { continue };
        let data = match buf_data(b) {
            BufData::File { file, offset, len } => cached_in_memory(r, file, offset, len)
                .map_or(BufData::File { file, offset, len }, BufData::Memory),
            data => data,
        };
        let len = data.len();
        if len > 0 {
            append(resp, len, |dst| data.copy_to(dst));
        }
        if b.last_buf() != 0 || b.last_in_chain() != 0 {
            resp.ended = true;
        }
        consume(b);
    }
}

/// A `proxy_cache` hit is sent as a file buffer, but NGINX has already read
/// the start of the cache file (headers and, for a JWT-sized answer, the
/// whole body) into the cache's own buffer: take the bytes from there and
/// save a `pread` per request. `None` when the range is not all there.
#[cfg(ngx_feature = "http_cache")]
unsafe fn cached_in_memory<'a>(
    r: *mut ngx_http_request_t,
    file: *mut nginx_sys::ngx_file_t,
    offset: i64,
    len: usize,
) -> Option<&'a [u8]> {
    let cache = (*r).cache.as_ref()?;
    let file = file.as_ref()?;
    if file.fd != cache.file.fd || cache.file.fd == -1 {
        return None;
    }
    let buf = cache.buf.as_ref()?;
    // The cache buffer holds the file from offset 0 (`pos == start`) up to `last`.
    if buf.start.is_null() || buf.pos != buf.start || (buf.last as usize) < (buf.start as usize) {
        return None;
    }
    let read = buf.last as usize - buf.start as usize;
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(len)?;
    (end <= read).then(|| core::slice::from_raw_parts(buf.start.add(start), len))
}

#[cfg(not(ngx_feature = "http_cache"))]
unsafe fn cached_in_memory<'a>(
    _r: *mut ngx_http_request_t,
    _file: *mut nginx_sys::ngx_file_t,
    _offset: i64,
    _len: usize,
) -> Option<&'a [u8]> {
    None
}

/// Marks every buffer of `chain` consumed.
unsafe fn collect_nothing(mut chain: *mut ngx_chain_t) {
    while let Some(cl) = chain.as_mut() {
        chain = cl.next;
        if let Some(b) = cl.buf.as_mut() {
            consume(b);
        }
    }
}

/// Grows `resp.body` by `len` bytes filled by `fill`, unless that would pass
/// the ceiling (then the body is dropped and flagged too large) or memory
/// runs out (flagged unreadable: the request fails, not the worker).
fn append(resp: &mut CapturedResponse, len: usize, fill: impl FnOnce(&mut [u8]) -> bool) {
    if resp.too_large || resp.body.len() + len > resp.max {
        resp.too_large = true;
        resp.body.clear();
        return;
    }
    if resp.read_failed || resp.body.try_reserve(len).is_err() {
        resp.read_failed = true;
        return;
    }
    let start = resp.body.len();
    resp.body.resize(start + len, 0);
    if !fill(&mut resp.body[start..]) {
        resp.read_failed = true;
        resp.body.truncate(start);
    }
}

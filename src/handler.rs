//! The access-phase handler: parity.md's decision table, row by row.

use nginx_sys::{
    ngx_add_timer, ngx_handle_read_event, ngx_handle_write_event, ngx_http_block_reading,
    ngx_http_core_run_phases, ngx_http_finalize_request, ngx_http_request_t, ngx_http_test_reading,
    ngx_int_t, ngx_msec_t, ngx_pnalloc, ngx_str_t, NGX_AGAIN, NGX_DECLINED, NGX_HTTP_BAD_GATEWAY,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NO_CONTENT, NGX_HTTP_OPTIONS,
    NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_UNAUTHORIZED, NGX_LOG_ERR, NGX_LOG_WARN, NGX_OK,
};
use ngx::http::HttpModuleLocationConf;
use ngx::{ngx_log_debug, ngx_log_error};

use crate::bearer::{bearer_token, introspection_body, token_fingerprint};
use crate::cache::{jwt_ttl_ms, token_hash};
use crate::conf::LocationConf;
use crate::decision::{verdict, Verdict};
use crate::ffi_guard::guard;
use crate::introspect::{self, Introspection};
use crate::jwt::check_compact_jwt;
use crate::response::send_error;
use crate::state::zone::{now_ms, EntryKind, Lookup};
use crate::Module;

/// The access-phase entry point registered with NGINX.
///
/// # Safety
/// Called by NGINX with a valid request.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let log = (*(*r).connection).log;
    guard(
        log,
        "authorizing the request",
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        || access(r),
    )
}

macro_rules! debug {
    ($r:expr, $($arg:tt)+) => {
        ngx_log_debug!((*(*$r).connection).log, $($arg)+)
    };
}

/// Log lines the C module also writes: same text, and the connection's log
/// context left as it is (as the C module does).
macro_rules! log {
    ($level:expr, $r:expr, $($arg:tt)+) => {
        ngx_log_error!($level, (*(*$r).connection).log, $($arg)+)
    };
}

/// This module's own error lines, in NGINX's voice: `... while introspecting token`.
macro_rules! log_own {
    ($level:expr, $r:expr, $($arg:tt)+) => {{
        let log = (*(*$r).connection).log;
        (*log).action = c"introspecting token".as_ptr().cast_mut();
        ngx_log_error!($level, log, $($arg)+);
    }};
}

/// Marks the request for `$phantom_token_cache_status`.
unsafe fn set_cache_status(r: *mut ngx_http_request_t, status: &'static str) {
    if let Some(note) = introspect::note_mut(r) {
        note.cache_status = Some(status);
    }
}

unsafe fn access(r: *mut ngx_http_request_t) -> ngx_int_t {
    let request = ngx::http::Request::from_ngx_http_request(r);
    let Some(conf) = Module::location_conf(request) else {
        return NGX_DECLINED as ngx_int_t;
    };
    if !conf.enabled() {
        debug!(r, "Module disabled");
        return NGX_DECLINED as ngx_int_t;
    }
    if let Some(ctx) = introspect::context(r) {
        if ctx.waiting {
            // Woken up: look the token up again below.
            ctx.waiting = false;
        } else if !ctx.done {
            return NGX_AGAIN as ngx_int_t;
        } else {
            return finish(r, conf, ctx);
        }
    } else if introspect::note(r).is_some_and(|n| n.authorized) {
        debug!(r, "Token already introspected for this request");
        return NGX_OK as ngx_int_t;
    }
    if (*r).method == NGX_HTTP_OPTIONS as usize {
        return NGX_HTTP_NO_CONTENT as ngx_int_t;
    }
    let Some(endpoint) = conf.endpoint() else {
        log!(
            NGX_LOG_WARN,
            r,
            "Module not configured properly: missing introspection endpoint"
        );
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    let Some(header) = (*r).headers_in.authorization.as_ref() else {
        debug!(r, "Authorization header not present");
        return send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize);
    };
    let Some(token) = bearer_token(header.value.as_bytes()) else {
        debug!(r, "Authorization header does not contain a bearer token");
        return send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize);
    };

    let mut lease = None;
    match conf.cache() {
        None => set_cache_status(r, "BYPASS"),
        Some(zone) => {
            let hash = token_hash(token);
            let lookup = zone.begin(&hash, now_ms(), conf.cache_lock_timeout as u64, |jwt| {
                bearer_value(r, jwt)
            });
            match lookup {
                Lookup::Jwt(value) => {
                    set_cache_status(r, "HIT");
                    return use_jwt(r, conf, value);
                }
                Lookup::Inactive => {
                    set_cache_status(r, "NEGATIVE");
                    return send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize);
                }
                Lookup::Wait => return wait_for_leader(r, conf),
                Lookup::Lead { expired } => {
                    set_cache_status(r, if expired { "EXPIRED" } else { "MISS" });
                    lease = Some((zone, hash));
                }
            }
        }
    }
    debug!(r, "Introspecting token {}", token_fingerprint(token));
    let body = introspection_body(token);
    match introspect::start(r, conf, endpoint, body.as_bytes(), lease) {
        Ok(()) => NGX_AGAIN as ngx_int_t,
        Err(e) => {
            log_own!(NGX_LOG_ERR, r, "{e}");
            send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize)
        }
    }
}

/// How often a request waiting for another one's introspection of the same
/// token looks at the cache again (bounded by `phantom_token_cache_lock_timeout`).
const WAIT_POLL_MS: ngx_msec_t = 2;

/// Parks the request on a short timer (as `limit_req` delays requests); it
/// re-enters the access phase when the timer fires.
unsafe fn wait_for_leader(r: *mut ngx_http_request_t, conf: &LocationConf) -> ngx_int_t {
    let Some(ctx) = introspect::context_or_create(r, conf) else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    ctx.waiting = true;
    let wev = (*(*r).connection).write;
    (*wev).set_delayed(1);
    ngx_add_timer(wev, WAIT_POLL_MS);
    (*r).read_event_handler = Some(ngx_http_test_reading);
    (*r).write_event_handler = Some(wake_up);
    NGX_AGAIN as ngx_int_t
}

/// Write event handler of a waiting request.
unsafe extern "C" fn wake_up(r: *mut ngx_http_request_t) {
    let wev = (*(*r).connection).write;
    if (*wev).delayed() != 0 {
        if ngx_handle_write_event(wev, 0) != NGX_OK as ngx_int_t {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        }
        return;
    }
    if ngx_handle_read_event((*(*r).connection).read, 0) != NGX_OK as ngx_int_t {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        return;
    }
    (*r).read_event_handler = Some(ngx_http_block_reading);
    (*r).write_event_handler = Some(ngx_http_core_run_phases);
    ngx_http_core_run_phases(r);
}

/// Second call, after the subrequest finished: decide from its outcome.
unsafe fn finish(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut Introspection,
) -> ngx_int_t {
    let status = ctx.status;
    let lease = ctx.lease.take();
    match verdict(status) {
        Verdict::ForwardJwt => forward_jwt(r, conf, ctx, lease),
        Verdict::Inactive => {
            debug!(
                r,
                "Introspection subrequest returned 204: token is not active"
            );
            if let Some(lease) = lease {
                lease.complete(EntryKind::Inactive, b"", conf.cache_negative_ttl as u64);
            }
            send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize)
        }
        Verdict::Unavailable => {
            debug!(r, "Introspection subrequest returned 503");
            send_error(r, conf, NGX_HTTP_SERVICE_UNAVAILABLE as usize)
        }
        Verdict::BadGateway => {
            log!(
                NGX_LOG_ERR,
                r,
                "Introspection subrequest returned response code: {status}"
            );
            send_error(r, conf, NGX_HTTP_BAD_GATEWAY as usize)
        }
        Verdict::Unexpected => {
            log!(
                NGX_LOG_ERR,
                r,
                "Introspection subrequest returned response code: {status}"
            );
            send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize)
        }
    }
}

/// Checks that the body is complete and a well-formed JWT, caches it (when
/// leading for the cache) and forwards it.
unsafe fn forward_jwt(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut Introspection,
    lease: Option<introspect::Lease>,
) -> ngx_int_t {
    let bad_gateway = |what: core::fmt::Arguments| {
        log_own!(NGX_LOG_ERR, r, "Introspection subrequest returned {what}");
        send_error(r, conf, NGX_HTTP_BAD_GATEWAY as usize)
    };
    if ctx.too_large {
        return bad_gateway(format_args!(
            "a response larger than phantom_token_max_jwt_size ({} bytes)",
            ctx.max
        ));
    }
    if ctx.read_failed || ctx.rc != NGX_OK as ngx_int_t {
        return bad_gateway(format_args!("an incomplete response (rc: {})", ctx.rc));
    }
    let claims = match check_compact_jwt(&ctx.body) {
        Ok(claims) => claims,
        Err(e) => return bad_gateway(format_args!("{e}")),
    };
    if let Some(lease) = lease {
        let ttl = jwt_ttl_ms(
            now_ms(),
            ctx.cache_control,
            claims.exp,
            conf.cache_max_ttl as u64,
        );
        lease.complete(EntryKind::Jwt, &ctx.body, ttl);
    }
    use_jwt(r, conf, bearer_value(r, &ctx.body))
}

/// `Bearer <jwt>` in the request pool (one copy of the JWT).
unsafe fn bearer_value(r: *mut ngx_http_request_t, jwt: &[u8]) -> Option<ngx_str_t> {
    const PREFIX: &[u8] = b"Bearer ";
    let len = PREFIX.len() + jwt.len();
    let data = ngx_pnalloc((*r).pool, len).cast::<u8>();
    if data.is_null() {
        return None;
    }
    core::ptr::copy_nonoverlapping(PREFIX.as_ptr(), data, PREFIX.len());
    core::ptr::copy_nonoverlapping(jwt.as_ptr(), data.add(PREFIX.len()), jwt.len());
    Some(ngx_str_t { len, data })
}

/// Replaces the client's `Authorization` value with `value` (`Bearer <jwt>`).
unsafe fn use_jwt(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    value: Option<ngx_str_t>,
) -> ngx_int_t {
    let (Some(header), Some(value)) = ((*r).headers_in.authorization.as_mut(), value) else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    header.value = value;
    let Some(note) = introspect::note_mut(r) else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    note.authorized = true;
    debug!(
        r,
        "Forwarding a JWT of {} bytes to the upstream",
        value.len - 7
    );
    NGX_OK as ngx_int_t
}

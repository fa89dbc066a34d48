//! The access-phase handler: parity.md's decision table, row by row.

use nginx_sys::{
    ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_AGAIN, NGX_DECLINED, NGX_HTTP_BAD_GATEWAY,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NO_CONTENT, NGX_HTTP_OPTIONS,
    NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_UNAUTHORIZED, NGX_LOG_ERR, NGX_LOG_WARN, NGX_OK,
};
use ngx::http::HttpModuleLocationConf;
use ngx::{ngx_log_debug, ngx_log_error};

use crate::bearer::{bearer_token, introspection_body, token_fingerprint};
use crate::conf::LocationConf;
use crate::ffi_guard::guard;
use crate::introspect::{self, Introspection};
use crate::jwt::check_compact_jwt;
use crate::response::send_error;
use crate::Module;

/// What the client request gets for an introspection response status.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200: forward the JWT in the body.
    ForwardJwt,
    /// 204: the token is not active → 401.
    Inactive,
    /// 503 from the authorization server → 503.
    Unavailable,
    /// 401/403/404/5xx (or no response at all) → 502, logged.
    BadGateway,
    /// Any other status → 500, logged.
    Unexpected,
}

/// Maps the introspection response status to the client's outcome.
pub fn verdict(status: usize) -> Verdict {
    match status {
        200 => Verdict::ForwardJwt,
        204 => Verdict::Inactive,
        503 => Verdict::Unavailable,
        0 | 401 | 403 | 404 => Verdict::BadGateway,
        s if s >= 500 => Verdict::BadGateway,
        _ => Verdict::Unexpected,
    }
}

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

macro_rules! log {
    ($level:expr, $r:expr, $($arg:tt)+) => {
        ngx_log_error!($level, (*(*$r).connection).log, $($arg)+)
    };
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
        if !ctx.done {
            return NGX_AGAIN as ngx_int_t;
        }
        return finish(r, conf, ctx);
    }
    if introspect::is_authorized(r) {
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
    debug!(r, "Introspecting token {}", token_fingerprint(token));
    let body = introspection_body(token);
    match introspect::start(r, conf, endpoint, body.as_bytes()) {
        Ok(()) => NGX_AGAIN as ngx_int_t,
        Err(e) => {
            log!(NGX_LOG_ERR, r, "{e} while introspecting token");
            send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize)
        }
    }
}

/// Second call, after the subrequest finished: decide from its outcome.
unsafe fn finish(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut Introspection,
) -> ngx_int_t {
    let status = ctx.status;
    match verdict(status) {
        Verdict::ForwardJwt => forward_jwt(r, conf, ctx),
        Verdict::Inactive => {
            debug!(
                r,
                "Introspection subrequest returned 204: token is not active"
            );
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

/// Replaces the client's `Authorization` value with `Bearer <jwt>`, after
/// checking that the body is complete and a well-formed JWT.
unsafe fn forward_jwt(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut Introspection,
) -> ngx_int_t {
    let bad_gateway = |what: core::fmt::Arguments| {
        log!(NGX_LOG_ERR, r, "Introspection subrequest returned {what}");
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
    if let Err(e) = check_compact_jwt(&ctx.body) {
        return bad_gateway(format_args!("{e}"));
    }
    let Some(header) = (*r).headers_in.authorization.as_mut() else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    let mut value = Vec::with_capacity(7 + ctx.body.len());
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(&ctx.body);
    let Some(v) = ngx_str_t::from_bytes((*r).pool, &value) else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    header.value = v;
    if !introspect::mark_authorized(r) {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    }
    debug!(
        r,
        "Forwarding JWT of {} bytes to the upstream",
        ctx.body.len()
    );
    NGX_OK as ngx_int_t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        assert_eq!(verdict(200), Verdict::ForwardJwt);
        assert_eq!(verdict(204), Verdict::Inactive);
        assert_eq!(verdict(503), Verdict::Unavailable);
        for s in [0, 401, 403, 404, 500, 502, 504, 599] {
            assert_eq!(verdict(s), Verdict::BadGateway, "{s}");
        }
        for s in [201, 301, 302, 400, 418, 429] {
            assert_eq!(verdict(s), Verdict::Unexpected, "{s}");
        }
    }
}

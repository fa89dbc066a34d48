//! The access-phase handler: the decision table of `docs/behaviour.md`,
//! row by row, then the request's states ([`RequestState`]).

use core::cell::RefCell;

use nginx_sys::{
    ngx_add_timer, ngx_handle_read_event, ngx_handle_write_event, ngx_http_block_reading,
    ngx_http_core_run_phases, ngx_http_finalize_request, ngx_http_request_t, ngx_http_test_reading,
    ngx_int_t, ngx_msec_t, ngx_pnalloc, ngx_str_t, NGX_HTTP_BAD_GATEWAY,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NO_CONTENT, NGX_HTTP_OPTIONS,
    NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_UNAUTHORIZED, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_WARN,
};
use ngx::core::Status;
use ngx::http::HttpModuleLocationConf;

use super::authorize::{admit, bound_to_dpop_key, json_claims};
use super::json::{accept_json_answer, stored_value, use_claims};
use super::state::{self, Lease, RequestCtx, RequestState};
use super::subrequest;
use super::verification::{finish_key_fetch, pending_jwt, resume_key_wait, verify_then_forward};
use crate::bearer::{access_token, introspection_body, token_fingerprint, Scheme};
use crate::cache::zone::{now_mono, CacheKey, EntryKind, Lookup, Poll};
use crate::conf::LocationConf;
use crate::decision::{verdict, Verdict};
use crate::ffi_guard::guard;
use crate::jwt::{check_compact_jwt, JwtClaims, JwtShapeError};
use crate::jwt_memo::JwtMemo;
use crate::response::send_error;
use crate::Module;

/// The access-phase entry point registered with NGINX.
///
/// # Safety
/// Called by NGINX with a valid request.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    entry(r, Phase::Access)
}

/// The preaccess-phase entry point (`phantom_token_phase preaccess`).
///
/// # Safety
/// Called by NGINX with a valid request.
pub unsafe extern "C" fn preaccess_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    entry(r, Phase::Preaccess)
}

/// The phase a handler call comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// NGINX's preaccess phase (before `limit_req` and `limit_conn`).
    Preaccess,
    /// NGINX's access phase (the C module's).
    Access,
}

unsafe fn entry(r: *mut ngx_http_request_t, phase: Phase) -> ngx_int_t {
    let log = (*(*r).connection).log;
    let rc = guard(
        log,
        "authorizing the request",
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        || access(r, phase),
    );
    if phase == Phase::Preaccess && rc == Status::NGX_OK.0 {
        // In a generic phase NGX_OK would skip the phase's other handlers
        // (limit_req, limit_conn): let them run.
        return Status::NGX_DECLINED.into();
    }
    rc
}

/// Marks the request for `$phantom_token_cache_status`.
unsafe fn set_cache_status(r: *mut ngx_http_request_t, status: &'static str) {
    if let Some(note) = state::note_mut(r) {
        note.cache_status = Some(status);
    }
}

unsafe fn access(r: *mut ngx_http_request_t, phase: Phase) -> ngx_int_t {
    let request = ngx::http::Request::from_ngx_http_request(r);
    let Some(conf) = Module::location_conf(request) else {
        return Status::NGX_DECLINED.into();
    };
    // The preaccess handler stays silent where it has nothing to do (the
    // access handler writes the C module's debug lines, once).
    if phase == Phase::Preaccess && (conf.phase() == Phase::Access || !conf.enabled()) {
        return Status::NGX_DECLINED.into();
    }
    if !conf.enabled() {
        debug!(r, "Module disabled");
        return Status::NGX_DECLINED.into();
    }
    if state::note(r).is_some_and(|n| n.authorized) {
        debug!(r, "Token already introspected for this request");
        return Status::NGX_OK.into();
    }
    // A request in flight resumes in the phase that started it.
    if let Some(ctx) = state::context(r) {
        return match ctx.state {
            RequestState::Waiting { .. } => resume_waiting(r, conf, ctx),
            // Woken before the subrequest ended: keep waiting for it.
            RequestState::Introspecting { .. } => Status::NGX_AGAIN.into(),
            RequestState::Done { .. } => finish(r, conf, ctx),
            RequestState::FetchingKeys { .. } => Status::NGX_AGAIN.into(),
            RequestState::KeysFetched { .. } => finish_key_fetch(r, conf, ctx),
            RequestState::WaitingForKeys { .. } => resume_key_wait(r, conf, ctx),
        };
    }
    if phase != conf.phase() || (*r).main != r {
        // Not this location's phase; subrequests only reach the preaccess
        // handler (NGINX skips access handlers for them).
        return Status::NGX_DECLINED.into();
    }
    if (*r).method == NGX_HTTP_OPTIONS as usize {
        return NGX_HTTP_NO_CONTENT as ngx_int_t;
    }
    if conf.endpoint().is_none() {
        log!(
            NGX_LOG_WARN,
            r,
            "Module not configured properly: missing introspection endpoint"
        );
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    }
    if (*r).headers_in.authorization.is_null() {
        debug!(r, "Authorization header not present");
        return send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize);
    }
    let Some((scheme, token)) = client_token(r, conf) else {
        debug!(r, "Authorization header does not contain a bearer token");
        return send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize);
    };

    let Some(zone) = conf.cache() else {
        set_cache_status(r, "BYPASS");
        return introspect(r, conf, token, None);
    };
    let key = CacheKey {
        token: zone.token_digest(token),
        endpoint: conf.endpoint_id,
    };
    let lookup = zone.begin(&key, now_mono(), conf.cache_lock_timeout as u64, |stored| {
        stored_value(r, conf, scheme, stored)
    });
    match lookup {
        Lookup::Jwt(value) => cache_hit(r, conf, value),
        Lookup::Inactive => cache_negative(r, conf),
        Lookup::Wait { flight } => {
            let waiting = RequestState::Waiting {
                key,
                flight,
                deadline: now_mono() + conf.cache_lock_timeout as u64,
                delay: FIRST_POLL_MS,
            };
            match state::set_context(r, waiting, conf.max_jwt_size) {
                Some(ctx) => wait(r, ctx),
                None => send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize),
            }
        }
        Lookup::Lead { flight, expired } => {
            set_cache_status(r, if expired { "EXPIRED" } else { "MISS" });
            introspect(r, conf, token, Some(Lease::new(zone, key, flight)))
        }
    }
}

/// A JWT from the zone (`HIT`): forward it.
unsafe fn cache_hit(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    value: Option<ngx_str_t>,
) -> ngx_int_t {
    set_cache_status(r, "HIT");
    if conf.json_introspection() {
        let stored = value.map(|v| core::slice::from_raw_parts(v.data, v.len));
        let claims = stored.and_then(json_claims);
        return use_claims(r, conf, claims);
    }
    use_jwt(r, conf, value)
}

/// A remembered inactive token (`NEGATIVE`): 401 without introspection.
unsafe fn cache_negative(r: *mut ngx_http_request_t, conf: &LocationConf) -> ngx_int_t {
    set_cache_status(r, "NEGATIVE");
    send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize)
}

/// Starts the introspection subrequest; `lease` settles the cache flight
/// this request leads (if any).
unsafe fn introspect(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    token: &[u8],
    lease: Option<Lease>,
) -> ngx_int_t {
    let Some(endpoint) = conf.endpoint() else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    debug!(r, "Introspecting token {}", token_fingerprint(token));
    let introspecting = RequestState::Introspecting { lease };
    let Some(ctx) = state::set_context(r, introspecting, conf.max_jwt_size) else {
        log_own!(NGX_LOG_ERR, r, "context allocation failed");
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    let body = introspection_body(token);
    match subrequest::start(r, ctx, conf, endpoint, body.as_bytes()) {
        Ok(()) => Status::NGX_AGAIN.into(),
        Err(e) => {
            log_own!(NGX_LOG_ERR, r, "{e}");
            // Releases the flight (its waiters introspect by themselves).
            ctx.state = RequestState::Done { lease: None };
            send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize)
        }
    }
}

/// First delay between two looks at a running flight; it doubles up to
/// [`MAX_POLL_MS`], so a slow authorization server does not turn waiting
/// requests into a lock storm.
pub(super) const FIRST_POLL_MS: ngx_msec_t = 2;
/// Longest delay between two looks at a running flight.
const MAX_POLL_MS: ngx_msec_t = 32;

/// Parks the request on a timer (as `limit_req` delays requests); it
/// re-enters the access phase when the timer fires.
pub(super) unsafe fn wait(r: *mut ngx_http_request_t, ctx: &mut RequestCtx) -> ngx_int_t {
    let Some(delay) = ctx.state.delay_mut() else {
        return Status::NGX_AGAIN.into();
    };
    let wev = (*(*r).connection).write;
    (*wev).set_delayed(1);
    ngx_add_timer(wev, *delay);
    *delay = (*delay * 2).min(MAX_POLL_MS);
    (*r).read_event_handler = Some(ngx_http_test_reading);
    (*r).write_event_handler = Some(wake_up);
    Status::NGX_AGAIN.into()
}

/// Write event handler of a waiting request.
unsafe extern "C" fn wake_up(r: *mut ngx_http_request_t) {
    let wev = (*(*r).connection).write;
    if (*wev).delayed() != 0 {
        if ngx_handle_write_event(wev, 0) != Status::NGX_OK.0 {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        }
        return;
    }
    if ngx_handle_read_event((*(*r).connection).read, 0) != Status::NGX_OK.0 {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
        return;
    }
    (*r).read_event_handler = Some(ngx_http_block_reading);
    (*r).write_event_handler = Some(ngx_http_core_run_phases);
    ngx_http_core_run_phases(r);
}

/// A waiting request looks at its flight again: the stored result, still
/// running (wait more, until the request's deadline), or released
/// (introspect by itself, at once).
unsafe fn resume_waiting(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut RequestCtx,
) -> ngx_int_t {
    let RequestState::Waiting {
        key,
        flight,
        deadline,
        ..
    } = ctx.state
    else {
        return Status::NGX_AGAIN.into();
    };
    let Some(zone) = conf.cache() else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    let now = now_mono();
    let scheme = client_token(r, conf).map_or(Scheme::Bearer, |(scheme, _)| scheme);
    match zone.poll(&key, flight, now, |stored| {
        stored_value(r, conf, scheme, stored)
    }) {
        Poll::Jwt(value) => cache_hit(r, conf, value),
        Poll::Inactive => cache_negative(r, conf),
        Poll::Pending if now < deadline => wait(r, ctx),
        Poll::Pending => {
            zone.count_released();
            introspect_alone(r, conf, key)
        }
        Poll::Released => introspect_alone(r, conf, key),
    }
}

/// A waiting request that cannot get its flight's result introspects at
/// once. If the zone holds nothing for the token any more (the leader
/// failed or went away), the first such request leads a new flight, so its
/// result can be stored; the others introspect outside any flight.
unsafe fn introspect_alone(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    key: CacheKey,
) -> ngx_int_t {
    set_cache_status(r, "MISS");
    let lease = conf.cache().and_then(|zone| {
        let flight = zone.try_lead(&key, now_mono(), conf.cache_lock_timeout as u64)?;
        Some(Lease::new(zone, key, flight))
    });
    match client_token(r, conf) {
        Some((_, token)) => introspect(r, conf, token, lease),
        None => send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize),
    }
}

/// After the subrequest: decide from its outcome (the decision table).
unsafe fn finish(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut RequestCtx,
) -> ngx_int_t {
    let lease = match &mut ctx.state {
        RequestState::Done { lease } => lease.take(),
        _ => None,
    };
    let resp = &ctx.response;
    if resp.internal_error {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    }
    let status = resp.status;
    match verdict(status) {
        Verdict::ForwardJwt => forward_jwt(r, conf, ctx, lease),
        Verdict::Inactive => {
            debug!(
                r,
                "Introspection subrequest returned 204: token is not active"
            );
            if let Some(lease) = lease {
                lease.settle(EntryKind::Inactive, b"", conf.cache_negative_ttl as u64);
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

/// Checks that the answer ended cleanly and is a well-formed JWT, settles
/// the cache flight (when leading one) and forwards the JWT.
unsafe fn forward_jwt(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut RequestCtx,
    lease: Option<Lease>,
) -> ngx_int_t {
    let resp = &ctx.response;
    let bad_gateway = |what: core::fmt::Arguments| {
        log_own!(NGX_LOG_ERR, r, "Introspection subrequest returned {what}");
        send_error(r, conf, NGX_HTTP_BAD_GATEWAY as usize)
    };
    if resp.too_large {
        return bad_gateway(format_args!(
            "a response larger than phantom_token_max_jwt_size ({} bytes)",
            resp.max
        ));
    }
    if !resp.ended || resp.failed || resp.read_failed || resp.rc != Status::NGX_OK.0 {
        return bad_gateway(format_args!(
            "an incomplete response (rc: {}, ended: {}, read failed: {})",
            resp.rc,
            resp.ended && !resp.failed,
            resp.read_failed
        ));
    }
    if conf.json_introspection() {
        return accept_json_answer(r, conf, ctx, lease);
    }
    let claims = match checked_jwt(&resp.body) {
        Ok(claims) => claims,
        Err(e) => return bad_gateway(format_args!("{e}")),
    };
    let pending = pending_jwt(r, ctx, lease, claims.exp);
    verify_then_forward(r, conf, ctx, pending, true)
}

std::thread_local! {
    /// This worker's memo of accepted JWTs (see `jwt_memo`).
    static JWT_MEMO: RefCell<JwtMemo> = RefCell::new(JwtMemo::new());
}

/// [`check_compact_jwt`] through the worker's memo.
fn checked_jwt(body: &[u8]) -> Result<JwtClaims, JwtShapeError> {
    JWT_MEMO
        .try_with(|memo| match memo.try_borrow_mut() {
            Ok(mut memo) => memo.check(body),
            Err(_) => check_compact_jwt(body),
        })
        .unwrap_or_else(|_| check_compact_jwt(body))
}

/// The client's access token and its scheme (`DPoP` only with
/// `phantom_token_dpop on`), while the header is still the client's.
pub(super) unsafe fn client_token<'a>(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
) -> Option<(Scheme, &'a [u8])> {
    let header = (*r).headers_in.authorization.as_ref()?;
    access_token(header.value.as_bytes(), conf.dpop == 1)
}

/// `Bearer <jwt>` (or `DPoP <jwt>`) in the request pool (one copy of the JWT).
pub(super) unsafe fn forward_value(
    r: *mut ngx_http_request_t,
    scheme: Scheme,
    jwt: &[u8],
) -> Option<ngx_str_t> {
    let prefix = scheme.prefix();
    let len = prefix.len() + jwt.len();
    let data = ngx_pnalloc((*r).pool, len).cast::<u8>();
    if data.is_null() {
        return None;
    }
    core::ptr::copy_nonoverlapping(prefix.as_ptr(), data, prefix.len());
    core::ptr::copy_nonoverlapping(jwt.as_ptr(), data.add(prefix.len()), jwt.len());
    Some(ngx_str_t { len, data })
}

/// Replaces the client's `Authorization` value with `value` (`Bearer <jwt>`)
/// once the location's rules hold for the token's claims.
pub(super) unsafe fn use_jwt(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    value: Option<ngx_str_t>,
) -> ngx_int_t {
    let (Some(note), Some(value)) = (state::note_mut(r), value) else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    // The JWT is the value after `Bearer ` or `DPoP ` (for `$phantom_token_jwt`).
    let slice = core::slice::from_raw_parts(value.data, value.len);
    let skip = slice.iter().position(|&b| b == b' ').map_or(0, |i| i + 1);
    note.jwt = Some(ngx_str_t {
        len: value.len - skip,
        data: value.data.add(skip),
    });
    note.claims = None;
    if conf.dpop == 1 && slice.starts_with(b"Bearer ") && bound_to_dpop_key(r) {
        log_own!(
            NGX_LOG_INFO,
            r,
            "DPoP-bound token presented as a bearer token"
        );
        return send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize);
    }
    if let Err(rc) = admit(r, conf, value) {
        return rc;
    }
    debug!(
        r,
        "Forwarding a JWT of {} bytes to the upstream",
        value.len - skip
    );
    Status::NGX_OK.into()
}

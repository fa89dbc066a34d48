//! A JWT's verification at request time (docs/behaviour.md, "JWT
//! verification"): verify with the keys at hand, or hold the JWT while this
//! request fetches the keys (`FetchingKeys` → `KeysFetched`) or waits for
//! another request's fetch (`WaitingForKeys`); then store and forward it.

use allocator_api2::vec::Vec as PoolVec;
use nginx_sys::{
    ngx_http_request_t, ngx_int_t, NGX_HTTP_BAD_GATEWAY, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_LOG_ERR,
};
use ngx::core::{Pool, Status};

use super::handler::{client_token, forward_value, use_jwt, wait, FIRST_POLL_MS};
use super::state::{PendingJwt, RequestCtx, RequestState};
use super::subrequest;
use crate::bearer::Scheme;
use crate::cache::policy::jwt_ttl_ms;
use crate::cache::zone::{now_mono, EntryKind};
use crate::conf::LocationConf;
use crate::response::send_error;
use crate::time::now_wall_ms;
use crate::verify::keys::VerifyError;
use crate::verify::store::MAX_JWKS_SIZE;
use crate::verify::{FetchClaim, KeySource, Step, FETCH_TIMEOUT_MS};

/// Holds a checked JWT from `ctx`'s answer for verification.
pub(super) unsafe fn pending_jwt(
    r: *mut ngx_http_request_t,
    ctx: &mut RequestCtx,
    lease: Option<super::state::Lease>,
    exp: Option<u64>,
) -> PendingJwt {
    let cache_control = ctx.response.cache_control;
    let pool = Pool::from_ngx_pool((*r).pool);
    PendingJwt {
        lease,
        jwt: core::mem::replace(&mut ctx.response.body, PoolVec::new_in(pool)),
        cache_control,
        exp,
    }
}

/// Verifies the JWT (when the location verifies JWTs), then stores and
/// forwards it; may first fetch the keys (`may_fetch`) or wait for
/// another request's fetch.
pub(super) unsafe fn verify_then_forward(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut RequestCtx,
    pending: PendingJwt,
    may_fetch: bool,
) -> ngx_int_t {
    let Some(verifier) = conf.verifier.as_deref() else {
        return store_and_forward(r, conf, pending);
    };
    let step = verifier.step(&pending.jwt, now_wall_ms() / 1000, now_mono(), may_fetch);
    match step {
        Step::Verified(_) => store_and_forward(r, conf, pending),
        Step::Refused(e) => {
            log_own!(
                NGX_LOG_ERR,
                r,
                "Introspection subrequest returned a JWT that failed verification: {e}"
            );
            send_error(r, conf, NGX_HTTP_BAD_GATEWAY as usize)
        }
        Step::Fetch(claim) => fetch_keys(r, conf, ctx, pending, claim),
        Step::Wait => {
            ctx.state = RequestState::WaitingForKeys {
                pending,
                deadline: now_mono() + FETCH_TIMEOUT_MS,
                delay: FIRST_POLL_MS,
            };
            wait(r, ctx)
        }
    }
}

/// Starts the JWKS subrequest of the location's `phantom_token_jwks_request`.
unsafe fn fetch_keys(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut RequestCtx,
    pending: PendingJwt,
    claim: FetchClaim,
) -> ngx_int_t {
    let uri = match conf.verifier.as_deref().map(|v| &v.source) {
        Some(KeySource::Fetched(f)) => f.uri,
        _ => return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize),
    };
    debug!(r, "Fetching the JWKS from {}", uri);
    let resp = &mut ctx.response;
    resp.restart();
    resp.status = 0;
    resp.rc = Status::NGX_OK.0;
    resp.failed = false;
    resp.max = MAX_JWKS_SIZE;
    ctx.state = RequestState::FetchingKeys { pending, claim };
    match subrequest::start_key_fetch(r, ctx, uri.as_bytes()) {
        Ok(()) => Status::NGX_AGAIN.into(),
        Err(e) => {
            log_own!(NGX_LOG_ERR, r, "JWKS request: {e}");
            ctx.state = RequestState::Done { lease: None };
            send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize)
        }
    }
}

/// After the JWKS subrequest: store the keys if the answer is a complete
/// JWKS, then verify the held JWT with what the store holds now.
pub(super) unsafe fn finish_key_fetch(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut RequestCtx,
) -> ngx_int_t {
    let state = core::mem::replace(&mut ctx.state, RequestState::Done { lease: None });
    let RequestState::KeysFetched { pending, claim } = state else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    let resp = &ctx.response;
    let complete = resp.status == 200
        && resp.ended
        && !resp.failed
        && !resp.read_failed
        && !resp.too_large
        && resp.rc == Status::NGX_OK.0
        && !resp.internal_error;
    let stored = if complete {
        claim.store(&resp.body, now_mono())
    } else {
        claim.fail();
        Err(if resp.too_large {
            format!("JWKS request returned a JWKS larger than {MAX_JWKS_SIZE} bytes")
        } else {
            format!(
                "JWKS request returned an unusable response (status: {}, rc: {}, complete: {})",
                resp.status,
                resp.rc,
                resp.ended && !resp.failed && !resp.read_failed
            )
        })
    };
    if let Err(e) = stored {
        log_own!(NGX_LOG_ERR, r, "{e}");
    }
    verify_then_forward(r, conf, ctx, pending, false)
}

/// A JWT waiting for another request's key fetch looks again.
pub(super) unsafe fn resume_key_wait(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &mut RequestCtx,
) -> ngx_int_t {
    let state = core::mem::replace(&mut ctx.state, RequestState::Done { lease: None });
    let RequestState::WaitingForKeys {
        pending,
        deadline,
        delay,
    } = state
    else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    let Some(verifier) = conf.verifier.as_deref() else {
        return store_and_forward(r, conf, pending);
    };
    let now = now_mono();
    match verifier.step(&pending.jwt, now_wall_ms() / 1000, now, true) {
        Step::Wait if now < deadline => {
            ctx.state = RequestState::WaitingForKeys {
                pending,
                deadline,
                delay,
            };
            wait(r, ctx)
        }
        Step::Wait => {
            log_own!(
                NGX_LOG_ERR,
                r,
                "Introspection subrequest returned a JWT that failed verification: {}",
                VerifyError::NoKeys
            );
            send_error(r, conf, NGX_HTTP_BAD_GATEWAY as usize)
        }
        Step::Fetch(claim) => fetch_keys(r, conf, ctx, pending, claim),
        _ => verify_then_forward(r, conf, ctx, pending, false),
    }
}

/// Stores a verified (or not verified: no keys configured) JWT when
/// leading a cache flight, and forwards it.
unsafe fn store_and_forward(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    pending: PendingJwt,
) -> ngx_int_t {
    if let Some(lease) = pending.lease {
        let ttl = jwt_ttl_ms(
            now_wall_ms(),
            pending.cache_control,
            pending.exp,
            conf.cache_max_ttl as u64,
        );
        lease.settle(EntryKind::Jwt, &pending.jwt, ttl);
    }
    let scheme = client_token(r, conf).map_or(Scheme::Bearer, |(scheme, _)| scheme);
    use_jwt(r, conf, forward_value(r, scheme, &pending.jwt))
}

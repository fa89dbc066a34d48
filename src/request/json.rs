//! `phantom_token_introspection_format json` (docs/behaviour.md, "JSON
//! introspection"): RFC 7662 answers instead of a JWT; nothing is minted and
//! the opaque token does not go upstream.

use nginx_sys::{
    ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_HTTP_BAD_GATEWAY, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_HTTP_UNAUTHORIZED, NGX_LOG_ERR,
};
use ngx::core::Status;

use super::authorize::admit;
use super::handler::forward_value;
use super::state::{self, Lease, RequestCtx};
use crate::bearer::Scheme;
use crate::cache::policy::jwt_ttl_ms;
use crate::cache::zone::EntryKind;
use crate::claims::introspection_answer;
use crate::conf::LocationConf;
use crate::response::send_error;
use crate::time::now_wall_ms;

/// `phantom_token_introspection_format json`: a complete 200 answer is an
/// RFC 7662 JSON object; `active: true` lets the request proceed with its
/// claims (and is stored like a JWT), `active: false` is a 401 (and is
/// remembered like a 204).
pub(super) unsafe fn accept_json_answer(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    ctx: &RequestCtx,
    lease: Option<Lease>,
) -> ngx_int_t {
    let body = &ctx.response.body;
    match introspection_answer(body) {
        Err(what) => {
            log_own!(NGX_LOG_ERR, r, "Introspection subrequest returned {what}");
            send_error(r, conf, NGX_HTTP_BAD_GATEWAY as usize)
        }
        Ok(None) => {
            debug!(r, "Introspection answered \"active\": false");
            if let Some(lease) = lease {
                lease.settle(EntryKind::Inactive, b"", conf.cache_negative_ttl as u64);
            }
            send_error(r, conf, NGX_HTTP_UNAUTHORIZED as usize)
        }
        Ok(Some(claims)) => {
            if let Some(lease) = lease {
                let exp = claims.get("exp").and_then(|e| e.as_u64());
                let ttl = jwt_ttl_ms(
                    now_wall_ms(),
                    ctx.response.cache_control,
                    exp,
                    conf.cache_max_ttl as u64,
                );
                lease.settle(EntryKind::Jwt, body, ttl);
            }
            use_claims(r, conf, Some(std::rc::Rc::new(claims)))
        }
    }
}

/// JSON introspection: the request proceeds with `claims` (after the
/// location's rules); nothing is minted, and the client's `Authorization`
/// value is removed.
pub(super) unsafe fn use_claims(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    claims: Option<state::Claims>,
) -> ngx_int_t {
    let (Some(note), Some(claims)) = (state::note_mut(r), claims) else {
        return send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize);
    };
    note.jwt = None;
    note.claims = Some(claims);
    // The opaque token never leaves the gateway: the header's value is
    // emptied (NGINX's header list keeps the line; `proxy_set_header
    // Authorization "";` drops it).
    let empty = ngx_str_t {
        len: 0,
        data: c"".as_ptr().cast_mut().cast(),
    };
    if let Err(rc) = admit(r, conf, empty) {
        return rc;
    }
    debug!(r, "Token active (JSON introspection): request proceeds");
    Status::NGX_OK.into()
}

/// The value a cache entry gives this request: `Bearer <jwt>` (or
/// `DPoP <jwt>`), or with JSON introspection the stored answer itself.
pub(super) unsafe fn stored_value(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    scheme: Scheme,
    stored: &[u8],
) -> Option<ngx_str_t> {
    if conf.json_introspection() {
        ngx_str_t::from_bytes((*r).pool, stored)
    } else {
        forward_value(r, scheme, stored)
    }
}

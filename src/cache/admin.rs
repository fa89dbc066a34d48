//! The cache management API, enabled in a location by
//! `phantom_token_cache_admin` (protect it with `allow`/`deny`,
//! `auth_basic` or a separate `listen`).
//!
//! - `GET`: statistics as JSON.
//! - `POST` with a JSON object:
//!   - `{"action":"purge","token":"<opaque>"}`: forget one token (hashed);
//!   - `{"action":"purge_all"}`: forget every token;
//!   - `{"action":"warm","token":"<opaque>","jwt":"<jwt>","ttl":<seconds>}`:
//!     store a token → JWT mapping, validated like an introspection answer
//!     (`ttl` optional; capped by the JWT's `exp` and `phantom_token_cache_max_ttl`).
//!
//! Bad input (malformed JSON, missing fields, oversized body) gets `400`
//! with `{"error":"..."}` and changes nothing.

use serde_json::{json, Value};

use nginx_sys::{
    ngx_http_discard_request_body, ngx_http_finalize_request, ngx_http_read_client_request_body,
    ngx_http_request_t, ngx_int_t, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_HTTP_POST, NGX_HTTP_SPECIAL_RESPONSE,
};
use ngx::core::Status;
use ngx::http::HttpModuleLocationConf;

use super::command::{parse_command, Command};
use super::metrics::{self, wants_prometheus, Kind, Metric};
use super::policy::{jwt_ttl_ms, CacheControl};
use super::zone::{now_mono, Zone};
use crate::buffers::buf_data;
use crate::conf::LocationConf;
use crate::ffi_guard::guard;
use crate::jwt::check_compact_jwt;
use crate::response::{send_body, send_json};
use crate::time::now_wall_ms;
use crate::verify::keys::{header_of, VerifyError};
use crate::Module;

/// Largest admin request body accepted.
pub const MAX_ADMIN_BODY: usize = 256 * 1024;

/// Content handler of an admin location.
///
/// # Safety
/// Called by NGINX with a valid request.
pub unsafe extern "C" fn admin_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let log = (*(*r).connection).log;
    guard(
        log,
        "handling a cache admin request",
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        || admin(r),
    )
}

unsafe fn zone_and_conf(r: *mut ngx_http_request_t) -> Option<(Zone, &'static LocationConf)> {
    let conf = Module::location_conf(ngx::http::Request::from_ngx_http_request(r))?;
    Some((Zone::from_shm_zone(conf.admin_zone)?, conf))
}

unsafe fn admin(r: *mut ngx_http_request_t) -> ngx_int_t {
    let Some((zone, conf)) = zone_and_conf(r) else {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    };
    let method = (*r).method;
    if method == NGX_HTTP_GET as usize || method == NGX_HTTP_HEAD as usize {
        let rc = ngx_http_discard_request_body(r);
        if rc != Status::NGX_OK.0 {
            return rc;
        }
        if wants_prometheus((*r).args.as_bytes(), accept_header(r)) {
            let text = prometheus(zone, conf.admin_zone);
            return send_body(r, 200, metrics::CONTENT_TYPE, text.as_bytes());
        }
        return send_json(r, 200, stats(zone).to_string().as_bytes());
    }
    if method != NGX_HTTP_POST as usize {
        let rc = ngx_http_discard_request_body(r);
        if rc != Status::NGX_OK.0 {
            return rc;
        }
        return send_json(
            r,
            405,
            br#"{"error":"method not allowed: use GET or POST"}"#,
        );
    }
    if (*r).headers_in.content_length_n > MAX_ADMIN_BODY as i64 {
        let rc = ngx_http_discard_request_body(r);
        if rc != Status::NGX_OK.0 {
            return rc;
        }
        return send_json(r, 400, br#"{"error":"request body too large"}"#);
    }
    let rc = ngx_http_read_client_request_body(r, Some(body_read));
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        return rc;
    }
    Status::NGX_DONE.into()
}

/// Runs once the admin request body is read.
unsafe extern "C" fn body_read(r: *mut ngx_http_request_t) {
    let log = (*(*r).connection).log;
    let rc = guard(
        log,
        "handling a cache admin request",
        Status::NGX_ERROR.into(),
        || {
            let Some((zone, conf)) = zone_and_conf(r) else {
                return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
            };
            let (status, body) = match read_body(r) {
                Ok(body) => command(zone, conf, &body, now_wall_ms(), now_mono()),
                Err(BodyError::TooLarge) => bad_request("request body too large"),
                Err(BodyError::Unreadable) => {
                    (500, json!({"error": "the request body could not be read"}))
                }
            };
            send_json(r, status, body.to_string().as_bytes())
        },
    );
    ngx_http_finalize_request(r, rc);
}

/// Why the admin request body could not be used.
enum BodyError {
    TooLarge,
    Unreadable,
}

/// The request body (memory or temp file, any framing: `Content-Length`,
/// chunked, HTTP/2), or an error past [`MAX_ADMIN_BODY`] or when a temp
/// file cannot be read or memory runs out.
unsafe fn read_body(r: *mut ngx_http_request_t) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    let Some(rb) = (*r).request_body.as_ref() else {
        return Ok(body);
    };
    let mut cl = rb.bufs;
    while let Some(link) = cl.as_ref() {
        cl = link.next;
        let Some(b) = link.buf.as_ref() else { continue };
        let data = buf_data(b);
        let len = data.len();
        if len == 0 {
            continue;
        }
        if body.len() + len > MAX_ADMIN_BODY {
            return Err(BodyError::TooLarge);
        }
        let start = body.len();
        body.try_reserve(len).map_err(|_| BodyError::Unreadable)?;
        body.resize(start + len, 0);
        if !data.copy_to(&mut body[start..]) {
            return Err(BodyError::Unreadable);
        }
    }
    Ok(body)
}

fn bad_request(message: &str) -> (usize, Value) {
    (400, json!({ "error": message }))
}

/// Executes one admin command (pure apart from the zone). `now_wall` is
/// the wall clock (for the JWT's `exp`), `now` the monotonic one.
pub fn command(
    zone: Zone,
    conf: &LocationConf,
    body: &[u8],
    now_wall: u64,
    now: u64,
) -> (usize, Value) {
    let cmd = match parse_command(body) {
        Ok(cmd) => cmd,
        Err(message) => return bad_request(message),
    };
    match cmd {
        Command::Purge { token } => {
            let purged = zone.purge_token(&zone.token_digest(token.as_bytes()));
            (200, json!({ "purged": purged }))
        }
        Command::PurgeAll => (200, json!({ "purged": zone.purge_all() })),
        Command::Warm { token, jwt, ttl } => {
            let claims = (jwt.len() <= conf.max_jwt_size)
                .then(|| check_compact_jwt(jwt.as_bytes()).ok())
                .flatten();
            let Some(claims) = claims else {
                return bad_request(
                    "\"jwt\" is not a compact JWT within phantom_token_max_jwt_size",
                );
            };
            if let Err(e) = warm_up_verification(conf, jwt.as_bytes(), now_wall) {
                return (422, json!({ "error": format!("the JWT is refused: {e}") }));
            }
            let cc = CacheControl::with_max_age(ttl);
            let ttl = jwt_ttl_ms(now_wall, cc, claims.exp, conf.cache_max_ttl as u64);
            if ttl == 0 {
                return bad_request("the JWT is expired or the ttl is 0");
            }
            let digest = zone.token_digest(token.as_bytes());
            if !zone.warm(&digest, jwt.as_bytes(), now, ttl) {
                return (
                    507,
                    json!({ "error": "the entry does not fit in the zone" }),
                );
            }
            (200, json!({ "stored": true, "ttl": ttl / 1000 }))
        }
    }
}

/// A warmed JWT is verified with the admin location's keys and checks
/// (inherited from `http` or `server`); without them, an unsigned one
/// (`alg: none`) is still refused.
fn warm_up_verification(conf: &LocationConf, jwt: &[u8], now_wall: u64) -> Result<(), VerifyError> {
    match conf.verifier.as_deref() {
        Some(verifier) => verifier.check(jwt, now_wall / 1000).map(|_| ()),
        None => match header_of(jwt) {
            Ok((alg, _)) if alg.eq_ignore_ascii_case("none") => Err(VerifyError::Unsigned),
            _ => Ok(()),
        },
    }
}

fn stats(zone: Zone) -> Value {
    let s = zone.snapshot();
    json!({
        "entries": s.entries,
        "pending": s.pending,
        "longest_chain": s.longest_chain,
        "entry_bytes": s.entry_bytes,
        "bytes_used": s.zone_bytes_used,
        "bytes_free": s.zone_bytes_free,
        "hits": s.stats.hits,
        "misses": s.stats.misses,
        "expired": s.stats.expired,
        "negative_hits": s.stats.negative_hits,
        "evictions": s.stats.evictions,
        "introspections": s.stats.introspections,
        "purges": s.stats.purges,
        "stores": s.stats.stores,
        "waits": s.stats.waits,
        "released": s.stats.released,
        "swept": s.stats.swept,
        "lock_hold_max_ns": s.stats.lock_hold_max_ns,
    })
}

/// The request's `Accept` header, if any.
unsafe fn accept_header<'a>(r: *mut ngx_http_request_t) -> Option<&'a [u8]> {
    let request = ngx::http::Request::from_ngx_http_request(r);
    request
        .headers_in_iterator()
        .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(b"accept"))
        .map(|(_, value)| value.as_bytes())
}

/// The statistics in the Prometheus text format, labelled with the zone name.
///
/// # Safety
/// `shm_zone` must be the admin location's zone.
unsafe fn prometheus(zone: Zone, shm_zone: *mut nginx_sys::ngx_shm_zone_t) -> String {
    let name = shm_zone
        .as_ref()
        .map(|z| String::from_utf8_lossy(z.shm.name.as_bytes()).into_owned())
        .unwrap_or_default();
    let s = zone.snapshot();
    let counter = |name, help, value| Metric {
        name,
        help,
        kind: Kind::Counter,
        value,
    };
    let gauge = |name, help, value| Metric {
        name,
        help,
        kind: Kind::Gauge,
        value,
    };
    metrics::render(
        &name,
        &[
            counter("hits_total", "JWTs served from the zone.", s.stats.hits),
            counter(
                "misses_total",
                "Lookups that found nothing.",
                s.stats.misses,
            ),
            counter(
                "expired_total",
                "Lookups that found an expired entry.",
                s.stats.expired,
            ),
            counter(
                "negative_hits_total",
                "Requests answered 401 from a remembered inactive token.",
                s.stats.negative_hits,
            ),
            counter(
                "evictions_total",
                "Entries removed to make room.",
                s.stats.evictions,
            ),
            counter(
                "introspections_total",
                "Introspections started through the cache.",
                s.stats.introspections,
            ),
            counter(
                "purges_total",
                "Entries removed by the admin API.",
                s.stats.purges,
            ),
            counter("stores_total", "Entries stored.", s.stats.stores),
            counter(
                "waits_total",
                "Requests that waited for another request's introspection.",
                s.stats.waits,
            ),
            counter(
                "released_total",
                "Waiting requests that introspected by themselves.",
                s.stats.released,
            ),
            gauge(
                "entries",
                "Live entries (JWTs and inactive tokens).",
                s.entries,
            ),
            gauge("pending", "Introspections in flight.", s.pending),
            gauge(
                "bytes_used",
                "Slab pages in use, in bytes.",
                s.zone_bytes_used,
            ),
            gauge(
                "bytes_free",
                "Free slab pages, in bytes.",
                s.zone_bytes_free,
            ),
            gauge(
                "lock_hold_max_nanoseconds",
                "Longest time the zone lock was held.",
                s.stats.lock_hold_max_ns,
            ),
        ],
    )
}

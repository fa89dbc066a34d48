//! `phantom_token_require` at request time: the claims of the forwarded
//! token, decoded at most once per request, checked against the rules of
//! the location (docs/behaviour.md, "Authorization rules").

use core::cell::RefCell;
use std::rc::Rc;

use nginx_sys::{
    ngx_http_request_t, ngx_int_t, ngx_str_t, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_INFO,
};
use ngx::ngx_log_error;

use super::state::{note, note_mut, Claims};
use crate::authz::{any_applies, first_unmet};
use crate::bearer::token_fingerprint;
use crate::claims::{decode_claims, introspection_answer};
use crate::conf::LocationConf;
use crate::jwt_memo::Memo;
use crate::response::{send_error, send_forbidden};

std::thread_local! {
    /// This worker's memo of decoded claims, by JWT.
    static CLAIMS_MEMO: RefCell<Memo<Claims>> = RefCell::new(Memo::default());
}

/// `decode(bytes)` through the worker's claims memo.
fn memoized(bytes: &[u8], decode: impl FnOnce(&[u8]) -> Option<Claims>) -> Option<Claims> {
    let decode = |bytes: &[u8]| decode(bytes).ok_or(());
    CLAIMS_MEMO
        .try_with(|memo| match memo.try_borrow_mut() {
            Ok(mut memo) => memo.get_or_try(bytes, decode),
            Err(_) => Err(()),
        })
        .ok()
        .and_then(Result::ok)
}

/// The claims of `jwt`, through the worker's memo.
fn decoded(jwt: &[u8]) -> Option<Claims> {
    memoized(jwt, |jwt| decode_claims(jwt).map(Rc::new))
}

/// The claims of a stored JSON introspection answer, through the worker's
/// memo.
pub fn json_claims(json: &[u8]) -> Option<Claims> {
    memoized(json, |json| {
        introspection_answer(json).ok().flatten().map(Rc::new)
    })
}

/// The claims of the token `r`'s client request was authorized with: from
/// its note (JSON introspection, or decoded before), else decoded from the
/// forwarded JWT and kept in the note.
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn request_claims(r: *mut ngx_http_request_t) -> Option<Claims> {
    let note = note((*r).main)?;
    if note.claims.is_none() {
        let jwt = note.jwt?;
        if jwt.data.is_null() {
            return None;
        }
        note.claims = decoded(core::slice::from_raw_parts(jwt.data, jwt.len));
    }
    note.claims.clone()
}

/// Checks the location's rules for the request's method on its token's
/// claims: `None` when they hold (or none applies), else the request was
/// answered 403 and the rc to return is given.
///
/// # Safety
/// `r` must be a valid main request in the access phase, authorized.
pub unsafe fn enforce(r: *mut ngx_http_request_t, conf: &LocationConf) -> Option<ngx_int_t> {
    let requirements = conf.requirements.as_deref()?;
    let method = (*r).method_name.as_bytes();
    if !any_applies(requirements, method) {
        return None;
    }
    let claims = request_claims(r);
    let unmet = match &claims {
        Some(claims) => first_unmet(requirements, method, claims),
        // Cannot happen for a checked JWT; deny rather than guess.
        None => requirements.iter().find(|req| req.applies_to(method)),
    }?;
    let token = (*r)
        .headers_in
        .authorization
        .as_ref()
        .map(|h| token_fingerprint(h.value.as_bytes()))
        .unwrap_or_default();
    let log = (*(*r).connection).log;
    ngx_log_error!(
        NGX_LOG_INFO,
        log,
        "access forbidden by phantom_token_require rule \"{}\" (token {})",
        unmet.rule.to_source(),
        token
    );
    Some(send_forbidden(r, conf, &unmet.scopes))
}

/// Whether the token's claims bind it to a DPoP key (`cnf.jkt`, RFC 9449
/// §6): such a token presented as `Bearer` must be refused (§7.2).
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn bound_to_dpop_key(r: *mut ngx_http_request_t) -> bool {
    request_claims(r).is_some_and(|claims| {
        claims
            .get("cnf")
            .and_then(|cnf| cnf.get("jkt"))
            .is_some_and(|jkt| jkt.is_string())
    })
}

/// The last step of every exchange: the location's rules on the claims
/// noted for the request, then the client's `Authorization` value becomes
/// `value` and the request is marked authorized. `Err(rc)` when the request
/// was answered (403, or 500 without a header or note).
///
/// # Safety
/// `r` must be a valid main request in the access phase.
pub unsafe fn admit(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    value: ngx_str_t,
) -> Result<(), ngx_int_t> {
    if let Some(rc) = enforce(r, conf) {
        return Err(rc);
    }
    let (Some(header), Some(note)) = ((*r).headers_in.authorization.as_mut(), note_mut(r)) else {
        return Err(send_error(r, conf, NGX_HTTP_INTERNAL_SERVER_ERROR as usize));
    };
    header.value = value;
    note.authorized = true;
    Ok(())
}

//! The module's variables:
//!
//! - `$phantom_token_cache_status`: `HIT`, `MISS`, `EXPIRED`, `NEGATIVE`,
//!   `BYPASS` (module on, no cache in this location), like
//!   `$upstream_cache_status`; not found when the module did not run;
//! - `$phantom_token_jwt`: the JWT forwarded upstream (empty before the
//!   token was exchanged, or where the module did not run);
//! - `$phantom_token_claim_<name>`: one claim of that JWT (text rules in
//!   [`crate::claims::claim_text`]); empty when absent. The claims are
//!   decoded at most once per request.
//!
//! All are evaluated on the client request (also from its subrequests) and
//! never cached by NGINX, so a use before the access phase does not pin an
//! empty value.

use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t,
    ngx_pnalloc, ngx_str_t, NGX_HTTP_VAR_NOCACHEABLE, NGX_HTTP_VAR_PREFIX,
};
use ngx::core::Status;

use crate::claims::claim_text;
use crate::ffi_guard::guard;
use crate::request::authorize::request_claims;
use crate::request::state::note;

type GetHandler = unsafe extern "C" fn(
    *mut ngx_http_request_t,
    *mut ngx_http_variable_value_t,
    usize,
) -> ngx_int_t;

/// Prefix of the claim variables.
const CLAIM_PREFIX: &[u8] = b"phantom_token_claim_";

/// Registers the module's variables (preconfiguration).
///
/// # Safety
/// Called by NGINX with the configuration being parsed.
pub unsafe extern "C" fn add_variables(cf: *mut ngx_conf_t) -> ngx_int_t {
    let variables: [(&'static [u8], u32, GetHandler); 3] = [
        (b"phantom_token_cache_status", 0, cache_status),
        (b"phantom_token_jwt", 0, jwt),
        (CLAIM_PREFIX, NGX_HTTP_VAR_PREFIX, claim),
    ];
    for (name, flags, handler) in variables {
        let mut name = ngx_str_t {
            len: name.len(),
            data: name.as_ptr().cast_mut(),
        };
        let var = ngx_http_add_variable(cf, &mut name, (NGX_HTTP_VAR_NOCACHEABLE | flags) as _);
        let Some(var) = var.as_mut() else {
            return Status::NGX_ERROR.into();
        };
        var.get_handler = Some(handler);
        var.data = 0;
    }
    Status::NGX_OK.into()
}

/// Sets `v` to `bytes` (which must outlive the request) or to not found.
fn set_value(v: &mut ngx_http_variable_value_t, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            v.set_len(bytes.len() as u32);
            v.set_valid(1);
            v.set_no_cacheable(1);
            v.set_not_found(0);
            v.data = bytes.as_ptr().cast_mut();
        }
        None => {
            v.set_not_found(1);
            v.data = ptr::null_mut();
        }
    }
}

/// A variable's get handler under the panic guard: `value` gives the bytes
/// (living as long as the request), `None` (not found) or an error.
///
/// # Safety
/// NGINX's arguments: a valid request and value slot.
unsafe fn evaluate<'a>(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    what: &str,
    value: impl FnOnce() -> Result<Option<&'a [u8]>, ()>,
) -> ngx_int_t {
    let log = (*(*r).connection).log;
    guard(log, what, Status::NGX_ERROR.into(), || match value() {
        Ok(bytes) => {
            // SAFETY: NGINX passes a valid value slot.
            set_value(unsafe { &mut *v }, bytes);
            Status::NGX_OK.into()
        }
        Err(()) => Status::NGX_ERROR.into(),
    })
}

unsafe extern "C" fn cache_status(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    evaluate(r, v, "evaluating $phantom_token_cache_status", || {
        let status = note((*r).main).and_then(|n| n.cache_status);
        Ok(status.map(str::as_bytes))
    })
}

/// The forwarded JWT of `r`'s client request (in its pool), if any.
unsafe fn forwarded_jwt<'a>(r: *mut ngx_http_request_t) -> Option<&'a [u8]> {
    let jwt = note((*r).main)?.jwt?;
    (!jwt.data.is_null()).then(|| core::slice::from_raw_parts(jwt.data, jwt.len))
}

unsafe extern "C" fn jwt(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // The JWT lives in the client request's pool.
    evaluate(r, v, "evaluating $phantom_token_jwt", || {
        Ok(Some(forwarded_jwt(r).unwrap_or(b"")))
    })
}

/// `$phantom_token_claim_<name>`; `data` is the variable's full name.
unsafe extern "C" fn claim(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    data: usize,
) -> ngx_int_t {
    evaluate(r, v, "evaluating $phantom_token_claim_", || {
        // SAFETY: for prefix variables NGINX passes the full variable name
        // as `data`.
        let name = (data as *const ngx_str_t).as_ref().map(|n| n.as_bytes());
        let claim_name = name
            .and_then(|n| n.get(CLAIM_PREFIX.len()..))
            .and_then(|n| core::str::from_utf8(n).ok());
        let text = match (claim_name, request_claims(r)) {
            (Some(claim_name), Some(claims)) => claim_text(&claims, claim_name),
            _ => String::new(),
        };
        let copy = ngx_pnalloc((*r).pool, text.len().max(1)).cast::<u8>();
        if copy.is_null() {
            return Err(());
        }
        ptr::copy_nonoverlapping(text.as_ptr(), copy, text.len());
        Ok(Some(core::slice::from_raw_parts(copy, text.len())))
    })
}

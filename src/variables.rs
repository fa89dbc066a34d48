//! `$phantom_token_cache_status`: `HIT`, `MISS`, `EXPIRED`, `NEGATIVE`,
//! `BYPASS` (module on, no cache in this location), like
//! `$upstream_cache_status`; not found when the module did not run.

use core::ptr;

use nginx_sys::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_request_t, ngx_http_variable_value_t, ngx_int_t,
    ngx_str_t, NGX_HTTP_VAR_NOCACHEABLE,
};
use ngx::core::Status;

use crate::ffi_guard::guard;
use crate::request::state::note;

static NAME: &[u8] = b"phantom_token_cache_status";

/// Registers the module's variables (preconfiguration).
///
/// # Safety
/// Called by NGINX with the configuration being parsed.
pub unsafe extern "C" fn add_variables(cf: *mut ngx_conf_t) -> ngx_int_t {
    let mut name = ngx_str_t {
        len: NAME.len(),
        data: NAME.as_ptr().cast_mut(),
    };
    let var = ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as _);
    let Some(var) = var.as_mut() else {
        return Status::NGX_ERROR.into();
    };
    var.get_handler = Some(cache_status);
    var.data = 0;
    Status::NGX_OK.into()
}

unsafe extern "C" fn cache_status(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    let log = (*(*r).connection).log;
    guard(
        log,
        "evaluating $phantom_token_cache_status",
        Status::NGX_ERROR.into(),
        || {
            // SAFETY: NGINX passes a valid request and value slot.
            let v = &mut *v;
            match note((*r).main).and_then(|n| n.cache_status) {
                Some(status) => {
                    v.set_len(status.len() as u32);
                    v.set_valid(1);
                    v.set_no_cacheable(0);
                    v.set_not_found(0);
                    v.data = status.as_ptr().cast_mut();
                }
                None => {
                    v.set_not_found(1);
                    v.data = ptr::null_mut();
                }
            }
            Status::NGX_OK.into()
        },
    )
}

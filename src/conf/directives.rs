//! The directive table and the handlers that need more than a stock slot.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use nginx_sys::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_size_slot,
    ngx_conf_set_str_array_slot, ngx_conf_set_str_slot, ngx_conf_t, ngx_str_t, ngx_uint_t,
    NGX_CONF_1MORE, NGX_CONF_FLAG, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE2,
    NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_SRV_CONF,
    NGX_LOG_EMERG,
};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ngx_conf_log_error;

use super::LocationConf;
use crate::cache::conf as cache;

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

/// Longest `id` + `secret` accepted by `phantom_token_client_credential`
/// (the C module's limit: together shorter than 255 characters).
pub const MAX_CLIENT_CREDENTIAL_LEN: usize = 254;

const fn command(
    name: &'static core::ffi::CStr,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t {
        // NGINX compares directive names with strcmp: keep the NUL.
        name: ngx_str_t {
            len: name.count_bytes(),
            data: name.as_ptr().cast_mut().cast(),
        },
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset,
        post: ptr::null_mut(),
    }
}

/// Every directive of the module, NULL-terminated as NGINX expects.
pub static mut COMMANDS: [ngx_command_t; 25] = [
    command(
        c"phantom_token",
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        offset_of!(LocationConf, enable),
    ),
    command(
        c"phantom_token_introspection_endpoint",
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        set_introspection_endpoint,
        offset_of!(LocationConf, endpoint),
    ),
    command(
        c"phantom_token_realm",
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_str_slot,
        offset_of!(LocationConf, realm),
    ),
    command(
        c"phantom_token_scopes",
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_str_slot,
        offset_of!(LocationConf, scopes),
    ),
    command(
        c"phantom_token_scope",
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_str_array_slot,
        offset_of!(LocationConf, scope_list),
    ),
    command(
        c"phantom_token_client_credential",
        NGX_HTTP_LOC_CONF | NGX_CONF_TAKE2,
        set_client_credential,
        0,
    ),
    command(
        c"phantom_token_max_jwt_size",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_size_slot,
        offset_of!(LocationConf, max_jwt_size),
    ),
    command(
        c"phantom_token_cache_zone",
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        cache::set_cache_zone,
        0,
    ),
    command(
        c"phantom_token_cache",
        ANY_LEVEL | NGX_CONF_TAKE1,
        cache::set_cache,
        0,
    ),
    command(
        c"phantom_token_cache_max_ttl",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        offset_of!(LocationConf, cache_max_ttl),
    ),
    command(
        c"phantom_token_cache_negative_ttl",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        offset_of!(LocationConf, cache_negative_ttl),
    ),
    command(
        c"phantom_token_cache_lock_timeout",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        offset_of!(LocationConf, cache_lock_timeout),
    ),
    command(
        c"phantom_token_cache_admin",
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        cache::set_cache_admin,
        0,
    ),
    command(
        c"phantom_token_require",
        ANY_LEVEL | NGX_CONF_1MORE,
        super::authz::set_require,
        0,
    ),
    command(
        c"phantom_token_jwks",
        ANY_LEVEL | NGX_CONF_TAKE1,
        super::verify::set_jwks,
        0,
    ),
    command(
        c"phantom_token_jwt_leeway",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        offset_of!(LocationConf, jwt_leeway),
    ),
    command(
        c"phantom_token_jwt_issuer",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_str_slot,
        offset_of!(LocationConf, jwt_issuer),
    ),
    command(
        c"phantom_token_jwt_audience",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_str_array_slot,
        offset_of!(LocationConf, jwt_audience),
    ),
    command(
        c"phantom_token_dpop",
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        offset_of!(LocationConf, dpop),
    ),
    command(
        c"phantom_token_introspection_format",
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_introspection_format,
        0,
    ),
    command(
        c"phantom_token_jwks_request",
        ANY_LEVEL | NGX_CONF_TAKE1,
        super::verify::set_jwks_request,
        0,
    ),
    command(
        c"phantom_token_jwks_refresh",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        offset_of!(LocationConf, jwks_refresh),
    ),
    command(
        c"phantom_token_jwks_refetch_interval",
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        offset_of!(LocationConf, jwks_refetch_interval),
    ),
    command(
        c"phantom_token_phase",
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_phase,
        0,
    ),
    ngx_command_t::empty(),
];

/// The directive's arguments (index 0 is the directive name).
///
/// # Safety
/// `cf` must be the parser state passed to a directive handler.
pub(crate) unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    (*(*cf).args).as_slice::<ngx_str_t>()
}

/// Stores a copy of `bytes` in the configuration pool.
///
/// # Safety
/// `cf` must be the parser state passed to a directive handler.
unsafe fn pool_str(cf: *mut ngx_conf_t, bytes: &[u8]) -> Option<ngx_str_t> {
    ngx_str_t::from_bytes((*cf).pool, bytes)
}

/// `phantom_token_introspection_endpoint <location>`: must be non-empty.
unsafe extern "C" fn set_introspection_endpoint(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes our location conf and the current parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    let args = args(cf);
    if !conf.endpoint.data.is_null() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    if args[1].len == 0 {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid value \"\" in \"phantom_token_introspection_endpoint\" directive, \
             a location name is required"
        );
        return NGX_CONF_ERROR;
    }
    conf.endpoint = args[1];
    NGX_CONF_OK
}

/// `phantom_token_client_credential <id> <secret>` (1.x style): precomputes
/// the `Basic` credential the module sends to the authorization server.
unsafe extern "C" fn set_client_credential(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes our location conf and the current parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    let args = args(cf);
    if !conf.basic_credential.data.is_null() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    let (id, secret) = (args[1].as_bytes(), args[2].as_bytes());
    if id.is_empty() || secret.is_empty() {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "empty client id or secret in \"phantom_token_client_credential\" directive"
        );
        return NGX_CONF_ERROR;
    }
    if id.len() + secret.len() > MAX_CLIENT_CREDENTIAL_LEN {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "client id and secret in \"phantom_token_client_credential\" directive \
             must be shorter than 255 characters together"
        );
        return NGX_CONF_ERROR;
    }
    let mut plain = Vec::with_capacity(id.len() + secret.len() + 1);
    plain.extend_from_slice(id);
    plain.push(b':');
    plain.extend_from_slice(secret);
    let value = format!("Basic {}", STANDARD.encode(plain));
    match pool_str(cf, value.as_bytes()) {
        Some(s) => {
            conf.basic_credential = s;
            NGX_CONF_OK
        }
        None => NGX_CONF_ERROR,
    }
}

/// `phantom_token_introspection_format jwt|json`.
unsafe extern "C" fn set_introspection_format(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes our location conf and the current parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    set_keyword(
        cf,
        &mut conf.json_introspection,
        "phantom_token_introspection_format",
        ["jwt", "json"],
    )
}

/// `phantom_token_phase access|preaccess`.
unsafe extern "C" fn set_phase(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes our location conf and the current parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    set_keyword(
        cf,
        &mut conf.preaccess,
        "phantom_token_phase",
        ["access", "preaccess"],
    )
}

/// A directive taking one of two keywords: `field` becomes 0 for the first,
/// 1 for the second.
///
/// # Safety
/// `cf` must be the parser state passed to a directive handler.
unsafe fn set_keyword(
    cf: *mut ngx_conf_t,
    field: &mut nginx_sys::ngx_flag_t,
    directive: &str,
    keywords: [&str; 2],
) -> *mut c_char {
    if *field != nginx_sys::NGX_CONF_UNSET as nginx_sys::ngx_flag_t {
        return c"is duplicate".as_ptr().cast_mut();
    }
    let value = args(cf)[1].as_bytes();
    match keywords.iter().position(|k| k.as_bytes() == value) {
        Some(i) => {
            *field = i as nginx_sys::ngx_flag_t;
            NGX_CONF_OK
        }
        None => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid value \"{}\" in \"{}\" directive, it must be \"{}\" or \"{}\"",
                String::from_utf8_lossy(value),
                directive,
                keywords[0],
                keywords[1]
            );
            NGX_CONF_ERROR
        }
    }
}

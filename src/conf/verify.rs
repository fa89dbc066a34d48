//! Directives of JWT verification: `phantom_token_jwks` (the key file),
//! `phantom_token_jwks_request` (keys fetched at run time) and the claim
//! checks `phantom_token_jwt_leeway`, `phantom_token_jwt_issuer`,
//! `phantom_token_jwt_audience`.

use core::ffi::{c_char, c_void};
use std::sync::Arc;

use nginx_sys::{ngx_command_t, ngx_conf_full_name, ngx_conf_t, NGX_LOG_EMERG};
use ngx::core::{Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ngx_conf_log_error;

use super::directives::args;
use super::{Jwks, LocationConf};
use crate::verify::keys::KeySet;

/// `phantom_token_jwks <file> | off;`: the JWKS is read and parsed here, so
/// a missing or bad file fails the configuration test.
///
/// # Safety
/// Called by NGINX while parsing the configuration, with our location conf.
pub unsafe extern "C" fn set_jwks(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes our location conf and the current parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    if conf.jwks.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    let mut name = args(cf)[1];
    if name.as_bytes() == b"off" {
        conf.jwks = Some(Jwks::Off);
        return NGX_CONF_OK;
    }
    // Relative to the configuration prefix, as NGINX does for its own files.
    if ngx_conf_full_name((*cf).cycle, &mut name, 1) != Status::NGX_OK.0 {
        return NGX_CONF_ERROR;
    }
    let path = String::from_utf8_lossy(name.as_bytes()).into_owned();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "cannot read JWKS file \"{}\" in \"phantom_token_jwks\" directive: {}",
                path,
                e
            );
            return NGX_CONF_ERROR;
        }
    };
    match KeySet::from_jwks(&bytes) {
        Ok(keys) => {
            conf.jwks = Some(Jwks::File(Arc::new(keys)));
            NGX_CONF_OK
        }
        Err(e) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid JWKS file \"{}\" in \"phantom_token_jwks\" directive: {}",
                path,
                e
            );
            NGX_CONF_ERROR
        }
    }
}

/// `phantom_token_jwks_request <uri>;`: keys fetched through that internal
/// location; adds the key zone (once).
///
/// # Safety
/// Called by NGINX while parsing the configuration, with our location conf.
pub unsafe extern "C" fn set_jwks_request(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    use crate::verify::store::{init_store, ZONE_NAME, ZONE_SIZE};
    // SAFETY: NGINX passes our location conf and the current parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    if conf.jwks.is_some() {
        return c"is duplicate".as_ptr().cast_mut();
    }
    let uri = args(cf)[1];
    if uri.as_bytes().first() != Some(&b'/') {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid location \"{}\" in \"phantom_token_jwks_request\" directive, \
             a URI (\"/...\") is required",
            String::from_utf8_lossy(uri.as_bytes())
        );
        return NGX_CONF_ERROR;
    }
    let mut name = nginx_sys::ngx_str_t {
        len: ZONE_NAME.len(),
        data: ZONE_NAME.as_ptr().cast_mut(),
    };
    let module = core::ptr::addr_of_mut!(crate::ngx_curity_http_phantom_token_module);
    let zone = nginx_sys::ngx_shared_memory_add(cf, &mut name, ZONE_SIZE, module.cast());
    let Some(z) = zone.as_mut() else {
        return NGX_CONF_ERROR;
    };
    z.init = Some(init_store);
    conf.jwks = Some(Jwks::Fetched { uri, zone });
    NGX_CONF_OK
}

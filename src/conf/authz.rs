//! Directives of authorization at the gateway: `phantom_token_require`.

use core::ffi::{c_char, c_void};

use nginx_sys::{ngx_command_t, ngx_conf_t, NGX_LOG_EMERG};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ngx_conf_log_error;

use super::directives::args;
use super::LocationConf;
use crate::authz::{rule, valid_method, Requirement};

/// `phantom_token_require [METHOD ...] "<rule>";`: the rule is parsed here,
/// once; a syntax error fails the configuration test with its position.
///
/// # Safety
/// Called by NGINX while parsing the configuration, with our location conf.
pub unsafe extern "C" fn set_require(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes our location conf and the current parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    let args = args(cf);
    let Some((source, methods)) = args[1..].split_last() else {
        return NGX_CONF_ERROR;
    };
    let mut method_names = Vec::with_capacity(methods.len());
    for method in methods {
        let method = method.as_bytes();
        if !valid_method(method) {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid method \"{}\" in \"phantom_token_require\" directive, \
                 expected an upper-case HTTP method such as GET",
                String::from_utf8_lossy(method)
            );
            return NGX_CONF_ERROR;
        }
        method_names.push(method.to_vec());
    }
    let Ok(text) = core::str::from_utf8(source.as_bytes()) else {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid rule in \"phantom_token_require\" directive: not UTF-8"
        );
        return NGX_CONF_ERROR;
    };
    match rule::parse(text) {
        Ok(rule) => {
            conf.requirements
                .get_or_insert_with(Vec::new)
                .push(Requirement::new(method_names, rule));
            NGX_CONF_OK
        }
        Err(e) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid rule \"{}\" in \"phantom_token_require\" directive: {}",
                text,
                e
            );
            NGX_CONF_ERROR
        }
    }
}

//! Directives of the built-in token cache: the zone, its use per location,
//! and the admin handler.

use core::ffi::{c_char, c_void};
use core::ptr;

use nginx_sys::{
    ngx_command_t, ngx_conf_t, ngx_parse_size, ngx_shared_memory_add, ngx_str_t, NGX_LOG_EMERG,
};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule,
};
use ngx::ngx_conf_log_error;

use super::zone::{init_zone, ANY_ENDPOINT};
use crate::conf::directives::args;
use crate::conf::LocationConf;
use crate::Module;

/// Marks a zone as defined by `phantom_token_cache_zone` until its init.
static ZONE_DEFINED: u8 = 0;

/// Smallest zone accepted (NGINX's slab needs a few pages).
const MIN_ZONE_SIZE: isize = 32 * 1024;

/// Adds (or references) the shared zone `name` of `size` bytes (0: reference).
unsafe fn shared_zone(
    cf: *mut ngx_conf_t,
    name: &ngx_str_t,
    size: usize,
) -> *mut nginx_sys::ngx_shm_zone_t {
    if name.as_bytes() == crate::verify::store::ZONE_NAME {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "the zone name \"phantom_token_jwks\" is reserved for JWT verification keys"
        );
        return ptr::null_mut();
    }
    let mut name = *name;
    let module = ptr::addr_of_mut!(crate::ngx_curity_http_phantom_token_module);
    ngx_shared_memory_add(cf, &mut name, size, module.cast())
}

/// `phantom_token_cache_zone <name>:<size>;` (http).
///
/// # Safety
/// Called by NGINX while parsing the configuration.
pub unsafe extern "C" fn set_cache_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes the parser state; arguments are its strings.
    let value = args(cf)[1];
    let bytes = value.as_bytes();
    let Some(colon) = bytes.iter().rposition(|&b| b == b':') else {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid zone \"{}\" in \"phantom_token_cache_zone\", expected name:size",
            String::from_utf8_lossy(bytes)
        );
        return NGX_CONF_ERROR;
    };
    let name = ngx_str_t {
        len: colon,
        data: value.data,
    };
    let mut size_str = ngx_str_t {
        len: bytes.len() - colon - 1,
        data: value.data.add(colon + 1),
    };
    let size = ngx_parse_size(&mut size_str);
    if colon == 0 || size == nginx_sys::NGX_ERROR as isize || size < MIN_ZONE_SIZE {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "invalid zone \"{}\" in \"phantom_token_cache_zone\", the size must be at least 32k",
            String::from_utf8_lossy(bytes)
        );
        return NGX_CONF_ERROR;
    }
    let zone = shared_zone(cf, &name, size as usize);
    if zone.is_null() {
        return NGX_CONF_ERROR;
    }
    if !(*zone).data.is_null() {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "duplicate zone \"{}\"",
            String::from_utf8_lossy(name.as_bytes())
        );
        return NGX_CONF_ERROR;
    }
    (*zone).init = Some(init_zone);
    (*zone).data = ptr::addr_of!(ZONE_DEFINED).cast_mut().cast();
    NGX_CONF_OK
}

/// `phantom_token_cache <zone> | off;`
///
/// # Safety
/// Called by NGINX while parsing the configuration.
pub unsafe extern "C" fn set_cache(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes our location conf and the parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    if conf.cache_zone != usize::MAX as *mut _ {
        return c"is duplicate".as_ptr().cast_mut();
    }
    let value = args(cf)[1];
    if value.as_bytes() == b"off" {
        conf.cache_zone = ptr::null_mut();
        return NGX_CONF_OK;
    }
    let zone = shared_zone(cf, &value, 0);
    if zone.is_null() {
        return NGX_CONF_ERROR;
    }
    conf.cache_zone = zone;
    NGX_CONF_OK
}

/// `phantom_token_cache_admin [zone];` — the location answers the cache
/// management API (see `admin.rs`).
///
/// # Safety
/// Called by NGINX while parsing the configuration.
pub unsafe extern "C" fn set_cache_admin(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: NGINX passes our location conf and the parser state.
    let conf = &mut *conf.cast::<LocationConf>();
    if conf.admin {
        return c"is duplicate".as_ptr().cast_mut();
    }
    conf.admin = true;
    let args = args(cf);
    if args.len() > 1 {
        let zone = shared_zone(cf, &args[1], 0);
        if zone.is_null() {
            return NGX_CONF_ERROR;
        }
        conf.admin_zone = zone;
    }
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(&*cf) else {
        return NGX_CONF_ERROR;
    };
    clcf.handler = Some(super::admin::admin_handler);
    NGX_CONF_OK
}

/// `merge_loc_conf` with NGINX-style errors for settings that only make
/// sense together.
///
/// # Safety
/// Called by NGINX while parsing the configuration.
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    prev: *mut c_void,
    conf: *mut c_void,
) -> *mut c_char {
    let rc = Module::merge_loc_conf(cf, prev, conf);
    if !rc.is_null() {
        return rc;
    }
    // SAFETY: both are our location confs, merged above.
    let conf = &mut *conf.cast::<<Module as HttpModuleLocationConf>::LocationConf>();
    let prev = &*prev.cast::<<Module as HttpModuleLocationConf>::LocationConf>();
    let server = server_index(cf);
    conf.merge_verification(prev, server);
    conf.endpoint_id = endpoint_identity(server, conf);
    if conf.admin && conf.admin_zone.is_null() {
        ngx_conf_log_error!(
            NGX_LOG_EMERG,
            cf,
            "\"phantom_token_cache_admin\" needs a zone: name it or set \"phantom_token_cache\""
        );
        return NGX_CONF_ERROR;
    }
    NGX_CONF_OK
}

/// Position of the server block being merged in the `http` block (NGINX
/// merges locations server by server, with that server's conf in `cf`).
///
/// # Safety
/// `cf` must be the configuration being merged.
unsafe fn server_index(cf: *mut ngx_conf_t) -> u64 {
    let (Some(cmcf), Some(cscf)) = (
        NgxHttpCoreModule::main_conf(&*cf),
        NgxHttpCoreModule::server_conf(&*cf),
    ) else {
        return 0;
    };
    let servers = cmcf
        .servers
        .as_slice::<*mut nginx_sys::ngx_http_core_srv_conf_t>();
    let me: *const nginx_sys::ngx_http_core_srv_conf_t = cscf;
    servers
        .iter()
        .position(|&s| ptr::eq(s, me))
        .map_or(u64::MAX, |i| i as u64)
}

/// The cache key part naming the authorization server a location
/// introspects at: its server block, endpoint location and 1.x client
/// credential (which together decide where the subrequest goes), and the
/// JWT verification keys and checks, if any. Never
/// [`ANY_ENDPOINT`] (reserved for warmed entries).
fn endpoint_identity(server: u64, conf: &LocationConf) -> u64 {
    use sha2::{Digest, Sha256};
    let mut sha = Sha256::new();
    sha.update(server.to_le_bytes());
    sha.update(conf.endpoint.as_bytes());
    sha.update([0]);
    sha.update(conf.basic_credential.as_bytes());
    // JSON answers are never served where a JWT is expected, and the other
    // way round; answers verified with other keys or checks neither.
    sha.update([conf.json_introspection() as u8]);
    if let Some(verifier) = &conf.verifier {
        sha.update(verifier.identity());
    }
    let digest = sha.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    match u64::from_le_bytes(first) {
        ANY_ENDPOINT => 1,
        id => id,
    }
}

//! Phantom token module for NGINX, in Rust.
//!
//! A drop-in replacement for `curityio/nginx_phantom_token_module`: in the
//! access phase it takes the client's opaque `Bearer` token, introspects it
//! through a subrequest to an internal location (RFC 7662, answered with a
//! JWT) and forwards `Authorization: Bearer <jwt>` to the upstream API.
//!
//! Reading order: this file (registration) → [`conf`] (directives) →
//! [`request`] (the journey of a client request: access-phase handler, its
//! state, the subrequest, capturing its answer) → [`cache`] (the shared
//! zone, TTL policy, admin API) → [`response`] (error answers). The
//! behaviour is specified in `docs/behaviour.md`.
#![allow(static_mut_refs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod authz;
pub mod bearer;
pub mod buffers;
pub mod cache;
pub mod claims;
pub mod conf;
pub mod decision;
mod ffi_guard;
pub mod jwt;
pub mod jwt_memo;
pub mod request;
pub mod response;
pub mod time;
pub mod variables;
pub mod verify;
pub mod www_authenticate;

use core::ptr::addr_of;

use nginx_sys::{
    ngx_array_push, ngx_conf_t, ngx_http_handler_pt, ngx_http_module_t,
    ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_http_phases_NGX_HTTP_PREACCESS_PHASE,
    ngx_http_request_t, ngx_int_t, ngx_module_t, NGX_HTTP_MODULE,
};
use ngx::core::Status;
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};

/// A phase handler.
type HandlerFn = unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t;

/// The module type used with `ngx`'s configuration helpers.
pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by NGINX while loading
        // (index fields), before any request is processed.
        unsafe { &*addr_of!(ngx_curity_http_phantom_token_module) }
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: NGINX calls postconfiguration with a valid conf pointer,
        // once the http block is parsed; the core main conf exists by then.
        let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(&*cf) else {
            return Status::NGX_ERROR.into();
        };
        let handlers = [
            (
                ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
                request::handler::access_handler as HandlerFn,
            ),
            // Pushed after limit_req/limit_conn (static modules come
            // first), so it runs before them: their keys see the claims.
            (
                ngx_http_phases_NGX_HTTP_PREACCESS_PHASE,
                request::handler::preaccess_handler as HandlerFn,
            ),
        ];
        for (phase, handler) in handlers {
            let phase = &mut cmcf.phases[phase as usize];
            let h = ngx_array_push(&mut phase.handlers).cast::<ngx_http_handler_pt>();
            if h.is_null() {
                return Status::NGX_ERROR.into();
            }
            *h = Some(handler);
        }
        request::capture::install_body_filter();
        Status::NGX_OK.into()
    }
}

// SAFETY: the location conf of this module is always `conf::LocationConf`
// (created by `create_loc_conf` below).
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = conf::LocationConf;
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(variables::add_variables),
    postconfiguration: Some(Module::postconfiguration),
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(cache::conf::merge_loc_conf),
};

// A cdylib built by cargo exports the module list itself; NGINX's own build
// (`config`, `--add-dynamic-module`) generates it instead.
#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_curity_http_phantom_token_module);

/// The module descriptor NGINX loads (same name as the C module's).
#[used]
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_curity_http_phantom_token_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(MODULE_CTX) as _,
    // SAFETY: taking the address of the static command table.
    commands: unsafe { &raw mut conf::directives::COMMANDS[0] },
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

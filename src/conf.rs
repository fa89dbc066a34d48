//! Configuration: the per-location settings and the directive table.
//!
//! Directive handlers live in [`directives`]; merge logic sits next to the
//! struct, as in NGINX's own modules.

pub mod directives;

use nginx_sys::{ngx_array_t, ngx_flag_t, ngx_str_t, NGX_CONF_UNSET};
use ngx::http::{Merge, MergeConfigError};

use crate::www_authenticate::bearer_challenge;

const NGX_CONF_UNSET_PTR: *mut ngx_array_t = usize::MAX as *mut ngx_array_t;

/// Default ceiling for the introspection response body (the JWT).
pub const DEFAULT_MAX_JWT_SIZE: usize = 64 * 1024;

/// Settings of one `http`, `server` or `location` block.
#[derive(Debug)]
pub struct LocationConf {
    /// `phantom_token on|off`.
    pub enable: ngx_flag_t,
    /// `phantom_token_introspection_endpoint`: the location the subrequest goes to.
    pub endpoint: ngx_str_t,
    /// `phantom_token_realm` (default `api`).
    pub realm: ngx_str_t,
    /// `phantom_token_scopes`: space-separated scopes.
    pub scopes: ngx_str_t,
    /// `phantom_token_scope`: repeatable, joined with spaces.
    pub scope_list: *mut ngx_array_t,
    /// `Basic base64(id:secret)` from `phantom_token_client_credential` (1.x style).
    pub basic_credential: ngx_str_t,
    /// `phantom_token_max_jwt_size`.
    pub max_jwt_size: usize,
    /// The `WWW-Authenticate` value, computed at merge time.
    pub challenge: Vec<u8>,
}

impl Default for LocationConf {
    fn default() -> Self {
        Self {
            enable: NGX_CONF_UNSET as ngx_flag_t,
            endpoint: ngx_str_t::empty(),
            realm: ngx_str_t::empty(),
            scopes: ngx_str_t::empty(),
            // ngx_conf_set_str_array_slot creates the array only over UNSET_PTR.
            scope_list: NGX_CONF_UNSET_PTR,
            basic_credential: ngx_str_t::empty(),
            max_jwt_size: usize::MAX,
            challenge: Vec::new(),
        }
    }
}

fn merge_str(conf: &mut ngx_str_t, prev: &ngx_str_t, default: &'static [u8]) {
    if conf.data.is_null() {
        if prev.data.is_null() {
            conf.len = default.len();
            conf.data = default.as_ptr().cast_mut();
        } else {
            *conf = *prev;
        }
    }
}

impl LocationConf {
    /// Whether `phantom_token on` applies here.
    pub fn enabled(&self) -> bool {
        self.enable == 1
    }

    /// The configured introspection location, if any.
    pub fn endpoint(&self) -> Option<&[u8]> {
        (self.endpoint.len > 0).then(|| self.endpoint.as_bytes())
    }

    /// The 1.x-style `Authorization: Basic ...` value, if configured.
    pub fn basic_credential(&self) -> Option<&[u8]> {
        (self.basic_credential.len > 0).then(|| self.basic_credential.as_bytes())
    }

    /// Effective scope list: `phantom_token_scopes`, else the joined
    /// `phantom_token_scope` values.
    fn effective_scopes(&self) -> Vec<u8> {
        if !self.scopes.data.is_null() {
            return self.scopes.as_bytes().to_vec();
        }
        if self.scope_list == NGX_CONF_UNSET_PTR || self.scope_list.is_null() {
            return Vec::new();
        }
        // SAFETY: `scope_list` was created by ngx_conf_set_str_array_slot
        // and holds `nelts` ngx_str_t values.
        let items = unsafe { (*self.scope_list).as_slice::<ngx_str_t>() };
        let mut joined = Vec::new();
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                joined.push(b' ');
            }
            joined.extend_from_slice(s.as_bytes());
        }
        joined
    }
}

impl Merge for LocationConf {
    fn merge(&mut self, prev: &LocationConf) -> Result<(), MergeConfigError> {
        if self.enable == NGX_CONF_UNSET as ngx_flag_t {
            self.enable = if prev.enable == NGX_CONF_UNSET as ngx_flag_t {
                0
            } else {
                prev.enable
            };
        }
        merge_str(&mut self.endpoint, &prev.endpoint, b"");
        merge_str(&mut self.realm, &prev.realm, b"api");
        merge_str(&mut self.basic_credential, &prev.basic_credential, b"");
        if self.scopes.data.is_null() && self.scope_list == NGX_CONF_UNSET_PTR {
            self.scopes = prev.scopes;
            self.scope_list = prev.scope_list;
        }
        if self.max_jwt_size == usize::MAX {
            self.max_jwt_size = if prev.max_jwt_size == usize::MAX {
                DEFAULT_MAX_JWT_SIZE
            } else {
                prev.max_jwt_size
            };
        }
        self.challenge = bearer_challenge(self.realm.as_bytes(), &self.effective_scopes());
        Ok(())
    }
}

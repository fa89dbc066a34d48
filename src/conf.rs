//! Configuration: the per-location settings and the directive table.
//!
//! Directive handlers live in [`directives`]; merge logic sits next to the
//! struct, as in NGINX's own modules.

pub mod authz;
pub mod directives;
pub mod verify;

use nginx_sys::{ngx_array_t, ngx_flag_t, ngx_msec_t, ngx_shm_zone_t, ngx_str_t, NGX_CONF_UNSET};
use ngx::http::{Merge, MergeConfigError};

use crate::www_authenticate::bearer_challenge;

const NGX_CONF_UNSET_PTR: *mut ngx_array_t = usize::MAX as *mut ngx_array_t;
const UNSET_ZONE: *mut ngx_shm_zone_t = usize::MAX as *mut ngx_shm_zone_t;
const UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

/// Default `phantom_token_cache_max_ttl`.
pub const DEFAULT_CACHE_MAX_TTL_MS: ngx_msec_t = 300_000;
/// Default `phantom_token_cache_negative_ttl`.
pub const DEFAULT_NEGATIVE_TTL_MS: ngx_msec_t = 5_000;
/// Default `phantom_token_cache_lock_timeout`.
pub const DEFAULT_LOCK_TIMEOUT_MS: ngx_msec_t = 5_000;

/// Default ceiling for the introspection response body (the JWT).
pub const DEFAULT_MAX_JWT_SIZE: usize = 64 * 1024;

/// Default `phantom_token_jwt_leeway`.
pub const DEFAULT_JWT_LEEWAY_MS: ngx_msec_t = 60_000;
/// Default `phantom_token_jwks_refresh`.
pub const DEFAULT_JWKS_REFRESH_MS: ngx_msec_t = 3_600_000;
/// Default `phantom_token_jwks_refetch_interval`.
pub const DEFAULT_JWKS_REFETCH_MS: ngx_msec_t = 10_000;

/// Where a location's JWT verification keys come from.
#[derive(Debug, Clone)]
pub enum Jwks {
    /// `phantom_token_jwks off`: no verification.
    Off,
    /// `phantom_token_jwks <file>`: keys read at configuration time.
    File(std::sync::Arc<crate::verify::keys::KeySet>),
    /// `phantom_token_jwks_request <uri>`: keys fetched at run time
    /// through that internal location, kept in the key zone.
    Fetched {
        /// The internal location.
        uri: ngx_str_t,
        /// The key zone.
        zone: *mut ngx_shm_zone_t,
    },
}

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
    /// `phantom_token_cache <zone>|off` (null: off).
    pub cache_zone: *mut ngx_shm_zone_t,
    /// `phantom_token_cache_max_ttl`.
    pub cache_max_ttl: ngx_msec_t,
    /// `phantom_token_cache_negative_ttl`.
    pub cache_negative_ttl: ngx_msec_t,
    /// `phantom_token_cache_lock_timeout`.
    pub cache_lock_timeout: ngx_msec_t,
    /// `phantom_token_cache_admin [zone]` (null: no admin here).
    pub admin_zone: *mut ngx_shm_zone_t,
    /// `phantom_token_cache_admin` was given in this location.
    pub admin: bool,
    /// Identity of the authorization server this location introspects at
    /// (server block, endpoint, client credential), part of every cache
    /// key: locations sharing a zone never share answers of different
    /// authorization servers. Computed at merge time.
    pub endpoint_id: u64,
    /// `phantom_token_introspection_format jwt|json` (1: json).
    pub json_introspection: ngx_flag_t,
    /// `phantom_token_phase access|preaccess` (1: preaccess).
    pub preaccess: ngx_flag_t,
    /// `phantom_token_dpop on|off`: accept `Authorization: DPoP <token>`.
    pub dpop: ngx_flag_t,
    /// `phantom_token_jwks` (`None`: inherited).
    pub jwks: Option<Jwks>,
    /// `phantom_token_jwks_refresh` (default 1 h).
    pub jwks_refresh: ngx_msec_t,
    /// `phantom_token_jwks_refetch_interval` (default 10 s).
    pub jwks_refetch_interval: ngx_msec_t,
    /// `phantom_token_jwt_leeway` (default 60 s).
    pub jwt_leeway: ngx_msec_t,
    /// `phantom_token_jwt_issuer`.
    pub jwt_issuer: ngx_str_t,
    /// `phantom_token_jwt_audience`: repeatable, one must match.
    pub jwt_audience: *mut ngx_array_t,
    /// The location's JWT verifier, computed at merge time (`None`: off).
    pub verifier: Option<std::rc::Rc<crate::verify::Verifier>>,
    /// `phantom_token_require` lines of this location (`None`: inherited).
    pub requirements: Option<Vec<crate::authz::Requirement>>,
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
            cache_zone: UNSET_ZONE,
            cache_max_ttl: UNSET_MSEC,
            cache_negative_ttl: UNSET_MSEC,
            cache_lock_timeout: UNSET_MSEC,
            admin_zone: core::ptr::null_mut(),
            admin: false,
            endpoint_id: 0,
            requirements: None,
            dpop: NGX_CONF_UNSET as ngx_flag_t,
            preaccess: NGX_CONF_UNSET as ngx_flag_t,
            json_introspection: NGX_CONF_UNSET as ngx_flag_t,
            jwks: None,
            jwt_leeway: UNSET_MSEC,
            jwks_refresh: UNSET_MSEC,
            jwks_refetch_interval: UNSET_MSEC,
            jwt_issuer: ngx_str_t::empty(),
            jwt_audience: NGX_CONF_UNSET_PTR,
            verifier: None,
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

fn merge_msec(conf: &mut ngx_msec_t, prev: ngx_msec_t, default: ngx_msec_t) {
    if *conf == UNSET_MSEC {
        *conf = if prev == UNSET_MSEC { default } else { prev };
    }
}

impl LocationConf {
    /// The cache zone used in this location, if any.
    pub fn cache(&self) -> Option<crate::cache::zone::Zone> {
        // SAFETY: a non-null zone pointer comes from ngx_shared_memory_add
        // and was initialized before workers serve requests.
        unsafe { crate::cache::zone::Zone::from_shm_zone(self.cache_zone) }
    }

    /// Whether the authorization server answers in JSON (RFC 7662 §2.2)
    /// instead of a JWT.
    pub fn json_introspection(&self) -> bool {
        self.json_introspection == 1
    }

    /// The phase the token is exchanged in.
    pub fn phase(&self) -> crate::request::handler::Phase {
        if self.preaccess == 1 {
            crate::request::handler::Phase::Preaccess
        } else {
            crate::request::handler::Phase::Access
        }
    }

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

impl LocationConf {
    /// Inherits the verification settings and builds the location's
    /// verifier; `server` tells server blocks apart (fetched key slots).
    pub fn merge_verification(&mut self, prev: &LocationConf, server: u64) {
        use crate::verify::{FetchedSource, KeySource, Verifier};
        if self.jwks.is_none() {
            self.jwks = prev.jwks.clone();
        }
        merge_msec(&mut self.jwt_leeway, prev.jwt_leeway, DEFAULT_JWT_LEEWAY_MS);
        merge_msec(
            &mut self.jwks_refresh,
            prev.jwks_refresh,
            DEFAULT_JWKS_REFRESH_MS,
        );
        merge_msec(
            &mut self.jwks_refetch_interval,
            prev.jwks_refetch_interval,
            DEFAULT_JWKS_REFETCH_MS,
        );
        merge_str(&mut self.jwt_issuer, &prev.jwt_issuer, b"");
        if self.jwt_audience == NGX_CONF_UNSET_PTR {
            self.jwt_audience = prev.jwt_audience;
        }
        let audience = if self.jwt_audience == NGX_CONF_UNSET_PTR || self.jwt_audience.is_null() {
            Vec::new()
        } else {
            // SAFETY: created by ngx_conf_set_str_array_slot, holds ngx_str_t values.
            unsafe { (*self.jwt_audience).as_slice::<ngx_str_t>() }
                .iter()
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                .collect()
        };
        let policy = crate::verify::keys::Policy {
            leeway: self.jwt_leeway as u64 / 1000,
            issuer: (self.jwt_issuer.len > 0)
                .then(|| String::from_utf8_lossy(self.jwt_issuer.as_bytes()).into_owned()),
            audience,
        };
        let source = match &self.jwks {
            Some(Jwks::File(keys)) => KeySource::File(keys.clone()),
            Some(Jwks::Fetched { uri, zone }) => KeySource::Fetched(FetchedSource {
                zone: *zone,
                id: fetched_slot_id(server, uri.as_bytes()),
                uri: *uri,
                refresh_ms: self.jwks_refresh as u64,
                interval_ms: self.jwks_refetch_interval as u64,
            }),
            _ => {
                self.verifier = None;
                return;
            }
        };
        self.verifier = match &prev.verifier {
            // Same keys and checks as the enclosing block: share its memo.
            Some(v) if v.same_as(&source, &policy) => Some(v.clone()),
            _ => Some(std::rc::Rc::new(Verifier::new(source, policy))),
        };
    }
}

/// The key slot of a JWKS location: its server block and URI (never 0).
fn fetched_slot_id(server: u64, uri: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut sha = Sha256::new();
    sha.update(server.to_le_bytes());
    sha.update(uri);
    let digest = sha.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first).max(1)
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
        if self.cache_zone == UNSET_ZONE {
            self.cache_zone = if prev.cache_zone == UNSET_ZONE {
                core::ptr::null_mut()
            } else {
                prev.cache_zone
            };
        }
        merge_msec(
            &mut self.cache_max_ttl,
            prev.cache_max_ttl,
            DEFAULT_CACHE_MAX_TTL_MS,
        );
        merge_msec(
            &mut self.cache_negative_ttl,
            prev.cache_negative_ttl,
            DEFAULT_NEGATIVE_TTL_MS,
        );
        merge_msec(
            &mut self.cache_lock_timeout,
            prev.cache_lock_timeout,
            DEFAULT_LOCK_TIMEOUT_MS,
        );
        if self.admin && self.admin_zone.is_null() {
            self.admin_zone = self.cache_zone;
        }
        if self.dpop == NGX_CONF_UNSET as ngx_flag_t {
            self.dpop = if prev.dpop == NGX_CONF_UNSET as ngx_flag_t {
                0
            } else {
                prev.dpop
            };
        }
        if self.preaccess == NGX_CONF_UNSET as ngx_flag_t {
            self.preaccess = if prev.preaccess == NGX_CONF_UNSET as ngx_flag_t {
                0
            } else {
                prev.preaccess
            };
        }
        if self.json_introspection == NGX_CONF_UNSET as ngx_flag_t {
            self.json_introspection = if prev.json_introspection == NGX_CONF_UNSET as ngx_flag_t {
                0
            } else {
                prev.json_introspection
            };
        }
        if self.requirements.is_none() {
            self.requirements = prev.requirements.clone();
        }
        self.challenge = bearer_challenge(self.realm.as_bytes(), &self.effective_scopes());
        Ok(())
    }
}

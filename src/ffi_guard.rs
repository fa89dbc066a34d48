//! Keeps Rust panics from unwinding into NGINX.

use std::panic::{catch_unwind, AssertUnwindSafe};

use nginx_sys::{ngx_int_t, ngx_log_t, NGX_LOG_ALERT};
use ngx::ngx_log_error;

/// Runs `f`; if it panics, logs an alert saying what was being done and
/// returns `fallback` instead.
pub fn guard(
    log: *mut ngx_log_t,
    what: &str,
    fallback: ngx_int_t,
    f: impl FnOnce() -> ngx_int_t,
) -> ngx_int_t {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(rc) => rc,
        Err(_) => {
            if !log.is_null() {
                ngx_log_error!(
                    NGX_LOG_ALERT,
                    log,
                    "phantom token: internal error while {what}"
                );
            }
            fallback
        }
    }
}

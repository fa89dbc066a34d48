//! The journey of one client request through the access phase:
//!
//! - [`handler`]: the decision table, row by row, and the cache lookup;
//! - [`state`]: the request's state (waiting, introspecting, done) and
//!   what survives internal redirects;
//! - [`subrequest`]: the introspection `POST` and its outcome;
//! - [`authorize`]: `phantom_token_require` on the token's claims;
//! - [`capture`]: the body filter that keeps every byte of an
//!   introspection away from the client;
//! - [`verification`]: a JWT's verification, fetching keys when needed;
//! - [`json`]: RFC 7662 JSON answers (`phantom_token_introspection_format json`).

// The log macros come first: every module below uses them.

/// Debug line on the request's connection log.
macro_rules! debug {
    ($r:expr, $($arg:tt)+) => {
        ::ngx::ngx_log_debug!((*(*$r).connection).log, $($arg)+)
    };
}

/// Log lines the C module also writes: same text, and the connection's log
/// context left as it is (as the C module does).
macro_rules! log {
    ($level:expr, $r:expr, $($arg:tt)+) => {
        ::ngx::ngx_log_error!($level, (*(*$r).connection).log, $($arg)+)
    };
}

/// This module's own error lines, in NGINX's voice: `... while introspecting token`.
macro_rules! log_own {
    ($level:expr, $r:expr, $($arg:tt)+) => {{
        let log = (*(*$r).connection).log;
        (*log).action = c"introspecting token".as_ptr().cast_mut();
        ::ngx::ngx_log_error!($level, log, $($arg)+);
    }};
}

pub mod authorize;
pub mod capture;
pub mod handler;
pub mod json;
pub mod state;
pub mod subrequest;
pub mod verification;

//! The journey of one client request through the access phase:
//!
//! - [`handler`]: the decision table, row by row, and the cache lookup;
//! - [`state`]: the request's state (waiting, introspecting, done) and
//!   what survives internal redirects;
//! - [`subrequest`]: the introspection `POST` and its outcome;
//! - [`authorize`]: `phantom_token_require` on the token's claims;
//! - [`capture`]: the body filter that keeps every byte of an
//!   introspection away from the client.

pub mod authorize;
pub mod capture;
pub mod handler;
pub mod state;
pub mod subrequest;

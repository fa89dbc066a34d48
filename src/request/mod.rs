//! The journey of one client request through the access phase:
//!
//! - [`handler`]: the decision table, row by row, and the cache lookup;
//! - [`state`]: the request's state (waiting, introspecting, done) and
//!   what survives internal redirects;
//! - [`subrequest`]: the introspection `POST` and its outcome;
//! - [`capture`]: the body filter that keeps every byte of an
//!   introspection away from the client.

pub mod capture;
pub mod handler;
pub mod state;
pub mod subrequest;

//! The built-in token cache: one shared-memory zone for all workers.
//!
//! - [`policy`]: what may be cached and for how long (pure logic);
//! - [`zone`]: the zone itself (keyed table, LRU, single-flight markers);
//! - [`admin`], [`command`] and [`metrics`]: the management API, its input
//!   parser and its Prometheus output;
//! - [`conf`]: the cache directives.
//!
//! The behaviour is specified in `docs/behaviour.md` ("Built-in cache").

pub mod admin;
pub mod command;
pub mod conf;
pub mod metrics;
pub mod policy;
pub mod zone;

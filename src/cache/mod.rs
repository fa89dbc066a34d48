//! The built-in token cache: one shared-memory zone for all workers.
//!
//! - [`policy`]: what may be cached and for how long (pure logic);
//! - [`zone`]: the zone itself (keyed table, LRU, single-flight markers);
//! - [`admin`] and [`command`]: the management API and its input parser;
//! - [`conf`]: the cache directives.
//!
//! The behaviour is specified in `docs/behaviour.md` ("Built-in cache").

pub mod admin;
pub mod command;
pub mod conf;
pub mod policy;
pub mod zone;

//! Unit tests of the module's pure logic (header parsing, JWT shape, cache
//! rules, decision table). The library itself links against the nginx
//! binary, so its pure modules are compiled here on their own.

#[path = "../src/authz/mod.rs"]
#[allow(dead_code)] // the 403 answer uses the rest
mod authz;
#[path = "../src/bearer.rs"]
mod bearer;
#[path = "../src/cache/policy.rs"]
mod cache;
#[path = "../src/claims.rs"]
mod claims;
#[path = "../src/cache/command.rs"]
mod command;
#[path = "../src/decision.rs"]
mod decision;
#[path = "../src/jwt.rs"]
mod jwt;
#[path = "../src/jwt_memo.rs"]
mod jwt_memo;
#[path = "../src/cache/metrics.rs"]
#[allow(dead_code)] // the admin handler uses the rest
mod metrics;
#[path = "../src/verify/keys.rs"]
#[allow(dead_code)] // the verifier uses the rest
mod verify_keys;
#[path = "../src/www_authenticate.rs"]
mod www_authenticate;

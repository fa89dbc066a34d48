//! Single-flight benchmark (`make bench-flight`; ignored by `make test`):
//! 50 concurrent requests with one token against an authorization server
//! that answers after 200 ms, once with `Cache-Control: no-store` (nothing
//! can be shared: the waiters must be released at once, not queued) and
//! once cacheable (one introspection for all). Prints the slowest request
//! and the introspection count; see BENCHMARKS.md for the targets.

mod common;
use common::*;

use std::time::{Duration, Instant};

const CLIENTS: usize = 50;
const AS_DELAY: Duration = Duration::from_millis(200);

/// Runs `CLIENTS` concurrent requests with one token; returns the slowest
/// request's duration and the number of introspections.
fn burst(cache_control: &str) -> (Duration, usize, Vec<u16>) {
    let gw = gateway_parts(Parts {
        http: "phantom_token_cache_zone tokens:1m;",
        api: "phantom_token_cache tokens; phantom_token_cache_lock_timeout 10s;",
        ..Parts::default()
    });
    gw.auth.set_cache_control(Some(cache_control.into()));
    gw.auth.set_fault(Fault::Delay(AS_DELAY));
    let token = gw.token();
    let url = gw.nginx.url("/api/flight");
    let results: Vec<(Duration, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (url, token) = (url.clone(), token.clone());
                s.spawn(move || {
                    let started = Instant::now();
                    let resp = client().get(url).bearer_auth(token).send().unwrap();
                    let status = resp.status().as_u16();
                    let _ = resp.text();
                    (started.elapsed(), status)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let slowest = results.iter().map(|r| r.0).max().unwrap_or_default();
    let statuses = results.iter().map(|r| r.1).collect();
    (slowest, gw.auth.introspection_count(), statuses)
}

#[test]
#[ignore = "benchmark: make bench-flight"]
fn single_flight_bursts() {
    println!("| answer | clients | AS delay | slowest request | introspections |");
    println!("|---|---|---|---|---|");
    for cc in ["no-store", "max-age=60"] {
        let (slowest, introspections, statuses) = burst(cc);
        assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
        if cc != "no-store" {
            assert_eq!(introspections, 1);
        }
        println!(
            "| `Cache-Control: {cc}` | {CLIENTS} | {} ms | {} ms | {introspections} |",
            AS_DELAY.as_millis(),
            slowest.as_millis()
        );
    }
}

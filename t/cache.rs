//! The built-in shared-memory token cache: TTL rules, negative caching,
//! eviction, single flight, admin API, reload, `$phantom_token_cache_status`.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// A gateway with `phantom_token_cache_zone tokens:<size>` and the cache on
/// `/api`, an admin location and an access log of the cache status.
fn cache_gateway(zone_size: &str, api_extra: &str) -> Gateway {
    cache_gateway_with(zone_size, api_extra, "")
}

/// [`cache_gateway`] with `curity_extra` in the introspection location.
fn cache_gateway_with(zone_size: &str, api_extra: &str, curity_extra: &str) -> Gateway {
    gateway_custom(move |auth, echo, port| {
        cache_conf_with(auth, echo, port, zone_size, api_extra, curity_extra)
    })
}

fn cache_conf(
    auth: &AuthServer,
    echo: &EchoServer,
    port: u16,
    zone_size: &str,
    api_extra: &str,
) -> String {
    cache_conf_with(auth, echo, port, zone_size, api_extra, "")
}

fn cache_conf_with(
    auth: &AuthServer,
    echo: &EchoServer,
    port: u16,
    zone_size: &str,
    api_extra: &str,
    curity_extra: &str,
) -> String {
    let http = format!(
        "phantom_token_cache_zone tokens:{zone_size};
        log_format cache '$uri $phantom_token_cache_status';"
    );
    let api = format!("phantom_token_cache tokens; {api_extra}");
    let server = "access_log cache.log cache;
        location = /admin {
            phantom_token_cache_admin tokens;
            allow 127.0.0.1;
            deny all;
        }";
    standard_conf(
        auth,
        echo,
        port,
        Parts {
            http: &http,
            server,
            api: &api,
            curity: curity_extra,
        },
    )
}

impl Gateway {
    fn admin_get(&self) -> serde_json::Value {
        let resp = client().get(self.nginx.url("/admin")).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        resp.json().unwrap()
    }

    fn admin_post(&self, body: &str) -> (u16, serde_json::Value) {
        let resp = client()
            .post(self.nginx.url("/admin"))
            .body(body.to_string())
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap())
    }

    /// Cache statuses logged so far, waiting (bounded) until `n` are there.
    fn cache_statuses(&self, n: usize) -> Vec<String> {
        let path = self.nginx.prefix().join("cache.log");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::yield_now();
        }
    }

    /// Requests `path` with `token` every 50 ms until the authorization
    /// server is asked again (the cached answer expired); returns how long
    /// after `since` that happened. Bounded: fails after `limit`.
    fn time_until_reintrospected(
        &self,
        path: &str,
        token: &str,
        since: Instant,
        limit: Duration,
    ) -> Duration {
        let before = self.auth.introspection_count();
        loop {
            let _ = self.get_bearer(path, token).text();
            if self.auth.introspection_count() > before {
                return since.elapsed();
            }
            assert!(since.elapsed() < limit, "still cached after {limit:?}");
            std::thread::sleep(Duration::from_millis(50)); // request pacing
        }
    }

    fn sub_of(&self, resp: Response) -> String {
        let echoed = assert_forwarded(resp);
        self.auth.decode_jwt(echoed.bearer().unwrap())["sub"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

#[test]
fn max_age_answers_are_served_from_the_zone() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let token = gw.auth.issue_token(json!({"sub": "cached"}));
    for _ in 0..3 {
        assert_eq!(gw.sub_of(gw.get_bearer("/api/c", &token)), "cached");
    }
    assert_eq!(gw.auth.introspection_count(), 1);
    assert_eq!(
        gw.cache_statuses(3),
        ["/api/c MISS", "/api/c HIT", "/api/c HIT"]
    );
}

#[test]
fn entries_expire_with_max_age() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=1".into()));
    let token = gw.token();
    let stored = Instant::now();
    gw.sub_of(gw.get_bearer("/api/e", &token));
    gw.sub_of(gw.get_bearer("/api/e", &token));
    assert_eq!(gw.auth.introspection_count(), 1);
    let ttl = gw.time_until_reintrospected("/api/e", &token, stored, Duration::from_secs(3));
    assert!(ttl >= Duration::from_millis(900), "expired after {ttl:?}");
    let statuses = gw.cache_statuses(3);
    let (last, rest) = statuses.split_last().unwrap();
    assert_eq!(rest[0], "/api/e MISS");
    assert!(rest[1..].iter().all(|s| s == "/api/e HIT"), "{statuses:?}");
    // EXPIRED when the lookup found the old entry; MISS when the
    // incremental sweep had freed it first.
    assert!(
        last == "/api/e EXPIRED" || last == "/api/e MISS",
        "{statuses:?}"
    );
}

#[test]
fn entries_never_outlive_the_jwt_exp() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=600".into()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = gw.auth.issue_token(json!({"exp": now + 2}));
    let stored = Instant::now();
    gw.sub_of(gw.get_bearer("/api/x", &token));
    gw.sub_of(gw.get_bearer("/api/x", &token));
    assert_eq!(gw.auth.introspection_count(), 1);
    // exp is 1-2 s away (whole seconds) while max-age says 600 s: the JWT
    // must leave the zone at exp.
    let ttl = gw.time_until_reintrospected("/api/x", &token, stored, Duration::from_secs(4));
    assert!(ttl >= Duration::from_millis(900), "expired after {ttl:?}");
}

#[test]
fn max_ttl_caps_the_lifetime() {
    let gw = cache_gateway("1m", "phantom_token_cache_max_ttl 1s;");
    gw.auth.set_cache_control(Some("max-age=600".into()));
    let token = gw.token();
    let stored = Instant::now();
    let first = assert_forwarded(gw.get_bearer("/api/x", &token));
    let hit = assert_forwarded(gw.get_bearer("/api/x", &token));
    assert_eq!(
        hit.bearer(),
        first.bearer(),
        "a hit forwards the cached JWT"
    );
    gw.auth.decode_jwt(hit.bearer().unwrap());
    assert_eq!(gw.cache_statuses(2), ["/api/x MISS", "/api/x HIT"]);
    let ttl = gw.time_until_reintrospected("/api/x", &token, stored, Duration::from_secs(3));
    assert!(ttl >= Duration::from_millis(900), "expired after {ttl:?}");
}

#[test]
fn no_store_and_no_cache_answers_are_not_cached() {
    for cc in ["no-store", "no-cache", "private, max-age=60", "max-age=0"] {
        let gw = cache_gateway("1m", "");
        gw.auth.set_cache_control(Some(cc.into()));
        let token = gw.token();
        gw.sub_of(gw.get_bearer("/api/n", &token));
        gw.sub_of(gw.get_bearer("/api/n", &token));
        assert_eq!(gw.auth.introspection_count(), 2, "{cc}");
        assert_eq!(gw.cache_statuses(2), ["/api/n MISS", "/api/n MISS"], "{cc}");
    }
}

#[test]
fn error_answers_are_not_cached() {
    let gw = cache_gateway("1m", "");
    let token = gw.token();
    for (status, answer) in [(500, 502), (503, 503), (401, 502)] {
        gw.auth.set_fault(Fault::Status(status, String::new()));
        assert_error(gw.get_bearer("/api/err", &token), answer, SERVER_ERROR);
    }
    gw.auth.set_fault(Fault::Body(b"garbage".to_vec()));
    assert_error(gw.get_bearer("/api/err", &token), 502, SERVER_ERROR);
    gw.auth.clear_fault();
    assert_eq!(gw.sub_of(gw.get_bearer("/api/err", &token)), "alice");
    assert_eq!(gw.auth.introspection_count(), 5);
}

#[test]
fn inactive_tokens_are_remembered_briefly() {
    let gw = cache_gateway("1m", "phantom_token_cache_negative_ttl 1s;");
    let stored = Instant::now();
    for _ in 0..3 {
        assert_unauthorized(
            gw.get_bearer("/api/neg", "no-such-token"),
            r#"Bearer realm="api""#,
        );
    }
    assert_eq!(gw.auth.introspection_count(), 1);
    assert_eq!(
        gw.cache_statuses(3),
        ["/api/neg MISS", "/api/neg NEGATIVE", "/api/neg NEGATIVE"]
    );
    let ttl =
        gw.time_until_reintrospected("/api/neg", "no-such-token", stored, Duration::from_secs(3));
    assert!(ttl >= Duration::from_millis(900), "forgotten after {ttl:?}");
}

#[test]
fn negative_caching_can_be_turned_off() {
    let gw = cache_gateway("1m", "phantom_token_cache_negative_ttl 0;");
    for _ in 0..2 {
        assert_unauthorized(
            gw.get_bearer("/api/neg", "no-such-token"),
            r#"Bearer realm="api""#,
        );
    }
    assert_eq!(gw.auth.introspection_count(), 2);
}

#[test]
fn a_full_zone_evicts_least_recently_used_entries_and_never_fails() {
    let gw = cache_gateway("64k", "");
    gw.auth.set_cache_control(Some("max-age=300".into()));
    let keep = gw.auth.issue_token(json!({"sub": "keep"}));
    let first = gw.auth.issue_token(json!({"sub": "first"}));
    gw.sub_of(gw.get_bearer("/api/f", &first));
    let c = client();
    let mut last = String::new();
    for i in 0..2000 {
        last = gw.auth.issue_token(json!({"sub": format!("u{i}")}));
        let resp = c
            .get(gw.nginx.url("/api/f"))
            .bearer_auth(&last)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "request {i}");
        if i % 20 == 0 {
            // Touch `keep` often: it stays among the most recently used.
            assert_eq!(
                gw.sub_of(
                    c.get(gw.nginx.url("/api/f"))
                        .bearer_auth(&keep)
                        .send()
                        .unwrap()
                ),
                "keep"
            );
        }
    }
    let stats = gw.admin_get();
    assert!(stats["evictions"].as_u64().unwrap() > 1000, "{stats}");
    let before = gw.auth.introspection_count();
    gw.sub_of(gw.get_bearer("/api/f", &last)); // most recent: still cached
    gw.sub_of(gw.get_bearer("/api/f", &keep)); // recently used: still cached
    assert_eq!(gw.auth.introspection_count(), before);
    gw.sub_of(gw.get_bearer("/api/f", &first)); // oldest: evicted
    assert_eq!(gw.auth.introspection_count(), before + 1);
}

#[test]
fn concurrent_requests_for_one_token_introspect_once() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw.auth.set_fault(Fault::Delay(Duration::from_millis(300)));
    let token = gw.auth.issue_token(json!({"sub": "flight"}));
    let url = gw.nginx.url("/api/flight");
    let workers = gw.nginx.worker_pids();
    assert_eq!(workers.len(), 2);
    let results: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let (url, token) = (url.clone(), token.clone());
                s.spawn(move || {
                    let resp = client().get(url).bearer_auth(token).send().unwrap();
                    (resp.status().as_u16(), resp.text().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        let echoed: EchoResponse = serde_json::from_str(body).unwrap();
        assert_eq!(
            gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"],
            "flight"
        );
    }
    assert_eq!(gw.auth.introspection_count(), 1);
    let stats = gw.admin_get();
    assert!(
        stats["waits"].as_u64().unwrap() >= 1 && stats["waits"].as_u64().unwrap() <= 99,
        "some requests waited for the flight (counted once each): {stats}"
    );
    assert_eq!(stats["hits"].as_u64().unwrap(), 99, "{stats}");
    assert_eq!(gw.nginx.worker_pids(), workers, "no worker restarted");
    assert!(!gw.nginx.error_log().contains("exited on signal"));
}

#[test]
fn a_failed_flight_releases_its_waiters_at_once() {
    // The leader's introspection times out (502): nothing can be shared, so
    // every waiter introspects by itself at once. Queued, 10 requests would
    // take 10 × 1 s; released together they take about 2 s.
    let gw = cache_gateway_with(
        "1m",
        "phantom_token_cache_lock_timeout 30s;",
        "proxy_read_timeout 1s;",
    );
    gw.auth.set_fault(Fault::Delay(Duration::from_secs(3)));
    let token = gw.token();
    let url = gw.nginx.url("/api/fail");
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let (url, token) = (url.clone(), token.clone());
                s.spawn(move || {
                    let resp = client().get(url).bearer_auth(token).send().unwrap();
                    resp.status().as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, [502; 10]);
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "waiters queued: {:?}",
        started.elapsed()
    );
    let stats = gw.admin_get();
    assert!(stats["waits"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["released"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["pending"], 0, "no marker left behind: {stats}");
}

#[test]
fn a_flood_of_invalid_tokens_is_absorbed_by_the_negative_cache() {
    // 6000 distinct invalid tokens, each sent twice, interleaved with a
    // valid token, through a 1m zone (2048 buckets, room for ~8000 entries;
    // without a bound a few chains would exceed 8): the AS is asked once
    // per invalid token, the valid token keeps working, and no bucket chain
    // grows past its bound.
    let gw = cache_gateway("1m", "phantom_token_cache_negative_ttl 60s;");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let valid = gw.auth.issue_token(json!({"sub": "valid"}));
    let c = client();
    let bad: Vec<String> = (0..6000).map(|i| format!("invalid-{i}")).collect();
    for round in 0..2 {
        for (i, token) in bad.iter().enumerate() {
            let resp = c
                .get(gw.nginx.url("/api/flood"))
                .bearer_auth(token)
                .send()
                .unwrap();
            assert_eq!(resp.status().as_u16(), 401, "round {round} token {i}");
            if i % 200 == 0 {
                let resp = c
                    .get(gw.nginx.url("/api/flood"))
                    .bearer_auth(&valid)
                    .send()
                    .unwrap();
                assert_eq!(gw.sub_of(resp), "valid");
            }
        }
    }
    let stats = gw.admin_get();
    let longest = stats["longest_chain"].as_u64().unwrap();
    assert!((1..=8).contains(&longest), "{stats}");
    // Each invalid token asked once, unless the full zone evicted it (LRU).
    let asked = gw.auth.introspection_count() as u64;
    let evictions = stats["evictions"].as_u64().unwrap();
    assert!(
        stats["bytes_free"].as_u64().unwrap() > 0,
        "zone not full: {stats}"
    );
    assert!(evictions > 0, "the chain bound evicted: {stats}");
    assert!(evictions < 200, "{stats}");
    assert!(asked <= 6001 + evictions, "asked {asked}: {stats}");
    assert!(
        stats["negative_hits"].as_u64().unwrap() + evictions >= 6000,
        "{stats}"
    );
}

#[test]
fn a_leader_past_its_lock_timeout_cannot_settle_a_newer_flight() {
    // Request 1 leads flight F1 (AS answers after 600 ms). Its marker
    // expires after 200 ms; request 2 then leads flight F2. When F1's answer
    // arrives it must not touch F2's marker or store over it: only F2
    // stores. (A leader that settled any flight stored twice.)
    let gw = cache_gateway("1m", "phantom_token_cache_lock_timeout 200ms;");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw.auth.set_fault(Fault::Delay(Duration::from_millis(600)));
    let token = gw.auth.issue_token(json!({"sub": "flights"}));
    std::thread::scope(|s| {
        let first = s.spawn(|| gw.sub_of(gw.get_bearer("/api/f1", &token)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while gw.auth.introspection_count() < 1 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(300)); // let F1's marker expire
        let second = s.spawn(|| gw.sub_of(gw.get_bearer("/api/f2", &token)));
        assert_eq!(first.join().unwrap(), "flights");
        assert_eq!(second.join().unwrap(), "flights");
    });
    assert_eq!(gw.auth.introspection_count(), 2);
    let stats = gw.admin_get();
    assert_eq!(stats["stores"], 1, "only the newer flight stored: {stats}");
    assert_eq!(stats["entries"], 1, "{stats}");
    assert_eq!(stats["pending"], 0, "{stats}");
    assert_eq!(gw.cache_statuses(2)[..2], ["/api/f1 MISS", "/api/f2 MISS"]);
}

#[test]
fn expired_entries_are_not_counted_as_entries() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=1".into()));
    gw.sub_of(gw.get_bearer("/api/c", &gw.token()));
    assert_eq!(gw.admin_get()["entries"], 1);
    // No lookup touches the entry: it expires in place.
    let deadline = Instant::now() + Duration::from_secs(4);
    let stats = loop {
        let stats = gw.admin_get();
        if stats["entries"] == 0 || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(100)); // poll pacing
    };
    assert_eq!(stats["entries"], 0, "{stats}");
    assert!(
        stats["entry_bytes"].as_u64().unwrap() > 0,
        "still in the zone: {stats}"
    );
}

#[test]
fn admin_stats_in_the_prometheus_format() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let token = gw.token();
    gw.sub_of(gw.get_bearer("/api/m", &token)); // miss
    gw.sub_of(gw.get_bearer("/api/m", &token)); // hit
    let by_query = client().get(gw.nginx.url("/admin?format=prometheus"));
    let by_accept = client()
        .get(gw.nginx.url("/admin"))
        .header("Accept", "text/plain;version=0.0.4;q=0.5,*/*;q=0.1");
    for req in [by_query, by_accept] {
        let resp = req.send().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = resp.text().unwrap();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let value = |name: &str| {
            let sample = scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
            assert_eq!(sample.labels.get("zone"), Some("tokens"), "{name}");
            assert!(scrape.docs.contains_key(name), "{name}: no HELP");
            match sample.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                ref other => panic!("{name}: {other:?}"),
            }
        };
        assert!(matches!(
            scrape
                .samples
                .iter()
                .find(|s| s.metric == "phantom_token_cache_hits_total")
                .unwrap()
                .value,
            prometheus_parse::Value::Counter(_)
        ));
        assert_eq!(value("phantom_token_cache_hits_total"), 1.0);
        assert_eq!(value("phantom_token_cache_misses_total"), 1.0);
        assert_eq!(value("phantom_token_cache_introspections_total"), 1.0);
        assert_eq!(value("phantom_token_cache_negative_hits_total"), 0.0);
        assert_eq!(value("phantom_token_cache_evictions_total"), 0.0);
        assert_eq!(value("phantom_token_cache_purges_total"), 0.0);
        assert_eq!(value("phantom_token_cache_entries"), 1.0);
        assert!(value("phantom_token_cache_bytes_used") > 0.0);
        assert!(value("phantom_token_cache_bytes_free") > 0.0);
    }
    // Without either, the JSON statistics as before.
    assert_eq!(gw.admin_get()["hits"], 1);
}

#[test]
fn admin_purges_one_token_or_all() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let (a, b) = (gw.token(), gw.token());
    gw.sub_of(gw.get_bearer("/api/p", &a));
    gw.sub_of(gw.get_bearer("/api/p", &b));
    assert_eq!(
        gw.admin_post(&json!({"action": "purge", "token": a}).to_string()),
        (200, json!({"purged": 1}))
    );
    assert_eq!(
        gw.admin_post(&json!({"action": "purge", "token": a}).to_string()),
        (200, json!({"purged": 0}))
    );
    gw.sub_of(gw.get_bearer("/api/p", &a)); // introspected again
    gw.sub_of(gw.get_bearer("/api/p", &b)); // still cached
    assert_eq!(gw.auth.introspection_count(), 3);
    assert_eq!(
        gw.admin_post(r#"{"action":"purge_all"}"#),
        (200, json!({"purged": 2}))
    );
    gw.sub_of(gw.get_bearer("/api/p", &b));
    assert_eq!(gw.auth.introspection_count(), 4);
}

#[test]
fn admin_warm_up_serves_tokens_without_introspection() {
    let gw = cache_gateway("1m", "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = gw
        .auth
        .sign_jwt(&json!({"sub": "seeded", "exp": now + 600}));
    let (status, body) = gw.admin_post(
        &json!({"action": "warm", "token": "seed-token", "jwt": jwt, "ttl": 120}).to_string(),
    );
    assert_eq!((status, body), (200, json!({"stored": true, "ttl": 120})));
    let echoed = assert_forwarded(gw.get_bearer("/api/w", "seed-token"));
    assert_eq!(echoed.bearer(), Some(jwt.as_str()));
    assert_eq!(gw.auth.introspection_count(), 0);
    assert_eq!(gw.cache_statuses(2), ["/admin -", "/api/w HIT"]);
}

#[test]
fn admin_rejects_bad_input_and_changes_nothing() {
    let gw = cache_gateway("1m", "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = gw.auth.sign_jwt(&json!({"sub": "old", "exp": now - 10}));
    let huge = format!(
        r#"{{"action":"purge","token":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let cases = [
        "not json".to_string(),
        "[1,2]".to_string(),
        r#"{"action":"purge"}"#.to_string(),
        r#"{"action":"explode"}"#.to_string(),
        r#"{"action":"warm","token":"t"}"#.to_string(),
        r#"{"action":"warm","token":"t","jwt":"not-a-jwt"}"#.to_string(),
        json!({"action": "warm", "token": "t", "jwt": expired}).to_string(),
        json!({"action": "warm", "token": "t", "jwt": expired, "ttl": -1}).to_string(),
        huge,
    ];
    for body in &cases {
        let (status, answer) = gw.admin_post(body);
        assert_eq!(status, 400, "{body:.80}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let stats = gw.admin_get();
    assert_eq!(
        (stats["entries"].as_u64(), stats["stores"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        client()
            .delete(gw.nginx.url("/admin"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        405
    );
}

#[test]
fn admin_stats_count_what_happened() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let token = gw.token();
    for _ in 0..3 {
        gw.sub_of(gw.get_bearer("/api/s", &token));
    }
    for _ in 0..2 {
        gw.get_bearer("/api/s", "inactive");
    }
    gw.admin_post(&json!({"action": "purge", "token": token}).to_string());
    let s = gw.admin_get();
    assert_eq!(s["hits"], 2, "{s}");
    assert_eq!(s["misses"], 2, "{s}");
    assert_eq!(s["negative_hits"], 1, "{s}");
    assert_eq!(s["introspections"], 2, "{s}");
    assert_eq!(s["stores"], 2, "{s}");
    assert_eq!(s["purges"], 1, "{s}");
    assert_eq!(s["entries"], 1, "{s}");
    assert_eq!(s["evictions"], 0, "{s}");
    assert!(
        s["bytes_used"].as_u64().unwrap() > 0 && s["bytes_free"].as_u64().unwrap() > 0,
        "{s}"
    );
}

#[test]
fn entries_survive_reload_and_a_resized_zone_keeps_working() {
    let mut gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let token = gw.token();
    gw.sub_of(gw.get_bearer("/api/r", &token));
    gw.nginx.reload();
    gw.sub_of(gw.get_bearer("/api/r", &token));
    assert_eq!(gw.auth.introspection_count(), 1, "entry kept across reload");

    let conf = cache_conf(&gw.auth, &gw.echo, gw.nginx.port(), "2m", "");
    gw.nginx.write_config(&conf);
    gw.nginx.reload();
    gw.sub_of(gw.get_bearer("/api/r", &token));
    gw.sub_of(gw.get_bearer("/api/r", &token));
    assert_eq!(
        gw.auth.introspection_count(),
        2,
        "new zone: one miss, then hits"
    );
}

#[test]
fn the_zone_holds_hashes_not_tokens() {
    let gw = cache_gateway("1m", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let token = gw.auth.issue_token(json!({"sub": "dump"}));
    let echoed = assert_forwarded(gw.get_bearer("/api/d", &token));
    let jwt = echoed.bearer().unwrap().to_string();
    let zone = shared_anonymous_memory(gw.nginx.master_pid());
    assert!(
        contains(&zone, jwt.as_bytes()),
        "positive control: the JWT is in the zone"
    );
    assert!(
        !contains(&zone, token.as_bytes()),
        "the opaque token must not be in the zone"
    );
}

/// Contents of the shared anonymous mappings (NGINX zones) of a process.
fn shared_anonymous_memory(pid: u32) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut out = Vec::new();
    for line in maps.lines().filter(|l| {
        l.contains("/dev/zero") && l.split_whitespace().nth(1).is_some_and(|p| p.contains('s'))
    }) {
        let range = line.split_whitespace().next().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut buf = vec![0u8; (end - start) as usize];
        mem.seek(SeekFrom::Start(start)).unwrap();
        if mem.read_exact(&mut buf).is_ok() {
            out.extend_from_slice(&buf);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn cache_status_is_bypass_without_a_cache() {
    let gw = gateway_parts(Parts {
        http: "log_format cache '$uri $phantom_token_cache_status';",
        server: "access_log cache.log cache; location /open { return 200; }",
        ..Parts::default()
    });
    gw.sub_of(gw.get_bearer("/api/b", &gw.token()));
    client().get(gw.nginx.url("/open")).send().unwrap();
    assert_eq!(gw.cache_statuses(2), ["/api/b BYPASS", "/open -"]);
}

#[test]
fn a_jwt_too_big_for_the_zone_is_forwarded_uncached_without_flushing_it() {
    let gw = cache_gateway("64k", "");
    gw.auth.set_cache_control(Some("max-age=60".into()));
    let small = gw.auth.issue_token(json!({"sub": "small"}));
    gw.sub_of(gw.get_bearer("/api/z", &small));
    gw.auth.set_fault(Fault::BigJwt(20_000));
    let big = gw.token();
    for _ in 0..2 {
        let echoed = assert_forwarded(gw.get_bearer("/api/z", &big));
        assert!(echoed.bearer().unwrap().len() > 19_000);
    }
    gw.auth.clear_fault();
    gw.sub_of(gw.get_bearer("/api/z", &small));
    assert_eq!(
        gw.auth.introspection_count(),
        3,
        "big one twice, small one once"
    );
    assert_eq!(gw.admin_get()["evictions"], 0);
}

#[test]
fn http2_streams_of_one_connection_share_one_introspection() {
    let gw = gateway_parts(Parts {
        http: "phantom_token_cache_zone tokens:1m;",
        server: "http2 on;",
        api: "phantom_token_cache tokens;",
        ..Parts::default()
    });
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw.auth.set_fault(Fault::Delay(Duration::from_millis(200)));
    let token = gw.auth.issue_token(json!({"sub": "h2"}));
    let h2 = http2_client();
    let subs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (h2, url, token) = (h2.clone(), gw.nginx.url("/api/h2"), token.clone());
                s.spawn(move || {
                    let resp = h2.get(url).bearer_auth(token).send().unwrap();
                    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
                    let echoed = assert_forwarded(resp);
                    echoed.bearer().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for jwt in &subs {
        assert_eq!(gw.auth.decode_jwt(jwt)["sub"], "h2");
    }
    assert_eq!(gw.auth.introspection_count(), 1);
}

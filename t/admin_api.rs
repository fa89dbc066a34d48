//! The cache admin API (`phantom_token_cache_admin`) accepts a command in any
//! request-body framing NGINX supports: `Content-Length`, chunked (in
//! several chunks and TCP writes, with extensions, empty), HTTP/1.0, HTTP/2
//! with and without `content-length`, bodies spilled to a temp file or kept
//! in a file only. Bad input is a JSON `400`, never a crashed worker; a
//! seeded fuzz loop sends mutated commands in random framings.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Largest admin body the module accepts (`MAX_ADMIN_BODY`).
const MAX_ADMIN_BODY: usize = 256 * 1024;

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

/// A gateway with the zone `tokens` used by `/api` and three admin
/// locations: `/admin` (defaults), `/admin-small` (`client_body_buffer_size
/// 1k`: larger bodies go to a temp file) and `/admin-file`
/// (`client_body_in_file_only on`). `http2 on` when `h2`.
fn admin_gateway(h2: bool) -> Gateway {
    let server = format!(
        "{h2}
        location = /admin {{
            phantom_token_cache_admin tokens;
        }}
        location = /admin-small {{
            phantom_token_cache_admin tokens;
            client_body_buffer_size 1k;
        }}
        location = /admin-file {{
            phantom_token_cache_admin tokens;
            client_body_in_file_only on;
        }}",
        h2 = if h2 { "http2 on;" } else { "" }
    );
    let gw = gateway_parts(Parts {
        http: "phantom_token_cache_zone tokens:1m;",
        server: &server,
        api: "phantom_token_cache tokens;",
        curity: "",
    });
    gw.auth.set_cache_control(Some("max-age=60".into()));
    gw
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `warm` command storing `token` → a fresh JWT for `sub` for 60 s.
fn warm_cmd(gw: &Gateway, token: &str, sub: &str) -> String {
    let jwt = gw
        .auth
        .sign_jwt(&json!({"sub": sub, "exp": now_secs() + 600}));
    json!({"action": "warm", "token": token, "jwt": jwt, "ttl": 60}).to_string()
}

/// Statistics from `GET /admin`.
fn stats(gw: &Gateway) -> Value {
    let resp = client().get(gw.nginx.url("/admin")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().unwrap()
}

/// An answer of the admin API: status and parsed JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    json: Value,
}

/// Parses a raw response, asserting a JSON body.
fn answer_of(raw: &str, what: &str) -> Answer {
    let (status, headers, body) = parse_raw_response(raw);
    assert_ne!(status, 0, "{what}: no response (worker crash?)");
    let ct = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        ct,
        Some("application/json"),
        "{what}: {status} {headers:?} {body}"
    );
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {body:?}"));
    Answer { status, json }
}

/// One chunk (size line, data, CRLF) of a chunked body.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// Chunked transfer coding of `pieces` (empty pieces skipped), ending with
/// the last chunk.
fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out: Vec<u8> = pieces
        .iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| chunk(p))
        .collect();
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Request head of `METHOD path` with `Connection: close` and `framing`
/// header lines (each ending in CRLF).
fn head(method: &str, path: &str, version: &str, framing: &str) -> Vec<u8> {
    format!("{method} {path} {version}\r\nHost: x\r\nConnection: close\r\n{framing}\r\n")
        .into_bytes()
}

/// `POST path` with `Content-Length`.
fn post_cl(gw: &Gateway, path: &str, version: &str, body: &[u8]) -> Answer {
    let mut req = head(
        "POST",
        path,
        version,
        &format!("Content-Length: {}\r\n", body.len()),
    );
    req.extend_from_slice(body);
    answer_of(
        &raw_request(gw.nginx.port(), &req),
        &format!("{version} CL POST {path}"),
    )
}

/// `POST path` with `Transfer-Encoding: chunked`, `body` already coded.
fn post_chunked_raw(gw: &Gateway, path: &str, coded: &[u8]) -> Answer {
    let mut req = head("POST", path, "HTTP/1.1", "Transfer-Encoding: chunked\r\n");
    req.extend_from_slice(coded);
    answer_of(
        &raw_request(gw.nginx.port(), &req),
        &format!("chunked POST {path}"),
    )
}

/// `POST path` with the body in these chunks, sent in one write.
fn post_chunked(gw: &Gateway, path: &str, pieces: &[&[u8]]) -> Answer {
    post_chunked_raw(gw, path, &chunked(pieces))
}

/// Sends `writes` one TCP write each (no delay), then reads until the
/// server closes (`Connection: close`) or 10 s pass.
fn send_in_writes(port: u16, writes: &[Vec<u8>]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for w in writes {
        if s.write_all(w).and_then(|()| s.flush()).is_err() {
            break; // answered and closed early
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A `200 {"purged": n}` answer.
fn assert_purged(a: &Answer, n: u64) {
    assert_eq!((a.status, &a.json), (200, &json!({ "purged": n })), "{a:?}");
}

/// A `200 {"stored": true, ...}` answer.
fn assert_stored(a: &Answer) {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["stored"], true, "{a:?}");
}

/// A `400 {"error": "..."}` answer; returns the message.
fn assert_bad_request(a: &Answer) -> String {
    assert_eq!(a.status, 400, "{a:?}");
    a.json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {a:?}"))
        .to_string()
}

/// Warms `n` tokens over the plain client (Content-Length) and checks that
/// the zone holds them.
fn warm_tokens(gw: &Gateway, prefix: &str, n: usize) -> Vec<String> {
    let tokens: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for (i, t) in tokens.iter().enumerate() {
        let resp = client()
            .post(gw.nginx.url("/admin"))
            .body(warm_cmd(gw, t, &format!("{prefix}{i}")))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "warming {t}");
    }
    assert_eq!(stats(gw)["entries"], n as u64);
    tokens
}

/// `token` is served from the zone: JWT of `sub`, no introspection.
fn assert_served_from_zone(gw: &Gateway, token: &str, sub: &str) {
    let before = gw.auth.introspection_count();
    let echoed = assert_forwarded(gw.get_bearer("/api/w", token));
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], sub);
    assert_eq!(gw.auth.introspection_count(), before, "introspected");
}

// ---------------------------------------------------------------------------
// Chunked request bodies
// ---------------------------------------------------------------------------

#[test]
fn chunked_purge_all_in_three_chunks_reports_the_exact_count() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    warm_tokens(&gw, "chunk3", 2);
    let a = post_chunked(&gw, "/admin", &[b"{\"action\":", b"\"purge_all\"", b"}"]);
    assert_purged(&a, 2);
    assert_eq!(stats(&gw)["entries"], 0);
    assert_no_crash(&gw, &workers);
}

#[test]
fn chunked_purge_all_in_two_chunks_and_separate_writes() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    warm_tokens(&gw, "chunk2", 2);
    // Head, first chunk, second chunk, last chunk: four TCP writes.
    let writes = vec![
        head(
            "POST",
            "/admin",
            "HTTP/1.1",
            "Transfer-Encoding: chunked\r\n",
        ),
        b"a\r\n{\"action\":\r\n".to_vec(),
        b"c\r\n\"purge_all\"}\r\n".to_vec(),
        b"0\r\n\r\n".to_vec(),
    ];
    let a = answer_of(&send_in_writes(gw.nginx.port(), &writes), "split chunks");
    assert_purged(&a, 2);
    // A second purge_all finds nothing.
    assert_purged(
        &post_chunked(&gw, "/admin", &[b"{\"action\":", b"\"purge_all\"}"]),
        0,
    );
    assert_no_crash(&gw, &workers);
}

#[test]
fn chunked_warm_and_purge_work_in_every_chunk_layout() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    // Warm four tokens, each with another chunk layout.
    let cmds: Vec<String> = (0..4)
        .map(|i| warm_cmd(&gw, &format!("layout-{i}"), &format!("sub{i}")))
        .collect();
    let c0 = cmds[0].as_bytes();
    assert_stored(&post_chunked(&gw, "/admin", &[c0])); // one chunk
    let c1 = cmds[1].as_bytes();
    let bytes: Vec<&[u8]> = c1.chunks(1).collect(); // one byte per chunk
    assert_stored(&post_chunked(&gw, "/admin", &bytes));
    let c2 = cmds[2].as_bytes();
    // Chunk extensions and upper-case hex sizes.
    let (x, y) = c2.split_at(7);
    let mut coded = format!("{:X};name=value\r\n", x.len()).into_bytes();
    coded.extend_from_slice(x);
    coded.extend_from_slice(format!("\r\n{:X};ext\r\n", y.len()).as_bytes());
    coded.extend_from_slice(y);
    coded.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_stored(&post_chunked_raw(&gw, "/admin", &coded));
    // Chunked, each chunk in its own TCP write.
    let c3 = cmds[3].as_bytes();
    let mut writes = vec![head(
        "POST",
        "/admin",
        "HTTP/1.1",
        "Transfer-Encoding: chunked\r\n",
    )];
    writes.extend(c3.chunks(40).map(chunk));
    writes.push(b"0\r\n\r\n".to_vec());
    let a = answer_of(
        &send_in_writes(gw.nginx.port(), &writes),
        "chunks in writes",
    );
    assert_stored(&a);

    assert_eq!(stats(&gw)["entries"], 4);
    for i in 0..4 {
        assert_served_from_zone(&gw, &format!("layout-{i}"), &format!("sub{i}"));
    }
    let purge = json!({"action": "purge", "token": "layout-1"}).to_string();
    let (p, q) = purge.as_bytes().split_at(9);
    assert_purged(&post_chunked(&gw, "/admin", &[p, q]), 1);
    assert_purged(&post_chunked(&gw, "/admin", &[p, q]), 0);
    assert_purged(
        &post_chunked(&gw, "/admin", &[br#"{"action":"purge_all"}"#]),
        3,
    );
    assert_no_crash(&gw, &workers);
}

#[test]
fn empty_chunked_body_is_400_json() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    warm_tokens(&gw, "empty", 1);
    for path in ["/admin", "/admin-small", "/admin-file"] {
        let a = post_chunked_raw(&gw, path, b"0\r\n\r\n");
        assert_bad_request(&a);
        // Empty with Content-Length: 0, too.
        assert_bad_request(&post_cl(&gw, path, "HTTP/1.1", b""));
    }
    assert_eq!(stats(&gw)["entries"], 1, "nothing changed");
    assert_no_crash(&gw, &workers);
}

// ---------------------------------------------------------------------------
// HTTP/1.0, HTTP/2
// ---------------------------------------------------------------------------

#[test]
fn http10_post_with_content_length_works() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    assert_stored(&post_cl(
        &gw,
        "/admin",
        "HTTP/1.0",
        warm_cmd(&gw, "ten-a", "a").as_bytes(),
    ));
    assert_stored(&post_cl(
        &gw,
        "/admin",
        "HTTP/1.0",
        warm_cmd(&gw, "ten-b", "b").as_bytes(),
    ));
    assert_served_from_zone(&gw, "ten-a", "a");
    assert_purged(
        &post_cl(&gw, "/admin", "HTTP/1.0", br#"{"action":"purge_all"}"#),
        2,
    );
    assert_no_crash(&gw, &workers);
}

/// Admin POST over HTTP/2 (prior knowledge); `sized`: with
/// `content-length`, else a streamed body of unknown length.
fn h2_post(gw: &Gateway, path: &str, body: &str, sized: bool) -> Answer {
    let req = http2_client().post(gw.nginx.url(path));
    let req = if sized {
        req.body(body.to_string())
    } else {
        req.body(reqwest::blocking::Body::new(std::io::Cursor::new(
            body.as_bytes().to_vec(),
        )))
    };
    let resp = req.send().unwrap_or_else(|e| {
        panic!(
            "h2 POST {path} ({}, {} bytes): no answer (worker crash?): {e:?}",
            if sized {
                "content-length"
            } else {
                "no content-length"
            },
            body.len()
        )
    });
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/json");
    Answer {
        status,
        json: resp.json().unwrap(),
    }
}

#[test]
fn http2_post_with_and_without_content_length_works() {
    let gw = admin_gateway(true);
    let workers = workers_of(&gw);
    for (i, sized) in [true, false].into_iter().enumerate() {
        for path in ["/admin", "/admin-small", "/admin-file"] {
            let token = format!("h2-{i}-{path}");
            assert_stored(&h2_post(&gw, path, &warm_cmd(&gw, &token, "h2"), sized));
            assert_served_from_zone(&gw, &token, "h2");
        }
        assert_bad_request(&h2_post(&gw, "/admin", "", sized));
        assert_bad_request(&h2_post(&gw, "/admin", "{\"action\":", sized));
    }
    let big = padded(&warm_cmd(&gw, "h2-big", "big"), 100 * 1024);
    assert_stored(&h2_post(&gw, "/admin-small", &big, false));
    assert_served_from_zone(&gw, "h2-big", "big");
    assert_purged(
        &h2_post(&gw, "/admin", r#"{"action":"purge_all"}"#, false),
        7,
    );
    assert_no_crash(&gw, &workers);
}

// ---------------------------------------------------------------------------
// Bodies in temp files
// ---------------------------------------------------------------------------

/// `cmd` (a JSON object) padded with JSON whitespace after its `{` to
/// `size` bytes.
fn padded(cmd: &str, size: usize) -> String {
    let pad = size.saturating_sub(cmd.len());
    let ws: String = " \n\t\r".chars().cycle().take(pad).collect();
    format!("{{{ws}{}", &cmd[1..])
}

#[test]
fn a_100k_body_written_to_a_temp_file_works() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    let a = padded(&warm_cmd(&gw, "file-cl", "cl"), 100 * 1024);
    assert_eq!(a.len(), 100 * 1024);
    assert_stored(&post_cl(&gw, "/admin-small", "HTTP/1.1", a.as_bytes()));
    gw.expect_log("a client request body is buffered to a temporary file");

    let b = padded(&warm_cmd(&gw, "file-chunked", "chunked"), 100 * 1024);
    let pieces: Vec<&[u8]> = b.as_bytes().chunks(7000).collect();
    assert_stored(&post_chunked(&gw, "/admin-small", &pieces));

    let c = padded(&warm_cmd(&gw, "file-10", "ten"), 100 * 1024);
    assert_stored(&post_cl(&gw, "/admin-small", "HTTP/1.0", c.as_bytes()));

    for (t, s) in [
        ("file-cl", "cl"),
        ("file-chunked", "chunked"),
        ("file-10", "ten"),
    ] {
        assert_served_from_zone(&gw, t, s);
    }
    let purge = padded(r#"{"action":"purge_all"}"#, 50 * 1024);
    let pieces: Vec<&[u8]> = purge.as_bytes().chunks(999).collect();
    assert_purged(&post_chunked(&gw, "/admin-small", &pieces), 3);
    assert_no_crash(&gw, &workers);
}

#[test]
fn client_body_in_file_only_works_small_and_large() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    let small = warm_cmd(&gw, "only-small", "small");
    assert_stored(&post_cl(&gw, "/admin-file", "HTTP/1.1", small.as_bytes()));
    let chunked_small = warm_cmd(&gw, "only-chunked", "chunked");
    let (x, y) = chunked_small.as_bytes().split_at(20);
    assert_stored(&post_chunked(&gw, "/admin-file", &[x, y]));
    let big = padded(&warm_cmd(&gw, "only-big", "big"), 100 * 1024);
    assert_stored(&post_cl(&gw, "/admin-file", "HTTP/1.1", big.as_bytes()));
    let pieces: Vec<&[u8]> = big.as_bytes().chunks(4096).collect();
    assert_stored(&post_chunked(&gw, "/admin-file", &pieces));
    // The bodies really were files (kept with `on`).
    let files = std::fs::read_dir(gw.nginx.prefix().join("client_body"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(files >= 4, "{files} request body files");
    for (t, s) in [
        ("only-small", "small"),
        ("only-chunked", "chunked"),
        ("only-big", "big"),
    ] {
        assert_served_from_zone(&gw, t, s);
    }
    assert_purged(
        &post_chunked(&gw, "/admin-file", &[b"{\"action\"", b":\"purge_all\"}"]),
        3,
    );
    assert_no_crash(&gw, &workers);
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn bodies_over_256k_are_400_too_large_in_every_framing() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    warm_tokens(&gw, "big", 1);
    let huge = padded(r#"{"action":"purge_all"}"#, MAX_ADMIN_BODY + 1);
    for path in ["/admin", "/admin-small", "/admin-file"] {
        for a in [
            post_cl(&gw, path, "HTTP/1.1", huge.as_bytes()),
            post_cl(&gw, path, "HTTP/1.0", huge.as_bytes()),
            post_chunked(&gw, path, &huge.as_bytes().chunks(8192).collect::<Vec<_>>()),
            post_chunked(&gw, path, &[huge.as_bytes()]),
        ] {
            assert_eq!(assert_bad_request(&a), "request body too large", "{path}");
        }
    }
    // Exactly the limit is accepted.
    let limit = padded(r#"{"action":"purge","token":"none"}"#, MAX_ADMIN_BODY);
    assert_purged(&post_chunked(&gw, "/admin", &[limit.as_bytes()]), 0);
    assert_eq!(stats(&gw)["entries"], 1, "nothing purged");
    assert_no_crash(&gw, &workers);
}

#[test]
fn bodies_over_client_max_body_size_are_refused_by_nginx_without_a_crash() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    let huge = padded(r#"{"action":"purge_all"}"#, 2 * 1024 * 1024);
    for path in ["/admin", "/admin-small", "/admin-file"] {
        let pieces: Vec<&[u8]> = huge.as_bytes().chunks(65536).collect();
        let (status, _, _) = parse_raw_response(&raw_request(gw.nginx.port(), &{
            let mut req = head("POST", path, "HTTP/1.1", "Transfer-Encoding: chunked\r\n");
            req.extend_from_slice(&chunked(&pieces));
            req
        }));
        assert!(
            status == 413 || status == 400,
            "{path}: chunked 2 MB: {status}"
        );
    }
    assert_no_crash(&gw, &workers);
}

#[test]
fn malformed_commands_are_400_in_both_framings() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    warm_tokens(&gw, "bad", 1);
    let jwt = gw
        .auth
        .sign_jwt(&json!({"sub": "x", "exp": now_secs() + 600}));
    let cases: Vec<String> = vec![
        "not json".into(),
        "{".into(),
        r#"{"action":"purge_all""#.into(),
        "[]".into(),
        "null".into(),
        "42".into(),
        r#""purge_all""#.into(),
        r#"{"action":1}"#.into(),
        r#"{"action":null}"#.into(),
        r#"{"action":["purge_all"]}"#.into(),
        r#"{"action":{"purge_all":true}}"#.into(),
        r#"{"action":"PURGE_ALL"}"#.into(),
        r#"{"action":"explode"}"#.into(),
        r#"{"action":""}"#.into(),
        r#"{"action":"purge"}"#.into(),
        r#"{"action":"purge","token":5}"#.into(),
        r#"{"action":"purge","token":""}"#.into(),
        r#"{"action":"purge","token":["a"]}"#.into(),
        r#"{"action":"warm","token":"t"}"#.into(),
        r#"{"action":"warm","jwt":"a.b.c"}"#.into(),
        json!({"action": "warm", "token": 1, "jwt": jwt}).to_string(),
        json!({"action": "warm", "token": "t", "jwt": jwt, "ttl": "60"}).to_string(),
        json!({"action": "warm", "token": "t", "jwt": jwt, "ttl": -1}).to_string(),
        json!({"action": "warm", "token": "t", "jwt": jwt, "ttl": 1.5}).to_string(),
        json!({"action": "warm", "token": "t", "jwt": jwt, "ttl": null}).to_string(),
        format!(r#"{{"action":"warm","token":"t","jwt":"{jwt}","ttl":1e999}}"#),
        format!(r#"{{"action":"warm","token":"t","jwt":"{jwt}","ttl":18446744073709551616}}"#),
        format!(r#"{{"action":"warm","token":"t","jwt":"{jwt}","ttl":0}}"#),
        r#"{"action":"warm","token":"t","jwt":"not-a-jwt"}"#.into(),
        "{\"action\":\"purge_all\"}\0".into(),
        "{\"action\":\"purge_all\"} trailing".into(),
        "\u{feff}{\"action\":\"purge_all\"}".into(),
    ];
    for (i, body) in cases.iter().enumerate() {
        let b = body.as_bytes();
        assert_bad_request(&post_cl(&gw, "/admin", "HTTP/1.1", b));
        let (x, y) = b.split_at(b.len() / 2);
        let a = post_chunked(&gw, "/admin", &[x, y]);
        assert_eq!(a.status, 400, "case {i}: {body:.80}: {a:?}");
        assert!(a.json["error"].is_string(), "case {i}: {a:?}");
    }
    // Invalid UTF-8 inside a string.
    let mut bad_utf8 = br#"{"action":"purge","token":""#.to_vec();
    bad_utf8.extend_from_slice(b"\xff\xc3\x28");
    bad_utf8.extend_from_slice(br#""}"#);
    assert_bad_request(&post_cl(&gw, "/admin", "HTTP/1.1", &bad_utf8));
    assert_bad_request(&post_chunked(&gw, "/admin", &[&bad_utf8]));
    let s = stats(&gw);
    assert_eq!(
        (s["entries"].as_u64(), s["purges"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert_no_crash(&gw, &workers);
}

#[test]
fn get_answers_stats_and_other_methods_are_405() {
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    warm_tokens(&gw, "m", 2);
    let s = stats(&gw);
    for key in [
        "entries",
        "entry_bytes",
        "bytes_used",
        "bytes_free",
        "hits",
        "misses",
        "expired",
        "negative_hits",
        "evictions",
        "introspections",
        "purges",
        "stores",
    ] {
        assert!(s[key].is_u64(), "{key}: {s}");
    }
    assert_eq!(s["entries"], 2);
    // GET over a raw socket, also with a (discarded) chunked body.
    let a = answer_of(
        &raw_request(gw.nginx.port(), &head("GET", "/admin", "HTTP/1.1", "")),
        "GET",
    );
    assert_eq!((a.status, &a.json["entries"]), (200, &json!(2)));
    let mut req = head(
        "GET",
        "/admin",
        "HTTP/1.1",
        "Transfer-Encoding: chunked\r\n",
    );
    req.extend_from_slice(&chunked(&[b"{\"action\":", b"\"purge_all\"}"]));
    let a = answer_of(&raw_request(gw.nginx.port(), &req), "GET chunked");
    assert_eq!((a.status, &a.json["entries"]), (200, &json!(2)));
    // Other methods: 405, with and without a body.
    for method in ["DELETE", "PUT", "PATCH"] {
        let a = answer_of(
            &raw_request(gw.nginx.port(), &head(method, "/admin", "HTTP/1.1", "")),
            method,
        );
        assert_eq!(a.status, 405, "{method}: {a:?}");
        assert!(a.json["error"].is_string());
        let mut req = head(
            method,
            "/admin",
            "HTTP/1.1",
            "Transfer-Encoding: chunked\r\n",
        );
        req.extend_from_slice(&chunked(&[br#"{"action":"purge_all"}"#]));
        let a = answer_of(&raw_request(gw.nginx.port(), &req), method);
        assert_eq!(a.status, 405, "{method} chunked: {a:?}");
        let mut req = head(method, "/admin", "HTTP/1.1", "Content-Length: 22\r\n");
        req.extend_from_slice(br#"{"action":"purge_all"}"#);
        let a = answer_of(&raw_request(gw.nginx.port(), &req), method);
        assert_eq!(a.status, 405, "{method} CL: {a:?}");
    }
    assert_eq!(
        client()
            .delete(gw.nginx.url("/admin"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        405
    );
    assert_eq!(stats(&gw)["entries"], 2, "nothing purged");
    assert_no_crash(&gw, &workers);
}

// ---------------------------------------------------------------------------
// Fuzz
// ---------------------------------------------------------------------------

/// SplitMix64: a small seeded generator (no external crate).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Applies one random mutation to `body`.
fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    let at = |rng: &mut Rng, body: &Vec<u8>| rng.below(body.len() + 1);
    match rng.below(11) {
        0 => {
            let n = at(rng, body);
            body.truncate(n);
        }
        1 => {
            for _ in 0..1 + rng.below(8) {
                if !body.is_empty() {
                    let i = rng.below(body.len());
                    body[i] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            let huge = *rng.pick(&[
                "1e999",
                "-1e999",
                "18446744073709551616",
                "-9223372036854775809",
                "99999999999999999999999999999999999999",
                "1.5",
                "-0",
                "0x10",
                "NaN",
                "Infinity",
                "4294967296",
                "1e-999",
            ]);
            let text = String::from_utf8_lossy(body).into_owned();
            let replaced = if text.contains("\"ttl\":") {
                let start = text.find("\"ttl\":").unwrap() + 6;
                let end = text[start..]
                    .find([',', '}'])
                    .map_or(text.len(), |e| start + e);
                format!("{}{huge}{}", &text[..start], &text[end..])
            } else {
                text.replacen('{', &format!("{{\"ttl\":{huge},"), 1)
            };
            *body = replaced.into_bytes();
        }
        3 => {
            let depth = *rng.pick(&[2, 10, 127, 129, 1000, 20000]);
            let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let text = String::from_utf8_lossy(body).into_owned();
            let key = *rng.pick(&["\"token\":", "\"action\":", "\"ttl\":", "\"jwt\":"]);
            *body = if text.contains(key) {
                text.replacen(key, &format!("{key}{nested},\"x\":"), 1)
            } else {
                nested
            }
            .into_bytes();
        }
        4 => {
            for _ in 0..1 + rng.below(4) {
                let i = at(rng, body);
                body.insert(i, 0);
            }
        }
        5 => {
            let options: [&[u8]; 7] = [
                b"\xff",
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
                b"\xc0\xaf",
                b"\x80",
                b"\xe2\x82",
            ];
            let bad = options[rng.below(options.len())];
            // Preferably inside a string value.
            let i = body
                .iter()
                .rposition(|&b| b == b'"')
                .filter(|_| rng.below(4) != 0)
                .unwrap_or_else(|| at(rng, body));
            body.splice(i..i, bad.iter().copied());
        }
        6 => {
            let extra = *rng.pick(&[
                "\"action\":\"purge_all\",",
                "\"action\":\"warm\",",
                "\"token\":\"dup\",",
                "\"x\":{\"y\":[1,2,{\"z\":null}]},",
                "\"action\":1,",
            ]);
            let text = String::from_utf8_lossy(body).into_owned();
            *body = text.replacen('{', &format!("{{{extra}"), 1).into_bytes();
        }
        7 => {
            let len = rng.below(200);
            *body = (0..len).map(|_| rng.next() as u8).collect();
        }
        8 => {
            let len = *rng.pick(&[1, 255, 256, 4096, 65536, 200_000]);
            let long = "t".repeat(len);
            let text = String::from_utf8_lossy(body).into_owned();
            *body = text
                .replacen("\"token\":\"", &format!("\"token\":\"{long}"), 1)
                .into_bytes();
        }
        9 => {
            let action = *rng.pick(&[
                "1",
                "null",
                "[]",
                "{}",
                "true",
                "\"\"",
                "\"purge_all \"",
                "\"warm\\u0000\"",
                "\"purge\"",
                "\"stats\"",
            ]);
            let text = String::from_utf8_lossy(body).into_owned();
            *body = match text.find("\"action\":") {
                Some(s) => {
                    let start = s + 9;
                    let end = text[start..]
                        .find([',', '}'])
                        .map_or(text.len(), |e| start + e);
                    format!("{}{action}{}", &text[..start], &text[end..])
                }
                None => text,
            }
            .into_bytes();
        }
        _ => {
            let esc = *rng.pick(&[
                "\\u0000",
                "\\ud800",
                "\\udfff\\ud800",
                "\\\"",
                "\\",
                "\\x41",
            ]);
            let text = String::from_utf8_lossy(body).into_owned();
            *body = text
                .replacen("\"token\":\"", &format!("\"token\":\"{esc}"), 1)
                .into_bytes();
        }
    }
}

/// `body` as a chunked body split at random points.
fn random_chunks(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut pieces = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let max = if rng.below(2) == 0 { 16 } else { 70_000 };
        let n = 1 + rng.below(rest.len().min(max));
        let (p, r) = rest.split_at(n);
        pieces.push(p);
        rest = r;
    }
    chunked(&pieces)
}

#[test]
fn fuzzed_commands_in_random_framings_get_json_answers_and_never_crash_a_worker() {
    let seed = std::env::var("ADMIN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_AD31_u64);
    let cases = std::env::var("ADMIN_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let gw = admin_gateway(false);
    let workers = workers_of(&gw);
    let jwt = gw
        .auth
        .sign_jwt(&json!({"sub": "fuzz", "exp": now_secs() + 600}));
    let seeds: Vec<String> = vec![
        r#"{"action":"purge_all"}"#.into(),
        r#"{"action":"purge","token":"opq_fuzz"}"#.into(),
        json!({"action": "warm", "token": "opq_fuzz", "jwt": jwt, "ttl": 60}).to_string(),
        json!({"action": "warm", "token": "opq_fuzz2", "jwt": jwt}).to_string(),
    ];
    let mut rng = Rng(seed);
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for case in 0..cases {
        let mut body = rng.pick(&seeds).clone().into_bytes();
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut body);
        }
        let path = *rng.pick(&["/admin", "/admin", "/admin-small", "/admin-file"]);
        let (framing, raw) = match rng.below(3) {
            0 => {
                let mut req = head(
                    "POST",
                    path,
                    "HTTP/1.1",
                    &format!("Content-Length: {}\r\n", body.len()),
                );
                req.extend_from_slice(&body);
                ("CL", req)
            }
            1 => {
                let mut req = head("POST", path, "HTTP/1.1", "Transfer-Encoding: chunked\r\n");
                req.extend_from_slice(&random_chunks(&mut rng, &body));
                ("chunked", req)
            }
            _ => {
                let mut req = head(
                    "POST",
                    path,
                    "HTTP/1.0",
                    &format!("Content-Length: {}\r\n", body.len()),
                );
                req.extend_from_slice(&body);
                ("1.0 CL", req)
            }
        };
        let what = format!(
            "seed {seed:#x} case {case} ({framing} {path}, {} bytes): {:.120}",
            body.len(),
            String::from_utf8_lossy(&body)
        );
        let a = answer_of(&raw_request(gw.nginx.port(), &raw), &what);
        assert!(matches!(a.status, 200 | 400 | 507), "{what}\n→ {a:?}");
        assert!(a.json.is_object(), "{what}\n→ {a:?}");
        if a.status != 200 {
            assert!(a.json["error"].is_string(), "{what}\n→ {a:?}");
        }
        *seen.entry(a.status).or_default() += 1;
        // Cheap per-case check (the debug log grows large): same workers.
        assert_eq!(gw.nginx.worker_pids(), workers, "{what}: worker crashed");
    }
    eprintln!("fuzz seed {seed:#x}: statuses {seen:?}");
    assert!(seen.get(&400).is_some_and(|&n| n > cases / 3), "{seen:?}");
    assert!(
        seen.contains_key(&200),
        "no mutated command succeeded: {seen:?}"
    );
    // The module still works afterwards.
    let token = gw.auth.issue_token(json!({"sub": "after"}));
    let echoed = assert_forwarded(gw.get_bearer("/api/after", &token));
    assert_eq!(gw.auth.decode_jwt(echoed.bearer().unwrap())["sub"], "after");
    assert_no_crash(&gw, &workers);
}

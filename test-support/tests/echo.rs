//! Self-tests of the echo upstream and the raw-socket helpers.

use sha2::{Digest, Sha256};
use test_support::{client, parse_raw_response, raw_request, EchoResponse, EchoServer};

#[test]
fn echoes_request_with_headers_in_order() {
    let echo = EchoServer::start();
    let resp: EchoResponse = client()
        .post(format!("{}/api/x?a=1", echo.base_url()))
        .header("X-Dup", "one")
        .header("Authorization", "Bearer abc")
        .body("hello")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp.method, "POST");
    assert_eq!(resp.uri, "/api/x?a=1");
    assert_eq!(resp.http_version, "HTTP/1.1");
    assert_eq!(resp.header("AUTHORIZATION"), Some("Bearer abc"));
    assert_eq!(resp.bearer(), Some("abc"));
    assert_eq!(resp.body, "hello");
    assert_eq!(resp.body_len, 5);
    assert_eq!(
        resp.body_sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(echo.request_count(), 1);
    assert_eq!(echo.last_request().unwrap(), resp);
}

#[test]
fn raw_http10_duplicate_headers_and_odd_bytes() {
    let echo = EchoServer::start();
    let raw = raw_request(
        echo.port(),
        b"GET /p HTTP/1.0\r\nHost: h\r\nAuthorization: Bearer one\r\nauthorization:\tBearer two \r\nX-Bin: caf\xe9\r\n\r\n",
    );
    let (status, headers, body) = parse_raw_response(&raw);
    assert_eq!(status, 200);
    assert!(headers.contains(&("connection".into(), "close".into())));
    let resp: EchoResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(resp.http_version, "HTTP/1.0");
    assert_eq!(
        resp.headers_named("authorization"),
        ["Bearer one", "Bearer two"]
    );
    assert_eq!(resp.header("x-bin"), Some("caf\u{fffd}"));
    assert_eq!(resp.headers[0], ("host".to_string(), "h".to_string()));
}

#[test]
fn chunked_body() {
    let echo = EchoServer::start();
    let raw = raw_request(
        echo.port(),
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\nTrailer: t\r\n\r\n",
    );
    let (status, _, body) = parse_raw_response(&raw);
    assert_eq!(status, 200);
    let resp: EchoResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(resp.body, "hello, world");
    assert_eq!(resp.body_len, 12);
}

#[test]
fn one_megabyte_body() {
    let echo = EchoServer::start();
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let resp: EchoResponse = client()
        .put(format!("{}/big", echo.base_url()))
        .body(body.clone())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp.method, "PUT");
    assert_eq!(resp.body_len, body.len());
    let digest: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(resp.body_sha256, digest);
}

#[test]
fn keep_alive_reuses_connection() {
    let echo = EchoServer::start();
    let raw = raw_request(
        echo.port(),
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    // raw_request returns after the first complete response.
    let (status, headers, _) = parse_raw_response(&raw);
    assert_eq!(status, 200);
    assert!(headers.contains(&("connection".into(), "keep-alive".into())));
    // Both pipelined requests were served on the one connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while echo.request_count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let uris: Vec<String> = echo.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(uris, ["/1", "/2"]);
}

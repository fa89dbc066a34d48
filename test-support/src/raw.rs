//! Raw-socket HTTP helpers for requests a regular client cannot send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::http::find;

/// Sends `bytes` verbatim to `127.0.0.1:port` and returns the response as
/// (lossy) text. Reading stops at EOF, once a complete response (by
/// `Content-Length`, chunked terminator, or a body-less status) has been
/// received, or after 10 s.
pub fn raw_request(port: u16, bytes: &[u8]) -> String {
    raw_request_timeout(port, bytes, Duration::from_secs(10))
}

/// [`raw_request`] with an explicit overall timeout.
pub fn raw_request_timeout(port: u16, bytes: &[u8], timeout: Duration) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(Some(timeout)).expect("timeout");
    // The peer may answer (and close) before reading everything.
    let _ = stream.write_all(bytes);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if response_complete(&out) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads `stream` until the peer closes it (`Ok(0)`) or a read fails (a
/// reset, the read timeout); returns the bytes and how reading ended, so a
/// test can tell a clean close from a reset.
pub fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, std::io::Result<usize>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, Ok(0)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
}

/// Whether `data` holds at least one complete HTTP response (ignoring
/// interim 1xx responses).
fn response_complete(data: &[u8]) -> bool {
    let mut data = data;
    loop {
        let Some(head_end) = find(data, b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
        let body = &data[head_end + 4..];
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (100..200).contains(&status) {
            data = body;
            continue;
        }
        if status == 204 || status == 304 {
            return true;
        }
        let header = |name: &str| {
            head.lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim() == name)
                .map(|(_, v)| v.trim().to_string())
        };
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            return find(body, b"0\r\n\r\n").is_some();
        }
        if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            return body.len() >= len;
        }
        // No framing: the body ends at EOF.
        return false;
    }
}

/// Parses a raw HTTP response as returned by [`raw_request`] into status,
/// headers (names lowercased, in order) and body (chunked bodies are
/// decoded). Interim 1xx responses are skipped. A response without a
/// parsable status line gives status 0.
pub fn parse_raw_response(raw: &str) -> (u16, Vec<(String, String)>, String) {
    let mut raw = raw;
    loop {
        let (head, body) = match raw.find("\r\n\r\n") {
            Some(pos) => (&raw[..pos], &raw[pos + 4..]),
            None => (raw, ""),
        };
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (100..200).contains(&status) {
            raw = body;
            continue;
        }
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let body = body.as_bytes();
        let body = if chunked {
            decode_chunked(body)
        } else if let Some(len) = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            body[..len.min(body.len())].to_vec()
        } else {
            body.to_vec()
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        return (status, headers, body);
    }
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = find(data, b"\r\n") {
        let line = String::from_utf8_lossy(&data[..pos]);
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        data = &data[pos + 2..];
        if size == 0 {
            break;
        }
        let size = size.min(data.len());
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

//! Self-tests of the nginx runner (plain nginx, without loading the module,
//! so they do not depend on the module build).

use std::time::Duration;

use test_support::{client, parse_raw_response, raw_request, EchoResponse, EchoServer, Nginx};

fn proxy_conf(port: u16, echo: u16, marker: &str) -> String {
    format!(
        "server {{\n    listen 127.0.0.1:{port};\n    location / {{\n        \
         add_header X-Marker {marker};\n        proxy_pass http://127.0.0.1:{echo};\n    }}\n}}\n"
    )
}

#[test]
fn start_proxy_reload_and_stop() {
    let echo = EchoServer::start();
    let echo_port = echo.port();
    let mut nginx = Nginx::builder()
        .load_module(false)
        .workers(2)
        .http(|port| proxy_conf(port, echo_port, "one"))
        .start();
    assert!(nginx.conf_text().contains("worker_processes 2;"));
    assert_eq!(nginx.worker_pids().len(), 2);

    let resp = client()
        .get(nginx.url("/api/x?a=1"))
        .bearer_auth("tok")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-marker"], "one");
    let echoed: EchoResponse = resp.json().unwrap();
    assert_eq!(echoed.uri, "/api/x?a=1");
    assert_eq!(echoed.http_version, "HTTP/1.0");
    assert_eq!(echoed.bearer(), Some("tok"));
    assert!(nginx.wait_for_access_log("GET /api/x?a=1", Duration::from_secs(5)));
    assert!(nginx.error_log().contains("start worker process"));

    // Raw HTTP/1.0 request through nginx.
    let raw = raw_request(nginx.port(), b"GET /raw HTTP/1.0\r\nHost: x\r\n\r\n");
    let (status, _, body) = parse_raw_response(&raw);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<EchoResponse>(&body).unwrap().uri,
        "/raw"
    );

    // Reload with a new configuration.
    let old_workers = nginx.worker_pids();
    let port = nginx.port();
    nginx.write_config(&proxy_conf(port, echo_port, "two"));
    nginx.reload();
    let resp = client().get(nginx.url("/")).send().unwrap();
    assert_eq!(resp.headers()["x-marker"], "two");
    let new_workers = nginx.worker_pids();
    assert!(new_workers.iter().all(|p| !old_workers.contains(p)));

    // A broken configuration is rejected; the old one stays in use.
    nginx.write_config("this_is_not_a_directive;");
    let err = nginx.try_reload().unwrap_err();
    assert!(err.contains("unknown directive"), "{err}");
    let resp = client().get(nginx.url("/")).send().unwrap();
    assert_eq!(resp.headers()["x-marker"], "two");

    let master = nginx.master_pid();
    let prefix = nginx.prefix().to_path_buf();
    drop(nginx);
    assert!(!std::path::Path::new(&format!("/proc/{master}")).exists());
    for pid in new_workers {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    if std::env::var("KEEP_NGINX").as_deref() != Ok("1") {
        assert!(!prefix.exists());
    }
}

#[test]
fn start_with_port_placeholder() {
    let nginx = Nginx::builder()
        .load_module(false)
        .workers(1)
        .http_body("server { listen 127.0.0.1:{PORT}; location / { return 200 \"hi\"; } }")
        .start();
    assert_eq!(nginx.worker_pids().len(), 1);
    let body = client().get(nginx.url("/")).send().unwrap().text().unwrap();
    assert_eq!(body, "hi");
}

#[test]
fn second_listen_port_and_main_conf() {
    let second = Nginx::free_port();
    let nginx = Nginx::builder()
        .load_module(false)
        .workers(1)
        .main_conf("worker_rlimit_nofile 2048;")
        .wait_for_port(second)
        .http(|port| {
            format!("server {{ listen 127.0.0.1:{port}; listen 127.0.0.1:{second}; return 204; }}")
        })
        .start();
    let resp = client()
        .get(format!("http://127.0.0.1:{second}/"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(nginx.line_of("worker_rlimit_nofile").is_some());
}

#[test]
fn config_test_reports_file_and_line() {
    let t = Nginx::builder()
        .load_module(false)
        .http(|port| {
            format!("server {{\n    listen 127.0.0.1:{port};\n    bogus_directive on;\n}}")
        })
        .test_config();
    assert!(!t.ok);
    let location = t.location_of("bogus_directive");
    assert!(
        t.output.contains(&format!(
            "[emerg] unknown directive \"bogus_directive\" in {location}"
        )),
        "{}",
        t.output
    );
    let (ok, output) = Nginx::test_config("server { listen 127.0.0.1:{PORT}; return 200; }");
    // The module is loaded by default: only check it when it was built.
    if test_support::module_path().exists() {
        assert!(ok, "{output}");
    }
}

#[test]
fn failing_start_reports_error_log() {
    let err = Nginx::builder()
        .load_module(false)
        .http_body("server { listen 127.0.0.1:{PORT}; } unknown_thing;")
        .try_start()
        .err()
        .expect("start must fail");
    assert!(err.contains("unknown directive \"unknown_thing\""), "{err}");
}

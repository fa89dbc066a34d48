//! Configuration errors at `nginx -t`, in NGINX's own format
//! (`[emerg] ... in <file>:<line>`), and the accepted contexts.

mod common;
use common::*;

fn check(api: &str) -> ConfigTest {
    check_location(api)
}

fn assert_emerg(api: &str, offending: &str, message: &str) {
    assert_emerg_at(&check(api), offending, message);
}

#[test]
fn valid_2_0_and_1_x_directives_pass() {
    let t = check(
        r#"phantom_token on;
        phantom_token_introspection_endpoint curity;
        phantom_token_realm "myGoodAPI";
        phantom_token_scopes "scope_a scope_b";
        phantom_token_scope scope_c;
        phantom_token_client_credential "client_id" "client_secret";
        phantom_token_max_jwt_size 128k;"#,
    );
    assert!(t.ok, "{}", t.output);
}

#[test]
fn phantom_token_takes_on_or_off() {
    assert_emerg(
        "phantom_token maybe;",
        "phantom_token maybe",
        r#"invalid value "maybe" in "phantom_token" directive, it must be "on" or "off""#,
    );
}

#[test]
fn wrong_argument_counts_are_rejected() {
    assert_emerg(
        "phantom_token;",
        "phantom_token;",
        r#"invalid number of arguments in "phantom_token" directive"#,
    );
    assert_emerg(
        "phantom_token_introspection_endpoint a b;",
        "phantom_token_introspection_endpoint a b",
        r#"invalid number of arguments in "phantom_token_introspection_endpoint" directive"#,
    );
    assert_emerg(
        "phantom_token_client_credential only_id;",
        "phantom_token_client_credential only_id",
        r#"invalid number of arguments in "phantom_token_client_credential" directive"#,
    );
}

#[test]
fn empty_endpoint_is_rejected() {
    assert_emerg(
        r#"phantom_token_introspection_endpoint "";"#,
        "phantom_token_introspection_endpoint",
        r#"invalid value "" in "phantom_token_introspection_endpoint" directive, a location name is required"#,
    );
}

#[test]
fn client_credential_must_be_shorter_than_255_characters() {
    let ok = format!(
        "phantom_token_client_credential {} {};",
        "i".repeat(127),
        "s".repeat(127)
    );
    assert!(check(&ok).ok, "254 characters must be accepted");
    let too_long = format!(
        "phantom_token_client_credential {} {};",
        "i".repeat(128),
        "s".repeat(127)
    );
    assert_emerg(
        &too_long,
        "phantom_token_client_credential",
        r#"client id and secret in "phantom_token_client_credential" directive must be shorter than 255 characters together"#,
    );
}

#[test]
fn duplicates_are_rejected() {
    assert_emerg(
        "phantom_token_realm a; phantom_token_realm b;",
        "phantom_token_realm a",
        r#""phantom_token_realm" directive is duplicate"#,
    );
}

#[test]
fn location_only_directives_are_refused_at_server_level() {
    let t = Nginx::builder()
        .http(|port| format!("server {{\n listen 127.0.0.1:{port};\n phantom_token_realm api;\n}}"))
        .test_config();
    assert!(!t.ok);
    let expected = format!(
        r#"[emerg] "phantom_token_realm" directive is not allowed here in {}"#,
        t.location_of("phantom_token_realm")
    );
    assert!(t.output.contains(&expected), "{}", t.output);
}

#[test]
fn phantom_token_is_allowed_at_http_and_server_level() {
    let t = Nginx::builder()
        .http(|port| {
            format!(
                "phantom_token off;\nserver {{\n listen 127.0.0.1:{port};\n phantom_token on;\n}}"
            )
        })
        .test_config();
    assert!(t.ok, "{}", t.output);
}

#[test]
fn bad_size_is_rejected() {
    assert_emerg(
        "phantom_token_max_jwt_size lots;",
        "phantom_token_max_jwt_size",
        r#""phantom_token_max_jwt_size" directive invalid value"#,
    );
}

#[test]
fn cache_zone_needs_name_and_size() {
    for spec in ["tokens", ":1m", "tokens:lots", "tokens:1k"] {
        let t = check_http(&format!("phantom_token_cache_zone {spec};"));
        assert!(!t.ok, "{spec}");
        let expected = format!(r#"[emerg] invalid zone "{spec}" in "phantom_token_cache_zone""#);
        assert!(t.output.contains(&expected), "{spec}: {}", t.output);
        assert!(
            t.output
                .contains(&t.location_of("phantom_token_cache_zone")),
            "{}",
            t.output
        );
    }
    assert!(check_http("phantom_token_cache_zone tokens:1m;").ok);
}

#[test]
fn duplicate_cache_zones_are_rejected() {
    let t = check_http("phantom_token_cache_zone a:1m;\nphantom_token_cache_zone a:1m;");
    assert!(!t.ok);
    assert!(
        t.output.contains(r#"[emerg] duplicate zone "a""#),
        "{}",
        t.output
    );
}

#[test]
fn an_undefined_cache_zone_is_an_error() {
    let t = check_http("phantom_token_cache nowhere;");
    assert!(!t.ok);
    assert!(
        t.output
            .contains(r#"zero size shared memory zone "nowhere""#),
        "{}",
        t.output
    );
}

#[test]
fn cache_admin_needs_a_zone() {
    let t = check_http(
        "server {\n listen 127.0.0.1:1;\n location /admin {\n phantom_token_cache_admin;\n }\n}",
    );
    assert!(!t.ok);
    assert!(
        t.output
            .contains(r#"[emerg] "phantom_token_cache_admin" needs a zone"#),
        "{}",
        t.output
    );
    let ok = check_http(
        "phantom_token_cache_zone z:1m;\nphantom_token_cache z;\nserver {\n listen 127.0.0.1:1;\n location /admin {\n phantom_token_cache_admin;\n }\n}",
    );
    assert!(ok.ok, "{}", ok.output);
}

#[test]
fn phase_takes_access_or_preaccess() {
    assert_emerg_at(
        &check_http("phantom_token_phase rewrite;"),
        "phantom_token_phase",
        r#"invalid value "rewrite" in "phantom_token_phase" directive, it must be "access" or "preaccess""#,
    );
    assert!(check_http("phantom_token_phase preaccess;").ok);
}

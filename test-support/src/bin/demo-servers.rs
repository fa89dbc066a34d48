//! Starts a test authorization server and an echo upstream on fixed ports
//! for manual experiments with nginx and curl.
//!
//! Usage: `demo-servers [--as-port N] [--echo-port N]`
//! (or env `AS_PORT` / `ECHO_PORT`; defaults 8444 and 8081).

use test_support::{AuthServer, EchoServer, CLIENT_ID, CLIENT_SECRET};

fn port_arg(args: &[String], flag: &str, env: &str, default: u16) -> u16 {
    let from_args = args
        .iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned();
    let value = from_args.or_else(|| std::env::var(env).ok());
    match value {
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("invalid port for {flag}/{env}: {v}");
            std::process::exit(2)
        }),
        None => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: demo-servers [--as-port N] [--echo-port N]  (env AS_PORT, ECHO_PORT; defaults 8444, 8081)");
        return;
    }
    let as_port = port_arg(&args, "--as-port", "AS_PORT", 8444);
    let echo_port = port_arg(&args, "--echo-port", "ECHO_PORT", 8081);
    let auth = AuthServer::start_on(as_port);
    let echo = EchoServer::start_on(echo_port);
    println!("authorization server: http://127.0.0.1:{}", auth.port());
    println!("  token endpoint:         {}", auth.token_url());
    println!("  introspection endpoint: {}", auth.introspection_url());
    println!("  JWKS endpoint:          {}", auth.jwks_url());
    println!("  client id:              {CLIENT_ID}");
    println!("  client secret:          {CLIENT_SECRET}");
    println!(
        "  introspection auth:     Authorization: {}",
        auth.basic_auth_header()
    );
    println!("echo upstream:        {}", echo.base_url());
    println!();
    println!("get a token:");
    println!(
        "  curl -s -u {CLIENT_ID}:{CLIENT_SECRET} -d grant_type=client_credentials {}",
        auth.token_url()
    );
    println!("serving until killed (Ctrl-C)");
    loop {
        std::thread::park();
    }
}

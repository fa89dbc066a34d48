//! The test OAuth authorization server.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::http::{self, Conn, Request};

/// Client id the gateway (nginx) uses to authenticate to the introspection endpoint.
pub const CLIENT_ID: &str = "api-gateway";
/// Client secret matching [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "gateway-secret";
/// `kid` header placed in every JWT the server signs.
pub const JWT_KID: &str = "test-key-1";

const PRIVATE_KEY_PEM: &str = include_str!("test_key.pem");
const PUBLIC_KEY_PEM: &str = include_str!("test_key.pub.pem");

fn encoding_key() -> &'static EncodingKey {
    static KEY: OnceLock<EncodingKey> = OnceLock::new();
    KEY.get_or_init(|| EncodingKey::from_rsa_pem(PRIVATE_KEY_PEM.as_bytes()).expect("test key"))
}

fn decoding_key() -> &'static DecodingKey {
    static KEY: OnceLock<DecodingKey> = OnceLock::new();
    KEY.get_or_init(|| DecodingKey::from_rsa_pem(PUBLIC_KEY_PEM.as_bytes()).expect("test key"))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_string(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

/// A fault injected into subsequent introspection responses
/// (see [`AuthServer::set_fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status code and body (any status, e.g. 401, 403,
    /// 404, 418, 500, 503, 302). A 204 is sent without body.
    Status(u16, String),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Read the request, then reset the connection (SO_LINGER 0 → RST)
    /// without sending any byte.
    Reset,
    /// Read the request, then close the connection cleanly (FIN) without
    /// sending any byte.
    CloseWithoutResponse,
    /// Answer `200` with `Content-Type: application/jwt` and exactly this body.
    Body(Vec<u8>),
    /// Answer `200` with a valid signed JWT padded (with a `padding` claim)
    /// to approximately this many bytes.
    BigJwt(usize),
    /// Answer normally, but send the status line and headers, wait this
    /// long, then send the body in a separate TCP write.
    SplitWrite(Duration),
}

/// A request received by the [`AuthServer`] (on any path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Request method, e.g. `POST`.
    pub method: String,
    /// Request target as received (path and query).
    pub path: String,
    /// HTTP version from the request line, e.g. `HTTP/1.0`.
    pub version: String,
    /// Headers in order, names lowercased, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// Raw (de-chunked) body bytes.
    pub body: Vec<u8>,
    /// The form-decoded `token` parameter of the body, if any.
    pub token: Option<String>,
}

impl RecordedRequest {
    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of the header `name` (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as (lossy) UTF-8.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Value>,
    revoked: HashSet<String>,
    records: Vec<RecordedRequest>,
    fault: Option<Fault>,
    cache_control: Option<String>,
}

struct Shared {
    issuer: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A test OAuth authorization server on `127.0.0.1`.
///
/// Endpoints:
/// * `POST /introspect` (RFC 7662 with `application/jwt` answers): requires
///   `Authorization: Basic base64(CLIENT_ID:CLIENT_SECRET)`; an active token
///   gives `200` with a compact RS256 JWT of its claims, an unknown, revoked
///   or expired token gives `204` without body.
/// * `POST /token` (`grant_type=client_credentials`, client authentication
///   by Basic header or `client_id`/`client_secret` form fields): issues an
///   opaque token.
///
/// Every request on any path is recorded. Dropping the server stops
/// accepting connections.
pub struct AuthServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl AuthServer {
    /// Starts a server on an ephemeral port.
    pub fn start() -> AuthServer {
        Self::start_on(0)
    }

    /// Starts a server on `127.0.0.1:port` (0 = ephemeral).
    pub fn start_on(port: u16) -> AuthServer {
        let (listener, addr) = http::bind(port);
        let shared = Arc::new(Shared {
            issuer: format!("http://127.0.0.1:{}", addr.port()),
            state: Mutex::new(State::default()),
        });
        let s = shared.clone();
        let task = http::runtime().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                tokio::spawn(handle_connection(s.clone(), stream));
            }
        });
        AuthServer { addr, shared, task }
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/introspect`.
    pub fn introspection_url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port())
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port())
    }

    /// The `iss` claim of issued tokens: `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The value of a valid `Authorization` header for the introspection
    /// endpoint: `Basic base64(CLIENT_ID:CLIENT_SECRET)`.
    pub fn basic_auth_header(&self) -> String {
        basic_auth(CLIENT_ID, CLIENT_SECRET)
    }

    /// The default claims a token gets when issued now.
    fn default_claims(&self) -> Map<String, Value> {
        let now = now();
        let v = json!({
            "sub": "alice",
            "scope": "read write",
            "iss": self.shared.issuer,
            "aud": "api",
            "iat": now,
            "exp": now + 300,
            "jti": random_string(16),
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// Issues a random opaque token (`opq_` + 32 alphanumeric characters)
    /// bound to `claims` merged over the defaults (`sub` "alice", `scope`
    /// "read write", `iss`, `aud` "api", `iat` now, `exp` now+300, `jti`).
    /// A claim set to `null` removes that default claim.
    pub fn issue_token(&self, claims: Value) -> String {
        let token = format!("opq_{}", random_string(32));
        self.issue_token_exact(&token, claims);
        token
    }

    /// Registers the caller-chosen opaque token string `opaque` (any bytes
    /// of UTF-8, any length) with `claims` merged over the defaults, as in
    /// [`issue_token`](Self::issue_token). Returns the merged claims.
    pub fn issue_token_exact(&self, opaque: &str, claims: Value) -> Value {
        let mut merged = self.default_claims();
        if let Value::Object(extra) = claims {
            for (k, v) in extra {
                if v.is_null() {
                    merged.remove(&k);
                } else {
                    merged.insert(k, v);
                }
            }
        }
        let merged = Value::Object(merged);
        let mut st = self.shared.lock();
        st.revoked.remove(opaque);
        st.tokens.insert(opaque.to_string(), merged.clone());
        merged
    }

    /// Revokes a token: introspection answers `204` for it from now on.
    pub fn revoke(&self, token: &str) {
        self.shared.lock().revoked.insert(token.to_string());
    }

    /// The claims registered for `token` (even if revoked or expired).
    pub fn claims_of(&self, token: &str) -> Option<Value> {
        self.shared.lock().tokens.get(token).cloned()
    }

    /// Sets (or with `None` removes) the `Cache-Control` header value sent
    /// with successful introspection responses, e.g. `Some("max-age=60".into())`.
    pub fn set_cache_control(&self, value: Option<String>) {
        self.shared.lock().cache_control = value;
    }

    /// Injects a fault into all subsequent introspection requests.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.lock().fault = Some(fault);
    }

    /// Removes the injected fault.
    pub fn clear_fault(&self) {
        self.shared.lock().fault = None;
    }

    /// All requests received so far, on any path, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().records.clone()
    }

    /// The requests received on `/introspect`.
    pub fn introspection_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some("/introspect"))
            .collect()
    }

    /// Number of requests received on `/introspect`.
    pub fn introspection_count(&self) -> usize {
        self.introspection_requests().len()
    }

    /// Forgets the recorded requests.
    pub fn reset_records(&self) {
        self.shared.lock().records.clear();
    }

    /// The PEM (SPKI) public key verifying the JWTs.
    pub fn public_key_pem(&self) -> &'static str {
        PUBLIC_KEY_PEM
    }

    /// Signs `claims` as a compact RS256 JWT with the server key.
    pub fn sign_jwt(&self, claims: &Value) -> String {
        sign(claims)
    }

    /// Verifies the RS256 signature of `jwt` and returns its claims.
    /// Expiry and audience are not checked.
    ///
    /// # Panics
    /// On a malformed JWT or a bad signature.
    pub fn decode_jwt(&self, jwt: &str) -> Value {
        let header = jsonwebtoken::decode_header(jwt)
            .unwrap_or_else(|e| panic!("malformed JWT {jwt:?}: {e}"));
        assert_eq!(header.alg, Algorithm::RS256, "unexpected JWT alg");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(jwt, decoding_key(), &validation)
            .unwrap_or_else(|e| panic!("JWT does not verify ({e}): {jwt:?}"))
            .claims
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `Basic base64(id:secret)`.
fn basic_auth(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn sign(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(JWT_KID.to_string());
    jsonwebtoken::encode(&header, claims, encoding_key()).expect("JWT signing")
}

/// A valid JWT of `claims` padded to about `size` bytes.
fn big_jwt(claims: &Value, size: usize) -> String {
    let mut claims = match claims {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut pad = 0usize;
    for _ in 0..4 {
        claims.insert("padding".into(), Value::String("x".repeat(pad)));
        let jwt = sign(&Value::Object(claims.clone()));
        if jwt.len() >= size.saturating_sub(3) && jwt.len() <= size + 3 {
            return jwt;
        }
        let diff = size as i64 - jwt.len() as i64;
        pad = (pad as i64 + diff * 3 / 4).max(0) as usize;
    }
    claims.insert("padding".into(), Value::String("x".repeat(pad)));
    sign(&Value::Object(claims))
}

fn form_param(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let value = req.header("authorization")?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn json_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json".to_string()),
        ("Cache-Control", "no-store".to_string()),
    ]
}

/// What to do with a request.
enum Action {
    Respond(Vec<u8>),
    Split {
        head: Vec<u8>,
        body: Vec<u8>,
        delay: Duration,
    },
    Reset,
    Close,
}

async fn handle_connection(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream);
    loop {
        let req = match conn.read_request().await {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(_) => {
                let bytes = http::response(400, &[], b"bad request", false);
                let _ = conn.write(&bytes).await;
                return;
            }
        };
        let keep_alive = req.keep_alive();
        let token = form_param(&req.body, "token");
        let fault = {
            let mut st = shared.lock();
            st.records.push(RecordedRequest {
                method: req.method.clone(),
                path: req.target.clone(),
                version: req.version.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
                token: token.clone(),
            });
            st.fault.clone()
        };
        let action = match req.path() {
            "/introspect" => introspect(&shared, &req, token, fault, keep_alive).await,
            "/token" => Action::Respond(token_endpoint(&shared, &req, keep_alive)),
            _ => Action::Respond(http::response(
                404,
                &json_headers(),
                br#"{"error":"not_found"}"#,
                keep_alive,
            )),
        };
        match action {
            Action::Respond(bytes) => {
                if conn.write(&bytes).await.is_err() {
                    return;
                }
            }
            Action::Split { head, body, delay } => {
                if conn.write(&head).await.is_err() {
                    return;
                }
                tokio::time::sleep(delay).await;
                if conn.write(&body).await.is_err() {
                    return;
                }
            }
            Action::Reset => {
                let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
                return;
            }
            Action::Close => {
                let _ = conn.stream.shutdown().await;
                return;
            }
        }
        if !keep_alive {
            let _ = conn.stream.shutdown().await;
            return;
        }
    }
}

async fn introspect(
    shared: &Shared,
    req: &Request,
    token: Option<String>,
    fault: Option<Fault>,
    keep_alive: bool,
) -> Action {
    let mut split = None;
    match fault {
        Some(Fault::Status(status, body)) => {
            let mut headers = Vec::new();
            if body.starts_with('{') {
                headers.push(("Content-Type", "application/json".to_string()));
            } else if !body.is_empty() {
                headers.push(("Content-Type", "text/plain".to_string()));
            }
            if (300..400).contains(&status) {
                headers.push(("Location", format!("{}/elsewhere", shared.issuer)));
            }
            let body = if status == 204 {
                &[][..]
            } else {
                body.as_bytes()
            };
            return Action::Respond(http::response(status, &headers, body, keep_alive));
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Reset) => return Action::Reset,
        Some(Fault::CloseWithoutResponse) => return Action::Close,
        Some(Fault::Body(body)) => {
            let headers = [("Content-Type", "application/jwt".to_string())];
            return Action::Respond(http::response(200, &headers, &body, keep_alive));
        }
        Some(Fault::BigJwt(size)) => {
            let claims = token
                .as_deref()
                .and_then(|t| shared.lock().tokens.get(t).cloned())
                .unwrap_or_else(|| json!({"sub": "alice", "scope": "read write"}));
            let jwt = big_jwt(&claims, size);
            let headers = [("Content-Type", "application/jwt".to_string())];
            return Action::Respond(http::response(200, &headers, jwt.as_bytes(), keep_alive));
        }
        Some(Fault::SplitWrite(d)) => split = Some(d),
        None => {}
    }

    let (status, headers, body) = introspection_answer(shared, req, token);
    let head = http::response_head(status, &headers, body.len(), keep_alive);
    match split {
        Some(delay) => Action::Split { head, body, delay },
        None => {
            let mut bytes = head;
            bytes.extend_from_slice(&body);
            Action::Respond(bytes)
        }
    }
}

/// The normal (fault-free) introspection answer.
fn introspection_answer(
    shared: &Shared,
    req: &Request,
    token: Option<String>,
) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
    if req.method != "POST" {
        let mut headers = json_headers();
        headers.push(("Allow", "POST".to_string()));
        return (405, headers, br#"{"error":"method_not_allowed"}"#.to_vec());
    }
    match basic_credentials(req) {
        Some((id, secret)) if id == CLIENT_ID && secret == CLIENT_SECRET => {}
        _ => {
            let mut headers = json_headers();
            headers.push(("WWW-Authenticate", "Basic realm=\"introspect\"".to_string()));
            return (
                401,
                headers,
                br#"{"error":"invalid_client","error_description":"client authentication failed"}"#
                    .to_vec(),
            );
        }
    }
    let Some(token) = token else {
        return (
            400,
            json_headers(),
            br#"{"error":"invalid_request","error_description":"missing token"}"#.to_vec(),
        );
    };
    let (claims, cache_control) = {
        let st = shared.lock();
        let claims = if st.revoked.contains(&token) {
            None
        } else {
            st.tokens.get(&token).cloned()
        };
        (claims, st.cache_control.clone())
    };
    let active = claims.filter(|c| {
        c.get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|e| e > now())
    });
    match active {
        None => (204, Vec::new(), Vec::new()),
        Some(claims) => {
            let mut headers = vec![("Content-Type", "application/jwt".to_string())];
            if let Some(cc) = cache_control {
                headers.push(("Cache-Control", cc));
            }
            (200, headers, sign(&claims).into_bytes())
        }
    }
}

fn token_endpoint(shared: &Shared, req: &Request, keep_alive: bool) -> Vec<u8> {
    let error =
        |status: u16, body: &[u8]| http::response(status, &json_headers(), body, keep_alive);
    if req.method != "POST" {
        return error(405, br#"{"error":"method_not_allowed"}"#);
    }
    let creds = basic_credentials(req).or_else(|| {
        Some((
            form_param(&req.body, "client_id")?,
            form_param(&req.body, "client_secret")?,
        ))
    });
    match creds {
        Some((id, secret)) if id == CLIENT_ID && secret == CLIENT_SECRET => {}
        _ => return error(401, br#"{"error":"invalid_client"}"#),
    }
    if form_param(&req.body, "grant_type").as_deref() != Some("client_credentials") {
        return error(400, br#"{"error":"unsupported_grant_type"}"#);
    }
    let scope = form_param(&req.body, "scope").unwrap_or_else(|| "read write".to_string());
    let token = format!("opq_{}", random_string(32));
    let now = now();
    let claims = json!({
        "sub": CLIENT_ID,
        "client_id": CLIENT_ID,
        "scope": scope,
        "iss": shared.issuer,
        "aud": "api",
        "iat": now,
        "exp": now + 300,
        "jti": random_string(16),
    });
    shared.lock().tokens.insert(token.clone(), claims);
    let body = json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": 300,
        "scope": scope,
    });
    http::response(
        200,
        &json_headers(),
        body.to_string().as_bytes(),
        keep_alive,
    )
}

//! The test OAuth authorization server.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::http::{self, Conn, Request};
use crate::keys::{self, jwks_json, SigningKey};

/// Client id the gateway (nginx) uses to authenticate to the introspection endpoint.
pub const CLIENT_ID: &str = "api-gateway";
/// Client secret matching [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "gateway-secret";
/// `kid` header placed in every JWT the server signs with its default key
/// ([`SigningKey::Rsa1`]).
pub const JWT_KID: &str = "test-key-1";

const PUBLIC_KEY_PEM: &str = include_str!("test_key.pub.pem");

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
    /// Answer `200 application/jwt` with the `Content-Length` of the full
    /// signed JWT of the token, but send the body without its last `n` bytes
    /// (a cut inside the signature for small `n`), then close the
    /// connection cleanly (FIN). The body is empty when `n` is at least the
    /// JWT's length. An inactive token still gets its normal `204`.
    Truncate(usize),
    /// Send the status line, the headers (with the full `Content-Length`) and
    /// the first half of the JWT body, pause 50 ms (so the peer has read
    /// them), then reset the connection (SO_LINGER 0 → RST, as
    /// [`Fault::Reset`]). An inactive token still gets its normal `204`.
    ResetMidBody,
    /// Answer normally, but with `Transfer-Encoding: chunked` (no
    /// `Content-Length`): the JWT is sent as 3 chunks in separate TCP writes
    /// 20 ms apart, then the terminating `0` chunk. An inactive token still
    /// gets its normal `204`.
    Chunked,
    /// As [`Fault::Chunked`] (all the JWT's chunks are sent), but the
    /// connection is closed (FIN) before the terminating `0` chunk: the body
    /// bytes form a complete JWT, the HTTP message is incomplete.
    ChunkedTruncated,
    /// Under load: every `n`-th introspection request (counted across
    /// connections from the moment the fault is set; NGINX opens one
    /// connection per introspection) is read and recorded, then its
    /// connection is closed (FIN) without any answer. The others are
    /// answered normally. `DropEvery(0)` drops nothing.
    DropEvery(usize),
}

/// An authorization server that is down: a TCP port on `127.0.0.1` that is
/// bound but not listening, so every connection to it is refused (RST), and
/// no other socket of the machine can take the port while this value lives
/// (unlike a port picked by binding to port 0 and closing, which the next
/// `bind` to port 0, e.g. of an echo server, may well get again).
pub struct ClosedPort {
    _socket: socket2::Socket,
    port: u16,
}

impl ClosedPort {
    /// Reserves a port.
    pub fn reserve() -> ClosedPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&addr.into()).expect("bind 127.0.0.1:0");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port())
            .expect("local port");
        ClosedPort {
            _socket: socket,
            port,
        }
    }

    /// The refused port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/introspect`.
    pub fn introspection_url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port)
    }
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
    /// Introspection requests seen since [`Fault::DropEvery`] was set.
    drop_counter: usize,
    /// Every opaque token issued and every JWT signed, in order, no duplicates.
    secrets: Vec<String>,
    secret_set: HashSet<String>,
    /// Key of the introspection JWTs; `None`: [`SigningKey::Rsa1`].
    signing_key: Option<SigningKey>,
    /// Keys `GET /jwks` publishes; `None`: `[Rsa1]`.
    jwks: Option<Vec<SigningKey>>,
    /// Status `GET /jwks` answers instead of the JWKS.
    jwks_status: Option<u16>,
    /// Pause before `GET /jwks` answers.
    jwks_delay: Duration,
}

impl State {
    /// Remembers a secret (opaque token or signed JWT) of this server and
    /// of the process ([`AuthServer::all_issued_secrets`]).
    fn record_secret(&mut self, secret: &str) {
        if self.secret_set.insert(secret.to_string()) {
            self.secrets.push(secret.to_string());
        }
        let mut all = all_secrets().lock().unwrap_or_else(|e| e.into_inner());
        if all.set.insert(secret.to_string()) {
            all.list.push(secret.to_string());
        }
    }

    /// The key introspection answers are signed with.
    fn signing_key(&self) -> SigningKey {
        self.signing_key.unwrap_or(SigningKey::Rsa1)
    }
}

/// Every secret issued by any [`AuthServer`] of the process.
#[derive(Default)]
struct AllSecrets {
    list: Vec<String>,
    set: HashSet<String>,
}

fn all_secrets() -> &'static Mutex<AllSecrets> {
    static ALL: OnceLock<Mutex<AllSecrets>> = OnceLock::new();
    ALL.get_or_init(Mutex::default)
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
///   gives `200` `Content-Type: application/jwt` with a compact JWT of its
///   claims, signed with the current signing key (by default
///   [`SigningKey::Rsa1`], RS256, kid [`JWT_KID`]; see
///   [`set_signing_key`](Self::set_signing_key)); an unknown, revoked or
///   expired token gives `204` without body.
///
///   JSON mode (plain RFC 7662): when the request's `Accept` header contains
///   `application/json` and does not contain `application/jwt`, an active
///   token gives `200` `Content-Type: application/json` with
///   `{"active":true, ...the token's claims}` and an unknown, revoked or
///   expired token gives `200` `{"active":false}` (instead of the `204`).
///   Client authentication, [`set_cache_control`](Self::set_cache_control)
///   (active answers only) and injected [`Fault`]s apply as in JWT mode; the
///   body-level faults ([`Fault::Truncate`], [`Fault::ResetMidBody`],
///   [`Fault::Chunked`], [`Fault::ChunkedTruncated`]) then mangle the JSON
///   answer of an active token, while [`Fault::Body`] and [`Fault::BigJwt`]
///   still answer `application/jwt`.
/// * `POST /token` (`grant_type=client_credentials`, client authentication
///   by Basic header or `client_id`/`client_secret` form fields): issues an
///   opaque token.
/// * `GET /jwks`: `200` `Content-Type: application/json` with
///   [`jwks_json`] of the published keys (by default `[Rsa1]`, see
///   [`set_jwks`](Self::set_jwks)), or the status set with
///   [`set_jwks_status`](Self::set_jwks_status).
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
        let task = http::serve(listener, shared.clone(), handle_connection);
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

    /// `http://127.0.0.1:PORT/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks", self.port())
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
        st.record_secret(opaque);
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

    /// Injects a fault into all subsequent introspection requests (and
    /// restarts the request count of [`Fault::DropEvery`]).
    pub fn set_fault(&self, fault: Fault) {
        let mut st = self.shared.lock();
        st.fault = Some(fault);
        st.drop_counter = 0;
    }

    /// Removes the injected fault.
    pub fn clear_fault(&self) {
        self.shared.lock().fault = None;
    }

    /// JWTs issued by subsequent introspections (normal answers and all
    /// faults that sign, e.g. [`Fault::BigJwt`], [`Fault::Truncate`]) are
    /// signed with `key` and carry its `kid` and `alg` headers. The default
    /// is [`SigningKey::Rsa1`].
    pub fn set_signing_key(&self, key: SigningKey) {
        self.shared.lock().signing_key = Some(key);
    }

    /// Sets the keys `GET /jwks` publishes (see [`jwks_json`]), in order;
    /// the default is `[SigningKey::Rsa1]`.
    pub fn set_jwks(&self, keys: &[SigningKey]) {
        self.shared.lock().jwks = Some(keys.to_vec());
    }

    /// With `Some(status)`, `GET /jwks` answers `status` with a short
    /// `text/plain` body (none for 204 and 304) instead of the JWKS; `None`
    /// restores the normal answer.
    pub fn set_jwks_status(&self, status: Option<u16>) {
        self.shared.lock().jwks_status = status;
    }

    /// Makes `GET /jwks` answer only after `delay`.
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.shared.lock().jwks_delay = delay;
    }

    /// Number of `GET /jwks` requests received (answered or not), counted
    /// from the recorded [`requests`](Self::requests), so
    /// [`reset_records`](Self::reset_records) restarts it.
    pub fn jwks_count(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.split('?').next() == Some("/jwks"))
            .count()
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

    /// Every secret this server has handed out so far, in order, without
    /// duplicates: the opaque tokens it issued ([`issue_token`](Self::issue_token),
    /// [`issue_token_exact`](Self::issue_token_exact), `POST /token`) and every
    /// JWT it signed (introspection answers, including the full JWT of a
    /// [`Fault::Truncate`]d one, [`Fault::BigJwt`], [`sign_jwt`](Self::sign_jwt),
    /// [`sign_jwt_with`](Self::sign_jwt_with)) or built
    /// ([`unsigned_jwt`](Self::unsigned_jwt)).
    /// None of them may ever appear in a log.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.lock().secrets.clone()
    }

    /// [`issued_secrets`](Self::issued_secrets) of every `AuthServer` started
    /// in this process so far (also of servers already dropped), in order,
    /// without duplicates: covers tests that run several servers.
    pub fn all_issued_secrets() -> Vec<String> {
        all_secrets()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .clone()
    }

    /// Forgets the recorded requests.
    pub fn reset_records(&self) {
        self.shared.lock().records.clear();
    }

    /// The PEM (SPKI) public key verifying the JWTs of the default key
    /// [`SigningKey::Rsa1`].
    pub fn public_key_pem(&self) -> &'static str {
        PUBLIC_KEY_PEM
    }

    /// Signs `claims` as a compact RS256 JWT with the default server key
    /// [`SigningKey::Rsa1`] (kid [`JWT_KID`]), whatever
    /// [`set_signing_key`](Self::set_signing_key) chose.
    pub fn sign_jwt(&self, claims: &Value) -> String {
        self.sign_jwt_with(SigningKey::Rsa1, None, claims)
    }

    /// Signs `claims` as a compact JWT with `key` and its algorithm; the
    /// `kid` header is `kid` if given, else the key's own
    /// [`kid`](SigningKey::kid). Recorded as an issued secret.
    pub fn sign_jwt_with(&self, key: SigningKey, kid: Option<&str>, claims: &Value) -> String {
        let jwt = keys::sign_with(key, kid, claims);
        self.shared.lock().record_secret(&jwt);
        jwt
    }

    /// An unsecured JWT of `claims`:
    /// `base64url({"alg":"none","typ":"JWT"}) + "." + base64url(claims) + "."`
    /// (empty signature). Recorded as an issued secret.
    pub fn unsigned_jwt(&self, claims: &Value) -> String {
        let jwt = keys::unsigned(claims);
        self.shared.lock().record_secret(&jwt);
        jwt
    }

    /// Verifies the RS256 signature of `jwt` with the default key
    /// [`SigningKey::Rsa1`] and returns its claims.
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

/// A valid JWT of `claims`, signed with `key`, padded to about `size` bytes.
fn big_jwt(key: SigningKey, claims: &Value, size: usize) -> String {
    let sign = |claims: &Value| keys::sign_with(key, None, claims);
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

fn json_headers() -> Headers {
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
    /// Write each part, pausing after it as given, then `end`.
    Script {
        parts: Vec<(Vec<u8>, Duration)>,
        end: End,
    },
}

/// How an [`Action::Script`] ends.
enum End {
    /// Like a normal answer: keep the connection if the request allows it.
    Normal,
    /// Close cleanly (FIN).
    Close,
    /// Reset (SO_LINGER 0 → RST).
    Reset,
}

/// How a normal introspection answer is mangled on the wire.
enum Mangle {
    Split(Duration),
    Truncate(usize),
    ResetMidBody,
    /// Chunked transfer coding; `false`: without the terminating chunk.
    Chunked(bool),
}

/// Pause of [`Fault::ResetMidBody`] between the partial body and the RST.
const RESET_PAUSE: Duration = Duration::from_millis(50);
/// Pause of [`Fault::Chunked`] between two chunks.
const CHUNK_PAUSE: Duration = Duration::from_millis(20);

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
            "/jwks" => {
                let delay = shared.lock().jwks_delay;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Action::Respond(jwks_endpoint(&shared, &req, keep_alive))
            }
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
            Action::Script { parts, end } => {
                for (bytes, pause) in parts {
                    if conn.write(&bytes).await.is_err() {
                        return;
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                match end {
                    End::Normal => {}
                    End::Close => {
                        let _ = conn.stream.shutdown().await;
                        return;
                    }
                    End::Reset => {
                        let _ =
                            socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
                        return;
                    }
                }
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
    let mut mangle = None;
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
            let (claims, key) = {
                let st = shared.lock();
                let claims = token.as_deref().and_then(|t| st.tokens.get(t).cloned());
                (claims, st.signing_key())
            };
            let claims = claims.unwrap_or_else(|| json!({"sub": "alice", "scope": "read write"}));
            let jwt = big_jwt(key, &claims, size);
            shared.lock().record_secret(&jwt);
            let headers = [("Content-Type", "application/jwt".to_string())];
            return Action::Respond(http::response(200, &headers, jwt.as_bytes(), keep_alive));
        }
        Some(Fault::SplitWrite(d)) => mangle = Some(Mangle::Split(d)),
        Some(Fault::Truncate(n)) => mangle = Some(Mangle::Truncate(n)),
        Some(Fault::ResetMidBody) => mangle = Some(Mangle::ResetMidBody),
        Some(Fault::Chunked) => mangle = Some(Mangle::Chunked(true)),
        Some(Fault::ChunkedTruncated) => mangle = Some(Mangle::Chunked(false)),
        Some(Fault::DropEvery(n)) => {
            let seen = {
                let mut st = shared.lock();
                st.drop_counter += 1;
                st.drop_counter
            };
            if n > 0 && seen % n == 0 {
                return Action::Close;
            }
        }
        None => {}
    }

    let (status, headers, body, active) = introspection_answer(shared, req, token);
    let head = http::response_head(status, &headers, body.len(), keep_alive);
    let concat = |head: Vec<u8>, body: &[u8]| {
        let mut bytes = head;
        bytes.extend_from_slice(body);
        bytes
    };
    match mangle {
        Some(Mangle::Split(delay)) => Action::Split { head, body, delay },
        None => Action::Respond(concat(head, &body)),
        // The body-level faults mangle the answers of active tokens only.
        Some(_) if !active => Action::Respond(concat(head, &body)),
        Some(Mangle::Truncate(n)) => Action::Script {
            parts: vec![(
                concat(head, &body[..body.len().saturating_sub(n)]),
                Duration::ZERO,
            )],
            end: End::Close,
        },
        Some(Mangle::ResetMidBody) => Action::Script {
            parts: vec![(concat(head, &body[..body.len() / 2]), RESET_PAUSE)],
            end: End::Reset,
        },
        Some(Mangle::Chunked(complete)) => {
            let mut parts = vec![(chunked_head(status, &headers, keep_alive), Duration::ZERO)];
            let third = body.len().div_ceil(3).max(1);
            for piece in body.chunks(third) {
                let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
                chunk.extend_from_slice(piece);
                chunk.extend_from_slice(b"\r\n");
                parts.push((chunk, CHUNK_PAUSE));
            }
            if complete {
                parts.push((b"0\r\n\r\n".to_vec(), Duration::ZERO));
            }
            Action::Script {
                parts,
                end: if complete { End::Normal } else { End::Close },
            }
        }
    }
}

/// Status line and headers of a `Transfer-Encoding: chunked` response.
fn chunked_head(status: u16, headers: &[(&str, String)], keep_alive: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", http::reason(status));
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Transfer-Encoding: chunked\r\n");
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    out.into_bytes()
}

/// Response headers: names and values, in order.
type Headers = Vec<(&'static str, String)>;

/// Whether the introspection request asks for a JSON answer (RFC 7662
/// section 2.2) rather than a JWT: its `Accept` contains `application/json`
/// and not `application/jwt`.
fn wants_json(req: &Request) -> bool {
    let accept = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",");
    accept.contains("application/json") && !accept.contains("application/jwt")
}

/// The normal (fault-free) introspection answer: status, headers, body and
/// whether it is the answer of an active token.
fn introspection_answer(
    shared: &Shared,
    req: &Request,
    token: Option<String>,
) -> (u16, Headers, Vec<u8>, bool) {
    if let Some((status, headers, body)) = introspection_error(req) {
        return (status, headers, body.to_vec(), false);
    }
    let Some(token) = token else {
        return (
            400,
            json_headers(),
            br#"{"error":"invalid_request","error_description":"missing token"}"#.to_vec(),
            false,
        );
    };
    token_answer(shared, req, token)
}

/// The error answer of a request with a wrong method or failing client
/// authentication, if it is one.
fn introspection_error(req: &Request) -> Option<(u16, Headers, &'static [u8])> {
    if req.method != "POST" {
        let mut headers = json_headers();
        headers.push(("Allow", "POST".to_string()));
        return Some((405, headers, br#"{"error":"method_not_allowed"}"#));
    }
    match basic_credentials(req) {
        Some((id, secret)) if id == CLIENT_ID && secret == CLIENT_SECRET => {}
        _ => {
            let mut headers = json_headers();
            headers.push(("WWW-Authenticate", "Basic realm=\"introspect\"".to_string()));
            return Some((
                401,
                headers,
                br#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
            ));
        }
    }
    None
}

/// The answer for `token` of a valid introspection request (JWT or JSON
/// mode, see [`wants_json`]).
fn token_answer(shared: &Shared, req: &Request, token: String) -> (u16, Headers, Vec<u8>, bool) {
    let (claims, cache_control, key) = {
        let st = shared.lock();
        let claims = if st.revoked.contains(&token) {
            None
        } else {
            st.tokens.get(&token).cloned()
        };
        (claims, st.cache_control.clone(), st.signing_key())
    };
    let active = claims.filter(|c| {
        c.get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|e| e > now())
    });
    let json = wants_json(req);
    let Some(claims) = active else {
        return if json {
            let headers = vec![("Content-Type", "application/json".to_string())];
            (200, headers, br#"{"active":false}"#.to_vec(), false)
        } else {
            (204, Vec::new(), Vec::new(), false)
        };
    };
    let content_type = if json {
        "application/json"
    } else {
        "application/jwt"
    };
    let mut headers = vec![("Content-Type", content_type.to_string())];
    if let Some(cc) = cache_control {
        headers.push(("Cache-Control", cc));
    }
    let body = if json {
        let mut answer = Map::new();
        answer.insert("active".into(), Value::Bool(true));
        if let Value::Object(claims) = claims {
            answer.extend(claims.into_iter().filter(|(k, _)| k != "active"));
        }
        Value::Object(answer).to_string()
    } else {
        let jwt = keys::sign_with(key, None, &claims);
        shared.lock().record_secret(&jwt);
        jwt
    };
    (200, headers, body.into_bytes(), true)
}

/// `GET /jwks`: the published keys, or the status set with
/// [`AuthServer::set_jwks_status`].
fn jwks_endpoint(shared: &Shared, req: &Request, keep_alive: bool) -> Vec<u8> {
    if req.method != "GET" {
        let mut headers = json_headers();
        headers.push(("Allow", "GET".to_string()));
        return http::response(
            405,
            &headers,
            br#"{"error":"method_not_allowed"}"#,
            keep_alive,
        );
    }
    let (keys, status) = {
        let st = shared.lock();
        let keys = st.jwks.clone().unwrap_or_else(|| vec![SigningKey::Rsa1]);
        (keys, st.jwks_status)
    };
    match status {
        Some(status) => {
            let body = if status == 204 || status == 304 {
                String::new()
            } else {
                format!("jwks status {status}\n")
            };
            let headers = if body.is_empty() {
                Vec::new()
            } else {
                vec![("Content-Type", "text/plain".to_string())]
            };
            http::response(status, &headers, body.as_bytes(), keep_alive)
        }
        None => {
            let headers = [("Content-Type", "application/json".to_string())];
            http::response(200, &headers, jwks_json(&keys).as_bytes(), keep_alive)
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
    {
        let mut st = shared.lock();
        st.tokens.insert(token.clone(), claims);
        st.record_secret(&token);
    }
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

#[cfg(test)]
mod tests {
    //! Wire-level self-tests of the body faults (what NGINX would read).

    use super::*;
    use std::io::Write;

    /// One HTTP/1.0 introspection of `token` on a raw socket, as NGINX's
    /// proxy module sends it; returns the bytes read and how reading ended.
    fn exchange(auth: &AuthServer, token: &str) -> (Vec<u8>, std::io::Result<usize>) {
        let body = format!("token={token}");
        let req = format!(
            "POST /introspect HTTP/1.0\r\nHost: x\r\nAuthorization: {}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            auth.basic_auth_header(),
            body.len()
        );
        let mut s = std::net::TcpStream::connect(("127.0.0.1", auth.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        crate::raw::read_until_closed(&mut s)
    }

    /// Splits a response into head (text) and body bytes.
    fn split(raw: &[u8]) -> (String, Vec<u8>) {
        let end = http::find(raw, b"\r\n\r\n").expect("complete head");
        (
            String::from_utf8_lossy(&raw[..end]).into_owned(),
            raw[end + 4..].to_vec(),
        )
    }

    /// The JWT the server signed last.
    fn last_jwt(auth: &AuthServer) -> String {
        auth.issued_secrets().pop().unwrap()
    }

    #[test]
    fn truncate_keeps_the_full_content_length_and_closes() {
        let auth = AuthServer::start();
        let token = auth.issue_token(json!({}));
        auth.set_fault(Fault::Truncate(10));
        let (raw, end) = exchange(&auth, &token);
        assert_eq!(end.unwrap(), 0, "FIN");
        let (head, body) = split(&raw);
        let jwt = last_jwt(&auth);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Type: application/jwt"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", jwt.len())),
            "{head}"
        );
        assert_eq!(body, jwt.as_bytes()[..jwt.len() - 10]);
        assert!(
            jwt.rsplit('.').next().unwrap().len() > 10,
            "cut inside the signature"
        );
    }

    #[test]
    fn reset_mid_body_sends_half_the_body_then_rst() {
        let auth = AuthServer::start();
        let token = auth.issue_token(json!({}));
        auth.set_fault(Fault::ResetMidBody);
        let (raw, end) = exchange(&auth, &token);
        assert_eq!(
            end.expect_err("RST").kind(),
            std::io::ErrorKind::ConnectionReset
        );
        let (head, body) = split(&raw);
        let jwt = last_jwt(&auth);
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", jwt.len())),
            "{head}"
        );
        assert_eq!(body, jwt.as_bytes()[..jwt.len() / 2]);
    }

    /// Decodes a chunked body: the chunks and whether the last chunk came.
    fn chunks(mut body: &[u8]) -> (Vec<Vec<u8>>, bool) {
        let mut out = Vec::new();
        while let Some(eol) = http::find(body, b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16).unwrap();
            body = &body[eol + 2..];
            if size == 0 {
                assert_eq!(body, b"\r\n");
                return (out, true);
            }
            out.push(body[..size].to_vec());
            assert_eq!(&body[size..size + 2], b"\r\n");
            body = &body[size + 2..];
        }
        assert!(body.is_empty(), "partial chunk line");
        (out, false)
    }

    #[test]
    fn chunked_sends_the_jwt_in_several_chunks() {
        let auth = AuthServer::start();
        let token = auth.issue_token(json!({"sub": "chunky"}));
        auth.set_fault(Fault::Chunked);
        let (raw, end) = exchange(&auth, &token);
        assert_eq!(end.unwrap(), 0);
        let (head, body) = split(&raw);
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        assert!(!head.contains("Content-Length"), "{head}");
        let (parts, complete) = chunks(&body);
        assert!(complete && parts.len() >= 2, "{parts:?}");
        let jwt = String::from_utf8(parts.concat()).unwrap();
        assert_eq!(jwt, last_jwt(&auth));
        assert_eq!(auth.decode_jwt(&jwt)["sub"], "chunky");
    }

    #[test]
    fn chunked_truncated_closes_before_the_last_chunk() {
        let auth = AuthServer::start();
        let token = auth.issue_token(json!({}));
        auth.set_fault(Fault::ChunkedTruncated);
        let (raw, end) = exchange(&auth, &token);
        assert_eq!(end.unwrap(), 0, "FIN");
        let (_, body) = split(&raw);
        let (parts, complete) = chunks(&body);
        assert!(!complete);
        assert_eq!(parts.concat(), last_jwt(&auth).into_bytes());
    }

    #[test]
    fn drop_every_n_closes_every_nth_introspection_without_answer() {
        let auth = AuthServer::start();
        let token = auth.issue_token(json!({}));
        auth.set_fault(Fault::DropEvery(3));
        let answered: Vec<bool> = (0..7)
            .map(|_| {
                let (raw, end) = exchange(&auth, &token);
                assert_eq!(end.unwrap(), 0);
                !raw.is_empty()
            })
            .collect();
        assert_eq!(answered, [true, true, false, true, true, false, true]);
        assert_eq!(auth.introspection_count(), 7, "dropped ones are recorded");
        // An inactive token is unaffected by the body faults.
        auth.set_fault(Fault::Truncate(10));
        let (raw, _) = exchange(&auth, "unknown");
        assert!(raw.starts_with(b"HTTP/1.1 204 "));
    }

    #[test]
    fn closed_port_refuses_connections_and_stays_reserved() {
        let closed = ClosedPort::reserve();
        let err = std::net::TcpStream::connect(("127.0.0.1", closed.port())).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(std::net::TcpListener::bind(("127.0.0.1", closed.port())).is_err());
    }

    #[test]
    fn issued_secrets_are_tokens_and_signed_jwts() {
        let auth = AuthServer::start();
        let token = auth.issue_token(json!({}));
        auth.issue_token_exact("exact-token", json!({}));
        let (raw, _) = exchange(&auth, &token);
        let (_, jwt) = split(&raw);
        let jwt = String::from_utf8(jwt).unwrap();
        let signed = auth.sign_jwt(&json!({"sub": "x"}));
        assert_eq!(
            auth.issued_secrets(),
            [token, "exact-token".to_string(), jwt, signed]
        );
        let all = AuthServer::all_issued_secrets();
        assert!(auth.issued_secrets().iter().all(|s| all.contains(s)));
    }
}

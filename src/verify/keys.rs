//! JWT verification (pure logic): a JWKS parsed into verification keys, the
//! checks of the `phantom_token_jwt_*` directives, and one function that
//! verifies a compact JWT against both. Specification: docs/behaviour.md,
//! "JWT verification".

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// One verification key of a JWKS.
struct Key {
    kid: Option<String>,
    /// The algorithms this key verifies (its `alg`, else those of its type).
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// The signature keys of a JWKS (RSA, EC P-256/P-384, OKP Ed25519).
pub struct KeySet {
    keys: Vec<Key>,
    /// SHA-256 of the JWKS document (what the keys were made from).
    pub digest: [u8; 32],
}

impl core::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_deref()).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

fn algorithm_of(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The key of one JWK, or why it cannot verify signatures.
fn key_of(jwk: &Jwk) -> Result<Key, String> {
    let kid = jwk.common.key_id.clone();
    let name = kid.as_deref().unwrap_or("(no kid)");
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err(format!("key {name}: unsupported curve")),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return Err(format!("key {name}: unsupported curve")),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err(format!(
                "key {name}: symmetric (\"oct\") keys are not accepted"
            ))
        }
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(alg) => match algorithm_of(alg) {
            Some(alg) if by_type.contains(&alg) => vec![alg],
            _ => return Err(format!("key {name}: \"alg\" does not fit the key type")),
        },
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {name}: {e}"))?;
    Ok(Key {
        kid,
        algorithms,
        key,
    })
}

impl KeySet {
    /// Parses a JWKS document. Keys marked `"use": "enc"` are skipped; any
    /// other key that cannot verify signatures, or a set without keys, is
    /// an error (a typo in a key file must fail `nginx -t`).
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            keys.push(key_of(jwk)?);
        }
        if keys.is_empty() {
            return Err("no signature keys".into());
        }
        use sha2::{Digest, Sha256};
        Ok(KeySet {
            keys,
            digest: Sha256::digest(json).into(),
        })
    }

    /// Whether a key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// The claim checks of a location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Clock skew allowed for `exp` and `nbf`, in seconds.
    pub leeway: u64,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must match), if any.
    pub audience: Vec<String>,
}

/// Why a JWT was refused (for the error line; never contains the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a compact JWS with a readable header.
    Malformed,
    /// `alg: none` (an unsigned JWT).
    Unsigned,
    /// An algorithm this module does not verify (e.g. HS256).
    UnsupportedAlgorithm(String),
    /// No key with the JWT's `kid` (or, without `kid`, for its `alg`).
    UnknownKey(Option<String>),
    /// The signature does not verify with the key.
    BadSignature,
    /// `exp` is missing.
    MissingExpiry,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` holds none of the configured audiences.
    WrongAudience,
    /// No keys: the JWKS was never fetched successfully.
    NoKeys,
}

impl core::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VerifyError::Malformed => f.write_str("malformed JWT"),
            VerifyError::Unsigned => f.write_str("unsigned JWT (alg \"none\") refused"),
            VerifyError::UnsupportedAlgorithm(alg) => write!(f, "unsupported alg \"{alg}\""),
            VerifyError::UnknownKey(Some(kid)) => write!(f, "no key with kid \"{kid}\""),
            VerifyError::UnknownKey(None) => f.write_str("no key for the JWT's alg"),
            VerifyError::BadSignature => f.write_str("bad signature"),
            VerifyError::MissingExpiry => f.write_str("no \"exp\" claim"),
            VerifyError::Expired => f.write_str("expired (\"exp\")"),
            VerifyError::NotYetValid => f.write_str("not yet valid (\"nbf\")"),
            VerifyError::WrongIssuer => f.write_str("wrong issuer (\"iss\")"),
            VerifyError::WrongAudience => f.write_str("wrong audience (\"aud\")"),
            VerifyError::NoKeys => f.write_str("no keys (the JWKS could not be fetched)"),
        }
    }
}

/// The `alg` and `kid` of a JWT's header, read without trusting it.
pub fn header_of(jwt: &[u8]) -> Result<(String, Option<String>), VerifyError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let first = jwt
        .split(|&b| b == b'.')
        .next()
        .ok_or(VerifyError::Malformed)?;
    let json = URL_SAFE_NO_PAD
        .decode(first)
        .map_err(|_| VerifyError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&json).map_err(|_| VerifyError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or(VerifyError::Malformed)?;
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(VerifyError::Malformed),
    };
    Ok((alg.to_string(), kid))
}

/// The key-set-independent part of verification: the JWT names a key this
/// set does not hold (the authorization server may have rolled its keys).
pub fn names_unknown_key(jwt: &[u8], keys: &KeySet) -> bool {
    matches!(header_of(jwt), Ok((_, Some(kid))) if !keys.has_kid(&kid))
}

/// Verifies a compact JWT: signature with the key named by `kid` (without
/// `kid`: any key for its `alg`), `exp` required, `nbf`, `iss` and `aud`
/// per `policy`. Returns its `exp`.
pub fn verify(jwt: &[u8], keys: &KeySet, policy: &Policy) -> Result<u64, VerifyError> {
    let (alg, kid) = header_of(jwt)?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(VerifyError::Unsigned);
    }
    let algorithm: Algorithm = alg
        .parse()
        .map_err(|_| VerifyError::UnsupportedAlgorithm(alg.clone()))?;
    if matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(VerifyError::UnsupportedAlgorithm(alg));
    }
    let text = core::str::from_utf8(jwt).map_err(|_| VerifyError::Malformed)?;
    let candidates = keys.keys.iter().filter(|k| match &kid {
        Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
        None => k.algorithms.contains(&algorithm),
    });
    let mut outcome = Err(VerifyError::UnknownKey(kid.clone()));
    for key in candidates {
        if !key.algorithms.contains(&algorithm) {
            outcome = Err(VerifyError::BadSignature);
            continue;
        }
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = policy.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &policy.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        if policy.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&policy.audience);
        }
        use jsonwebtoken::errors::ErrorKind;
        /// `exp` as a whole number (`None` when absent: the validation's
        /// required claims then report it; another type is a JSON error).
        #[derive(serde::Deserialize)]
        struct Exp {
            exp: Option<u64>,
        }
        match jsonwebtoken::decode::<Exp>(text, &key.key, &validation) {
            Ok(data) => return data.claims.exp.ok_or(VerifyError::MissingExpiry),
            Err(e) => {
                outcome = Err(match e.kind() {
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                        VerifyError::BadSignature
                    }
                    ErrorKind::MissingRequiredClaim(_) => VerifyError::MissingExpiry,
                    ErrorKind::ExpiredSignature => VerifyError::Expired,
                    ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
                    ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
                    ErrorKind::InvalidAudience => VerifyError::WrongAudience,
                    ErrorKind::Json(_) => VerifyError::MissingExpiry,
                    _ => VerifyError::Malformed,
                });
                // A signature that verified decides; try other keys only
                // when this one did not match.
                if !matches!(outcome, Err(VerifyError::BadSignature)) {
                    return outcome.map(|_: ()| 0);
                }
            }
        }
    }
    outcome.map(|_: ()| 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use test_support::{jwks_json, AuthServer, SigningKey};

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn keys(of: &[SigningKey]) -> KeySet {
        KeySet::from_jwks(jwks_json(of).as_bytes()).unwrap()
    }

    #[test]
    fn kid_selects_the_key_and_no_kid_tries_the_algorithm() {
        let auth = AuthServer::start();
        let set = keys(&[SigningKey::Rsa1, SigningKey::Rsa2, SigningKey::Ec]);
        let claims = json!({"sub": "a", "exp": now() + 60});
        let policy = Policy::default();
        let rsa2 = auth.sign_jwt_with(SigningKey::Rsa2, None, &claims);
        assert_eq!(verify(rsa2.as_bytes(), &set, &policy), Ok(now() + 60));
        // The kid of another key: that key decides.
        let wrong = auth.sign_jwt_with(SigningKey::Rsa2, Some("test-key-1"), &claims);
        assert_eq!(
            verify(wrong.as_bytes(), &set, &policy),
            Err(VerifyError::BadSignature)
        );
        // The EC key's kid on an RSA signature: the key does not do RS256.
        let mixed = auth.sign_jwt_with(SigningKey::Rsa1, Some("test-ec-1"), &claims);
        assert_eq!(
            verify(mixed.as_bytes(), &set, &policy),
            Err(VerifyError::BadSignature)
        );
        // No kid: every key for the algorithm is tried.
        let pem = include_str!("../../test-support/src/test_key2.pem");
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let header = jsonwebtoken::Header::new(Algorithm::RS256);
        let no_kid = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert_eq!(verify(no_kid.as_bytes(), &set, &policy), Ok(now() + 60));
        let only_ec = keys(&[SigningKey::Ec]);
        assert_eq!(
            verify(no_kid.as_bytes(), &only_ec, &policy),
            Err(VerifyError::UnknownKey(None))
        );
    }

    #[allow(non_snake_case)]
    fn URL_SAFE_NO_PAD_ENCODE(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn unknown_kids_missing_exp_and_reasons() {
        let auth = AuthServer::start();
        let set = keys(&[SigningKey::Rsa1]);
        let claims = json!({"exp": now() + 60});
        let known = auth.sign_jwt_with(SigningKey::Rsa1, None, &claims);
        let unknown = auth.sign_jwt_with(SigningKey::Rsa2, None, &claims);
        assert!(!names_unknown_key(known.as_bytes(), &set));
        assert!(names_unknown_key(unknown.as_bytes(), &set));
        assert!(!names_unknown_key(b"garbage", &set));
        let no_exp = auth.sign_jwt_with(SigningKey::Rsa1, None, &json!({"sub": "a"}));
        assert_eq!(
            verify(no_exp.as_bytes(), &set, &Policy::default()),
            Err(VerifyError::MissingExpiry)
        );
        let policy = Policy {
            leeway: 0,
            issuer: Some("https://as".into()),
            audience: vec!["api".into()],
        };
        let good = json!({"exp": now() + 60, "iss": "https://as", "aud": "api"});
        let check = |claims: serde_json::Value| {
            let mut c = good.clone();
            for (k, v) in claims.as_object().unwrap() {
                c[k] = v.clone();
            }
            let jwt = auth.sign_jwt_with(SigningKey::Rsa1, None, &c);
            verify(jwt.as_bytes(), &set, &policy)
        };
        assert_eq!(check(json!({})), Ok(now() + 60));
        assert_eq!(check(json!({"exp": now() - 5})), Err(VerifyError::Expired));
        assert_eq!(
            check(json!({"nbf": now() + 60})),
            Err(VerifyError::NotYetValid)
        );
        assert_eq!(
            check(json!({"iss": "https://other"})),
            Err(VerifyError::WrongIssuer)
        );
        assert_eq!(
            check(json!({"aud": ["web"]})),
            Err(VerifyError::WrongAudience)
        );
        assert_eq!(
            check(json!({"exp": "soon"})),
            Err(VerifyError::MissingExpiry)
        );
        assert_eq!(
            VerifyError::UnknownKey(Some("k".into())).to_string(),
            r#"no key with kid "k""#
        );
        assert_eq!(
            VerifyError::NoKeys.to_string(),
            "no keys (the JWKS could not be fetched)"
        );
        assert_eq!(VerifyError::Expired.to_string(), r#"expired ("exp")"#);
    }

    #[test]
    fn symmetric_and_unsigned_are_refused() {
        let set = keys(&[SigningKey::Rsa1]);
        let claims = URL_SAFE_NO_PAD_ENCODE(format!(r#"{{"exp":{}}}"#, now() + 60).as_bytes());
        let hs = format!(
            "{}.{claims}.c2ln",
            URL_SAFE_NO_PAD_ENCODE(br#"{"alg":"HS256","kid":"test-key-1"}"#)
        );
        assert_eq!(
            verify(hs.as_bytes(), &set, &Policy::default()),
            Err(VerifyError::UnsupportedAlgorithm("HS256".into()))
        );
        let none = format!(
            "{}.{claims}.c2ln",
            URL_SAFE_NO_PAD_ENCODE(br#"{"alg":"None"}"#)
        );
        assert_eq!(
            verify(none.as_bytes(), &set, &Policy::default()),
            Err(VerifyError::Unsigned)
        );
        assert_eq!(
            verify(b"garbage", &set, &Policy::default()),
            Err(VerifyError::Malformed)
        );
        let bad_kid = format!(
            "{}.{claims}.c2ln",
            URL_SAFE_NO_PAD_ENCODE(br#"{"alg":"RS256","kid":7}"#)
        );
        assert_eq!(
            verify(bad_kid.as_bytes(), &set, &Policy::default()),
            Err(VerifyError::Malformed)
        );
    }

    fn sign(alg: Algorithm, pem: &str, kid: &str, claims: &serde_json::Value) -> String {
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
            }
            _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap();
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    #[test]
    fn every_rsa_algorithm_and_p384() {
        let rsa_pem = include_str!("../../test-support/src/test_key.pem");
        let claims = json!({"exp": now() + 60});
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let jwks = jwks_json(&[SigningKey::Rsa1]).replace("\"RS256\"", &format!("\"{alg}\""));
            let set = KeySet::from_jwks(jwks.as_bytes()).unwrap_or_else(|e| panic!("{alg}: {e}"));
            let algorithm: Algorithm = alg.parse().unwrap();
            let jwt = sign(algorithm, rsa_pem, "test-key-1", &claims);
            assert_eq!(
                verify(jwt.as_bytes(), &set, &Policy::default()),
                Ok(now() + 60),
                "{alg}"
            );
            // A key pinned to `alg` verifies nothing else.
            let other = sign(Algorithm::RS256, rsa_pem, "test-key-1", &claims);
            if alg != "RS256" {
                assert_eq!(
                    verify(other.as_bytes(), &set, &Policy::default()),
                    Err(VerifyError::BadSignature),
                    "{alg}"
                );
            }
        }
        let p384 = r#"{"keys":[{"kty":"EC","crv":"P-384","kid":"p384","alg":"ES384",
            "x":"tZISav56w8rxCuGJJbxe6dtHSjrNarN9BQkg9JpNpCKE7jth9WsRNlPdf7aCMM2b",
            "y":"4BaAZBtEPp9hfvRjVASn3JLm1EafSdWQWy_Vj7CU2MNTQYkpyKSso-IEIVvixJ0G"}]}"#;
        let set = KeySet::from_jwks(p384.as_bytes()).unwrap();
        let pem = include_str!("../../test-support/src/test_ec384.pem");
        let jwt = sign(Algorithm::ES384, pem, "p384", &claims);
        assert_eq!(
            verify(jwt.as_bytes(), &set, &Policy::default()),
            Ok(now() + 60)
        );
    }

    #[test]
    fn key_files() {
        assert!(KeySet::from_jwks(
            br#"{"keys":[{"kty":"RSA","kid":"x","use":"enc","n":"AQAB","e":"AQAB"}]}"#
        )
        .unwrap_err()
        .contains("no signature keys"));
        let set = keys(&[SigningKey::Rsa1, SigningKey::Ed]);
        assert!(!set.has_kid("test-key-2"));
        assert_eq!(
            format!("{set:?}"),
            r#"KeySet { kids: [Some("test-key-1"), Some("test-ed-1")] }"#
        );
        assert!(set.has_kid("test-ed-1"));
        let mismatched = jwks_json(&[SigningKey::Ec]).replace("\"ES256\"", "\"RS256\"");
        assert!(KeySet::from_jwks(mismatched.as_bytes())
            .unwrap_err()
            .contains("does not fit the key type"));
    }
}

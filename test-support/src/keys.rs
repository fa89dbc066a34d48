//! The signing keys of the test authorization server and their public JWKs.

use std::sync::OnceLock;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// `kid` of [`SigningKey::Rsa1`] (and of [`SigningKey::Foreign`]).
const KID_RSA1: &str = "test-key-1";

/// A private key the [`AuthServer`](crate::AuthServer) can sign JWTs with
/// (see [`AuthServer::set_signing_key`](crate::AuthServer::set_signing_key)
/// and [`AuthServer::sign_jwt_with`](crate::AuthServer::sign_jwt_with)).
///
/// The keys are fixed PEM files of the crate, so JWKs and signatures are
/// stable across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKey {
    /// The default RSA 2048 key (`test_key.pem`): kid `test-key-1`
    /// ([`JWT_KID`](crate::JWT_KID)), RS256.
    Rsa1,
    /// A second RSA 2048 key (`test_key2.pem`): kid `test-key-2`, RS256.
    Rsa2,
    /// An EC P-256 key (`test_ec.pem`): kid `test-ec-1`, ES256.
    Ec,
    /// An Ed25519 key (`test_ed.pem`): kid `test-ed-1`, EdDSA.
    Ed,
    /// An RSA 2048 key (`foreign_key.pem`) that no default JWKS publishes,
    /// with the kid `test-key-1` of [`Rsa1`](Self::Rsa1), RS256: a JWT it
    /// signs names a known kid but its signature does not verify with the
    /// published key of that kid.
    Foreign,
}

/// Public JWK parameters of a key (base64url without padding), computed
/// once with `openssl` from the PEM files.
enum PublicParams {
    Rsa { n: &'static str, e: &'static str },
    Ec { x: &'static str, y: &'static str },
    Ed { x: &'static str },
}

impl SigningKey {
    /// All keys, in declaration order.
    const ALL: [SigningKey; 5] = [
        SigningKey::Rsa1,
        SigningKey::Rsa2,
        SigningKey::Ec,
        SigningKey::Ed,
        SigningKey::Foreign,
    ];

    /// The `kid` header of the JWTs this key signs and of its JWK.
    pub fn kid(self) -> &'static str {
        match self {
            SigningKey::Rsa1 | SigningKey::Foreign => KID_RSA1,
            SigningKey::Rsa2 => "test-key-2",
            SigningKey::Ec => "test-ec-1",
            SigningKey::Ed => "test-ed-1",
        }
    }

    /// The JWS algorithm of this key: RS256, ES256 or EdDSA.
    pub fn alg(self) -> Algorithm {
        match self {
            SigningKey::Rsa1 | SigningKey::Rsa2 | SigningKey::Foreign => Algorithm::RS256,
            SigningKey::Ec => Algorithm::ES256,
            SigningKey::Ed => Algorithm::EdDSA,
        }
    }

    /// The PKCS#8 PEM private key.
    fn private_pem(self) -> &'static str {
        match self {
            SigningKey::Rsa1 => include_str!("test_key.pem"),
            SigningKey::Rsa2 => include_str!("test_key2.pem"),
            SigningKey::Ec => include_str!("test_ec.pem"),
            SigningKey::Ed => include_str!("test_ed.pem"),
            SigningKey::Foreign => include_str!("foreign_key.pem"),
        }
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&k| k == self)
            .expect("listed key")
    }

    /// The (cached) `jsonwebtoken` encoding key.
    fn encoding_key(self) -> &'static EncodingKey {
        static KEYS: [OnceLock<EncodingKey>; 5] = [const { OnceLock::new() }; 5];
        KEYS[self.index()].get_or_init(|| {
            let pem = self.private_pem().as_bytes();
            match self.alg() {
                Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
                _ => EncodingKey::from_rsa_pem(pem),
            }
            .unwrap_or_else(|e| panic!("test key {self:?}: {e}"))
        })
    }

    fn public_params(self) -> PublicParams {
        match self {
            SigningKey::Rsa1 => PublicParams::Rsa {
                n: "5nFUco79hJa4shZugabjX1jMwdI0U5LNkCukQcT5WrSu4bdwZv5XiBi1y7GbNlZz0MyZKQ-myDAz8TJIz-L6ysfCSibOQEm5dQX5HK39PXJHWx-xyzsdyKEoNq0ItrpxQJuxKu71n6xrxUA7RVGPCq4ba2-Ca7_DR_YQe5lS7C17EWZsgMhgRBDm-_9UwANaIDrCfTWEj5hxNaOmExjcfr4BNOEee75fEvqUS8xKQFjvGt7AAXzH43WBlWD7uZxaW-eRnqqKWoc7sBP5qwUV_qV4juMH7LZrK6xUHEGS2D2dFjUDs3nTo9Nx6Os_24p-4kP-lTlqhCc4wO7IfMw4Ew",
                e: "AQAB",
            },
            SigningKey::Rsa2 => PublicParams::Rsa {
                n: "4cXswF_Wj8gdtMvtNK2_LnOAeAZOqWL-WTY37eU1jLX3XwgJF19F_UGWYUOnZpm-JWRPN8cDLIzdQmSRaEz8L8ZxcBTEAHc8xj9eNJAgbKdgY0wwJJReeIBxo8NEJb9NTx2aisbd3x0fl4-tUUagyH_sbseyQqmOcD8oMUTgWW0inIH2bQs2rC7lHKTxm2wrQ5GGxyfwEqunKZVYDP7zg101lDd5hagle9lUim0-QD82T8gTfYxkWx1_sk3Br2jCQKtzSkfod_w97A7mjG7emGKMNGqHYm91LuhKK7FLa6_HdcchJ2KQy-qjppU-IVsRTvKLD4Q5x0BTDGntQeDXQQ",
                e: "AQAB",
            },
            SigningKey::Foreign => PublicParams::Rsa {
                n: "5Xv3sJkWDEUVWnr0-jdCwYlRM-hlgTgvlcG-m8zxr-65xiWrSS5GrFDcGkOWwPpSHcAsWD7tSpxIoobhdtmvaZYfgTb4XjGjHByRzYOHxOYtkmxrBTbNC0LcjpYSlp9NuSxsQ3uOIq9tPEzXwtCptrSg2mfj0fRKS11N00LbG8Cfw7F5HW4ToKrXpLHyaC3bINsuvNkK-A3Vs3uXjmaykEZYt7zWl80VIWTE_aupNFrDJhHMZjmBHyXm7HLgrsJPjRgTEXFkk0lLXpPI4TIQ-QARImhOITnxHlmu2XEg0xGPK6zEjTwv9qHmGbYZ46l0vKK4Wq5Wh9Yz7ytuhWDXaw",
                e: "AQAB",
            },
            SigningKey::Ec => PublicParams::Ec {
                x: "OhkjEx-PyTMAakS53JcSqIu8sr8Ods_NfMRPX_HLySE",
                y: "PLe-4fL1RN1KUhMKmIOx8nLYuJD_6Y4ZqFJI4rvrx0c",
            },
            SigningKey::Ed => PublicParams::Ed {
                x: "3i0D0GnjUN9VYMI7xkHNWUnGz4AvifLvnUGpTiNbMNI",
            },
        }
    }

    /// The public JWK of this key as JSON.
    fn jwk(self) -> Value {
        match self.public_params() {
            PublicParams::Rsa { n, e } => json!({
                "kty": "RSA",
                "kid": self.kid(),
                "alg": "RS256",
                "use": "sig",
                "n": n,
                "e": e,
            }),
            PublicParams::Ec { x, y } => json!({
                "kty": "EC",
                "crv": "P-256",
                "kid": self.kid(),
                "alg": "ES256",
                "use": "sig",
                "x": x,
                "y": y,
            }),
            PublicParams::Ed { x } => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "kid": self.kid(),
                "alg": "EdDSA",
                "use": "sig",
                "x": x,
            }),
        }
    }
}

/// A JWKS document `{"keys":[...]}` with the public JWKs of `keys`, in
/// order: RSA keys as `kty` "RSA", `kid`, `alg` "RS256", `use` "sig", `n`,
/// `e`; the EC key as `kty` "EC", `crv` "P-256", `x`, `y`, `kid`, `alg`
/// "ES256"; the Ed25519 key as `kty` "OKP", `crv` "Ed25519", `x`, `kid`,
/// `alg` "EdDSA" (all with `use` "sig"). [`SigningKey::Foreign`] is only
/// published when listed explicitly (under kid `test-key-1`, like
/// [`SigningKey::Rsa1`]).
pub fn jwks_json(keys: &[SigningKey]) -> String {
    let keys: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
    json!({ "keys": keys }).to_string()
}

/// Signs `claims` as a compact JWS with `key` (its algorithm), header `kid`
/// = `kid` or, if `None`, the key's own kid.
pub(crate) fn sign_with(key: SigningKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg());
    header.kid = Some(kid.unwrap_or(key.kid()).to_string());
    jsonwebtoken::encode(&header, claims, key.encoding_key()).expect("JWT signing")
}

/// An unsecured JWT (`alg` "none") of `claims` with an empty signature.
pub(crate) fn unsigned(claims: &Value) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation};

    fn verify(
        jwt: &str,
        jwk_key: &DecodingKey,
        alg: Algorithm,
    ) -> jsonwebtoken::errors::Result<Value> {
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(jwt, jwk_key, &validation).map(|d| d.claims)
    }

    #[test]
    fn published_jwks_verify_jwts_of_the_matching_private_keys() {
        let claims = json!({"sub": "alice", "n": 1});
        let set: JwkSet = serde_json::from_str(&jwks_json(&SigningKey::ALL)).unwrap();
        assert_eq!(set.keys.len(), SigningKey::ALL.len());
        for (key, jwk) in SigningKey::ALL.iter().zip(&set.keys) {
            assert_eq!(jwk.common.key_id.as_deref(), Some(key.kid()));
            let decoding = DecodingKey::from_jwk(jwk).unwrap();
            let jwt = sign_with(*key, None, &claims);
            let header = jsonwebtoken::decode_header(&jwt).unwrap();
            assert_eq!(header.alg, key.alg());
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_eq!(
                verify(&jwt, &decoding, key.alg()).unwrap(),
                claims,
                "{key:?}"
            );
        }
        // Each JWK verifies only its own key's signatures.
        for (i, key) in SigningKey::ALL.iter().enumerate() {
            let jwt = sign_with(*key, None, &claims);
            for (j, jwk) in set.keys.iter().enumerate() {
                if i != j && SigningKey::ALL[j].alg() == key.alg() {
                    let decoding = DecodingKey::from_jwk(jwk).unwrap();
                    assert!(
                        verify(&jwt, &decoding, key.alg()).is_err(),
                        "{key:?} vs {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn foreign_jwt_names_rsa1_kid_but_does_not_verify_with_its_jwk() {
        let set: JwkSet = serde_json::from_str(&jwks_json(&[SigningKey::Rsa1])).unwrap();
        let rsa1 = DecodingKey::from_jwk(set.find(SigningKey::Rsa1.kid()).unwrap()).unwrap();
        let jwt = sign_with(SigningKey::Foreign, None, &json!({"sub": "mallory"}));
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some("test-key-1"));
        assert_eq!(header.alg, Algorithm::RS256);
        assert!(verify(&jwt, &rsa1, Algorithm::RS256).is_err());
        let own = sign_with(SigningKey::Rsa1, None, &json!({"sub": "alice"}));
        assert!(verify(&own, &rsa1, Algorithm::RS256).is_ok());
    }

    #[test]
    fn rsa1_jwk_matches_the_committed_public_pem() {
        let pem = DecodingKey::from_rsa_pem(include_bytes!("test_key.pub.pem")).unwrap();
        let jwt = sign_with(SigningKey::Rsa1, None, &json!({"sub": "alice"}));
        assert!(verify(&jwt, &pem, Algorithm::RS256).is_ok());
    }

    #[test]
    fn jwk_members() {
        let v: Value = serde_json::from_str(&jwks_json(&[
            SigningKey::Rsa2,
            SigningKey::Ec,
            SigningKey::Ed,
        ]))
        .unwrap();
        let keys = v["keys"].as_array().unwrap();
        assert_eq!(keys[0]["kty"], "RSA");
        assert_eq!(keys[0]["kid"], "test-key-2");
        assert_eq!(keys[0]["alg"], "RS256");
        assert_eq!(keys[0]["use"], "sig");
        assert_eq!(keys[0]["e"], "AQAB");
        assert_eq!(keys[1]["kty"], "EC");
        assert_eq!(keys[1]["crv"], "P-256");
        assert_eq!(keys[1]["alg"], "ES256");
        assert_eq!(keys[1]["kid"], "test-ec-1");
        assert_eq!(keys[2]["kty"], "OKP");
        assert_eq!(keys[2]["crv"], "Ed25519");
        assert_eq!(keys[2]["alg"], "EdDSA");
        assert_eq!(keys[2]["kid"], "test-ed-1");
        for k in keys {
            for member in ["n", "e", "x", "y"] {
                if let Some(s) = k.get(member).and_then(Value::as_str) {
                    assert!(
                        !s.contains(['=', '+', '/']),
                        "base64url without padding: {s}"
                    );
                }
            }
        }
        assert_eq!(jwks_json(&[]), r#"{"keys":[]}"#);
    }

    #[test]
    fn unsigned_jwt_has_alg_none_and_empty_signature() {
        let jwt = unsigned(&json!({"sub": "eve"}));
        assert!(jwt.ends_with('.'));
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| {
            serde_json::from_slice::<Value>(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(dec(parts[0]), json!({"alg": "none", "typ": "JWT"}));
        assert_eq!(dec(parts[1]), json!({"sub": "eve"}));
    }
}

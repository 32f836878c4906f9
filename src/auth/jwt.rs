//! JWTs, as Feast's SDK sends them with `auth: {type: kubernetes}` (the service-account token,
//! or `LOCAL_K8S_TOKEN`) or `type: oidc`: verified with the `jsonwebtoken` crate against the
//! keys of `auth_jwt_keys`, one file that is either
//!
//! - a PEM public key (RSA: RS*/PS*, EC: ES256/ES384, Ed25519: EdDSA),
//! - a JWKS (`{"keys": [...]}`; a token's `kid` picks the key, otherwise each key whose
//!   algorithm matches is tried), or
//! - an HMAC secret (anything else; at least 32 bytes, surrounding whitespace ignored): HS256/384/512.
//!
//! `exp` is required, `nbf` is checked when present (60 s leeway for both), `iss` and `aud`
//! when configured. The claim `auth_jwt_scopes_claim` (a dotted path, e.g. `roles` or
//! `realm_access.roles`; an array of strings or a space-separated string like OAuth's `scope`)
//! gives the scopes: the values `read`, `write` and `admin` count, others are ignored. The
//! token's `sub` names it in logs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

use super::{Principal, Scope, Scopes};

/// Where JWT keys come from and what a token must say.
#[derive(Debug, Clone)]
pub struct JwtOptions {
    pub keys: PathBuf,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub scopes_claim: String,
}

/// Why the key file cannot be used (names the file, never key material).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct JwtKeyError {
    path: String,
    problem: String,
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// The keys and rules in force.
pub struct JwtVerifier {
    keys: Vec<Key>,
    options: JwtOptions,
}

const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

impl JwtVerifier {
    pub fn load(options: &JwtOptions) -> Result<JwtVerifier, JwtKeyError> {
        let error = |problem: String| JwtKeyError {
            path: options.keys.display().to_string(),
            problem,
        };
        let bytes = std::fs::read(&options.keys).map_err(|e| error(format!("cannot read: {e}")))?;
        let keys = parse_keys(&bytes).map_err(error)?;
        Ok(JwtVerifier {
            keys,
            options: options.clone(),
        })
    }

    /// The principal a token stands for, or why it does not stand for one (no secret in it).
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, String> {
        let header = decode_header(token).map_err(|_| "not a JWT".to_string())?;
        let candidates = self.keys.iter().filter(|k| match (&header.kid, &k.kid) {
            (Some(want), Some(have)) => want == have,
            _ => k.algorithms.contains(&header.alg),
        });
        let mut last = format!(
            "no key of auth_jwt_keys verifies {:?} tokens{}",
            header.alg,
            header
                .kid
                .as_ref()
                .map(|k| format!(" with kid '{k}'"))
                .unwrap_or_default()
        );
        for key in candidates {
            let mut validation = Validation::new(header.alg);
            validation.algorithms = key.algorithms.clone();
            validation.validate_nbf = true;
            match &self.options.audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            if let Some(iss) = &self.options.issuer {
                validation.set_issuer(&[iss]);
            }
            match decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => return Ok(Arc::new(self.principal(&data.claims))),
                Err(e) => last = describe(e.kind()),
            }
        }
        Err(last)
    }

    fn principal(&self, claims: &serde_json::Value) -> Principal {
        let mut value = claims;
        for part in self.options.scopes_claim.split('.') {
            value = &value[part];
        }
        let names: Vec<&str> = match value {
            serde_json::Value::String(s) => s.split_whitespace().collect(),
            serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        let scopes = names
            .iter()
            .filter_map(|n| n.parse::<Scope>().ok())
            .fold(Scopes::NONE, Scopes::with);
        let sub = claims["sub"].as_str().unwrap_or("?");
        Principal {
            name: format!("jwt:{sub}"),
            scopes,
            views: None,
        }
    }
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "the token has expired (exp)".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidIssuer => "the token's issuer (iss) is not auth_jwt_issuer".into(),
        K::InvalidAudience => "the token's audience (aud) is not auth_jwt_audience".into(),
        K::MissingRequiredClaim(c) => format!("the token has no '{c}' claim"),
        K::InvalidSignature => "the token's signature does not verify".into(),
        K::InvalidAlgorithm => "the token's algorithm does not match the key".into(),
        _ => "not a valid JWT".into(),
    }
}

fn parse_keys(bytes: &[u8]) -> Result<Vec<Key>, String> {
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN") {
        let pem = trimmed.as_bytes();
        let (key, algorithms) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            (k, RSA)
        } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
            (k, EC)
        } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
            (k, &[Algorithm::EdDSA][..])
        } else {
            return Err("not a PEM RSA, EC or Ed25519 public key".into());
        };
        return Ok(vec![Key {
            kid: None,
            key,
            algorithms: algorithms.to_vec(),
        }]);
    }
    if trimmed.starts_with('{') {
        let set: JwkSet = serde_json::from_str(trimmed).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::with_capacity(set.keys.len());
        for (i, jwk) in set.keys.iter().enumerate() {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))?;
            let algorithms = match jwk.common.key_algorithm.map(Algorithm::try_from) {
                Some(Ok(alg)) => vec![alg],
                _ => match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => RSA.to_vec(),
                    AlgorithmParameters::EllipticCurve(_) => EC.to_vec(),
                    AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                    _ => HMAC.to_vec(),
                },
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                key,
                algorithms,
            });
        }
        if keys.is_empty() {
            return Err("the JWKS has no keys".into());
        }
        return Ok(keys);
    }
    if trimmed.len() < 32 {
        return Err(format!(
            "an HMAC secret must be at least 32 bytes (this one has {})",
            trimmed.len()
        ));
    }
    Ok(vec![Key {
        kid: None,
        key: DecodingKey::from_secret(trimmed.as_bytes()).map_err(|e| e.to_string())?,
        algorithms: HMAC.to_vec(),
    }])
}

/// Whether a bearer token has a JWT's shape (three dot-separated parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// The options, with the key file at `path`.
pub fn options(path: &Path, issuer: &str, audience: &str, scopes_claim: &str) -> JwtOptions {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    JwtOptions {
        keys: path.to_path_buf(),
        issuer: some(issuer),
        audience: some(audience),
        scopes_claim: scopes_claim.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn verifier(
        file: &str,
        issuer: &str,
        audience: &str,
        claim: &str,
    ) -> (tempfile::TempDir, JwtVerifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, file).unwrap();
        let v = JwtVerifier::load(&options(&path, issuer, audience, claim)).unwrap();
        (dir, v)
    }

    fn hs(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn hmac_tokens_give_scopes_from_the_claim_and_are_checked_in_time() {
        let (_d, v) = verifier(&format!("{SECRET}\n"), "", "", "roles");
        let p = v
            .verify(&hs(
                json!({"sub": "svc", "exp": now() + 600, "roles": ["read", "other"]}),
            ))
            .unwrap();
        assert_eq!(p.name, "jwt:svc");
        assert!(p.scopes.has(Scope::Read) && !p.scopes.has(Scope::Write));
        let e = v
            .verify(&hs(
                json!({"sub": "svc", "exp": now() - 3600, "roles": ["read"]}),
            ))
            .unwrap_err();
        assert!(e.contains("expired"), "{e}");
        let e = v
            .verify(&hs(
                json!({"sub": "svc", "exp": now() + 600, "nbf": now() + 3600}),
            ))
            .unwrap_err();
        assert!(e.contains("not valid yet"), "{e}");
        let e = v.verify(&hs(json!({"sub": "svc"}))).unwrap_err();
        assert!(e.contains("'exp'"), "{e}");
        let forged = encode(
            &Header::default(),
            &json!({"exp": now() + 600}),
            &EncodingKey::from_secret(&[7u8; 40]).unwrap(),
        )
        .unwrap();
        assert!(v.verify(&forged).unwrap_err().contains("signature"));
        assert_eq!(v.verify("a.b.c").unwrap_err(), "not a JWT");
    }

    #[test]
    fn issuer_audience_and_a_nested_space_separated_claim() {
        let (_d, v) = verifier(SECRET, "https://issuer", "featgrid", "realm.scope");
        let good = json!({"exp": now() + 600, "iss": "https://issuer", "aud": "featgrid", "realm": {"scope": "read write"}});
        let p = v.verify(&hs(good.clone())).unwrap();
        assert!(
            p.scopes.has(Scope::Read) && p.scopes.has(Scope::Write) && !p.scopes.has(Scope::Admin)
        );
        let mut bad = good.clone();
        bad["iss"] = json!("https://elsewhere");
        assert!(v.verify(&hs(bad)).unwrap_err().contains("iss"));
        let mut bad = good;
        bad["aud"] = json!("other");
        assert!(v.verify(&hs(bad)).unwrap_err().contains("aud"));
    }

    #[test]
    fn pem_and_jwks_keys_verify_es256_tokens() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let claims = json!({"sub": "k8s", "exp": now() + 600, "roles": ["admin"]});
        let token = encode(&Header::new(Algorithm::ES256), &claims, &signing).unwrap();
        let (_d, v) = verifier(&pair.public_key_pem(), "", "", "roles");
        assert!(v.verify(&token).unwrap().scopes.has(Scope::Admin));
        // An HS256 token is not accepted by an EC key (no algorithm confusion).
        assert!(v.verify(&hs(claims.clone())).is_err());

        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some("k1".into());
        let jwks = json!({"keys": [jwk]}).to_string();
        let (_d, v) = verifier(&jwks, "", "", "roles");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        assert!(v
            .verify(&encode(&header, &claims, &signing).unwrap())
            .is_ok());
        header.kid = Some("k2".into());
        let e = v
            .verify(&encode(&header, &claims, &signing).unwrap())
            .unwrap_err();
        assert!(e.contains("kid 'k2'"), "{e}");
    }

    #[test]
    fn bad_key_files_are_refused() {
        for (file, want) in [
            ("short", "at least 32 bytes"),
            ("{\"keys\": []}", "no keys"),
            ("{\"nope\": 1}", "not a JWKS"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "not a PEM",
            ),
        ] {
            let e = parse_keys(file.as_bytes()).err().unwrap();
            assert!(e.contains(want), "{file}: {e}");
        }
    }
}

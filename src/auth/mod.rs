//! Who may read and write. A request names itself with `Authorization: Bearer <token>`: a
//! token from the token file ([`tokens`]) or a JWT signed by a configured key ([`jwt`]). Each
//! route needs one scope:
//!
//! | scope | routes |
//! |---|---|
//! | `read` | `/get-online-features`, `/native/v1/get-online-features` |
//! | `write` | `/push`, `/write-to-online-store`, `/native/v1/push` |
//! | `admin` | `/admin/*`, `/registry`, `/stats`, and `/metrics` when `metrics_require_auth` |
//!
//! `/health` is always open. A missing or unknown token answers 401, a token without the
//! scope (or, for a token limited to some feature views, a request touching another view)
//! 403. With neither tokens nor JWT keys configured every request is let through ([`Auth::enabled`]),
//! and [`check_exposure`] then keeps the server on loopback unless `--insecure` is given.
//!
//! The route check is a middleware on each resource ([`require`], applied in
//! [`crate::build_app`]) so it sees the route the router chose, whatever the path's spelling;
//! the view check runs in the handlers once they know the views ([`check_views`]). Secrets
//! never reach logs, errors or metrics: only a token's name does.

pub mod jwt;
pub mod tokens;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};

use crate::error::ApiError;
use crate::registry::{Registry, ViewId};
use jwt::{JwtKeyError, JwtOptions, JwtVerifier};
use tokens::{TokenFileError, TokenTable};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "'{other}' is not a scope: expected read, write or admin"
            )),
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);

    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    pub fn has(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

/// Who a request comes from, once authenticated: a name for logs, scopes, and the feature
/// views it may touch (`None`: all).
#[derive(Debug)]
pub struct Principal {
    pub name: String,
    pub scopes: Scopes,
    pub views: Option<HashSet<String>>,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Scope(Scope),
    /// `/metrics`: `admin` when `metrics_require_auth`, otherwise nothing.
    Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Tokens(#[from] TokenFileError),
    #[error(transparent)]
    JwtKeys(#[from] JwtKeyError),
}

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    pub tokens_file: Option<PathBuf>,
    pub jwt: Option<JwtOptions>,
    pub metrics_require_auth: bool,
}

/// The credentials in force; [`Auth::reload`] swaps them (SIGHUP) without a restart.
pub struct Auth {
    options: AuthOptions,
    tokens: RwLock<Arc<TokenTable>>,
    jwt: RwLock<Option<Arc<JwtVerifier>>>,
}

impl Auth {
    /// Loads the configured credentials; an unreadable or invalid file refuses the start.
    pub fn load(options: AuthOptions) -> Result<Auth, AuthError> {
        let tokens = load_tokens(options.tokens_file.as_deref())?;
        let jwt = load_jwt(options.jwt.as_ref())?;
        Ok(Auth {
            options,
            tokens: RwLock::new(Arc::new(tokens)),
            jwt: RwLock::new(jwt),
        })
    }

    /// Whether any credential source is configured (then every guarded route needs one).
    pub fn enabled(&self) -> bool {
        self.options.tokens_file.is_some() || self.options.jwt.is_some()
    }

    /// Re-reads the token file and the JWT keys. On failure the credentials in force stay,
    /// and the error (which names the file and entry, never a secret) is returned for the log.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let tokens = load_tokens(self.options.tokens_file.as_deref())?;
        let jwt = load_jwt(self.options.jwt.as_ref())?;
        let count = tokens.len();
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tokens);
        *self.jwt.write().unwrap_or_else(|e| e.into_inner()) = jwt;
        Ok(count)
    }

    /// The principal a request may act as for `need`; `None` when nothing is required.
    pub fn check(
        &self,
        need: Need,
        authorization: Option<&header::HeaderValue>,
    ) -> Result<Option<Arc<Principal>>, ApiError> {
        let scope = match need {
            Need::Scope(scope) => scope,
            Need::Metrics if self.options.metrics_require_auth => Scope::Admin,
            Need::Metrics => return Ok(None),
        };
        if !self.enabled() {
            return Ok(None);
        }
        let token = bearer(authorization)?;
        let principal = self.identify(token)?;
        if !principal.scopes.has(scope) {
            tracing::info!(token = %principal.name, scope = scope.as_str(), "request refused: missing scope");
            return Err(forbidden(format!(
                "token '{}' does not have the '{}' scope this route needs",
                principal.name,
                scope.as_str()
            )));
        }
        Ok(Some(principal))
    }

    /// The principal behind a token: the token file's entry, or a verified JWT.
    fn identify(&self, token: &str) -> Result<Arc<Principal>, ApiError> {
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(principal) = tokens.find(token) {
            return Ok(principal.clone());
        }
        let jwt = self.jwt.read().unwrap_or_else(|e| e.into_inner()).clone();
        match jwt {
            Some(verifier) if jwt::looks_like_jwt(token) => verifier.verify(token).map_err(|why| {
                tracing::info!(reason = %why, "request refused: JWT not accepted");
                unauthorized(format!("Invalid or expired access token: {why}"))
            }),
            _ => {
                tracing::info!("request refused: unknown token");
                Err(unauthorized(
                    "the bearer token is not valid (unknown, revoked or expired)",
                ))
            }
        }
    }
}

fn load_jwt(options: Option<&JwtOptions>) -> Result<Option<Arc<JwtVerifier>>, AuthError> {
    Ok(match options {
        Some(options) => Some(Arc::new(JwtVerifier::load(options)?)),
        None => None,
    })
}

fn load_tokens(path: Option<&Path>) -> Result<TokenTable, AuthError> {
    Ok(match path {
        Some(path) => TokenTable::load(path)?,
        None => TokenTable::default(),
    })
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(authorization: Option<&header::HeaderValue>) -> Result<&str, ApiError> {
    let Some(value) = authorization else {
        return Err(unauthorized(
            "this route needs a token: send Authorization: Bearer <token>",
        ));
    };
    let value = value.to_str().unwrap_or_default().trim();
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(unauthorized(
            "the Authorization header must be 'Bearer <token>'",
        )),
    }
}

pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The per-resource middleware: answers 401/403 before the body is read, or hands the
/// request on with its [`Principal`] in the request extensions.
pub async fn require<B: MessageBody>(
    need: Need,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let checked = match req.app_data::<web::Data<Auth>>() {
        Some(auth) => auth.check(need, req.headers().get(header::AUTHORIZATION)),
        None => Ok(None),
    };
    match checked {
        Ok(principal) => {
            if let Some(principal) = principal {
                req.extensions_mut().insert(principal);
            }
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// 403 unless the request's token may touch every one of `views`.
pub fn check_views(
    req: &HttpRequest,
    registry: &Registry,
    views: impl IntoIterator<Item = ViewId>,
) -> Result<(), ApiError> {
    let extensions = req.extensions();
    let Some(principal) = extensions.get::<Arc<Principal>>() else {
        return Ok(());
    };
    let Some(allowed) = &principal.views else {
        return Ok(());
    };
    for id in views {
        let name = &registry.feature_views[id].name;
        if !allowed.contains(name) {
            tracing::info!(token = %principal.name, view = %name, "request refused: view not allowed");
            return Err(forbidden(format!(
                "token '{}' may not use feature view '{name}'",
                principal.name
            )));
        }
    }
    Ok(())
}

/// Safe by default: without credentials, only a loopback address may be bound, unless the
/// operator says `--insecure`.
pub fn check_exposure(
    bind: SocketAddr,
    auth_configured: bool,
    insecure: bool,
) -> Result<(), String> {
    if auth_configured || insecure || bind.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "{bind} is not a loopback address and no credentials are configured (auth_tokens, auth_jwt_keys): \
         anyone who can reach it could read and write every feature. Configure tokens \
         (`featgrid token new`), bind 127.0.0.1, or start with --insecure to serve without authentication"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_served_without_credentials_unless_insecure() {
        let public: SocketAddr = "0.0.0.0:6566".parse().unwrap();
        let e = check_exposure(public, false, false).unwrap_err();
        assert!(e.contains("--insecure"), "{e}");
        assert!(check_exposure(public, false, true).is_ok());
        assert!(check_exposure(public, true, false).is_ok());
        for local in ["127.0.0.1:0", "[::1]:6566", "127.5.0.1:80"] {
            assert!(check_exposure(local.parse().unwrap(), false, false).is_ok());
        }
        assert!(check_exposure("[::]:6566".parse().unwrap(), false, false).is_err());
    }

    #[test]
    fn bearer_header_forms() {
        let v = |s: &str| header::HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(Some(&v("Bearer abc"))).unwrap(), "abc");
        assert_eq!(bearer(Some(&v("bearer  abc "))).unwrap(), "abc");
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            let e = bearer(Some(&v(bad))).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad}");
            assert!(!e.message.contains("abc"), "the secret is not echoed: {e}");
        }
        assert_eq!(bearer(None).unwrap_err().code, "unauthorized");
    }
}

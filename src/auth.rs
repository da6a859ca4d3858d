//! Who is calling: the principal every service function takes.
//!
//! Without authentication configured the server is single-tenant: every
//! caller is [`Principal::development`]. The authentication issue fills the
//! principal from a verified token instead; nothing below the HTTP layer
//! changes.

use uuid::Uuid;

/// The tenant that owns the built-in catalog, visible to every tenant.
pub const SYSTEM_TENANT: Uuid = Uuid::nil();

/// The one tenant of single-tenant (development) mode.
pub const DEFAULT_TENANT: Uuid = Uuid::from_u128(1);

/// A role a principal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May read.
    Viewer,
    /// May report status, progress, artifacts and checkpoints, and ask humans.
    Agent,
    /// May run lifecycle changes and answer HITL requests.
    Operator,
    /// May import catalogs and force changes.
    Admin,
}

/// The caller of a request, as established by the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every read and write is scoped to.
    pub tenant_id: Uuid,
    /// The user (or agent) id, recorded as the actor of events.
    pub user_id: String,
    /// What the principal may do.
    pub roles: Vec<Role>,
}

impl Principal {
    /// The caller in single-tenant mode: the default tenant, every role.
    pub fn development() -> Self {
        Principal {
            tenant_id: DEFAULT_TENANT,
            user_id: "developer".to_string(),
            roles: vec![Role::Viewer, Role::Agent, Role::Operator, Role::Admin],
        }
    }

    /// Refuses with `FORBIDDEN` unless the principal holds `role`; `what`
    /// names the action in the message.
    pub fn require(&self, role: Role, what: &str) -> Result<(), crate::error::AppError> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(crate::error::AppError::Forbidden(format!(
                "only the {role:?} role may {what}"
            )))
        }
    }

    /// A principal for the system itself (start-up catalog load, sweepers).
    pub fn system() -> Self {
        Principal {
            tenant_id: SYSTEM_TENANT,
            user_id: "system".to_string(),
            roles: vec![Role::Admin],
        }
    }
}

/// Verifies bearer tokens (JWT, with the `jsonwebtoken` crate), or — with
/// no key configured — lets every caller in as [`Principal::development`].
#[derive(Clone, Default)]
pub struct Authenticator {
    verifier: Option<std::sync::Arc<Verifier>>,
}

struct Verifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

/// The claims Cerebral reads. `exp`, `sub` and `tenant_id` are required.
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    tenant_id: String,
    #[serde(default)]
    roles: Vec<String>,
    exp: u64,
}

/// A verified caller and when its token stops being valid (Unix seconds;
/// `None` in development mode).
pub type Verified = (Principal, Option<u64>);

impl Authenticator {
    /// Reads the key settings. Both a secret and a public key is an error,
    /// as is neither with `require_auth`; neither without it is development
    /// mode, logged loudly.
    pub fn from_config(c: &crate::config::Config) -> anyhow::Result<Self> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let (key, alg) = match (&c.jwt_secret, &c.jwt_public_key) {
            (Some(_), Some(_)) => {
                anyhow::bail!("set CEREBRAL_JWT_SECRET or CEREBRAL_JWT_PUBLIC_KEY, not both")
            }
            (Some(secret), None) => {
                if secret.len() < 32 {
                    anyhow::bail!("CEREBRAL_JWT_SECRET must be at least 32 bytes");
                }
                (
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            (None, Some(pem)) => {
                let text = if pem.trim_start().starts_with("-----BEGIN") {
                    pem.clone()
                } else {
                    std::fs::read_to_string(pem).map_err(|e| {
                        anyhow::anyhow!("cannot read CEREBRAL_JWT_PUBLIC_KEY {pem}: {e}")
                    })?
                };
                match DecodingKey::from_rsa_pem(text.as_bytes()) {
                    Ok(k) => (k, Algorithm::RS256),
                    Err(_) => (
                        DecodingKey::from_ec_pem(text.as_bytes()).map_err(|e| {
                            anyhow::anyhow!("CEREBRAL_JWT_PUBLIC_KEY is neither an RSA nor an EC public key: {e}")
                        })?,
                        Algorithm::ES256,
                    ),
                }
            }
            (None, None) => {
                if c.require_auth {
                    anyhow::bail!(
                        "CEREBRAL_REQUIRE_AUTH is set but no CEREBRAL_JWT_SECRET or CEREBRAL_JWT_PUBLIC_KEY is"
                    );
                }
                tracing::warn!(
                    tenant = %DEFAULT_TENANT,
                    "NO AUTHENTICATION: no CEREBRAL_JWT_SECRET or CEREBRAL_JWT_PUBLIC_KEY is set, so every caller is the single development tenant with every role; never expose this server"
                );
                return Ok(Authenticator::default());
            }
        };
        // One algorithm only: `alg: none` and algorithm swaps are refused.
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        if let Some(iss) = &c.jwt_issuer {
            validation.set_issuer(&[iss]);
        }
        match &c.jwt_audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Authenticator {
            verifier: Some(std::sync::Arc::new(Verifier { key, validation })),
        })
    }

    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// Verifies one token. Every failure is the same `UNAUTHENTICATED` to
    /// the caller (the reason is logged at debug level only).
    pub fn verify(&self, token: &str) -> Result<Verified, crate::error::AppError> {
        let Some(v) = &self.verifier else {
            return Ok((Principal::development(), None));
        };
        let data =
            jsonwebtoken::decode::<Claims>(token.trim(), &v.key, &v.validation).map_err(|e| {
                tracing::debug!(error = %e, "bearer token refused");
                crate::error::AppError::Unauthenticated
            })?;
        let c = data.claims;
        let tenant_id = Uuid::parse_str(&c.tenant_id)
            .ok()
            // The nil tenant is the system's (built-in catalog).
            .filter(|t| *t != SYSTEM_TENANT)
            .ok_or(crate::error::AppError::Unauthenticated)?;
        if c.sub.is_empty() {
            return Err(crate::error::AppError::Unauthenticated);
        }
        let roles = c
            .roles
            .iter()
            .filter_map(|r| match r.as_str() {
                "viewer" => Some(Role::Viewer),
                "agent" => Some(Role::Agent),
                "operator" => Some(Role::Operator),
                "admin" => Some(Role::Admin),
                // Unknown roles grant nothing; tokens may carry other
                // systems' roles too.
                _ => None,
            })
            .collect();
        Ok((
            Principal {
                tenant_id,
                user_id: c.sub,
                roles,
            },
            Some(c.exp),
        ))
    }

    /// The caller of an HTTP request: `Authorization: Bearer <jwt>`.
    pub fn from_headers(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Verified, crate::error::AppError> {
        if !self.enabled() {
            return Ok((Principal::development(), None));
        }
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(crate::error::AppError::Unauthenticated)?;
        self.verify(bearer(value).ok_or(crate::error::AppError::Unauthenticated)?)
    }

    /// The caller of a WebSocket, from the `connection_init` payload
    /// (`{"Authorization": "Bearer …"}` or `{"authToken": "…"}`), else from
    /// the upgrade request's header.
    pub fn from_init(
        &self,
        payload: &serde_json::Value,
        upgrade: Option<&Verified>,
    ) -> Result<Verified, crate::error::AppError> {
        if !self.enabled() {
            return Ok((Principal::development(), None));
        }
        let field = |k: &str| payload.get(k).and_then(|v| v.as_str());
        let token = field("Authorization")
            .or_else(|| field("authorization"))
            .and_then(bearer)
            .or_else(|| field("authToken"));
        match (token, upgrade) {
            (Some(t), _) => self.verify(t),
            (None, Some(v)) => Ok(v.clone()),
            (None, None) => Err(crate::error::AppError::Unauthenticated),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

//! Who is calling: the principal every service function takes.
//!
//! Without authentication configured the server is single-tenant: every
//! caller is [`Principal::development`]. The authentication issue fills the
//! principal from a verified token instead; nothing below the HTTP layer
//! changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::AppError;

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

impl Role {
    /// The role's name as tokens carry it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    fn parse(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Agent, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.name() == name)
    }
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

    /// Whether the principal may run an action open to `allowed`. Admins
    /// may run everything.
    pub fn may(&self, allowed: &[Role]) -> bool {
        self.roles
            .iter()
            .any(|r| *r == Role::Admin || allowed.contains(r))
    }

    /// Refuses with `FORBIDDEN` unless the principal holds `role` (or is an
    /// admin); `what` names the action in the message.
    pub fn require(&self, role: Role, what: &str) -> Result<(), AppError> {
        if self.may(&[role]) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
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
    verifier: Option<Arc<Verifier>>,
}

struct Verifier {
    keys: Keys,
    /// `iss`, `aud`, leeway and required claims; the algorithm is set per key.
    validation: Validation,
}

enum Keys {
    /// One configured key (secret or PEM) and its one algorithm.
    Static(DecodingKey, Algorithm),
    /// Keys of a JWKS document, by `kid`.
    Jwks(Arc<Jwks>),
}

/// A JSON Web Key Set fetched over HTTP and cached.
///
/// Lookups of a known `kid` never wait for the network: the key set is
/// read under a short lock that is never held across a fetch, and a set
/// past its age is refetched in the background while the cached keys stay
/// in use. Only one fetch runs at a time; callers that need it (an unknown
/// `kid`, the very first token) wait for that one instead of starting
/// their own.
struct Jwks {
    url: String,
    client: reqwest::Client,
    state: std::sync::RwLock<JwksState>,
    /// Held by the one fetch in progress.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct JwksState {
    keys: Arc<HashMap<String, (DecodingKey, Algorithm)>>,
    /// When the set was last fetched (successfully or not): keeps a flood
    /// of tokens with made-up `kid`s from turning into a flood of requests
    /// to the identity provider.
    fetched: Option<Instant>,
}

/// Least time between two fetches caused by unknown `kid`s.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(5);
/// Age after which the set is fetched again, so a revoked key stops working.
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);

/// Clock skew tolerated on `exp` and `nbf`, in seconds: an identity
/// provider's clock a little ahead of ours must not make fresh tokens fail.
pub const CLOCK_LEEWAY_SECONDS: u64 = 30;

impl Jwks {
    async fn key(self: &Arc<Self>, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        match self.age() {
            // Nothing to serve yet: wait for the first fetch.
            None => self.refresh(JWKS_MAX_AGE).await,
            // Stale: serve what we have while one fetch runs behind.
            Some(age) if age >= JWKS_MAX_AGE => self.refresh_in_background(),
            Some(_) => {}
        }
        if let Some(k) = self.cached(kid) {
            return Some(k);
        }
        // A key rotated in since the last fetch.
        self.refresh(JWKS_MIN_REFETCH).await;
        self.cached(kid)
    }

    fn age(&self) -> Option<Duration> {
        self.state.read().ok()?.fetched.map(|t| t.elapsed())
    }

    fn cached(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        let keys = self.state.read().map(|s| s.keys.clone()).ok()?;
        keys.get(kid).cloned()
    }

    /// Starts a fetch on its own task unless one is running already.
    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(turn) = self.fetching.clone().try_lock_owned() else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            me.fetch_and_store(JWKS_MAX_AGE).await;
            drop(turn);
        });
    }

    /// Fetches the set unless another fetch happened within `min_age`,
    /// waiting for a fetch in progress first (and then, usually, finding
    /// it recent enough).
    async fn refresh(&self, min_age: Duration) {
        let _turn = self.fetching.lock().await;
        self.fetch_and_store(min_age).await;
    }

    /// The fetch itself; the caller holds `fetching`.
    async fn fetch_and_store(&self, min_age: Duration) {
        if self.age().is_some_and(|age| age < min_age) {
            return;
        }
        if let Ok(mut s) = self.state.write() {
            s.fetched = Some(Instant::now());
        }
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
                if let Ok(mut s) = self.state.write() {
                    s.keys = Arc::new(keys);
                }
            }
            // The keys fetched before stay in use.
            Err(e) => tracing::warn!(url = %self.url, error = %e, "cannot fetch JWKS"),
        }
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, (DecodingKey, Algorithm)>> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            // The algorithm a key may verify comes from the key set, never
            // from the token; keys without `alg` get their family's
            // standard one. Symmetric keys have no place in a public set.
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::OctetKey(_), _) => continue,
                (_, Some(a)) => match Algorithm::try_from(a) {
                    Ok(a) => a,
                    Err(_) => continue,
                },
                (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(p), None) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid.clone(), (key, alg));
            }
        }
        Ok(keys)
    }
}

/// The claims Cerebral reads. `exp`, `sub` and `tenant_id` are required
/// (and `iss` and `aud` when configured; `nbf` is checked when present).
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

/// What the authenticator is built from (`crate::app` fills it from the
/// `CEREBRAL_JWT_*`, `CEREBRAL_JWKS_URL` and `CEREBRAL_REQUIRE_AUTH`
/// settings).
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// HS256 shared secret, at least 32 bytes.
    pub jwt_secret: Option<String>,
    /// RS256 or ES256 public key: PEM text, or the path of a PEM file.
    pub jwt_public_key: Option<String>,
    /// JWKS endpoint: `https://`, or `http://` on a loopback host.
    pub jwks_url: Option<String>,
    /// Refuse to start without a key (no development mode).
    pub require_auth: bool,
    /// The `iss` every token must carry, when set.
    pub jwt_issuer: Option<String>,
    /// The `aud` every token must carry, when set.
    pub jwt_audience: Option<String>,
}

impl Authenticator {
    /// Builds the verifier from the key settings. More than one of secret,
    /// public key and JWKS URL is an error, as is none with `require_auth`;
    /// none without it is development mode, logged loudly.
    pub fn new(c: &AuthSettings) -> anyhow::Result<Self> {
        let configured = [
            c.jwt_secret.is_some(),
            c.jwt_public_key.is_some(),
            c.jwks_url.is_some(),
        ];
        let keys = match configured {
            [false, false, false] => {
                if c.require_auth {
                    anyhow::bail!(
                        "CEREBRAL_REQUIRE_AUTH is set but none of CEREBRAL_JWT_SECRET, CEREBRAL_JWT_PUBLIC_KEY and CEREBRAL_JWKS_URL is"
                    );
                }
                tracing::warn!(
                    tenant = %DEFAULT_TENANT,
                    "NO AUTHENTICATION: none of CEREBRAL_JWT_SECRET, CEREBRAL_JWT_PUBLIC_KEY and CEREBRAL_JWKS_URL is set, so every caller is the single development tenant with every role; never expose this server"
                );
                return Ok(Authenticator::default());
            }
            [true, false, false] => {
                let secret = c.jwt_secret.as_deref().unwrap_or_default();
                if secret.len() < 32 {
                    anyhow::bail!("CEREBRAL_JWT_SECRET must be at least 32 bytes");
                }
                Keys::Static(
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            [false, true, false] => {
                let pem = c.jwt_public_key.as_deref().unwrap_or_default();
                let text = if pem.trim_start().starts_with("-----BEGIN") {
                    pem.to_string()
                } else {
                    std::fs::read_to_string(pem).map_err(|e| {
                        anyhow::anyhow!("cannot read CEREBRAL_JWT_PUBLIC_KEY {pem}: {e}")
                    })?
                };
                match DecodingKey::from_rsa_pem(text.as_bytes()) {
                    Ok(k) => Keys::Static(k, Algorithm::RS256),
                    Err(_) => Keys::Static(
                        DecodingKey::from_ec_pem(text.as_bytes()).map_err(|e| {
                            anyhow::anyhow!("CEREBRAL_JWT_PUBLIC_KEY is neither an RSA nor an EC public key: {e}")
                        })?,
                        Algorithm::ES256,
                    ),
                }
            }
            [false, false, true] => {
                let url = c.jwks_url.clone().unwrap_or_default();
                let loopback = jwks_url_is_loopback(&url)?;
                Keys::Jwks(Arc::new(Jwks {
                    url,
                    client: reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        // A redirect must not downgrade a verified HTTPS
                        // fetch to plain HTTP.
                        .https_only(!loopback)
                        .build()?,
                    state: Default::default(),
                    fetching: Default::default(),
                }))
            }
            _ => anyhow::bail!(
                "set only one of CEREBRAL_JWT_SECRET, CEREBRAL_JWT_PUBLIC_KEY and CEREBRAL_JWKS_URL"
            ),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        // jsonwebtoken checks `iss` and `aud` only when a token carries
        // them: a configured one must also be present, or a token minted
        // for any other audience of the same provider would pass.
        let mut required = vec!["exp", "sub"];
        validation.leeway = CLOCK_LEEWAY_SECONDS;
        validation.validate_nbf = true;
        if let Some(iss) = &c.jwt_issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &c.jwt_audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Authenticator {
            verifier: Some(Arc::new(Verifier { keys, validation })),
        })
    }

    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// Verifies one token. Every failure of the token itself is the same
    /// `UNAUTHENTICATED` to the caller (the reason is logged at debug level
    /// only); a valid token granting no role is `FORBIDDEN`.
    pub async fn verify(&self, token: &str) -> Result<Verified, AppError> {
        let Some(v) = &self.verifier else {
            return Ok((Principal::development(), None));
        };
        let token = token.trim();
        let refused = |e: jsonwebtoken::errors::Error| {
            tracing::debug!(error = %e, "bearer token refused");
            AppError::Unauthenticated
        };
        let (key, alg) = match &v.keys {
            Keys::Static(k, a) => (k.clone(), *a),
            Keys::Jwks(set) => {
                let kid = jsonwebtoken::decode_header(token)
                    .map_err(refused)?
                    .kid
                    .ok_or(AppError::Unauthenticated)?;
                set.key(&kid).await.ok_or(AppError::Unauthenticated)?
            }
        };
        // One algorithm per key: `alg: none` and algorithm swaps (an RSA
        // public key used as an HMAC secret) are refused.
        let mut validation = v.validation.clone();
        validation.algorithms = vec![alg];
        let c = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(refused)?
            .claims;
        let tenant_id = Uuid::parse_str(&c.tenant_id)
            .ok()
            // The nil tenant is the system's (built-in catalog).
            .filter(|t| *t != SYSTEM_TENANT)
            .ok_or(AppError::Unauthenticated)?;
        if c.sub.is_empty() {
            return Err(AppError::Unauthenticated);
        }
        let roles = c
            .roles
            .iter()
            // Unknown roles grant nothing; tokens may carry other systems'
            // roles too.
            .filter_map(|r| Role::parse(r))
            .collect::<Vec<_>>();
        if roles.is_empty() {
            // Authenticated but entitled to nothing, not even reading: the
            // token was minted for some other system or by mistake.
            return Err(AppError::Forbidden(
                "the token grants no Cerebral role (viewer, agent, operator or admin)".into(),
            ));
        }
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
    pub async fn from_headers(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Verified, AppError> {
        if !self.enabled() {
            return Ok((Principal::development(), None));
        }
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AppError::Unauthenticated)?;
        self.verify(bearer(value).ok_or(AppError::Unauthenticated)?)
            .await
    }

    /// The caller of a WebSocket, from the `connection_init` payload
    /// (`{"Authorization": "Bearer …"}` or `{"authToken": "…"}`), else from
    /// the upgrade request's header.
    pub async fn from_init(
        &self,
        payload: &serde_json::Value,
        upgrade: Option<&Verified>,
    ) -> Result<Verified, AppError> {
        if !self.enabled() {
            return Ok((Principal::development(), None));
        }
        let field = |k: &str| payload.get(k).and_then(|v| v.as_str());
        let token = field("Authorization")
            .or_else(|| field("authorization"))
            .and_then(bearer)
            .or_else(|| field("authToken"));
        match (token, upgrade) {
            (Some(t), _) => self.verify(t).await,
            (None, Some(v)) => Ok(v.clone()),
            (None, None) => Err(AppError::Unauthenticated),
        }
    }
}

/// Signs an HS256 token with `secret` for `tenant`, valid for `ttl_seconds`
/// (`cerebral token`). Refuses what the server would refuse: a short
/// secret, the nil tenant, unknown roles.
pub fn mint(
    secret: &str,
    tenant: Uuid,
    sub: &str,
    roles: &[String],
    ttl_seconds: u64,
) -> anyhow::Result<String> {
    if secret.len() < 32 {
        anyhow::bail!("CEREBRAL_JWT_SECRET must be at least 32 bytes");
    }
    if tenant == SYSTEM_TENANT {
        anyhow::bail!("the nil tenant belongs to the system");
    }
    if let Some(r) = roles.iter().find(|r| Role::parse(r).is_none()) {
        anyhow::bail!("unknown role {r:?}: use viewer, agent, operator or admin");
    }
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + ttl_seconds;
    let claims = serde_json::json!({
        "sub": sub,
        "tenant_id": tenant.to_string(),
        "roles": roles,
        "exp": exp,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Checks a JWKS URL and tells whether it points at this machine. Keys
/// fetched over plain HTTP could be swapped by anyone on the path, so
/// `http://` is refused except on a loopback host (a local test provider
/// or a sidecar).
fn jwks_url_is_loopback(url: &str) -> anyhow::Result<bool> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("CEREBRAL_JWKS_URL is not a URL ({e}): {url}"))?;
    let loopback = parsed.host_str().is_some_and(crate::net::is_loopback_name);
    match parsed.scheme() {
        "https" => Ok(loopback),
        "http" if loopback => Ok(true),
        "http" => anyhow::bail!(
            "CEREBRAL_JWKS_URL must use https:// (plain http:// is accepted on a loopback host only): {url}"
        ),
        _ => anyhow::bail!("CEREBRAL_JWKS_URL must be an https:// URL, not {url}"),
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

//! The two JWTs a widget back end receives, verified with the integration's client secret.
//!
//! A compact JWT is `header.payload.signature`, each part base64url. The verifier reads the
//! header's `alg` first and refuses `none` and every algorithm but the one expected before it
//! computes anything; then it checks the HMAC in constant time (`hmac`'s `verify_slice`); only
//! then does it read the payload, check the validity times and the audience, and type the claims.
//! No error text, and no `Debug` output, carries the token or the secret.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Sha256, Sha512};

use crate::clock::now_utc;
use crate::oauth::OAuthApp;
use crate::secret::Secret;

/// base64url without padding, as JWTs are written; a padded part is read too.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest `alg` value quoted back in [`TokenError::UnexpectedAlgorithm`] (it is the sender's
/// text: a long one is cut).
const MAX_QUOTED_ALG: usize = 32;

/// The clock leeway both verifiers allow by default: 10 seconds past `exp`, and 10 seconds
/// before `nbf` and `iat`.
///
/// Kommo writes these times in whole seconds from its own clock and sends the token at once, so a
/// back end whose clock is a fraction of a second behind Kommo's would otherwise read a fresh
/// token's `iat` as "in the future" (the official SDK allows no leeway at all). Ten seconds
/// covers any clock kept by NTP with a wide margin while adding under 1% to the life of a
/// disposable token (30 minutes). Change it with the verifiers' `leeway`; a replay guard keeps a
/// token's `jti` for the leeway too ([`DisposableTokenVerifier::verify_first_use`]).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);

/// The HMAC algorithms Kommo signs widget tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA256: the widget front end's disposable token (`X-Auth-Token`).
    Hs256,
    /// HMAC-SHA512: Salesbot's `widget_request` token.
    Hs512,
}

impl Algorithm {
    /// The shortest key this algorithm is verified with, in bytes: the size of the hash's output
    /// (RFC 7518 §3.2), 32 for HS256 and 64 for HS512. Kommo's client secrets are 64 letters and
    /// digits, long enough for both.
    ///
    /// ```
    /// use lead_intake::widget::Algorithm;
    /// assert_eq!((Algorithm::Hs256.min_key_len(), Algorithm::Hs512.min_key_len()), (32, 64));
    /// ```
    pub fn min_key_len(self) -> usize {
        match self {
            Self::Hs256 => 32,
            Self::Hs512 => 64,
        }
    }

    /// The key, if it is long enough for this algorithm; otherwise
    /// [`ConfigError::WeakKey`](crate::ConfigError::WeakKey), which names the lengths only.
    fn check_key(self, key: Secret) -> Result<Secret, crate::ConfigError> {
        let length = key.expose().len();
        if length < self.min_key_len() {
            return Err(crate::ConfigError::WeakKey {
                algorithm: self.name(),
                length,
                minimum: self.min_key_len(),
            });
        }
        Ok(key)
    }

    /// The header's name for it: `HS256`, `HS512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs512 => "HS512",
        }
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            Self::Hs256 => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts a key of any length");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Hs512 => {
                let mut mac =
                    Hmac::<Sha512>::new_from_slice(key).expect("HMAC accepts a key of any length");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// Whether `signature` is this algorithm's MAC of `message`, compared in constant time.
    fn verify(self, key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Hs256 => Hmac::<Sha256>::new_from_slice(key).is_ok_and(|mut mac| {
                mac.update(message);
                mac.verify_slice(signature).is_ok()
            }),
            Self::Hs512 => Hmac::<Sha512>::new_from_slice(key).is_ok_and(|mut mac| {
                mac.update(message);
                mac.verify_slice(signature).is_ok()
            }),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A part of a compact JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenPart {
    /// The token as a whole (not three parts).
    Token,
    /// The first part, the JOSE header.
    Header,
    /// The second part, the claims.
    Payload,
    /// The third part, the signature.
    Signature,
}

impl fmt::Display for TokenPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Token => "token",
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

/// Why a widget token was refused. Neither the token nor the secret is ever part of it.
///
/// ```
/// use lead_intake::widget::{BotTokenVerifier, TokenError, TokenPart};
/// let verifier = BotTokenVerifier::new("hO3kxLw0vTq9ZcNa5RjfE1uYb8sDm2GpXi7KtV6eWnA4yCrU0lHdJ9oBgF3QzM5S")?;
/// let e = verifier.verify("not-a-jwt").unwrap_err();
/// assert!(matches!(e, TokenError::Malformed { part: TokenPart::Token, .. }));
/// assert_eq!(e.to_string(), "malformed token: the token is not three base64url parts separated by `.` (found 1)");
/// # Ok::<(), lead_intake::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWT: not three parts, a part that is not base64url, or a header or payload
    /// that is not a JSON object.
    #[error("malformed token: the {part} {reason}")]
    Malformed {
        /// Which part.
        part: TokenPart,
        /// What is wrong with it.
        reason: String,
    },
    /// The header says `alg: none`: an unsigned token, never accepted.
    #[error("refusing an unsigned token (`alg: none`)")]
    AlgNone,
    /// The header names another algorithm than the one this kind of token is signed with.
    #[error("the token is signed with {found:?}, but this kind of token must be {expected}")]
    UnexpectedAlgorithm {
        /// The header's `alg` (cut to 32 characters), or `(missing)`.
        found: String,
        /// The algorithm this verifier accepts.
        expected: Algorithm,
    },
    /// The signature does not match: a wrong secret, or a token changed after it was signed.
    #[error("the token's signature does not match the integration's secret")]
    BadSignature,
    /// `exp` has passed.
    #[error("the token expired at {exp}")]
    Expired {
        /// The token's `exp`.
        exp: DateTime<Utc>,
    },
    /// `nbf` (valid from) or `iat` (issued at) is still in the future.
    #[error("the token is not valid yet: its `{claim}` is {at}")]
    NotYetValid {
        /// `nbf` or `iat`.
        claim: &'static str,
        /// The claim's time.
        at: DateTime<Utc>,
    },
    /// The audience (`aud`) is not this receiver's.
    #[error("the token is meant for {found:?}, not for {expected:?}")]
    WrongAudience {
        /// The audience this verifier expects (`scheme://host`).
        expected: String,
        /// The token's `aud` values (empty when it has none).
        found: Vec<String>,
    },
    /// A claim the token must carry is absent (or null).
    #[error("the token has no `{claim}` claim")]
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// A claim has a value of another type.
    #[error("the token's `{claim}` claim is not {expected}")]
    WrongClaimType {
        /// The claim's name.
        claim: &'static str,
        /// What it should be, e.g. `an integer`.
        expected: &'static str,
    },
    /// A disposable token whose `jti` was already used, and has not expired since
    /// ([`DisposableTokenVerifier::verify_first_use`]): a replay.
    #[error("the token {jti:?} was already used (a replay); it is refused until it expires")]
    Replayed {
        /// The token's `jti` (cut to 64 characters): an ID, not a credential.
        jti: String,
    },
    /// Whether the token was already used could not be checked (the replay guard is full, or
    /// its store cannot be reached), so it is refused.
    #[error("cannot tell whether the token was already used, so it is refused: {reason}")]
    ReplayUnchecked {
        /// Why (with no token in it).
        reason: String,
    },
}

/// How a verifier reads time: the wall clock, or a fixed instant (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    System,
    Fixed(DateTime<Utc>),
}

/// What both verifiers share: the key, the algorithm, the audience, the clock.
#[derive(Clone)]
struct Checks {
    key: Secret,
    algorithm: Algorithm,
    audience: Option<String>,
    leeway: Duration,
    clock: Clock,
}

impl fmt::Debug for Checks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checks")
            .field("key", &self.key)
            .field("algorithm", &self.algorithm)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("clock", &self.clock)
            .finish()
    }
}

/// `scheme://host` of a URL: the audience Kommo puts in a token (the official SDK compares
/// `aud` with exactly this, without the port).
pub(crate) fn audience_of(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not an absolute URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| "the URL has no host".to_string())?;
    Ok(format!("{}://{}", parsed.scheme(), host))
}

/// A claims object with typed getters that say which claim is wrong.
pub(crate) struct ClaimSet(Map<String, Value>);

impl ClaimSet {
    fn get(&self, claim: &'static str) -> Option<&Value> {
        self.0.get(claim).filter(|v| !v.is_null())
    }

    fn string(&self, claim: &'static str) -> Result<String, TokenError> {
        match self.get(claim) {
            None => Err(TokenError::MissingClaim { claim }),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(TokenError::WrongClaimType {
                claim,
                expected: "a string",
            }),
        }
    }

    /// An integer, or a string of one (PHP casts these claims with `(int)`).
    fn int(&self, claim: &'static str) -> Result<i64, TokenError> {
        self.opt_int(claim)?
            .ok_or(TokenError::MissingClaim { claim })
    }

    fn opt_int(&self, claim: &'static str) -> Result<Option<i64>, TokenError> {
        let wrong = TokenError::WrongClaimType {
            claim,
            expected: "an integer",
        };
        match self.get(claim) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(wrong),
            Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| wrong),
            Some(_) => Err(wrong),
        }
    }

    /// A NumericDate (seconds since the epoch; a fraction is dropped).
    fn opt_time(&self, claim: &'static str) -> Result<Option<DateTime<Utc>>, TokenError> {
        let wrong = TokenError::WrongClaimType {
            claim,
            expected: "a time in seconds since 1970",
        };
        let seconds = match self.get(claim) {
            None => return Ok(None),
            Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i,
                (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => f.trunc() as i64,
                _ => return Err(wrong),
            },
            Some(_) => return Err(wrong),
        };
        DateTime::from_timestamp(seconds, 0).map(Some).ok_or(wrong)
    }

    fn time(&self, claim: &'static str) -> Result<DateTime<Utc>, TokenError> {
        self.opt_time(claim)?
            .ok_or(TokenError::MissingClaim { claim })
    }

    /// `true`/`false`, or `1`/`0` (PHP casts `is_admin` with `(bool)`); absent is `false`.
    fn flag(&self, claim: &'static str) -> Result<bool, TokenError> {
        match self.get(claim) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(true),
            Some(_) => Err(TokenError::WrongClaimType {
                claim,
                expected: "a boolean",
            }),
        }
    }

    /// `aud`: one string or a list of strings (RFC 7519 §4.1.3).
    fn audiences(&self) -> Result<Vec<String>, TokenError> {
        let wrong = TokenError::WrongClaimType {
            claim: "aud",
            expected: "a string or a list of strings",
        };
        match self.get("aud") {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or(wrong.clone()))
                .collect(),
            Some(_) => Err(wrong),
        }
    }

    /// The claims not read into typed fields.
    fn rest(mut self, typed: &[&str]) -> Map<String, Value> {
        for name in typed {
            self.0.remove(*name);
        }
        self.0
    }
}

fn decode_part(part: TokenPart, text: &str) -> Result<Vec<u8>, TokenError> {
    B64.decode(text).map_err(|e| TokenError::Malformed {
        part,
        reason: format!("is not base64url ({e})"),
    })
}

fn json_object(part: TokenPart, bytes: &[u8]) -> Result<Map<String, Value>, TokenError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TokenError::Malformed {
            part,
            reason: "is JSON but not an object".to_string(),
        }),
        Err(e) => Err(TokenError::Malformed {
            part,
            reason: format!("is not JSON ({e})"),
        }),
    }
}

impl Checks {
    fn now(&self) -> DateTime<Utc> {
        match self.clock {
            Clock::System => now_utc(),
            Clock::Fixed(at) => at,
        }
    }

    /// Every check, in order: shape, `alg`, signature, payload, times, audience.
    fn verify(&self, token: &str) -> Result<ClaimSet, TokenError> {
        let token = token.trim();
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return Err(TokenError::Malformed {
                part: TokenPart::Token,
                reason: format!(
                    "is not three base64url parts separated by `.` (found {})",
                    parts.len()
                ),
            });
        };
        let header_map = json_object(TokenPart::Header, &decode_part(TokenPart::Header, header)?)?;
        match header_map.get("alg") {
            Some(Value::String(alg)) if alg.eq_ignore_ascii_case("none") => {
                return Err(TokenError::AlgNone);
            }
            Some(Value::String(alg)) if alg == self.algorithm.name() => {}
            other => {
                let found = match other {
                    Some(Value::String(alg)) => alg.chars().take(MAX_QUOTED_ALG).collect(),
                    Some(_) => "(not a string)".to_string(),
                    None => "(missing)".to_string(),
                };
                return Err(TokenError::UnexpectedAlgorithm {
                    found,
                    expected: self.algorithm,
                });
            }
        }
        let signature = decode_part(TokenPart::Signature, signature)?;
        // The signed text is everything before the last `.` (three parts: there is one).
        let signed = token.rsplit_once('.').map_or("", |(signed, _)| signed);
        if !self
            .algorithm
            .verify(self.key.expose().as_bytes(), signed.as_bytes(), &signature)
        {
            return Err(TokenError::BadSignature);
        }
        let claims = ClaimSet(json_object(
            TokenPart::Payload,
            &decode_part(TokenPart::Payload, payload)?,
        )?);

        let now = self.now();
        let leeway = chrono::Duration::from_std(self.leeway).unwrap_or(chrono::Duration::MAX);
        let exp = claims.time("exp")?;
        if now
            >= exp
                .checked_add_signed(leeway)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        {
            return Err(TokenError::Expired { exp });
        }
        let late = now
            .checked_add_signed(leeway)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        for claim in ["nbf", "iat"] {
            if let Some(at) = claims.opt_time(claim)?
                && at > late
            {
                return Err(TokenError::NotYetValid { claim, at });
            }
        }
        if let Some(expected) = &self.audience {
            let found = claims.audiences()?;
            if !found.iter().any(|a| a == expected) {
                return Err(TokenError::WrongAudience {
                    expected: expected.clone(),
                    found,
                });
            }
        }
        Ok(claims)
    }
}

/// Signs `claims` as a compact JWT with `algorithm` and `secret`: header
/// `{"alg": ..., "typ": "JWT"}`.
///
/// **For tests and fakes**, which play Kommo's part: a widget back end only verifies tokens.
///
/// ```
/// use lead_intake::widget::{Algorithm, sign_token};
/// let token = sign_token(Algorithm::Hs256, &serde_json::json!({"sub": "1"}), &"secret".into());
/// assert_eq!(token.split('.').count(), 3);
/// ```
pub fn sign_token<T: Serialize + ?Sized>(
    algorithm: Algorithm,
    claims: &T,
    secret: &Secret,
) -> String {
    let header = serde_json::json!({"alg": algorithm.name(), "typ": "JWT"});
    // Serializing a `Value` or a plain struct cannot fail; a `Serialize` that does signs `null`.
    let payload = serde_json::to_vec(claims).unwrap_or_else(|_| b"null".to_vec());
    sign_parts(algorithm, header.to_string().as_bytes(), &payload, secret)
}

/// A token of exactly these header and payload bytes, signed with `algorithm` and `secret`.
pub(crate) fn sign_parts(
    algorithm: Algorithm,
    header: &[u8],
    payload: &[u8],
    secret: &Secret,
) -> String {
    let signed = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = algorithm.mac(secret.expose().as_bytes(), signed.as_bytes());
    format!("{signed}.{}", B64.encode(signature))
}

/// Which entity a Salesbot runs on: Kommo writes `2` (leads) or `12` (customers) (the official
/// SDK's `BotDisposableTokenModel::fromJwtToken` maps these), or a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntityType {
    /// Leads: `2` or `"leads"`.
    Leads,
    /// Customers: `12` or `"customers"`.
    Customers,
    /// Any other value, as text.
    Other(String),
}

impl EntityType {
    fn from_claim(value: Option<&Value>) -> Result<Self, TokenError> {
        let code = match value {
            None => {
                return Err(TokenError::MissingClaim {
                    claim: "entity_type",
                });
            }
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(TokenError::WrongClaimType {
                    claim: "entity_type",
                    expected: "an integer or a string",
                });
            }
        };
        Ok(match code.as_str() {
            "2" | "leads" => Self::Leads,
            "12" | "customers" => Self::Customers,
            _ => Self::Other(code),
        })
    }
}

impl Serialize for EntityType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Leads => s.serialize_u8(2),
            Self::Customers => s.serialize_u8(12),
            Self::Other(text) => s.serialize_str(text),
        }
    }
}

/// Which kind of bot sent a `widget_request` (the token's `bot_type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BotType {
    /// `salesbot`.
    Salesbot,
    /// `marketingbot`.
    Marketingbot,
    /// Any other value.
    Other(String),
}

impl BotType {
    fn from_name(name: String) -> Self {
        match name.as_str() {
            "salesbot" => Self::Salesbot,
            "marketingbot" => Self::Marketingbot,
            _ => Self::Other(name),
        }
    }

    /// The name as the token has it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Salesbot => "salesbot",
            Self::Marketingbot => "marketingbot",
            Self::Other(name) => name,
        }
    }
}

impl Serialize for BotType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The claims of a Salesbot `widget_request` token (the official SDK's
/// `BotDisposableTokenModel`). Serializes back to the token's claim names (for
/// [`sign_bot_token`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BotTokenClaims {
    /// `iss`: the account's address, e.g. `https://mycompany.kommo.com`.
    pub iss: String,
    /// `account_id`.
    pub account_id: i64,
    /// `subdomain`: the account's subdomain.
    pub subdomain: String,
    /// `client_uuid`: the integration's ID.
    pub client_uuid: String,
    /// `entity_id`: the lead's or customer's ID.
    pub entity_id: i64,
    /// `entity_type`.
    pub entity_type: EntityType,
    /// `bot_type`.
    pub bot_type: BotType,
    /// `exp`: when the token expires.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub exp: DateTime<Utc>,
    /// `aud`, if the token has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// Every other claim, as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl BotTokenClaims {
    /// Claims with the given values, no `aud` and no other claims (for tests and fakes).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        iss: impl Into<String>,
        account_id: i64,
        subdomain: impl Into<String>,
        client_uuid: impl Into<String>,
        entity_id: i64,
        entity_type: EntityType,
        bot_type: BotType,
        exp: DateTime<Utc>,
    ) -> Self {
        Self {
            iss: iss.into(),
            account_id,
            subdomain: subdomain.into(),
            client_uuid: client_uuid.into(),
            entity_id,
            entity_type,
            bot_type,
            exp,
            aud: Vec::new(),
            other: Map::new(),
        }
    }

    fn from_claims(claims: ClaimSet) -> Result<Self, TokenError> {
        let typed = Self {
            iss: claims.string("iss")?,
            account_id: claims.int("account_id")?,
            subdomain: claims.string("subdomain")?,
            client_uuid: claims.string("client_uuid")?,
            entity_id: claims.int("entity_id")?,
            entity_type: EntityType::from_claim(claims.get("entity_type"))?,
            bot_type: BotType::from_name(claims.string("bot_type")?),
            exp: claims.time("exp")?,
            aud: claims.audiences()?,
            other: Map::new(),
        };
        Ok(Self {
            other: claims.rest(&[
                "iss",
                "account_id",
                "subdomain",
                "client_uuid",
                "entity_id",
                "entity_type",
                "bot_type",
                "exp",
                "aud",
            ]),
            ..typed
        })
    }
}

/// The claims of the widget front end's disposable token, `X-Auth-Token` (Kommo's page
/// "One-time tokens"; the official SDK's `DisposableTokenModel`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DisposableTokenClaims {
    /// `iss`: the account's address.
    pub iss: String,
    /// `aud`: the integration's `scheme://host` (from its redirect URI).
    pub aud: Vec<String>,
    /// `jti`: the token's UUID.
    pub jti: String,
    /// `iat`: when it was issued.
    #[serde(with = "chrono::serde::ts_seconds_option")]
    pub iat: Option<DateTime<Utc>>,
    /// `nbf`: when it becomes valid.
    #[serde(with = "chrono::serde::ts_seconds_option")]
    pub nbf: Option<DateTime<Utc>>,
    /// `exp`: when it expires.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub exp: DateTime<Utc>,
    /// `account_id`.
    pub account_id: i64,
    /// `subdomain`: the account's subdomain.
    pub subdomain: String,
    /// `client_uuid`: the integration's ID.
    pub client_uuid: String,
    /// `user_id`: the user whose browser sent the request.
    pub user_id: i64,
    /// `is_admin`: whether that user is an administrator (absent reads as `false`, as in the SDK).
    pub is_admin: bool,
    /// Every other claim, as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl DisposableTokenClaims {
    /// Claims with the given values, no `iat`/`nbf`, `is_admin` false and no other claims (for
    /// tests and fakes).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        iss: impl Into<String>,
        aud: impl Into<String>,
        jti: impl Into<String>,
        exp: DateTime<Utc>,
        account_id: i64,
        subdomain: impl Into<String>,
        client_uuid: impl Into<String>,
        user_id: i64,
    ) -> Self {
        Self {
            iss: iss.into(),
            aud: vec![aud.into()],
            jti: jti.into(),
            iat: None,
            nbf: None,
            exp,
            account_id,
            subdomain: subdomain.into(),
            client_uuid: client_uuid.into(),
            user_id,
            is_admin: false,
            other: Map::new(),
        }
    }

    fn from_claims(claims: ClaimSet) -> Result<Self, TokenError> {
        let typed = Self {
            iss: claims.string("iss")?,
            aud: claims.audiences()?,
            jti: claims.string("jti")?,
            iat: claims.opt_time("iat")?,
            nbf: claims.opt_time("nbf")?,
            exp: claims.time("exp")?,
            account_id: claims.int("account_id")?,
            subdomain: claims.string("subdomain")?,
            client_uuid: claims.string("client_uuid")?,
            user_id: claims.int("user_id")?,
            is_admin: claims.flag("is_admin")?,
            other: Map::new(),
        };
        Ok(Self {
            other: claims.rest(&[
                "iss",
                "aud",
                "jti",
                "iat",
                "nbf",
                "exp",
                "account_id",
                "subdomain",
                "client_uuid",
                "user_id",
                "is_admin",
            ]),
            ..typed
        })
    }
}

/// Signs bot-token claims with HS512 and `secret`, as Kommo signs a `widget_request`'s `token`.
/// **For tests and fakes.**
pub fn sign_bot_token(claims: &BotTokenClaims, secret: &Secret) -> String {
    sign_token(Algorithm::Hs512, claims, secret)
}

/// Signs disposable-token claims with HS256 and `secret`, as Kommo signs `X-Auth-Token`.
/// **For tests and fakes.**
pub fn sign_disposable_token(claims: &DisposableTokenClaims, secret: &Secret) -> String {
    sign_token(Algorithm::Hs256, claims, secret)
}

/// Verifies the `token` of a Salesbot `widget_request`: HS512 with the integration's client
/// secret, `exp` (and `nbf`/`iat` when present), and the audience only when one is given, as
/// the official SDK does (`AmoCRMOAuth::parseBotDisposableToken`, amocrm/amocrm-api-php
/// `src/AmoCRM/OAuth/AmoCRMOAuth.php`). `Debug` hides the secret.
///
/// ```
/// use lead_intake::chrono::{self, TimeZone, Utc}; // re-exported: no chrono dependency needed
/// use lead_intake::widget::*;
/// let secret = lead_intake::Secret::new("hO3kxLw0vTq9ZcNa5RjfE1uYb8sDm2GpXi7KtV6eWnA4yCrU0lHdJ9oBgF3QzM5S");
/// let exp = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
/// let claims = BotTokenClaims::new("https://mycompany.kommo.com", 31, "mycompany", "c0ffee",
///     1001, EntityType::Leads, BotType::Salesbot, exp);
/// let token = sign_bot_token(&claims, &secret);
///
/// let verifier = BotTokenVerifier::new(secret)?.at(exp - chrono::Duration::seconds(60));
/// assert_eq!(verifier.verify(&token)?, claims);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BotTokenVerifier {
    checks: Checks,
}

impl BotTokenVerifier {
    /// A verifier keyed with the integration's client secret, with no audience check and the
    /// [`DEFAULT_LEEWAY`]. A secret shorter than 64 bytes (HS512's hash, RFC 7518 §3.2; Kommo's
    /// are 64 letters and digits) is [`ConfigError::WeakKey`](crate::ConfigError::WeakKey).
    ///
    /// ```
    /// use lead_intake::widget::BotTokenVerifier;
    /// assert!(BotTokenVerifier::new("").is_err());
    /// assert!(BotTokenVerifier::new("short-secret").is_err());
    /// assert!(BotTokenVerifier::new("k".repeat(64)).is_ok());
    /// ```
    pub fn new(client_secret: impl Into<Secret>) -> Result<Self, crate::ConfigError> {
        let algorithm = Algorithm::Hs512;
        Ok(Self {
            checks: Checks {
                key: algorithm.check_key(client_secret.into())?,
                algorithm,
                audience: None,
                leeway: DEFAULT_LEEWAY,
                clock: Clock::System,
            },
        })
    }

    /// A verifier keyed with the app's client secret (see [`new`](Self::new)).
    pub fn from_app(app: &OAuthApp) -> Result<Self, crate::ConfigError> {
        Self::new(app.client_secret().clone())
    }

    /// Also requires the audience to be `receiver_url`'s `scheme://host` (the URL Salesbot
    /// posts to). A URL that does not parse, or has no host, is
    /// [`ConfigError::InvalidBaseUrl`](crate::ConfigError::InvalidBaseUrl).
    pub fn audience(mut self, receiver_url: &str) -> Result<Self, crate::ConfigError> {
        self.checks.audience = Some(audience_of(receiver_url).map_err(|reason| {
            crate::ConfigError::InvalidBaseUrl {
                value: receiver_url.to_string(),
                reason,
            }
        })?);
        Ok(self)
    }

    /// Accepts tokens up to `leeway` past `exp` or before `nbf`/`iat` (clock skew);
    /// [`DEFAULT_LEEWAY`] (10 s) unless set. A token is refused from `exp + leeway` on, and while
    /// `nbf` or `iat` is later than now plus `leeway`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.checks.leeway = leeway;
        self
    }

    /// Reads the time as `now` instead of the wall clock (tests).
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.checks.clock = Clock::Fixed(now);
        self
    }

    /// The token's typed claims, once every check has passed.
    pub fn verify(&self, token: &str) -> Result<BotTokenClaims, TokenError> {
        BotTokenClaims::from_claims(self.checks.verify(token)?)
    }
}

/// Verifies the widget front end's disposable token (`X-Auth-Token`): HS256 with the
/// integration's client secret, the audience (the redirect URI's `scheme://host`, always
/// required), and the validity times `exp`, `nbf`, `iat`, as the official SDK does
/// (`AmoCRMOAuth::parseDisposableToken`) and Kommo's page "One-time tokens" describes.
/// `Debug` hides the secret.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use lead_intake::widget::*;
/// let secret = lead_intake::Secret::new("hO3kxLw0vTq9ZcNa5RjfE1uYb8sDm2GpXi7KtV6eWnA4yCrU0lHdJ9oBgF3QzM5S");
/// let exp = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
/// let claims = DisposableTokenClaims::new("https://mycompany.kommo.com", "https://widget.example",
///     "5c8e-jti", exp, 31, "mycompany", "c0ffee", 7);
/// let token = sign_disposable_token(&claims, &secret);
///
/// let verifier = DisposableTokenVerifier::new(secret, "https://widget.example/oauth/callback")?
///     .at(exp - chrono::Duration::seconds(60));
/// assert_eq!(verifier.verify(&token)?.user_id, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct DisposableTokenVerifier {
    checks: Checks,
}

impl DisposableTokenVerifier {
    /// A verifier keyed with the client secret, for tokens meant for `redirect_uri`'s
    /// `scheme://host` (the integration's redirect URI), with the [`DEFAULT_LEEWAY`]. A secret
    /// shorter than 32 bytes (HS256's hash, RFC 7518 §3.2) is
    /// [`ConfigError::WeakKey`](crate::ConfigError::WeakKey); a redirect URI without a host,
    /// [`ConfigError::InvalidBaseUrl`](crate::ConfigError::InvalidBaseUrl).
    pub fn new(
        client_secret: impl Into<Secret>,
        redirect_uri: &str,
    ) -> Result<Self, crate::ConfigError> {
        let key = Algorithm::Hs256.check_key(client_secret.into())?;
        let audience =
            audience_of(redirect_uri).map_err(|reason| crate::ConfigError::InvalidBaseUrl {
                value: redirect_uri.to_string(),
                reason,
            })?;
        Ok(Self {
            checks: Checks {
                key,
                algorithm: Algorithm::Hs256,
                audience: Some(audience),
                leeway: DEFAULT_LEEWAY,
                clock: Clock::System,
            },
        })
    }

    /// A verifier for the app: its client secret, its redirect URI's `scheme://host`.
    pub fn from_app(app: &OAuthApp) -> Result<Self, crate::ConfigError> {
        Self::new(app.client_secret().clone(), app.redirect_uri())
    }

    /// Accepts tokens up to `leeway` past `exp` or before `nbf`/`iat` (clock skew);
    /// [`DEFAULT_LEEWAY`] (10 s) unless set. A token is refused from `exp + leeway` on, and while
    /// `nbf` or `iat` is later than now plus `leeway`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.checks.leeway = leeway;
        self
    }

    /// Reads the time as `now` instead of the wall clock (tests).
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.checks.clock = Clock::Fixed(now);
        self
    }

    /// The audience tokens must name.
    pub fn expected_audience(&self) -> &str {
        self.checks.audience.as_deref().unwrap_or_default()
    }

    /// The clock leeway this verifier allows ([`DEFAULT_LEEWAY`] unless set).
    pub fn leeway_allowed(&self) -> Duration {
        self.checks.leeway
    }

    /// The token's typed claims, once every check has passed. This does not remember the token:
    /// the same token verifies again until it expires; see
    /// [`verify_first_use`](Self::verify_first_use).
    pub fn verify(&self, token: &str) -> Result<DisposableTokenClaims, TokenError> {
        DisposableTokenClaims::from_claims(self.checks.verify(token)?)
    }

    /// [`verify`](Self::verify), then `seen` records the token's `jti` for as long as this
    /// verifier would still accept the token (until `exp` plus the leeway): a token already
    /// recorded is [`TokenError::Replayed`]. A guard that cannot answer (full, or its Redis
    /// unreachable) is [`TokenError::ReplayUnchecked`]: the token is refused rather than let
    /// through unchecked. Use one guard for every worker that shares the tokens:
    /// [`SeenTokens`](super::SeenTokens) in one process,
    /// `lead_intake::shared::RedisSeenTokens` (feature `redis`) across several.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use lead_intake::widget::*;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = lead_intake::Secret::new("k".repeat(64));
    /// let exp = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    /// let claims = DisposableTokenClaims::new("https://mycompany.kommo.com", "https://widget.example",
    ///     "5c8e-jti", exp, 31, "mycompany", "c0ffee", 7);
    /// let token = sign_disposable_token(&claims, &secret);
    /// let verifier = DisposableTokenVerifier::new(secret, "https://widget.example/oauth")?
    ///     .at(exp - chrono::Duration::seconds(60));
    ///
    /// let seen = SeenTokens::new();
    /// assert_eq!(verifier.verify_first_use(&token, &seen).await?.user_id, 7);
    /// assert!(matches!(verifier.verify_first_use(&token, &seen).await,
    ///     Err(TokenError::Replayed { .. })));
    /// # Ok(()) }
    /// ```
    pub async fn verify_first_use(
        &self,
        token: &str,
        seen: &(impl super::ReplayGuard + ?Sized),
    ) -> Result<DisposableTokenClaims, TokenError> {
        let claims = self.verify(token)?;
        // Accepted until `exp + leeway`: remember it that long (at least a millisecond).
        let leeway =
            chrono::Duration::from_std(self.checks.leeway).unwrap_or(chrono::Duration::MAX);
        let until = claims
            .exp
            .checked_add_signed(leeway)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let keep = (until - self.checks.now())
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_millis(1));
        if seen.first_use(&claims.jti, keep).await? {
            Ok(claims)
        } else {
            Err(TokenError::Replayed {
                jti: claims.jti.chars().take(64).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose;

    #[test]
    fn the_unpadded_and_the_padded_base64url_forms_both_decode() {
        assert_eq!(B64.decode("YQ").unwrap(), b"a");
        assert_eq!(B64.decode("YQ==").unwrap(), b"a");
        // The standard alphabet's `+`/`/` are not base64url.
        assert!(general_purpose::URL_SAFE_NO_PAD.decode("+/").is_err());
        assert!(B64.decode("+/").is_err());
    }
}

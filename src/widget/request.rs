//! The body Salesbot's `widget_request` step POSTs to the widget's URL, and the continue target
//! in its `return_url`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::token::{BotTokenClaims, BotTokenVerifier, TokenError};
use crate::kommo::types::BotKind;
use crate::secret::Secret;

/// The body of a Salesbot `widget_request`: the signed `token`, the step's `data`, and the
/// `return_url` to continue the bot at. Every other field is kept in `other`. `Debug` hides the
/// token.
///
/// ```
/// let body = br#"{"token": "eyJ...", "data": {"phone": "+1 415"},
///   "return_url": "https://mycompany.kommo.com/api/v4/salesbot/4131/continue/7a1c2e",
///   "event": "bot"}"#;
/// let request = lead_intake::widget::WidgetRequest::from_json(body)?;
/// assert_eq!(request.data["phone"], "+1 415");
/// assert_eq!(request.other["event"], "bot");
/// assert_eq!(request.continue_target()?.bot_id(), "4131");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WidgetRequest {
    /// The JWT Kommo signed with the integration's secret (HS512): verify it with
    /// [`WidgetRequest::verify`] before trusting anything else in the body.
    pub token: Secret,
    /// What the bot step sends (its widget settings' values); `null` when absent.
    #[serde(default)]
    pub data: Value,
    /// Where to continue the bot: `https://{account}/api/v4/{salesbot|marketingbot}/{bot_id}/continue/{continue_id}`.
    pub return_url: String,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl fmt::Debug for WidgetRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WidgetRequest")
            .field("token", &self.token)
            .field("data", &self.data)
            .field("return_url", &self.return_url)
            .field("other", &self.other)
            .finish()
    }
}

/// Why a `widget_request` body was refused: what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The `Content-Type` is not JSON.
    #[error("a widget_request body is JSON; the Content-Type is {content_type:?}")]
    ContentType {
        /// The header as given (cut to 100 characters).
        content_type: String,
    },
    /// The body is not JSON, or a field is missing or of another type.
    #[error("invalid widget_request body at `{path}`: {message}")]
    Body {
        /// Where in the body (`.` for the whole body, `return_url`, ...).
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// The `token` is refused: forged, expired, of another algorithm, ...
    #[error("the widget_request's token is refused: {0}")]
    Token(#[from] TokenError),
    /// The `return_url` is not a bot's continue URL.
    #[error(transparent)]
    ReturnUrl(#[from] ReturnUrlError),
    /// The `return_url` is on another account than the one the token was signed for. Every
    /// account that installs the integration gets tokens signed with the same secret, so a
    /// token of one account with a `return_url` of another is how one account would make the
    /// back end act on another's.
    #[error(
        "the return_url {return_url:?} is not on the account the token was signed for ({account})"
    )]
    OtherAccount {
        /// The `return_url` (cut to 300 characters).
        return_url: String,
        /// The token's account: its `iss` and `subdomain`.
        account: String,
    },
}

impl WidgetRequest {
    /// Reads the JSON body. A missing `token` or `return_url`, or a field of the wrong type, is
    /// [`RequestError::Body`] with the field's path.
    pub fn from_json(body: &[u8]) -> Result<Self, RequestError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize::<_, Self>(de).map_err(|e| {
            let path = e.path().to_string();
            // serde_json's messages name the field and the type, never the value.
            RequestError::Body {
                path,
                message: e.into_inner().to_string(),
            }
        })
    }

    /// Reads the body as the request's `Content-Type` header says (`None`: no header): JSON
    /// (`application/json`, or any `+json` type) only.
    pub fn from_http(content_type: Option<&str>, body: &[u8]) -> Result<Self, RequestError> {
        if let Some(value) = content_type {
            let essence = value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if essence != "application/json" && !essence.ends_with("+json") {
                return Err(RequestError::ContentType {
                    content_type: value.chars().take(100).collect(),
                });
            }
        }
        Self::from_json(body)
    }

    /// Checks the request as a whole: `verifier` checks the token
    /// ([`RequestError::Token`]); the `return_url` must be a continue URL
    /// ([`RequestError::ReturnUrl`]) on the account the token names: the origin of its `iss`
    /// (`https://{subdomain}.kommo.com`), and, on a host under it, the `subdomain` claim as its
    /// first label ([`RequestError::OtherAccount`]). Only a [`VerifiedWidgetRequest`] can be
    /// continued ([`kommo::Client::continue_widget_request`](crate::kommo::Client::continue_widget_request)),
    /// and only by the client of that account.
    pub fn verify(
        &self,
        verifier: &BotTokenVerifier,
    ) -> Result<VerifiedWidgetRequest, RequestError> {
        let claims = verifier.verify(self.token.expose())?;
        let target = ContinueTarget::parse(&self.return_url)?;
        check_account(&claims, &target)?;
        Ok(VerifiedWidgetRequest {
            claims,
            target,
            data: self.data.clone(),
            other: self.other.clone(),
        })
    }

    /// The bot to continue, read from the (unverified) `return_url`. To continue it, use
    /// [`verify`](Self::verify): it ties the URL to the token's account.
    pub fn continue_target(&self) -> Result<ContinueTarget, ReturnUrlError> {
        ContinueTarget::parse(&self.return_url)
    }
}

/// The `return_url`'s origin must be the token's `iss` (the account's address), and a host
/// named after the account must carry its `subdomain` as first label.
fn check_account(claims: &BotTokenClaims, target: &ContinueTarget) -> Result<(), RequestError> {
    let url = target.url();
    let refuse = || RequestError::OtherAccount {
        return_url: url.as_str().chars().take(300).collect(),
        account: format!(
            "iss {:?}, subdomain {:?}",
            claims.iss.chars().take(100).collect::<String>(),
            claims.subdomain.chars().take(63).collect::<String>()
        ),
    };
    // `iss` is the account's address, `https://mycompany.kommo.com`; a bare host is read as https.
    let iss = if claims.iss.contains("://") {
        url::Url::parse(&claims.iss)
    } else {
        url::Url::parse(&format!("https://{}", claims.iss))
    }
    .map_err(|_| refuse())?;
    if iss.host_str().is_none() || iss.origin() != url.origin() {
        return Err(refuse());
    }
    // Kommo's hosts are `{subdomain}.kommo.com` (or `.amocrm.ru`, `.amocrm.com`): there the
    // first label is the account. Another host (a test server on loopback) has only `iss`.
    if let Some(url::Host::Domain(host)) = url.host() {
        let host = host.to_ascii_lowercase();
        let kommo = ["kommo.com", "amocrm.ru", "amocrm.com"]
            .iter()
            .any(|domain| host.ends_with(&format!(".{domain}")));
        let first = host.split('.').next().unwrap_or_default();
        if kommo && !first.eq_ignore_ascii_case(&claims.subdomain) {
            return Err(refuse());
        }
    }
    Ok(())
}

/// A `widget_request` whose token verified and whose `return_url` is on the account the token
/// was signed for ([`WidgetRequest::verify`]): what a back end acts on, and what
/// [`kommo::Client::continue_widget_request`](crate::kommo::Client::continue_widget_request)
/// continues. `Debug` shows no token (it keeps none).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerifiedWidgetRequest {
    claims: BotTokenClaims,
    target: ContinueTarget,
    data: Value,
    other: Map<String, Value>,
}

impl VerifiedWidgetRequest {
    /// The token's claims: the account (`account_id`, `subdomain`, `iss`), the lead or customer.
    pub fn claims(&self) -> &BotTokenClaims {
        &self.claims
    }

    /// The bot to continue, on the token's account.
    pub fn target(&self) -> &ContinueTarget {
        &self.target
    }

    /// What the bot step sent (`null` when absent).
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The body's other fields, as sent.
    pub fn other(&self) -> &Map<String, Value> {
        &self.other
    }
}

/// The bot a `widget_request` came from, as its `return_url` names it: kind, bot ID and
/// continuation ID, and the URL itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueTarget {
    kind: BotKind,
    bot_id: String,
    continue_id: String,
    url: url::Url,
}

/// Why a `return_url` is not a continue URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the return_url {url:?} is not a bot's continue URL: {reason}")]
pub struct ReturnUrlError {
    /// The URL as given (cut to 300 characters).
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Whether an ID path segment is safe as it is: non-empty, unreserved characters only (so it
/// reads the same percent-encoded or not).
fn plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        && segment != "."
        && segment != ".."
}

impl ContinueTarget {
    /// Reads `https://{host}/api/v4/{salesbot|marketingbot}/{bot_id}/continue/{continue_id}`
    /// (after any path prefix of the account's base URL). A URL with credentials, a query or a
    /// fragment is refused.
    ///
    /// ```
    /// use lead_intake::kommo::types::BotKind;
    /// use lead_intake::widget::ContinueTarget;
    /// let t = ContinueTarget::parse("https://mycompany.kommo.com/api/v4/marketingbot/12/continue/ab-3")?;
    /// assert_eq!((t.kind(), t.bot_id(), t.continue_id()), (BotKind::Marketingbot, "12", "ab-3"));
    /// assert!(ContinueTarget::parse("https://mycompany.kommo.com/api/v4/leads/12").is_err());
    /// # Ok::<(), lead_intake::widget::ReturnUrlError>(())
    /// ```
    pub fn parse(return_url: &str) -> Result<Self, ReturnUrlError> {
        let refuse = |reason: &str| ReturnUrlError {
            url: return_url.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(return_url).map_err(|e| refuse(&format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(refuse("not an http(s) URL with a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("it carries credentials (`user@`)"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("it has a query or a fragment"));
        }
        let segments: Vec<&str> = url.path().split('/').collect();
        let Some([api, v4, kind, bot_id, word, continue_id]) = segments
            .len()
            .checked_sub(6)
            .and_then(|start| segments.get(start..))
        else {
            return Err(refuse(
                "its path is not /api/v4/{salesbot|marketingbot}/{bot_id}/continue/{continue_id}",
            ));
        };
        let kind = match *kind {
            "salesbot" => BotKind::Salesbot,
            "marketingbot" => BotKind::Marketingbot,
            _ => {
                return Err(refuse(
                    "the bot kind is neither `salesbot` nor `marketingbot`",
                ));
            }
        };
        if (*api, *v4, *word) != ("api", "v4", "continue") {
            return Err(refuse(
                "its path is not /api/v4/{salesbot|marketingbot}/{bot_id}/continue/{continue_id}",
            ));
        }
        if !plain_segment(bot_id) || !plain_segment(continue_id) {
            return Err(refuse(
                "the bot ID and the continue ID must be non-empty and of letters, digits, `-`, `_`, `.`, `~`",
            ));
        }
        Ok(Self {
            kind,
            bot_id: (*bot_id).to_string(),
            continue_id: (*continue_id).to_string(),
            url,
        })
    }

    /// A target from its parts, on the account at `base_url` (e.g. for a bot known otherwise).
    /// The bot ID and the continue ID must each be one plain segment (letters, digits, `-`, `_`,
    /// `.`, `~`, not `.` or `..`): a part such as `../../5` is refused, never resolved into
    /// another path.
    pub fn new(
        base_url: &str,
        kind: BotKind,
        bot_id: &str,
        continue_id: &str,
    ) -> Result<Self, ReturnUrlError> {
        let url = format!(
            "{}/api/v4/{kind}/{bot_id}/continue/{continue_id}",
            base_url.trim_end_matches('/')
        );
        if !plain_segment(bot_id) || !plain_segment(continue_id) {
            return Err(ReturnUrlError {
                url: url.chars().take(300).collect(),
                reason: "the bot ID and the continue ID must be non-empty and of letters, digits, `-`, `_`, `.`, `~`".into(),
            });
        }
        Self::parse(&url)
    }

    /// `salesbot` or `marketingbot`.
    pub fn kind(&self) -> BotKind {
        self.kind
    }

    /// The bot's ID.
    pub fn bot_id(&self) -> &str {
        &self.bot_id
    }

    /// The continuation's ID.
    pub fn continue_id(&self) -> &str {
        &self.continue_id
    }

    /// The continue URL.
    pub fn url(&self) -> &url::Url {
        &self.url
    }
}

//! Continuing the bot a `widget_request` came from, in one call, on the client's own account.

use super::request::{ContinueTarget, ReturnUrlError, VerifiedWidgetRequest};
use crate::error::ApiError;
use crate::kommo::types::{BotHandler, ContinueBotData, ContinueBotRequest};
use crate::kommo::{self, ClientInfo};

/// What names a bot to continue: a [`VerifiedWidgetRequest`] (its `return_url`, on the
/// account its token was signed for), or a [`ContinueTarget`] you made yourself.
///
/// An unverified [`WidgetRequest`](super::WidgetRequest) is not one: verify it first
/// ([`WidgetRequest::verify`](super::WidgetRequest::verify)). Do not build a `ContinueTarget`
/// from an unverified `return_url` either: that skips the check that ties it to the token.
pub trait ContinueFrom {
    /// The target, or why there is none.
    fn continue_target(&self) -> Result<ContinueTarget, ReturnUrlError>;
}

impl ContinueFrom for VerifiedWidgetRequest {
    fn continue_target(&self) -> Result<ContinueTarget, ReturnUrlError> {
        Ok(self.target().clone())
    }
}

impl ContinueFrom for ContinueTarget {
    fn continue_target(&self) -> Result<ContinueTarget, ReturnUrlError> {
        Ok(self.clone())
    }
}

/// A continue call being built: [`kommo::Client::continue_widget_request`].
#[must_use = "nothing is sent until `send` is awaited"]
#[derive(Debug)]
pub struct ContinueWidgetRequest<'a> {
    client: &'a kommo::Client,
    target: Result<ContinueTarget, ReturnUrlError>,
    body: ContinueBotRequest,
}

impl ContinueWidgetRequest<'_> {
    /// `data` for the bot's later steps (read there as `{{json.KEY}}`).
    pub fn data(mut self, data: impl Into<ContinueBotData>) -> Self {
        self.body = self.body.with_data(data);
        self
    }

    /// Handlers the bot runs before it continues (at most 10; checked before sending).
    pub fn execute_handlers(mut self, handlers: impl Into<Vec<BotHandler>>) -> Self {
        self.body = self.body.with_execute_handlers(handlers);
        self
    }

    /// Sends it. A `return_url` that is not a continue URL, or that is not on the client's own
    /// account (another origin, or outside the base URL's path), is
    /// [`ApiError::InvalidLink`] and nothing is sent: the call carries the account's token.
    /// Over Kommo's handler limits it is [`ApiError::LimitExceeded`], also unsent.
    pub async fn send(self) -> Result<(), kommo::Error> {
        let base = self.client.baseurl();
        let refuse = |href: &str, reason: String| {
            tracing::warn!(
                reason,
                href_len = href.len(),
                "widget_request not continued"
            );
            ApiError::InvalidLink {
                href: href.to_string(),
                reason,
            }
        };
        let target = self.target.map_err(|e| refuse(&e.url.clone(), e.reason))?;
        let href = target.url().as_str();
        crate::links::resolve(base, href).map_err(|reason| refuse(href, reason))?;
        // Same origin; the path must be the one this client would call, under its base path.
        let own = ContinueTarget::new(base, target.kind(), target.bot_id(), target.continue_id())
            .map_err(|e| refuse(href, e.reason))?;
        if own.url() != target.url() {
            return Err(refuse(
                href,
                format!(
                    "its path is not {}, the continue path under the client's base URL",
                    own.url().path()
                ),
            ));
        }
        self.client
            .continue_bot_checked(
                target.kind(),
                target.bot_id(),
                target.continue_id(),
                self.body,
            )
            .await
    }
}

impl kommo::Client {
    /// Continues the bot that sent a verified `widget_request`: the kind, bot ID and continue
    /// ID come from its `return_url`, which [`WidgetRequest::verify`](crate::widget::WidgetRequest::verify)
    /// tied to the token's account, and which must be on this client's account too: the client
    /// of another account refuses it ([`ApiError::InvalidLink`]) and sends nothing. See
    /// [`ContinueWidgetRequest::send`] for what is refused.
    ///
    /// ```no_run
    /// # async fn f(kommo: lead_intake::kommo::Client, request: lead_intake::widget::VerifiedWidgetRequest)
    /// # -> Result<(), lead_intake::kommo::Error> {
    /// kommo
    ///     .continue_widget_request(&request)
    ///     .data(serde_json::Map::from_iter([("status".to_string(), "done".into())]))
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn continue_widget_request<T: ContinueFrom + ?Sized>(
        &self,
        from: &T,
    ) -> ContinueWidgetRequest<'_> {
        ContinueWidgetRequest {
            client: self,
            target: from.continue_target(),
            body: ContinueBotRequest::new(),
        }
    }
}

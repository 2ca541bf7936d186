//! continueBot's documented limits, checked before sending.
//!
//! Kommo's reference "SalesBot widget block execution confirmation": at most 10
//! `execute_handlers`; a `show` handler's `value` at most 80 characters; at most 25 buttons.
//! The spec says so too (`maxItems`, `maxLength`). The generated `BotHandlerParamsValue` already
//! refuses a text over 80 characters when it is built or decoded; the counts are checked here.

use super::types::{BotHandlerName, BotKind, ContinueBotRequest};
use super::{Client, Error};
use crate::error::{ApiError, Limit, LimitExceeded, ResponseExt};

/// At most this many `execute_handlers`.
pub const MAX_HANDLERS: usize = 10;
/// A `show` handler's `value`: at most this many characters.
pub const MAX_SHOW_TEXT: usize = 80;
/// A `show` handler's `buttons`: at most this many.
pub const MAX_BUTTONS: usize = 25;

impl ContinueBotRequest {
    /// The first of Kommo's documented limits this request breaks, if any: more than
    /// [`MAX_HANDLERS`] handlers, a `show` text over [`MAX_SHOW_TEXT`] characters, more than
    /// [`MAX_BUTTONS`] buttons in one handler. The error names the handler by its index.
    pub fn check_limits(&self) -> Result<(), LimitExceeded> {
        let handlers = &self.execute_handlers;
        if handlers.len() > MAX_HANDLERS {
            return Err(LimitExceeded {
                path: "execute_handlers".to_string(),
                handler: None,
                limit: Limit::MaxItems(MAX_HANDLERS),
                actual: handlers.len(),
            });
        }
        for (index, handler) in handlers.iter().enumerate() {
            let params = &handler.params;
            // Kommo states the text limit for `show`.
            if handler.handler == BotHandlerName::Show
                && let Some(value) = &params.value
                && value.chars().count() > MAX_SHOW_TEXT
            {
                return Err(LimitExceeded {
                    path: format!("execute_handlers[{index}].params.value"),
                    handler: Some(index),
                    limit: Limit::MaxLength(MAX_SHOW_TEXT),
                    actual: value.chars().count(),
                });
            }
            if params.buttons.len() > MAX_BUTTONS {
                return Err(LimitExceeded {
                    path: format!("execute_handlers[{index}].params.buttons"),
                    handler: Some(index),
                    limit: Limit::MaxItems(MAX_BUTTONS),
                    actual: params.buttons.len(),
                });
            }
        }
        Ok(())
    }
}

impl Client {
    /// continueBot, after [`ContinueBotRequest::check_limits`]: a request over one of Kommo's
    /// documented limits is [`ApiError::LimitExceeded`] and nothing is sent. Otherwise the same
    /// as `continue_bot().bot_kind(..).bot_id(..).continue_id(..).body(request).send().body()`.
    ///
    /// ```no_run
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// use lead_intake::kommo::types::{
    ///     BotHandler, BotHandlerName, BotHandlerParams, BotKind, ContinueBotData, ContinueBotRequest,
    /// };
    /// let request = ContinueBotRequest::new()
    ///     .with_data(ContinueBotData::from_iter([("status", "success")]))
    ///     .with_execute_handlers(vec![
    ///         BotHandler::new(
    ///             BotHandlerName::Show,
    ///             BotHandlerParams::new()
    ///                 .with_type("buttons")
    ///                 .with_value("Pick one")
    ///                 .with_buttons(vec!["Yes".to_string(), "No".to_string()]),
    ///         ),
    ///         BotHandler::new(
    ///             BotHandlerName::Goto,
    ///             BotHandlerParams::new().with_type("question").with_step(5),
    ///         ),
    ///     ]);
    /// kommo.continue_bot_checked(BotKind::Salesbot, "4131", "7a1c2e", request).await?;
    /// # Ok(()) }
    /// ```
    pub async fn continue_bot_checked(
        &self,
        kind: BotKind,
        bot_id: &str,
        continue_id: &str,
        request: ContinueBotRequest,
    ) -> Result<(), Error> {
        request.check_limits().map_err(ApiError::LimitExceeded)?;
        self.continue_bot()
            .bot_kind(kind)
            .bot_id(bot_id)
            .continue_id(continue_id)
            .body(request)
            .send()
            .body()
            .await
    }
}

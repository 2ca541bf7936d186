//! Building the request bodies whose values are free-form: a widget's settings to install it
//! with, and the data a widget block hands back to its bot (`continue`). Every other request
//! type has a generated `new(required fields)` and `with_*` setters.

use std::collections::HashMap;

use serde_json::Value;

use super::types::{
    ContinueBotData, IntOrString, WidgetInstallSettings, WidgetSettingValue, WidgetUserCredentials,
    WidgetUsersLpSetting, WidgetUsersSetting,
};
use crate::Secret;

impl WidgetInstallSettings {
    /// No settings (for a widget whose template requires none).
    pub fn new() -> Self {
        Self(HashMap::new())
    }

    /// A `text` or `pass` setting. The value is kept as a [`Secret`] either way (a value alone
    /// cannot tell a password from text), so `Debug` never shows it.
    ///
    /// ```
    /// use lead_intake::kommo::types::WidgetInstallSettings;
    ///
    /// let settings = WidgetInstallSettings::new()
    ///     .with_text("login", "example")
    ///     .with_text("password", "eXaMp1E")
    ///     .with_users("phones", [("504141", "1039")])
    ///     .with_text("script_path", "https://example.com/");
    /// assert_eq!(serde_json::to_value(&settings)?["phones"]["504141"], "1039");
    /// assert!(!format!("{settings:?}").contains("eXaMp1E"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn with_text(mut self, key: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.0
            .insert(key.into(), WidgetSettingValue::SecretString(value.into()));
        self
    }

    /// A `users` setting: user ID to the user's extension number.
    #[must_use]
    pub fn with_users<U, E>(
        mut self,
        key: impl Into<String>,
        users: impl IntoIterator<Item = (U, E)>,
    ) -> Self
    where
        U: Into<String>,
        E: Into<IntOrString>,
    {
        let map = users
            .into_iter()
            .map(|(user, ext)| (user.into(), ext.into()))
            .collect();
        self.0.insert(
            key.into(),
            WidgetSettingValue::WidgetUsersSetting(WidgetUsersSetting(map)),
        );
        self
    }

    /// A `users_lp` setting: user ID to the user's login and password.
    #[must_use]
    pub fn with_users_lp<U, L, P>(
        mut self,
        key: impl Into<String>,
        users: impl IntoIterator<Item = (U, L, P)>,
    ) -> Self
    where
        U: Into<String>,
        L: Into<String>,
        P: Into<Secret>,
    {
        let map = users
            .into_iter()
            .map(|(user, login, password)| {
                (
                    user.into(),
                    WidgetUserCredentials {
                        login: login.into(),
                        password: password.into(),
                    },
                )
            })
            .collect();
        self.0.insert(
            key.into(),
            WidgetSettingValue::WidgetUsersLpSetting(WidgetUsersLpSetting(map)),
        );
        self
    }
}

impl Default for WidgetInstallSettings {
    fn default() -> Self {
        Self::new()
    }
}

/// Data for the bot's later steps, keyed by name (read there as `{{json.KEY}}`).
///
/// ```
/// use lead_intake::kommo::types::{ContinueBotData, ContinueBotRequest};
///
/// let request = ContinueBotRequest::new()
///     .with_data(ContinueBotData::from_iter([("status", "success")]));
/// assert_eq!(serde_json::to_value(&request)?, serde_json::json!({"data": {"status": "success"}}));
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for ContinueBotData {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::Object(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

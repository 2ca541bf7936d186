//! Building the request bodies whose values are free-form: a widget's settings to install it
//! with, and the data a widget block hands back to its bot (`continue`); and shortcuts for the
//! nested parts of a complex lead (its contact, company, source, phone and e-mail). Every request
//! type also has a generated `new(required fields)` and `with_*` setters.

use std::collections::HashMap;

use serde_json::Value;

use super::types::{
    ComplexCompany, ComplexContact, ComplexLead, ComplexLeadEmbedded, ContinueBotData,
    CustomFieldValue, CustomFieldValueItem, IntOrString, LeadSource, LeadSourceType,
    WidgetInstallSettings, WidgetSettingValue, WidgetUserCredentials, WidgetUsersLpSetting,
    WidgetUsersSetting,
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

impl LeadSource {
    /// The integration's source with this `external_id`, of `type` `widget` (the only type an
    /// integration's source has).
    ///
    /// ```
    /// use lead_intake::kommo::types::LeadSource;
    /// let source = LeadSource::widget("site-chat");
    /// assert_eq!(
    ///     serde_json::to_value(&source)?,
    ///     serde_json::json!({"external_id": "site-chat", "type": "widget"})
    /// );
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn widget(external_id: impl Into<String>) -> Self {
        Self::new(external_id, LeadSourceType::Widget)
    }
}

impl ComplexLead {
    fn embedded_mut(&mut self) -> &mut ComplexLeadEmbedded {
        self.embedded.get_or_insert_with(ComplexLeadEmbedded::new)
    }

    /// The lead's contact (`_embedded.contacts`; Kommo takes at most one, so this replaces any
    /// other).
    ///
    /// ```
    /// use lead_intake::kommo::types::{ComplexCompany, ComplexContact, ComplexLead, LeadSource};
    ///
    /// let lead = ComplexLead::new()
    ///     .with_name("Chat lead")
    ///     .with_pipeline_id(6950551)
    ///     .with_contact(
    ///         ComplexContact::new()
    ///             .with_name("Jane Doe")
    ///             .with_phone("+15550100")
    ///             .with_email("jane@example.com"),
    ///     )
    ///     .with_company(ComplexCompany::new().with_name("Example Inc."))
    ///     .with_source(LeadSource::widget("site-chat"));
    /// let wire = serde_json::to_value(&lead)?;
    /// assert_eq!(wire["_embedded"]["source"]["type"], "widget");
    /// assert_eq!(wire["_embedded"]["contacts"][0]["custom_fields_values"][0]["field_code"], "PHONE");
    /// assert_eq!(wire["_embedded"]["companies"][0]["name"], "Example Inc.");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn with_contact(mut self, contact: ComplexContact) -> Self {
        self.embedded_mut().contacts = vec![contact];
        self
    }

    /// The lead's company (`_embedded.companies`; at most one, so this replaces any other).
    #[must_use]
    pub fn with_company(mut self, company: ComplexCompany) -> Self {
        self.embedded_mut().companies = vec![company];
        self
    }

    /// The integration's source the lead came from (`_embedded.source`), e.g.
    /// [`LeadSource::widget`].
    #[must_use]
    pub fn with_source(mut self, source: LeadSource) -> Self {
        self.embedded_mut().source = Some(source);
        self
    }
}

/// One value of a field named by its code (`PHONE`, `EMAIL`), of the kind `WORK`.
fn coded_value(code: &str, value: String) -> CustomFieldValue {
    CustomFieldValue::new(vec![
        CustomFieldValueItem::new()
            .with_value(value)
            .with_enum_code("WORK"),
    ])
    .with_field_code(code)
}

impl ComplexContact {
    /// Adds a work phone number (the `PHONE` field).
    #[must_use]
    pub fn with_phone(mut self, phone: impl Into<String>) -> Self {
        self.custom_fields_values
            .push(coded_value("PHONE", phone.into()));
        self
    }

    /// Adds a work e-mail address (the `EMAIL` field).
    #[must_use]
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.custom_fields_values
            .push(coded_value("EMAIL", email.into()));
        self
    }
}

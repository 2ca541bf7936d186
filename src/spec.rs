//! The hand-written OpenAPI documents this crate is generated from, and the vendors' example
//! answers the fake server (`lead-intake-fake`) starts with, as text.
//!
//! They are the files of `openapi/` as they are, embedded at build time: the one copy that the
//! generated clients, the fake server and its checks all read. Use them to validate your own
//! fixtures, to serve the spec, or to feed another tool.
//!
//! The documents name their examples by `externalValue` (a file beside the spec); the
//! self-contained documents with every example inlined are `openapi/export/` in the repository.
//!
//! ```
//! use lead_intake::kommo::types::WidgetList;
//! use lead_intake::spec;
//!
//! assert!(spec::KOMMO_OPENAPI_YAML.starts_with("openapi: 3.0"));
//! assert!(spec::CLOSEBOT_OPENAPI_YAML.contains("/agency/source"));
//!
//! // The documented answer of `listWidgets`, read by the typed client's own type.
//! let page: WidgetList = serde_json::from_str(spec::KOMMO_LIST_WIDGETS_EXAMPLE)?;
//! assert_eq!(page.widgets()[0].code, "amo_dropbox");
//! # Ok::<(), serde_json::Error>(())
//! ```

/// `openapi/kommo.yaml`: Kommo CRM v4's lead sources, widgets and incoming leads (OpenAPI 3.0.3,
/// YAML).
pub const KOMMO_OPENAPI_YAML: &str = include_str!("../openapi/kommo.yaml");

/// `openapi/closebot.yaml`: CloseBot's agency sources (OpenAPI 3.0.3, YAML).
pub const CLOSEBOT_OPENAPI_YAML: &str = include_str!("../openapi/closebot.yaml");

/// `openapi/examples/kommo/listSources.response.200.json`: the documented `200` of
/// `GET /api/v4/sources`.
pub const KOMMO_LIST_SOURCES_EXAMPLE: &str =
    include_str!("../openapi/examples/kommo/listSources.response.200.json");

/// `openapi/examples/kommo/listWidgets.response.200.json`: the documented `200` of
/// `GET /api/v4/widgets` (the widgets `amo_dropbox` and `amo_mailchimp`).
pub const KOMMO_LIST_WIDGETS_EXAMPLE: &str =
    include_str!("../openapi/examples/kommo/listWidgets.response.200.json");

/// `openapi/examples/kommo/installWidget.response.200.json`: the documented `200` of
/// `POST /api/v4/widgets/{widget_code}` (the widget `amo_asterisk`, installed).
pub const KOMMO_INSTALL_WIDGET_EXAMPLE: &str =
    include_str!("../openapi/examples/kommo/installWidget.response.200.json");

/// `openapi/examples/kommo/listIncomingLeads.response.200.json`: the documented `200` of
/// `GET /api/v4/leads/unsorted` (a form, a chat and a call).
pub const KOMMO_LIST_INCOMING_LEADS_EXAMPLE: &str =
    include_str!("../openapi/examples/kommo/listIncomingLeads.response.200.json");

/// `openapi/examples/closebot/listSources.response.200.json`: the documented `200` of
/// CloseBot's `GET /agency/source`.
pub const CLOSEBOT_LIST_SOURCES_EXAMPLE: &str =
    include_str!("../openapi/examples/closebot/listSources.response.200.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_json_and_both_documents_are_openapi_3_0() {
        for example in [
            KOMMO_LIST_SOURCES_EXAMPLE,
            KOMMO_LIST_WIDGETS_EXAMPLE,
            KOMMO_INSTALL_WIDGET_EXAMPLE,
            KOMMO_LIST_INCOMING_LEADS_EXAMPLE,
            CLOSEBOT_LIST_SOURCES_EXAMPLE,
        ] {
            let value: serde_json::Value = serde_json::from_str(example).unwrap();
            assert!(value.is_object());
        }
        for doc in [KOMMO_OPENAPI_YAML, CLOSEBOT_OPENAPI_YAML] {
            assert!(doc.starts_with("openapi: 3.0.3\n"));
        }
    }
}

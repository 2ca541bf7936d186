//! Every request body a user builds, written in typed Rust (generated `new(required...)` and
//! `with_*` setters, no `json!`), serializes to exactly the vendor document's example.

mod common;

use lead_intake::kommo::types::{
    self, AcceptIncomingLeadRequest, AddIncomingForm, AddSource, CompanyInput, ContactInput,
    ContinueBotData, ContinueBotRequest, CustomFieldValue, CustomFieldValueItem, DeleteSourcesItem,
    FormsMetadata, IncomingLeadEmbeddedInput, LeadInput, LeadInputEmbedded, LinkEntityType,
    LinkIncomingLeadRequest, LinkTarget, TagRef, UpdateSource, UpdateSourcesItem,
    WidgetInstallSettings,
};
use serde::Serialize;

fn same_as_example(value: &impl Serialize, example: &str) {
    assert_eq!(
        serde_json::to_value(value).unwrap(),
        common::example(example),
        "{example}"
    );
}

#[test]
fn sources_to_add_update_and_delete() {
    let add: types::AddSourcesRequest = vec![
        AddSource::new("chat", "Kchat01")
            .with_origin_code("kommo.ext.30470678")
            .with_pipeline_id(5867030),
        AddSource::new("test_chat", "Kchat02")
            .with_origin_code("kommo.ext.30470678")
            .with_pipeline_id(5884544),
    ]
    .into();
    same_as_example(&add, "addSources.request.json");

    let update: types::UpdateSourcesRequest = vec![
        UpdateSourcesItem::new(17619939).with_default(true),
        UpdateSourcesItem::new(19352935).with_name("call"),
    ]
    .into();
    same_as_example(&update, "updateSources.request.json");
    same_as_example(
        &UpdateSource::new().with_default(true),
        "updateSource.request.json",
    );

    let delete: types::DeleteSourcesRequest = vec![
        DeleteSourcesItem::new(17489247),
        DeleteSourcesItem::new(17489251),
    ]
    .into();
    same_as_example(&delete, "deleteSources.request.json");
}

#[test]
fn a_form_with_its_metadata_lead_contact_and_company() {
    let lead = LeadInput::new()
        .with_name("Tech maintenance")
        .with_price(5500)
        .with_custom_fields_values(vec![
            CustomFieldValue::new(vec![CustomFieldValueItem::new().with_value(true)])
                .with_field_id(184994),
        ])
        .with_embedded(LeadInputEmbedded::new().with_tags(vec![TagRef::new().with_id(2164)]));
    let form = AddIncomingForm::new(
        "a1fee7c0fc436088e64ba2e8822ba2b3",
        "Asme Co.",
        FormsMetadata::new()
            .with_ip("123.222.2.22")
            .with_form_id("a1fee7c0fc436088e64ba2e8822ba2b3ewrw")
            .with_form_sent_at(1590830520)
            .with_form_name("Application form")
            .with_form_page("https://example.com")
            .with_referer("https://www.google.com"),
        IncomingLeadEmbeddedInput::new()
            .with_leads(vec![lead])
            .with_contacts(vec![ContactInput::new().with_name("Example 2 contact")])
            .with_companies(vec![CompanyInput::new().with_name("Atme Co.")]),
    )
    .with_request_id("456")
    .with_pipeline_id(6950551)
    .with_created_at(1510261200);
    let forms: types::AddIncomingFormsRequest = vec![form].into();
    same_as_example(&forms, "addIncomingForms.request.json");
}

#[test]
fn accept_link_continue_and_install() {
    same_as_example(
        &AcceptIncomingLeadRequest::new()
            .with_user_id(8375357)
            .with_status_id(58141807),
        "acceptIncomingLead.request.json",
    );
    same_as_example(
        &LinkIncomingLeadRequest::new(LinkTarget::new(152464, LinkEntityType::Leads)),
        "linkIncomingLead.request.json",
    );
    same_as_example(
        &ContinueBotRequest::new().with_data(ContinueBotData::from_iter([("status", "success")])),
        "continueBot.request.json",
    );
    let settings = WidgetInstallSettings::new()
        .with_text("login", "example")
        .with_text("password", "eXaMp1E")
        .with_users("phones", [("504141", "1039")])
        .with_text("script_path", "https://example.com/");
    same_as_example(&settings, "installWidget.request.json");
}

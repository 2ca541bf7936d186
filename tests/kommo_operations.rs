//! Every Kommo operation on the wire: the exact method, path, query string, JSON body and
//! credentials the client sends, and what it decodes from the documented answer.
//!
//! Request bodies are the vendor examples decoded into the generated request types and sent
//! again: the server only answers when the JSON it receives equals the example.

mod common;

use common::{hal, kommo, kommo_request, no_body, no_query, problem, query_is};
use httpmock::Method::{DELETE, GET, PATCH, POST};
use lead_intake::kommo::types::{
    self, BotKind, IncomingLeadCategory, IncomingLeadMetadata, IntOrString, SortOrder,
    SourceServiceType, WidgetSettingsFieldType,
};
use lead_intake::prelude::*;
use serde_json::json;

const ACCEPTED_UID: &str = "5af9dedb6f2c6a29eaac6ee37fc75ffbb66e139e4603bdd0e14e39d4b319";
const CALL_UID: &str = "400c5eb65b9fa7bbfa813cf593b49d4942f325c7c3fbbcf3acf3bee79b63";
const CHAT_UID: &str = "9ca097816a45770002e406db35e2a1945364d570b765332cef7a57289fc0";

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

// ------------------------------------------------------------------------------------ sources

#[tokio::test]
async fn list_sources_sends_the_external_id_filter_as_a_php_array_and_decodes_the_sources() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/sources")
                .query_param("filter[external_id][]", "kchat01")
                .query_param("filter[external_id][]", "kchat02")
                .query_param_count("^filter\\[external_id\\]\\[\\]$", ".*", 2)
                .is_true(query_is(
                    "filter%5Bexternal_id%5D%5B%5D=kchat01&filter%5Bexternal_id%5D%5B%5D=kchat02",
                ))
                .is_true(no_body);
            hal(then, "listSources.response.200.json");
        })
        .await;

    let list = client
        .list_sources()
        .filter_external_id(strings(&["kchat01", "kchat02"]))
        .send()
        .or_empty()
        .await
        .expect("the documented answer decodes");

    mock.assert_async().await;
    assert_eq!(list.total_items, Some(2));
    let self_link = list.links.and_then(|l| l.self_).and_then(|l| l.href);
    assert_eq!(
        self_link.as_deref(),
        Some("https://subdomain.kommo.com/api/v4/sources")
    );
    let sources = list.embedded.expect("_embedded").sources;
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0].id, 17619939);
    assert_eq!(sources[0].name.as_deref(), Some("chat"));
    assert_eq!(
        sources[0].external_id.as_ref().map(IntOrString::as_str),
        Some("kchat01")
    );
    assert_eq!(sources[0].pipeline_id, Some(5867030));
    assert_eq!(sources[0].default, Some(false));
    assert_eq!(
        sources[0].origin_code.as_deref(),
        Some("kommo.ext.30470678")
    );
    assert!(sources[0].services.as_ref().is_some_and(Vec::is_empty));
    assert_eq!(sources[1].id, 17619943);
    assert_eq!(
        sources[1].external_id.as_ref().map(IntOrString::as_str),
        Some("kchat02")
    );
}

#[tokio::test]
async fn get_source_gets_one_source_by_id_and_decodes_it() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/sources/17619939")
                .is_true(no_query)
                .is_true(no_body);
            hal(then, "getSource.response.200.json");
        })
        .await;

    let source = client
        .get_source()
        .id(17619939)
        .send()
        .body()
        .await
        .expect("the documented answer decodes");

    mock.assert_async().await;
    assert_eq!(source.id, 17619939);
    assert_eq!(source.name.as_deref(), Some("chat"));
    assert_eq!(
        source.external_id.as_ref().map(IntOrString::as_str),
        Some("kchat01")
    );
    assert_eq!(source.pipeline_id, Some(5867030));
    assert_eq!(source.default, Some(true));
    assert_eq!(source.origin_code.as_deref(), Some("kommo.ext.30470678"));
    let self_link = source.links.and_then(|l| l.self_).and_then(|l| l.href);
    assert_eq!(
        self_link.as_deref(),
        Some("https://subdomain.kommo.com/api/v4/sources/17619939")
    );
}

#[tokio::test]
async fn get_source_or_gone_reads_a_source_as_some_and_204_or_a_404_problem_as_none() {
    let (server, client) = kommo().await;
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/sources/1");
            hal(then, "getSource.response.200.json");
        })
        .await;
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/sources/2");
            then.status(204);
        })
        .await;
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/sources/3");
            problem(then, 404, "problem.not-found.404.json");
        })
        .await;
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/sources/4");
            then.status(404)
                .header("content-type", "text/html")
                .body("<html><h1>404 Not Found</h1></html>");
        })
        .await;
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/sources/5");
            problem(then, 401, "problem.unauthorized.401.json");
        })
        .await;
    let get = |id: i64| client.get_source().id(id).send().or_gone();

    let found = get(1).await.unwrap().expect("a source");
    assert_eq!(found.id, 17619939);
    assert!(get(2).await.unwrap().is_none(), "204: deleted");
    assert!(get(3).await.unwrap().is_none(), "404 problem: not there");
    // A 404 page that is not the API's (a wrong host or path) stays an error.
    let err = get(4).await.unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::NOT_FOUND));
    let err = get(5).await.unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::UNAUTHORIZED));
    // Without `or_gone`, a 204 is an error like any answer without a body.
    let err = client.get_source().id(2).send().body().await.unwrap_err();
    assert_eq!(err.status(), Some(reqwest::StatusCode::NO_CONTENT));
}

#[tokio::test]
async fn add_sources_posts_the_batch_and_decodes_created_sources() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, "/api/v4/sources")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("addSources.request.json"));
            hal(then, "addSources.response.200.json");
        })
        .await;

    let request: types::AddSourcesRequest = common::example_as("addSources.request.json");
    let created = client
        .add_sources()
        .body(request)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(created.total_items, Some(2));
    let sources = created.embedded.expect("_embedded").sources;
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0].id, 17619939);
    assert_eq!(sources[0].request_id.as_deref(), Some("0"));
    assert_eq!(sources[0].name.as_deref(), Some("chat"));
    assert_eq!(sources[1].id, 17619943);
    assert_eq!(sources[1].request_id.as_deref(), Some("1"));
    assert_eq!(sources[1].pipeline_id, Some(5884544));
    assert_eq!(
        sources[1]
            .links
            .as_ref()
            .and_then(|l| l.self_.as_ref())
            .and_then(|l| l.href.as_deref()),
        Some("https://subdomain.kommo.com/api/v4/sources/17619943")
    );
}

#[tokio::test]
async fn update_sources_patches_the_batch_and_decodes_the_updated_sources() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, PATCH, "/api/v4/sources")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("updateSources.request.json"));
            hal(then, "updateSources.response.200.json");
        })
        .await;

    let request: types::UpdateSourcesRequest = common::example_as("updateSources.request.json");
    let updated = client
        .update_sources()
        .body(request)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    let sources = updated.embedded.expect("_embedded").sources;
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0].id, 17619939);
    assert_eq!(sources[0].default, Some(true));
    assert_eq!(sources[1].id, 19352935);
    assert_eq!(sources[1].name.as_deref(), Some("call"));
    assert_eq!(
        sources[1].external_id.as_ref().map(IntOrString::as_str),
        Some("gp02")
    );
    assert_eq!(
        sources[1].origin_code, None,
        "origin_code: null decodes as None"
    );
}

#[tokio::test]
async fn update_source_patches_one_source_by_id_and_decodes_it() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, PATCH, "/api/v4/sources/17619939")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("updateSource.request.json"));
            hal(then, "updateSource.response.200.json");
        })
        .await;

    let request: types::UpdateSource = common::example_as("updateSource.request.json");
    let source = client
        .update_source()
        .id(17619939)
        .body(request)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(source.id, 17619939);
    assert_eq!(source.default, Some(true));
    assert_eq!(source.name.as_deref(), Some("chat"));
    assert_eq!(
        source.external_id.as_ref().map(IntOrString::as_str),
        Some("kchat01")
    );
}

#[tokio::test]
async fn delete_sources_sends_the_ids_in_a_delete_body_and_accepts_204() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, DELETE, "/api/v4/sources")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("deleteSources.request.json"));
            then.status(204);
        })
        .await;

    let request: types::DeleteSourcesRequest = common::example_as("deleteSources.request.json");
    client
        .delete_sources()
        .body(request)
        .send()
        .body()
        .await
        .expect("204 is success");

    mock.assert_async().await;
}

#[tokio::test]
async fn delete_source_deletes_one_source_by_id_without_a_body_and_accepts_204() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, DELETE, "/api/v4/sources/17489247")
                .is_true(no_query)
                .is_true(no_body);
            then.status(204);
        })
        .await;

    client
        .delete_source()
        .id(17489247)
        .send()
        .body()
        .await
        .expect("204 is success");

    mock.assert_async().await;
}

// ------------------------------------------------------------------------------------ widgets

#[tokio::test]
async fn list_widgets_sends_page_and_limit_and_decodes_the_page_with_its_next_link() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/widgets")
                .query_param("limit", "2")
                .query_param("page", "1")
                .is_true(query_is("limit=2&page=1"))
                .is_true(no_body);
            hal(then, "listWidgets.response.200.json");
        })
        .await;

    let page = client
        .list_widgets()
        .limit(2)
        .page(1)
        .send()
        .or_empty()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(page.page, Some(1));
    let next = page.links.and_then(|l| l.next).and_then(|l| l.href);
    assert_eq!(
        next.as_deref(),
        Some("https://example.kommo.com/api/v4/widgets?limit=2&page=2")
    );
    let widgets = page.embedded.expect("_embedded").widgets;
    assert_eq!(widgets.len(), 2);
    assert_eq!(widgets[0].id, Some(742));
    assert_eq!(widgets[0].code, "amo_dropbox");
    assert_eq!(widgets[0].rating, Some(types::WidgetRating::from("2,8")));
    assert_eq!(widgets[0].pipeline_id, None);
    assert_eq!(widgets[1].code, "amo_mailchimp");
    assert_eq!(
        widgets[1].version.as_ref().map(IntOrString::as_str),
        Some("1.1.12")
    );
}

#[tokio::test]
async fn get_widget_gets_the_widget_by_code_and_decodes_it() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/widgets/amo_dropbox")
                .is_true(no_query)
                .is_true(no_body);
            hal(then, "getWidget.response.200.json");
        })
        .await;

    let widget = client
        .get_widget()
        .widget_code("amo_dropbox")
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(widget.id, Some(742));
    assert_eq!(widget.code, "amo_dropbox");
    assert_eq!(
        widget.version.as_ref().map(IntOrString::as_str),
        Some("0.0.13")
    );
    assert_eq!(widget.rating, Some(types::WidgetRating::from("2,8")));
    assert_eq!(widget.client_uuid, None);
    assert_eq!(widget.is_active_in_account, Some(false));
    assert_eq!(widget.settings_template.len(), 1);
    assert_eq!(widget.settings_template[0].key.as_deref(), Some("conf"));
    assert_eq!(
        widget.settings_template[0].type_,
        Some(WidgetSettingsFieldType::Custom)
    );
    assert_eq!(widget.settings_template[0].is_required, Some(false));
}

#[tokio::test]
async fn install_widget_posts_the_settings_and_decodes_the_installed_widget() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, "/api/v4/widgets/amo_asterisk")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("installWidget.request.json"));
            hal(then, "installWidget.response.200.json");
        })
        .await;

    let settings: types::WidgetInstallSettings = common::example_as("installWidget.request.json");
    assert!(
        matches!(
            settings.get("phones"),
            Some(types::WidgetSettingValue::WidgetUsersSetting(_))
        ),
        "the `phones` object is a users setting: {settings:?}"
    );
    let widget = client
        .install_widget()
        .widget_code("amo_asterisk")
        .body(settings)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(widget.id, Some(972));
    assert_eq!(widget.code, "amo_asterisk");
    assert_eq!(widget.is_active_in_account, Some(true));
    let types: Vec<_> = widget
        .settings_template
        .iter()
        .map(|f| f.type_.clone())
        .collect();
    assert_eq!(
        types,
        [
            Some(WidgetSettingsFieldType::Text),
            Some(WidgetSettingsFieldType::Pass),
            Some(WidgetSettingsFieldType::Users),
            Some(WidgetSettingsFieldType::Text),
        ]
    );
    let Some(settings) = widget.settings else {
        panic!("the installed widget has settings: {widget:?}");
    };
    assert_eq!(settings.get("phones"), Some(&json!({ "504141": "1039" })));
    assert_eq!(
        settings.get("script_path"),
        Some(&json!("https://example.com/"))
    );
}

#[tokio::test]
async fn uninstall_widget_deletes_the_widget_by_code_and_accepts_204() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, DELETE, "/api/v4/widgets/amo_asterisk")
                .is_true(no_query)
                .is_true(no_body);
            then.status(204);
        })
        .await;

    client
        .uninstall_widget()
        .widget_code("amo_asterisk")
        .send()
        .body()
        .await
        .expect("204 is success");

    mock.assert_async().await;
}

/// Sends continueBot for `kind` and checks the path and body; the answer is a body-less 202.
async fn continue_bot(kind: BotKind, path: &'static str) {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, path)
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("continueBot.request.json"));
            then.status(202);
        })
        .await;

    let request: types::ContinueBotRequest = common::example_as("continueBot.request.json");
    let Some(types::ContinueBotData::Object(data)) = &request.data else {
        panic!("{:?}", request.data);
    };
    assert_eq!(data["status"], json!("success"));
    client
        .continue_bot()
        .bot_kind(kind)
        .bot_id("4131")
        .continue_id("7a1c2e")
        .body(request)
        .send()
        .body()
        .await
        .expect("202 is success");

    mock.assert_async().await;
}

#[tokio::test]
async fn continue_bot_posts_the_widget_result_to_a_salesbot_and_accepts_202() {
    continue_bot(BotKind::Salesbot, "/api/v4/salesbot/4131/continue/7a1c2e").await;
}

#[tokio::test]
async fn continue_bot_posts_the_widget_result_to_a_marketingbot_and_accepts_202() {
    continue_bot(
        BotKind::Marketingbot,
        "/api/v4/marketingbot/4131/continue/7a1c2e",
    )
    .await;
}

/// A `show` handler with `buttons` buttons, its text `text_chars` characters long.
fn show(text_chars: usize, buttons: usize) -> serde_json::Value {
    let value = "é".repeat(text_chars);
    if buttons == 0 {
        return json!({"handler": "show", "params": {"type": "text", "value": value}});
    }
    let buttons: Vec<String> = (1..=buttons).map(|n| format!("Button {n}")).collect();
    json!({"handler": "show", "params": {"type": "buttons", "value": value, "buttons": buttons}})
}

fn continue_request(handlers: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"data": {"status": "success"}, "execute_handlers": handlers})
}

#[tokio::test]
async fn continue_bot_checked_sends_handlers_at_every_limit_exactly_as_given() {
    let (server, client) = kommo().await;
    // 10 handlers; one with an 80-character text ("é" is 2 bytes: characters are counted) and
    // 25 buttons; a goto; and a list as `data`.
    let mut handlers = vec![show(80, 25)];
    handlers.extend((0..8).map(|_| show(1, 0)));
    handlers.push(json!({"handler": "goto", "params": {"type": "question", "step": 5}}));
    let body = continue_request(handlers);
    let with_list = json!({"data": ["a", 1], "execute_handlers": []});
    let expected = body.clone();
    let mock = server
        .mock_async(move |when, then| {
            kommo_request(when, POST, "/api/v4/salesbot/4131/continue/7a1c2e")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(expected);
            then.status(202);
        })
        .await;
    let list_mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, "/api/v4/marketingbot/1/continue/2")
                .json_body(json!({"data": ["a", 1]}));
            then.status(202);
        })
        .await;

    let request: types::ContinueBotRequest = serde_json::from_value(body).unwrap();
    assert_eq!(request.check_limits(), Ok(()));
    client
        .continue_bot_checked(BotKind::Salesbot, "4131", "7a1c2e", request)
        .await
        .expect("at the limits: sent, and 202 is success");
    let request: types::ContinueBotRequest = serde_json::from_value(with_list).unwrap();
    assert!(matches!(
        request.data,
        Some(types::ContinueBotData::Array(_))
    ));
    client
        .continue_bot_checked(BotKind::Marketingbot, "1", "2", request)
        .await
        .expect("a list as data");

    mock.assert_async().await;
    list_mock.assert_async().await;
}

#[tokio::test]
async fn continue_bot_checked_refuses_each_limit_before_sending_anything() {
    use lead_intake::error::{Limit, LimitExceeded};
    let (server, client) = kommo().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(202);
        })
        .await;

    // 11 handlers.
    let eleven = continue_request((0..11).map(|_| show(1, 0)).collect());
    // Handler 3 has 26 buttons.
    let mut buttons = vec![show(1, 0); 3];
    buttons.push(show(1, 26));
    let buttons = continue_request(buttons);
    let cases = [
        (
            eleven,
            LimitExceeded {
                path: "execute_handlers".into(),
                handler: None,
                limit: Limit::MaxItems(10),
                actual: 11,
            },
            "`execute_handlers` has 11 items; at most 10 are allowed",
        ),
        (
            buttons,
            LimitExceeded {
                path: "execute_handlers[3].params.buttons".into(),
                handler: Some(3),
                limit: Limit::MaxItems(25),
                actual: 26,
            },
            "`execute_handlers[3].params.buttons` (handler 3) has 26 items; at most 25 are allowed",
        ),
    ];
    for (body, expected, message) in cases {
        let request: types::ContinueBotRequest = serde_json::from_value(body).unwrap();
        assert_eq!(request.check_limits().as_ref(), Err(&expected));
        let err = client
            .continue_bot_checked(BotKind::Salesbot, "4131", "7a1c2e", request)
            .await
            .unwrap_err();
        let ApiError::LimitExceeded(limit) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(limit, &expected);
        assert_eq!(
            err.to_string(),
            format!("invalid request, not sent: {message}")
        );
        assert!(err.certainly_not_applied());
    }
    // An 81-character `show` text (counted in characters, not bytes) is refused before
    // sending, with where and by how much; 80 is accepted by the check.
    let long = continue_request(vec![show(1, 0), show(81, 0)]);
    let request: types::ContinueBotRequest = serde_json::from_value(long).unwrap();
    let err = client
        .continue_bot_checked(BotKind::Salesbot, "4131", "7a1c2e", request)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request, not sent: `execute_handlers[1].params.value` (handler 1) has 81 characters; at most 80 are allowed"
    );
    let typed =
        types::ContinueBotRequest::new().with_execute_handlers(vec![types::BotHandler::new(
            types::BotHandlerName::Show,
            types::BotHandlerParams::new()
                .with_type("text")
                .with_value("é".repeat(80)),
        )]);
    assert_eq!(typed.check_limits(), Ok(()));

    any.assert_calls_async(0).await;
}

// ----------------------------------------------------------------------------- incoming leads

#[tokio::test]
async fn list_incoming_leads_sends_every_filter_and_decodes_each_category() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/leads/unsorted")
                .query_param("filter[category][]", "forms")
                .query_param("filter[category][]", "chats")
                .query_param("filter[pipeline_id]", "6950551")
                .query_param("filter[uid][]", CHAT_UID)
                .query_param("limit", "250")
                .query_param("order[created_at]", "desc")
                .query_param("page", "1")
                .is_true(query_is(
                    "filter%5Bcategory%5D%5B%5D=forms&filter%5Bcategory%5D%5B%5D=chats\
                     &filter%5Bpipeline_id%5D=6950551\
                     &filter%5Buid%5D%5B%5D=9ca097816a45770002e406db35e2a1945364d570b765332cef7a57289fc0\
                     &limit=250&order%5Bcreated_at%5D=desc&page=1",
                ))
                .is_true(no_body);
            hal(then, "listIncomingLeads.response.200.json");
        })
        .await;

    let page = client
        .list_incoming_leads()
        .filter_category(vec![
            IncomingLeadCategory::Forms,
            IncomingLeadCategory::Chats,
        ])
        .filter_pipeline_id(6950551)
        .filter_uid(strings(&[CHAT_UID]))
        .limit(250)
        .order_created_at(SortOrder::Desc)
        .page(1)
        .send()
        .or_empty()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(page.page, Some(1));
    let leads = page.embedded.expect("_embedded").unsorted;
    assert_eq!(leads.len(), 3);

    assert!(leads.all_recognized(), "{leads:?}");
    let form = &leads[0];
    let Some(IncomingLeadMetadata::Forms(metadata)) = &form.metadata else {
        panic!("the first lead is a form: {:?}", leads[0]);
    };
    assert_eq!(form.uid, ACCEPTED_UID);
    assert_eq!(form.source_uid, None);
    assert_eq!(
        metadata.form_id.as_ref().map(IntOrString::as_str),
        Some("1115559")
    );
    assert_eq!(metadata.form_sent_at, Some(IntOrString::from("1686819152")));
    assert_eq!(metadata.visitor_uid, None);

    let chat = &leads[1];
    let Some(IncomingLeadMetadata::Chats(metadata)) = &chat.metadata else {
        panic!("the second lead is a chat: {:?}", leads[1]);
    };
    assert_eq!(chat.uid, CHAT_UID);
    assert_eq!(metadata.service.as_deref(), Some("onlinechat"));
    assert_eq!(
        metadata.last_message_text,
        Some(IntOrString::from(1686818940))
    );

    let call = &leads[2];
    let Some(IncomingLeadMetadata::Sip(metadata)) = &call.metadata else {
        panic!("the third lead is a call: {:?}", leads[2]);
    };
    assert_eq!(call.uid, CALL_UID);
    assert_eq!(call.source_name.as_deref(), Some("Acme Co."));
    assert_eq!(metadata.duration, Some(IntOrString::from("54")));
    assert_eq!(metadata.phone, Some(IntOrString::from("14155551234")));
    assert_eq!(
        call.embedded.as_ref().expect("_embedded").companies[0].id,
        Some(583292)
    );
}

#[tokio::test]
async fn get_incoming_lead_gets_the_lead_by_uid_and_decodes_its_chat_metadata() {
    let (server, client) = kommo().await;
    let path = format!("/api/v4/leads/unsorted/{CHAT_UID}");
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, &path)
                .is_true(no_query)
                .is_true(no_body);
            hal(then, "getIncomingLead.response.200.json");
        })
        .await;

    let lead = client
        .get_incoming_lead()
        .uid(CHAT_UID)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    let chat = lead;
    let Some(IncomingLeadMetadata::Chats(metadata)) = chat.metadata else {
        panic!("the lead is a chat: {chat:?}");
    };
    assert_eq!(chat.uid, CHAT_UID);
    assert_eq!(chat.pipeline_id, Some(6950551));
    assert_eq!(chat.account_id, Some(31361463));
    assert_eq!(metadata.from.as_deref(), Some(""));
    assert_eq!(metadata.client.as_ref().and_then(|c| c.name.clone()), None);
    let origin = metadata.origin.expect("origin");
    assert_eq!(
        origin.chat_id.as_deref(),
        Some("b4b939f3-5a25-4cab-a4e8-57140f7c72fa")
    );
    assert_eq!(origin.ref_, None);
    assert_eq!(metadata.source_name.as_deref(), Some("Live chat"));
    let embedded = chat.embedded.expect("_embedded");
    assert_eq!(embedded.contacts[0].id, Some(583308));
    assert_eq!(embedded.leads[0].id, Some(236738));
    assert!(embedded.companies.is_empty());
}

#[tokio::test]
async fn add_incoming_calls_posts_the_calls_to_sip_and_decodes_the_created_leads() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, "/api/v4/leads/unsorted/sip")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("addIncomingCalls.request.json"));
            hal(then, "addIncomingCalls.response.200.json");
        })
        .await;

    let calls: types::AddIncomingCallsRequest = common::example_as("addIncomingCalls.request.json");
    assert_eq!(
        calls[0].metadata.phone,
        Some(IntOrString::from(14155551234_i64))
    );
    let created = client
        .add_incoming_calls()
        .body(calls)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(created.total_items, Some(1));
    let leads = created.embedded.expect("_embedded").unsorted;
    assert_eq!(leads[0].uid, CALL_UID);
    assert_eq!(leads[0].request_id.as_deref(), Some("123"));
    assert_eq!(leads[0].account_id, Some(31361463));
    let embedded = leads[0].embedded.as_ref().expect("_embedded");
    assert_eq!(embedded.contacts[0].id, Some(583294));
    assert_eq!(embedded.leads[0].id, Some(236724));
}

/// BUG (openapi/kommo.yaml `LeadInput`/`ContactInput`/`CompanyInput` + build.rs): the schemas
/// say `additionalProperties: true` and "other fields of that model are passed through", but
/// the generated structs have no place for them: they are silently dropped from the request.
#[tokio::test]
async fn add_incoming_calls_passes_through_lead_and_contact_fields_the_spec_does_not_type() {
    let mut sent = common::example("addIncomingCalls.request.json");
    sent[0]["_embedded"]["leads"][0]["responsible_user_id"] = json!(504141);
    sent[0]["_embedded"]["contacts"][0]["responsible_user_id"] = json!(504141);
    sent[0]["_embedded"]["companies"][0]["created_by"] = json!(504141);
    let (server, client) = kommo().await;
    let expected = sent.clone();
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, "/api/v4/leads/unsorted/sip").json_body(expected);
            hal(then, "addIncomingCalls.response.200.json");
        })
        .await;

    let calls: types::AddIncomingCallsRequest = serde_json::from_value(sent.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&calls).unwrap(),
        sent,
        "the request type keeps every field it was given"
    );
    client
        .add_incoming_calls()
        .body(calls)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
}

#[tokio::test]
async fn add_incoming_forms_posts_the_forms_and_decodes_the_created_leads() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, "/api/v4/leads/unsorted/forms")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("addIncomingForms.request.json"));
            hal(then, "addIncomingForms.response.200.json");
        })
        .await;

    let forms: types::AddIncomingFormsRequest = common::example_as("addIncomingForms.request.json");
    let created = client
        .add_incoming_forms()
        .body(forms)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(created.total_items, Some(1));
    let leads = created.embedded.expect("_embedded").unsorted;
    assert_eq!(
        leads[0].uid,
        "5af9dedb6f2c6a29eaac4b60de71ddd5d2ec7d9f4867a83f73616a51bc76"
    );
    assert_eq!(leads[0].request_id.as_deref(), Some("456"));
    assert_eq!(
        leads[0].embedded.as_ref().expect("_embedded").leads[0].id,
        Some(250286)
    );
}

#[tokio::test]
async fn accept_incoming_lead_posts_to_accept_and_decodes_the_created_entities() {
    let (server, client) = kommo().await;
    let path = format!("/api/v4/leads/unsorted/{ACCEPTED_UID}/accept");
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, &path)
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("acceptIncomingLead.request.json"));
            hal(then, "acceptIncomingLead.response.200.json");
        })
        .await;

    let request: types::AcceptIncomingLeadRequest =
        common::example_as("acceptIncomingLead.request.json");
    let decision = client
        .accept_incoming_lead()
        .uid(ACCEPTED_UID)
        .body(request)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(decision.uid, ACCEPTED_UID);
    assert_eq!(decision.category, Some(IncomingLeadCategory::Forms));
    assert_eq!(decision.pipeline_id, Some(6950551));
    let embedded = decision.embedded.expect("_embedded");
    assert_eq!(embedded.leads[0].id, Some(236768));
    assert_eq!(embedded.contacts[0].id, Some(583338));
    assert_eq!(embedded.contacts[0].is_deleted, Some(false));
    assert_eq!(embedded.contacts[0].is_unsorted, Some(false));
}

#[tokio::test]
async fn decline_incoming_lead_sends_a_delete_with_a_body_and_decodes_the_trashed_entities() {
    let (server, client) = kommo().await;
    let path = format!("/api/v4/leads/unsorted/{CALL_UID}/decline");
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, DELETE, &path)
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("declineIncomingLead.request.json"));
            hal(then, "declineIncomingLead.response.200.json");
        })
        .await;

    let request: types::DeclineIncomingLeadRequest =
        common::example_as("declineIncomingLead.request.json");
    let decision = client
        .decline_incoming_lead()
        .uid(CALL_UID)
        .body(request)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(decision.uid, CALL_UID);
    assert_eq!(decision.category, Some(IncomingLeadCategory::Sip));
    assert_eq!(decision.created_at, Some(1510261200));
    let embedded = decision.embedded.expect("_embedded");
    assert_eq!(embedded.leads[0].id, Some(236724));
    assert_eq!(embedded.contacts[0].id, Some(583294));
}

#[tokio::test]
async fn link_incoming_lead_posts_the_link_target_and_decodes_the_linked_lead() {
    let (server, client) = kommo().await;
    let path = format!("/api/v4/leads/unsorted/{CHAT_UID}/link");
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, &path)
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("linkIncomingLead.request.json"));
            hal(then, "linkIncomingLead.response.200.json");
        })
        .await;

    let request: types::LinkIncomingLeadRequest =
        common::example_as("linkIncomingLead.request.json");
    assert_eq!(request.link.entity_type, types::LinkEntityType::Leads);
    let linked = client
        .link_incoming_lead()
        .uid(CHAT_UID)
        .body(request)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(linked.uid, CHAT_UID);
    let embedded = linked.embedded.expect("_embedded");
    assert_eq!(embedded.leads[0].id, Some(152464));
    assert!(embedded.customers.is_empty());
}

#[tokio::test]
async fn get_incoming_leads_summary_sends_the_range_and_pipeline_filters_and_decodes_the_counts() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/leads/unsorted/summary")
                .query_param("filter[created_at][from]", "1686000000")
                .query_param("filter[created_at][to]", "1687000000")
                .query_param("filter[pipeline_id]", "6950551")
                .query_param("filter[uid][]", CALL_UID)
                .is_true(query_is(
                    "filter%5Bcreated_at%5D%5Bfrom%5D=1686000000\
                     &filter%5Bcreated_at%5D%5Bto%5D=1687000000\
                     &filter%5Bpipeline_id%5D=6950551\
                     &filter%5Buid%5D%5B%5D=400c5eb65b9fa7bbfa813cf593b49d4942f325c7c3fbbcf3acf3bee79b63",
                ))
                .is_true(no_body);
            hal(then, "getIncomingLeadsSummary.response.200.json");
        })
        .await;

    let summary = client
        .get_incoming_leads_summary()
        .filter_created_at_from(1686000000)
        .filter_created_at_to(1687000000)
        .filter_pipeline_id(6950551)
        .filter_uid(strings(&[CALL_UID]))
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(summary.total, Some(6));
    assert_eq!(summary.accepted, Some(1));
    assert_eq!(summary.declined, Some(3));
    assert_eq!(summary.average_sort_time, Some(44153027));
    assert_eq!(summary.categories.len(), 3);
    assert_eq!(
        summary.categories[&IncomingLeadCategory::Sip].total,
        Some(2)
    );
    assert_eq!(
        summary.categories[&IncomingLeadCategory::Forms].total,
        Some(3)
    );
    assert_eq!(
        summary.categories[&IncomingLeadCategory::Chats].total,
        Some(1)
    );
    // Keyed by the open enum: a category Kommo adds later is `Other`, not an error.
    let later: types::IncomingLeadsSummary =
        serde_json::from_value(serde_json::json!({"categories": {"whatsapp_lead": {"total": 4}}}))
            .unwrap();
    assert_eq!(
        later.categories[&IncomingLeadCategory::Other("whatsapp_lead".into())].total,
        Some(4)
    );
}

/// A source service's `type` is an open enum: `""` (which the documents allow) is kept.
#[test]
fn a_source_service_type_decodes_whatsapp_and_keeps_unknown_types() {
    let service: types::SourceService =
        serde_json::from_value(json!({ "type": "whatsapp", "pages": [] })).unwrap();
    assert_eq!(service.type_, Some(SourceServiceType::Whatsapp));
    let service: types::SourceService = serde_json::from_value(json!({ "type": "" })).unwrap();
    assert_eq!(service.type_, Some(SourceServiceType::Other(String::new())));
}

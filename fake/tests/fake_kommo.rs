//! The fake's Kommo: every operation, driven through the crate's client, and every documented
//! rule it enforces. Each test's fake also checks every answer it sent against the spec.

mod fake_common;

use fake_common::{Fake, answer, body, rejected, status};
use lead_intake::kommo::types::{
    self, BotKind, IncomingLeadCategory, IncomingLeadMetadata, IntOrString, SortOrder,
};
use lead_intake::prelude::*;
use lead_intake_fake::{Config, Fixtures};
use reqwest::Method;
use serde_json::{Value, json};

const FORM_UID: &str = "5af9dedb6f2c6a29eaac6ee37fc75ffbb66e139e4603bdd0e14e39d4b319";
const CHAT_UID: &str = "9ca097816a45770002e406db35e2a1945364d570b765332cef7a57289fc0";
const CALL_UID: &str = "400c5eb65b9fa7bbfa813cf593b49d4942f325c7c3fbbcf3acf3bee79b63";

fn sources(items: Value) -> types::AddSourcesRequest {
    body(items)
}

fn source_ids(list: &types::SourceList) -> Vec<i64> {
    list.embedded
        .as_ref()
        .map(|e| e.sources.iter().map(|s| s.id).collect())
        .unwrap_or_default()
}

fn external_ids(list: &types::SourceList) -> Vec<String> {
    list.embedded
        .as_ref()
        .map(|e| {
            e.sources
                .iter()
                .map(|s| {
                    s.external_id
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn uids(page: &types::IncomingLeadList) -> Vec<String> {
    page.embedded
        .as_ref()
        .map(|e| e.unsorted.iter().map(|l| l.uid().to_string()).collect())
        .unwrap_or_default()
}

// ------------------------------------------------------------------------------------ auth

#[tokio::test]
async fn a_missing_or_wrong_token_answers_401_problem_json() {
    let fake = Fake::default();
    let wrong = fake.kommo_with("not-the-token");
    let err = wrong.list_sources().send().or_empty().await.unwrap_err();
    assert_eq!(status(&err), 401);
    assert_eq!(
        err.problem().and_then(|p| p.title.as_deref()),
        Some("Unauthorized")
    );
    let err = wrong
        .get_widget()
        .widget_code("amo_dropbox")
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 401);

    let (code, content_type, text) = answer(
        reqwest::Client::new().get(format!("{}/api/v4/leads/unsorted/summary", fake.base_url())),
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(text.contains("https://httpstatus.es/401"), "{text}");
    assert_eq!(fake.stats().by_status.get(&401), Some(&3));
}

// --------------------------------------------------------------------------------- sources

#[tokio::test]
async fn an_integration_without_sources_answers_204_and_or_empty_gives_an_empty_list() {
    let fake = Fake::default();
    let (code, content_type, text) = answer(fake.raw(Method::GET, "/api/v4/sources")).await;
    assert_eq!((code, content_type, text.as_str()), (204, None, ""));
    let list = fake.kommo().list_sources().send().or_empty().await.unwrap();
    assert!(source_ids(&list).is_empty());
}

#[tokio::test]
async fn added_sources_echo_their_index_as_request_id_and_link_to_the_fakes_origin() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let created = kommo
        .add_sources()
        .body(sources(json!([
            {"name": "chat", "external_id": "kchat01", "origin_code": "kommo.ext.30470678", "pipeline_id": 5867030},
            {"name": "test_chat", "external_id": "kchat02"}
        ])))
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(created.total_items, Some(2));
    let list = created.embedded.unwrap().sources;
    assert_eq!(list[0].request_id.as_deref(), Some("0"));
    assert_eq!(list[1].request_id.as_deref(), Some("1"));
    assert_eq!(list[0].pipeline_id, Some(5867030));
    assert_eq!(list[1].pipeline_id, Some(6950551), "the main pipeline");
    assert_eq!(list[1].default, Some(false));
    assert_eq!(list[1].origin_code, None);
    let href = list[0]
        .links
        .as_ref()
        .and_then(|l| l.self_.as_ref())
        .and_then(|l| l.href.clone())
        .unwrap();
    assert_eq!(
        href,
        format!("{}/api/v4/sources/{}", fake.base_url(), list[0].id)
    );

    let all = kommo.list_sources().send().or_empty().await.unwrap();
    assert_eq!(all.total_items, Some(2));
    assert_eq!(external_ids(&all), ["kchat01", "kchat02"]);
    let self_href = all
        .links
        .and_then(|l| l.self_)
        .and_then(|l| l.href)
        .unwrap();
    assert_eq!(self_href, format!("{}/api/v4/sources", fake.base_url()));
}

#[tokio::test]
async fn external_id_is_unique_among_the_integrations_sources_and_within_a_batch() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    kommo
        .add_sources()
        .body(sources(json!([{"name": "a", "external_id": "site"}])))
        .send()
        .body()
        .await
        .unwrap();

    let err = kommo
        .add_sources()
        .body(sources(json!([
            {"name": "b", "external_id": "new"},
            {"name": "c", "external_id": "site"},
            {"name": "d", "external_id": "new"}
        ])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert_eq!(
        rejected(&err),
        [
            ("1".into(), "NotUnique".into(), "external_id".into()),
            ("2".into(), "NotUnique".into(), "external_id".into()),
        ]
    );
    let list = kommo.list_sources().send().or_empty().await.unwrap();
    assert_eq!(
        external_ids(&list),
        ["site"],
        "a refused batch adds nothing"
    );
}

#[tokio::test]
async fn the_source_limit_is_per_integration_and_configurable() {
    let fake = Fake::start(
        Config::default()
            .source_limit(3)
            .other_integration("other-token"),
    );
    let kommo = fake.kommo();
    kommo
        .add_sources()
        .body(sources(json!([
            {"name": "1", "external_id": "s1"},
            {"name": "2", "external_id": "s2"}
        ])))
        .send()
        .body()
        .await
        .unwrap();
    let err = kommo
        .add_sources()
        .body(sources(json!([
            {"name": "3", "external_id": "s3"},
            {"name": "4", "external_id": "s4"}
        ])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [("1".into(), "LimitExceeded".into(), String::new())]
    );
    let problem = err.problem().unwrap();
    assert_eq!(problem.detail.as_deref(), Some("Request validation failed"));
    assert!(
        problem.validation_errors[0].errors[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("at most 3 sources")
    );

    // Another integration owns its own sources, under its own limit, and sees none of these.
    let other = fake.kommo_with("other-token");
    let none = other.list_sources().send().or_empty().await.unwrap();
    assert!(source_ids(&none).is_empty());
    other
        .add_sources()
        .body(sources(json!([
            {"name": "1", "external_id": "s1"},
            {"name": "2", "external_id": "s2"},
            {"name": "3", "external_id": "s3"}
        ])))
        .send()
        .body()
        .await
        .expect("the same external_ids, another integration");
}

#[tokio::test]
async fn the_default_source_limit_is_50() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let fifty: Vec<Value> = (0..50)
        .map(|i| json!({"name": format!("s{i}"), "external_id": format!("e{i}")}))
        .collect();
    kommo
        .add_sources()
        .body(sources(Value::Array(fifty)))
        .send()
        .body()
        .await
        .unwrap();
    let err = kommo
        .add_sources()
        .body(sources(json!([{"name": "one more", "external_id": "e50"}])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [("0".into(), "LimitExceeded".into(), String::new())]
    );
}

#[tokio::test]
async fn a_batch_over_50_items_fails_schema_validation() {
    let fake = Fake::default();
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"name": format!("s{i}"), "external_id": format!("e{i}")}))
        .collect();
    let (code, _, text) = answer(fake.raw(Method::POST, "/api/v4/sources").json(&many)).await;
    assert_eq!(code, 400);
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        problem["validation-errors"][0]["errors"][0]["code"],
        json!("TooMany")
    );
}

#[tokio::test]
async fn schema_errors_are_reported_per_item_under_its_request_id_or_index() {
    let fake = Fake::default();
    let items = json!([
        {"name": "fine", "external_id": "ok"},
        {"external_id": 5, "request_id": "mine"},
        {"name": "no external id"}
    ]);
    let (code, content_type, text) =
        answer(fake.raw(Method::POST, "/api/v4/sources").json(&items)).await;
    assert_eq!(code, 400);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["title"], "Bad Request");
    assert_eq!(problem["type"], "https://httpstatus.es/400");
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["detail"], "Request validation failed");
    let groups = problem["validation-errors"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["request_id"], "mine");
    let paths: Vec<&str> = groups[0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["name", "external_id"]);
    assert_eq!(groups[0]["errors"][0]["code"], "NotBlank");
    assert_eq!(groups[0]["errors"][1]["code"], "InvalidType");
    assert_eq!(groups[1]["request_id"], "2");
    assert_eq!(groups[1]["errors"][0]["path"], "external_id");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_not_a_crash() {
    let fake = Fake::default();
    for bad in ["{", "[1, 2", "\u{0}\u{1}", ""] {
        let (code, content_type, text) = answer(
            fake.raw(Method::POST, "/api/v4/sources")
                .header("content-type", "application/json")
                .body(bad),
        )
        .await;
        assert_eq!(code, 400, "{bad:?}: {text}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    }
    // The documents' own install example is not JSON (an unquoted key).
    let faithful = "{\"login\": \"example\", \"phones\": {504141: \"1039\"}}";
    let (code, _, text) = answer(
        fake.raw(Method::POST, "/api/v4/widgets/amo_asterisk")
            .body(faithful),
    )
    .await;
    assert_eq!(code, 400);
    assert!(text.contains("InvalidJson"), "{text}");
}

#[tokio::test]
async fn an_integer_beyond_64_bits_is_refused_not_rounded() {
    let fake = Fake::default();
    let items = r#"[{"name": "a", "external_id": "a"},
        {"name": "b", "external_id": "b", "request_id": "big", "pipeline_id": -9223372036854775809}]"#;
    let (code, _, text) = answer(
        fake.raw(Method::POST, "/api/v4/sources")
            .header("content-type", "application/json")
            .body(items),
    )
    .await;
    assert_eq!(code, 400, "{text}");
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["validation-errors"][0]["request_id"], "big");
    assert_eq!(
        problem["validation-errors"][0]["errors"][0]["path"],
        "pipeline_id"
    );
    assert_eq!(
        problem["validation-errors"][0]["errors"][0]["code"],
        "OutOfRange"
    );
}

#[tokio::test]
async fn pipeline_id_must_name_a_pipeline_of_the_account() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty().pipelines([1, 2])));
    let err = fake
        .kommo()
        .add_sources()
        .body(sources(json!([
            {"name": "a", "external_id": "a", "pipeline_id": 2},
            {"name": "b", "external_id": "b", "pipeline_id": 3}
        ])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [(
            "1".into(),
            "NotSupportedChoice".into(),
            "pipeline_id".into()
        )]
    );
}

#[tokio::test]
async fn origin_code_must_not_be_only_digits_contain_quotes_or_exceed_20_characters() {
    let fake = Fake::default();
    let err = fake
        .kommo()
        .add_sources()
        .body(sources(json!([
            {"name": "a", "external_id": "a", "origin_code": "12345"},
            {"name": "b", "external_id": "b", "origin_code": "say \"hi\""},
            {"name": "c", "external_id": "c", "origin_code": "kommo.ext.3047067812345"},
            {"name": "d", "external_id": "d", "origin_code": "kommo.ext.30470678"}
        ])))
        .send()
        .body()
        .await
        .unwrap_err();
    let ids: Vec<String> = rejected(&err).into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids, ["0", "1", "2"]);
}

#[tokio::test]
async fn the_external_id_filter_reads_php_arrays_in_both_forms_and_plain_keys_keep_the_last() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    kommo
        .add_sources()
        .body(sources(json!([
            {"name": "a", "external_id": "a"},
            {"name": "b", "external_id": "b"},
            {"name": "c", "external_id": "c"}
        ])))
        .send()
        .body()
        .await
        .unwrap();

    // The client sends `filter[external_id][]=a&filter[external_id][]=c`.
    let list = kommo
        .list_sources()
        .filter_external_id(vec!["a".to_string(), "c".to_string()])
        .send()
        .or_empty()
        .await
        .unwrap();
    assert_eq!(external_ids(&list), ["a", "c"]);

    let names = |text: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(text).unwrap();
        v["_embedded"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["external_id"].as_str().unwrap().to_string())
            .collect()
    };
    // The official SDK's indexed form.
    let (_, _, text) = answer(fake.raw(
        Method::GET,
        "/api/v4/sources?filter%5Bexternal_id%5D%5B0%5D=b&filter%5Bexternal_id%5D%5B1%5D=c",
    ))
    .await;
    assert_eq!(names(&text), ["b", "c"]);
    // PHP: a repeated plain key keeps only its last value.
    let (_, _, text) = answer(fake.raw(
        Method::GET,
        "/api/v4/sources?filter[external_id]=a&filter[external_id]=b",
    ))
    .await;
    assert_eq!(names(&text), ["b"]);
    // A filter that matches nothing: 204.
    let none = kommo
        .list_sources()
        .filter_external_id(vec!["zzz".to_string()])
        .send()
        .or_empty()
        .await
        .unwrap();
    assert!(source_ids(&none).is_empty());
    assert_eq!(fake.stats().by_status.get(&204), Some(&1));
}

#[tokio::test]
async fn update_sources_edits_the_batch_and_refuses_unknown_ids_per_item() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let created = kommo
        .add_sources()
        .body(sources(json!([
            {"name": "a", "external_id": "a"},
            {"name": "b", "external_id": "b"}
        ])))
        .send()
        .body()
        .await
        .unwrap();
    let ids = source_ids(&created);
    let updated = kommo
        .update_sources()
        .body(body::<types::UpdateSourcesRequest>(json!([
            {"id": ids[0], "default": true},
            {"id": ids[1], "name": "call", "pipeline_id": 5884544}
        ])))
        .send()
        .body()
        .await
        .unwrap();
    let list = updated.embedded.unwrap().sources;
    assert_eq!(list[0].default, Some(true));
    assert_eq!(list[0].name.as_deref(), Some("a"));
    assert_eq!(list[1].name.as_deref(), Some("call"));
    assert_eq!(list[1].pipeline_id, Some(5884544));

    let err = kommo
        .update_sources()
        .body(body::<types::UpdateSourcesRequest>(
            json!([{"id": ids[0], "name": "x"}, {"id": 1, "name": "y"}]),
        ))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [("1".into(), "NotFound".into(), "id".into())]
    );
    let list = kommo.list_sources().send().or_empty().await.unwrap();
    assert_eq!(
        list.embedded.unwrap().sources[0].name.as_deref(),
        Some("a"),
        "a refused batch changes nothing"
    );
}

#[tokio::test]
async fn update_source_edits_one_source_and_answers_404_for_an_unknown_id() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let created = kommo
        .add_sources()
        .body(sources(json!([{"name": "chat", "external_id": "kchat01"}])))
        .send()
        .body()
        .await
        .unwrap();
    let id = source_ids(&created)[0];
    let source = kommo
        .update_source()
        .id(id)
        .body(body::<types::UpdateSource>(
            json!({"default": true, "origin_code": "kommo.ext.1"}),
        ))
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(source.id, id);
    assert_eq!(source.default, Some(true));
    assert_eq!(source.origin_code.as_deref(), Some("kommo.ext.1"));

    let err = kommo
        .update_source()
        .id(id + 1)
        .body(body::<types::UpdateSource>(json!({"default": true})))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    let err = kommo
        .update_source()
        .id(id)
        .body(body::<types::UpdateSource>(json!({"pipeline_id": 42})))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [(
            "0".into(),
            "NotSupportedChoice".into(),
            "pipeline_id".into()
        )]
    );
    // An id that is not a number names no source.
    let (code, _, _) = answer(
        fake.raw(Method::PATCH, "/api/v4/sources/abc")
            .json(&json!({})),
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn delete_sources_refuses_unknown_ids_then_deletes_and_answers_204() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let ids = source_ids(
        &kommo
            .add_sources()
            .body(sources(json!([
                {"name": "a", "external_id": "a"},
                {"name": "b", "external_id": "b"}
            ])))
            .send()
            .body()
            .await
            .unwrap(),
    );
    let err = kommo
        .delete_sources()
        .body(body::<types::DeleteSourcesRequest>(
            json!([{"id": ids[0]}, {"id": 17489247}]),
        ))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [("1".into(), "NotFound".into(), "id".into())]
    );

    kommo
        .delete_sources()
        .body(body::<types::DeleteSourcesRequest>(
            json!([{"id": ids[0]}, {"id": ids[1]}]),
        ))
        .send()
        .body()
        .await
        .expect("204");
    let list = kommo.list_sources().send().or_empty().await.unwrap();
    assert!(source_ids(&list).is_empty());
}

#[tokio::test]
async fn get_source_finds_the_source_answers_204_once_deleted_and_404_for_an_unknown_id() {
    let fake = Fake::start(Config::default().other_integration("other-token"));
    let kommo = fake.kommo();
    let id = source_ids(
        &kommo
            .add_sources()
            .body(sources(json!([{"name": "one", "external_id": "get-me"}])))
            .send()
            .body()
            .await
            .unwrap(),
    )[0];

    let source = kommo.get_source().id(id).send().body().await.unwrap();
    assert_eq!(source.id, id);
    assert_eq!(source.name.as_deref(), Some("one"));
    assert_eq!(
        source.external_id.as_ref().map(IntOrString::as_str),
        Some("get-me")
    );
    let found = kommo.get_source().id(id).send().or_gone().await.unwrap();
    assert_eq!(found.map(|s| s.id), Some(id));
    // Another integration's source is not there for this one.
    let theirs = fake.kommo_with("other-token");
    let err = theirs.get_source().id(id).send().body().await.unwrap_err();
    assert_eq!(status(&err), 404);

    kommo
        .delete_source()
        .id(id)
        .send()
        .body()
        .await
        .expect("204");
    // Deleted: 204, as the official SDK's example expects; `body()` says so, `or_gone()` is None.
    let err = kommo.get_source().id(id).send().body().await.unwrap_err();
    assert_eq!(status(&err), 204);
    assert!(
        kommo
            .get_source()
            .id(id)
            .send()
            .or_gone()
            .await
            .unwrap()
            .is_none()
    );
    // Never a source: the 404 problem.
    let err = kommo
        .get_source()
        .id(999_999_999)
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    let problem = err.problem().expect("a problem document");
    assert_eq!(problem.detail.as_deref(), Some("Source not found"));
    assert!(
        kommo
            .get_source()
            .id(999_999_999)
            .send()
            .or_gone()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn deleting_a_source_and_recreating_its_external_id_gives_back_the_old_id() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let id = source_ids(
        &kommo
            .add_sources()
            .body(sources(json!([{"name": "a", "external_id": "again"}])))
            .send()
            .body()
            .await
            .unwrap(),
    )[0];
    kommo
        .delete_source()
        .id(id)
        .send()
        .body()
        .await
        .expect("204");
    let err = kommo
        .delete_source()
        .id(id)
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    let again = kommo
        .add_sources()
        .body(sources(json!([{"name": "a2", "external_id": "again"}])))
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(source_ids(&again), [id]);
}

#[tokio::test]
async fn an_integration_cannot_touch_another_integrations_sources() {
    let fake = Fake::start(Config::default().other_integration("other-token"));
    let mine = fake.kommo();
    let theirs = fake.kommo_with("other-token");
    let id = source_ids(
        &theirs
            .add_sources()
            .body(sources(json!([{"name": "theirs", "external_id": "t"}])))
            .send()
            .body()
            .await
            .unwrap(),
    )[0];
    let err = mine.delete_source().id(id).send().body().await.unwrap_err();
    assert_eq!(status(&err), 404);
    let err = mine
        .update_source()
        .id(id)
        .body(body::<types::UpdateSource>(json!({"name": "mine now"})))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
}

#[tokio::test]
async fn preloaded_sources_count_towards_the_limit() {
    let fake =
        Fake::start(Config::default().source_limit(1).fixtures(
            Fixtures::empty().source(json!({"name": "Old chat", "external_id": "old-1"})),
        ));
    let list = fake.kommo().list_sources().send().or_empty().await.unwrap();
    assert_eq!(external_ids(&list), ["old-1"]);
    let err = fake
        .kommo()
        .add_sources()
        .body(sources(json!([{"name": "new", "external_id": "new"}])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(rejected(&err)[0].1, "LimitExceeded");
}

// --------------------------------------------------------------------------------- widgets

#[tokio::test]
async fn widgets_come_in_pages_with_page_and_next_links_until_a_short_page() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let first = kommo
        .list_widgets()
        .limit(2)
        .send()
        .or_empty()
        .await
        .unwrap();
    assert_eq!(first.page, Some(1));
    let codes: Vec<String> = first
        .embedded
        .as_ref()
        .unwrap()
        .widgets
        .iter()
        .map(|w| w.code.clone())
        .collect();
    assert_eq!(codes, ["amo_dropbox", "amo_mailchimp"]);
    let links = first.links.clone().unwrap();
    assert!(links.prev.is_none());
    let next = links.next.and_then(|l| l.href).unwrap();
    assert_eq!(
        next,
        format!("{}/api/v4/widgets?limit=2&page=2", fake.base_url())
    );

    let second: types::WidgetList = kommo.follow(&next).await.unwrap().expect("a page");
    assert_eq!(second.page, Some(2));
    assert_eq!(second.embedded.as_ref().unwrap().widgets.len(), 1);
    let links = second.links.unwrap();
    assert!(links.next.is_none(), "a short page is the last one");
    assert!(links.prev.is_some());

    let third = kommo
        .list_widgets()
        .limit(2)
        .page(3)
        .send()
        .or_empty()
        .await
        .unwrap();
    assert!(third.embedded.is_none(), "past the end: 204");
}

#[tokio::test]
async fn a_full_last_page_still_links_next_and_the_next_page_answers_204() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let page = kommo
        .list_widgets()
        .limit(3)
        .send()
        .or_empty()
        .await
        .unwrap();
    let next = page
        .links
        .and_then(|l| l.next)
        .and_then(|l| l.href)
        .unwrap();
    let after: Option<types::WidgetList> = kommo.follow(&next).await.unwrap();
    assert!(after.is_none(), "204 is Ok(None)");
}

#[tokio::test]
async fn limit_is_at_most_250() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    kommo
        .list_widgets()
        .limit(250)
        .send()
        .or_empty()
        .await
        .expect("250 is allowed");
    let err = kommo
        .list_widgets()
        .limit(251)
        .send()
        .or_empty()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert_eq!(
        rejected(&err),
        [("0".into(), "OutOfRange".into(), "limit".into())]
    );
    let (code, _, _) = answer(fake.raw(Method::GET, "/api/v4/widgets?page=0")).await;
    assert_eq!(code, 400);
    let (code, _, text) = answer(fake.raw(Method::GET, "/api/v4/widgets?limit=lots")).await;
    assert_eq!(code, 400);
    assert!(text.contains("InvalidType"), "{text}");
}

#[tokio::test]
async fn get_widget_finds_a_widget_by_code_or_answers_404() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let widget = kommo
        .get_widget()
        .widget_code("amo_dropbox")
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(widget.id, Some(742));
    assert_eq!(widget.is_active_in_account, Some(false));
    assert_eq!(widget.rating, Some(types::WidgetRating::from("2,8")));
    let err = kommo
        .get_widget()
        .widget_code("nope")
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
}

#[tokio::test]
async fn installing_a_widget_requires_every_required_setting_of_its_template() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let err = kommo
        .install_widget()
        .widget_code("amo_asterisk")
        .body(body::<types::WidgetInstallSettings>(
            json!({"login": "example", "password": ""}),
        ))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert_eq!(
        rejected(&err),
        [
            ("0".into(), "NotBlank".into(), "password".into()),
            ("0".into(), "NotBlank".into(), "phones".into()),
            ("0".into(), "NotBlank".into(), "script_path".into()),
        ]
    );
    let err = kommo
        .install_widget()
        .widget_code("amo_asterisk")
        .body(body::<types::WidgetInstallSettings>(json!({
            "login": "example", "password": "eXaMp1E",
            "phones": "1039", "script_path": "https://example.com/"
        })))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [("0".into(), "InvalidType".into(), "phones".into())]
    );

    let settings: types::WidgetInstallSettings = body(json!({
        "login": "example", "password": "eXaMp1E",
        "phones": {"504141": "1039"}, "script_path": "https://example.com/"
    }));
    let widget = kommo
        .install_widget()
        .widget_code("amo_asterisk")
        .body(settings)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(widget.is_active_in_account, Some(true));
    let Some(settings) = widget.settings else {
        panic!("settings: {widget:?}");
    };
    assert_eq!(settings.get("phones"), Some(&json!({"504141": "1039"})));
    let again = kommo
        .get_widget()
        .widget_code("amo_asterisk")
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(again.is_active_in_account, Some(true));

    let err = kommo
        .install_widget()
        .widget_code("nope")
        .body(body::<types::WidgetInstallSettings>(json!({})))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
}

#[tokio::test]
async fn uninstalling_a_widget_answers_204_then_404() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    kommo
        .install_widget()
        .widget_code("amo_dropbox")
        .body(body::<types::WidgetInstallSettings>(json!({})))
        .send()
        .body()
        .await
        .expect("amo_dropbox has no required setting");
    kommo
        .uninstall_widget()
        .widget_code("amo_dropbox")
        .send()
        .body()
        .await
        .expect("204");
    let err = kommo
        .uninstall_widget()
        .widget_code("amo_dropbox")
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    let widget = kommo
        .get_widget()
        .widget_code("amo_dropbox")
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(widget.is_active_in_account, Some(false));
}

#[tokio::test]
async fn continue_answers_202_for_a_waiting_widget_block_once_and_404_otherwise() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let request: types::ContinueBotRequest = body(json!({"data": {"status": "success"}}));
    let send = |kind: BotKind, bot: &'static str, cont: &'static str| {
        kommo
            .continue_bot()
            .bot_kind(kind)
            .bot_id(bot)
            .continue_id(cont)
            .body(request.clone())
            .send()
            .body()
    };
    send(BotKind::Salesbot, "4131", "7a1c2e")
        .await
        .expect("202");
    let err = send(BotKind::Salesbot, "4131", "7a1c2e").await.unwrap_err();
    assert_eq!(status(&err), 404, "a continuation is used once");
    send(BotKind::Marketingbot, "4131", "7a1c2e")
        .await
        .expect("the marketingbot's own block");
    let err = send(BotKind::Salesbot, "999", "x").await.unwrap_err();
    assert_eq!(status(&err), 404);

    fake.add_waiting_bot("salesbot", "999", "x");
    send(BotKind::Salesbot, "999", "x")
        .await
        .expect("now waiting");

    let continued = fake.continued_bots();
    assert_eq!(continued.len(), 3);
    assert_eq!(continued[0].kind, "salesbot");
    assert_eq!(continued[0].data, Some(json!({"status": "success"})));
    assert_eq!(continued[1].kind, "marketingbot");
    assert_eq!(continued[2].bot_id, "999");

    let (code, _, _) = answer(
        fake.raw(Method::POST, "/api/v4/otherbot/4131/continue/7a1c2e")
            .json(&json!({})),
    )
    .await;
    assert_eq!(code, 404, "only salesbot and marketingbot exist");
}

// -------------------------------------------------------------------------- incoming leads

#[tokio::test]
async fn incoming_leads_list_newest_first_and_filter_by_category_pipeline_and_uid() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let all = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    assert_eq!(uids(&all), [FORM_UID, CHAT_UID, CALL_UID]);
    assert_eq!(all.page, Some(1));

    let oldest_first = kommo
        .list_incoming_leads()
        .order_created_at(SortOrder::Asc)
        .send()
        .or_empty()
        .await
        .unwrap();
    assert_eq!(uids(&oldest_first), [CALL_UID, CHAT_UID, FORM_UID]);

    let some = kommo
        .list_incoming_leads()
        .filter_category(vec![IncomingLeadCategory::Sip, IncomingLeadCategory::Chats])
        .send()
        .or_empty()
        .await
        .unwrap();
    assert_eq!(uids(&some), [CHAT_UID, CALL_UID]);

    let by_uid = kommo
        .list_incoming_leads()
        .filter_uid(vec![CALL_UID.to_string()])
        .filter_pipeline_id(6950551)
        .send()
        .or_empty()
        .await
        .unwrap();
    assert_eq!(uids(&by_uid), [CALL_UID]);

    let other_pipeline = kommo
        .list_incoming_leads()
        .filter_pipeline_id(5867030)
        .send()
        .or_empty()
        .await
        .unwrap();
    assert!(uids(&other_pipeline).is_empty(), "204");

    // The documents' own single-value form, and PHP's indexed form.
    let (_, _, text) = answer(fake.raw(
        Method::GET,
        &format!("/api/v4/leads/unsorted?filter[uid]={FORM_UID}"),
    ))
    .await;
    assert!(
        text.contains(FORM_UID) && !text.contains(CHAT_UID),
        "{text}"
    );
    let (_, _, text) = answer(fake.raw(
        Method::GET,
        &format!("/api/v4/leads/unsorted?filter[uid][0]={FORM_UID}&filter[uid][1]={CHAT_UID}"),
    ))
    .await;
    assert!(text.contains(FORM_UID) && text.contains(CHAT_UID) && !text.contains(CALL_UID));
}

#[tokio::test]
async fn incoming_lead_pages_keep_their_filters_in_the_next_link() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let first = kommo
        .list_incoming_leads()
        .filter_category(vec![
            IncomingLeadCategory::Forms,
            IncomingLeadCategory::Chats,
            IncomingLeadCategory::Sip,
        ])
        .order_created_at(SortOrder::Asc)
        .limit(2)
        .send()
        .or_empty()
        .await
        .unwrap();
    assert_eq!(uids(&first), [CALL_UID, CHAT_UID]);
    let next = first
        .links
        .and_then(|l| l.next)
        .and_then(|l| l.href)
        .unwrap();
    assert!(next.contains("order%5Bcreated_at%5D=asc"), "{next}");
    let second: types::IncomingLeadList = kommo.follow(&next).await.unwrap().unwrap();
    assert_eq!(second.page, Some(2));
    assert_eq!(uids(&second), [FORM_UID]);
}

#[tokio::test]
async fn an_invalid_filter_is_a_400_naming_the_parameter() {
    let fake = Fake::default();
    let (code, _, text) = answer(fake.raw(
        Method::GET,
        "/api/v4/leads/unsorted?order[created_at]=sideways&filter[pipeline_id]=x",
    ))
    .await;
    assert_eq!(code, 400);
    let problem: Value = serde_json::from_str(&text).unwrap();
    let paths: Vec<&str> = problem["validation-errors"][0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["filter.pipeline_id", "order.created_at"]);
    let (code, _, _) = answer(fake.raw(
        Method::GET,
        "/api/v4/leads/unsorted/summary?filter[created_at][from]=yesterday",
    ))
    .await;
    assert_eq!(code, 400);
    // A timestamp and a range at once: PHP would silently keep the range.
    let (code, _, text) = answer(fake.raw(
        Method::GET,
        "/api/v4/leads/unsorted/summary?filter[created_at]=1&filter[created_at][to]=2",
    ))
    .await;
    assert_eq!(code, 400);
    assert!(text.contains(r#""path":"filter.created_at""#), "{text}");
}

#[tokio::test]
async fn get_incoming_lead_finds_a_waiting_lead_by_uid_or_answers_404() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let lead = kommo
        .get_incoming_lead()
        .uid(CHAT_UID)
        .send()
        .body()
        .await
        .unwrap();
    let chat = lead;
    assert_eq!(
        chat.category,
        IncomingLeadCategory::Chats,
        "a chat: {chat:?}"
    );
    assert_eq!(chat.account_id, Some(31361463));
    assert_eq!(
        chat.links.and_then(|l| l.self_).and_then(|l| l.href),
        Some(format!(
            "{}/api/v4/leads/unsorted/{CHAT_UID}",
            fake.base_url()
        ))
    );
    let err = kommo
        .get_incoming_lead()
        .uid("nope")
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
}

fn call(request_id: Option<&str>, phone: &str) -> Value {
    let mut item = json!({
        "source_name": "Acme Co.",
        "source_uid": "a1fee7c0fc436088e64ba2e8822ba2b3",
        "pipeline_id": 6950551,
        "created_at": 1510261200,
        "metadata": {
            "is_call_event_needed": true,
            "uniq": "a1fe231cc88c4c3d7f2bf0d7b1d4b2a8",
            "duration": 54,
            "service_code": "CkAvbEwPam6sad",
            "link": "https://example.com",
            "phone": phone,
            "called_at": 1510261200,
            "from": "onlinePBX"
        },
        "_embedded": {
            "leads": [{"name": "Tech maintenance", "price": 5000}],
            "contacts": [{"name": "Example contact"}]
        }
    });
    if let Some(id) = request_id {
        item["request_id"] = json!(id);
    }
    item
}

#[tokio::test]
async fn added_calls_echo_request_id_and_appear_in_the_list() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();
    let created = kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([
            call(Some("123"), "14155551234"),
            call(None, "14155550000")
        ])))
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(created.total_items, Some(2));
    let leads = created.embedded.unwrap().unsorted;
    assert_eq!(leads[0].request_id.as_deref(), Some("123"));
    assert_eq!(leads[1].request_id.as_deref(), Some("1"), "its index");
    assert_eq!(leads[0].uid.len(), 60);
    assert_eq!(leads[0].account_id, Some(31361463));
    let embedded = leads[0].embedded.as_ref().unwrap();
    assert_eq!(embedded.contacts.len(), 1);
    assert_eq!(embedded.leads.len(), 1);
    assert!(embedded.companies.is_empty());

    let lead = kommo
        .get_incoming_lead()
        .uid(&leads[0].uid)
        .send()
        .body()
        .await
        .unwrap();
    let sip = lead;
    assert!(
        matches!(sip.metadata, Some(IncomingLeadMetadata::Sip(_))),
        "a call: {sip:?}"
    );
    assert_eq!(sip.source_name.as_deref(), Some("Acme Co."));
    assert_eq!(sip.created_at, Some(1510261200));
    let (_, _, text) = answer(fake.raw(
        Method::GET,
        &format!("/api/v4/leads/unsorted/{}", leads[0].uid),
    ))
    .await;
    assert!(
        !text.contains("is_call_event_needed"),
        "write-only: never returned: {text}"
    );
    let list = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    assert_eq!(uids(&list).len(), 2);
}

#[tokio::test]
async fn added_forms_are_forms_leads() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();
    let form = json!({
        "request_id": "456",
        "source_name": "Asme Co.",
        "source_uid": "a1fee7c0fc436088e64ba2e8822ba2b3",
        "metadata": {
            "ip": "123.222.2.22",
            "form_id": "a1fee7c0fc436088e64ba2e8822ba2b3ewrw",
            "form_sent_at": 1590830520,
            "form_name": "Application form",
            "form_page": "https://example.com",
            "referer": "https://www.google.com"
        },
        "_embedded": {"leads": [{"name": "Tech maintenance"}], "companies": [{"name": "Atme Co."}]}
    });
    let created = kommo
        .add_incoming_forms()
        .body(body::<types::AddIncomingFormsRequest>(json!([form])))
        .send()
        .body()
        .await
        .unwrap();
    let lead = &created.embedded.unwrap().unsorted[0];
    assert_eq!(lead.request_id.as_deref(), Some("456"));
    assert_eq!(lead.embedded.as_ref().unwrap().companies.len(), 1);
    let page = kommo
        .list_incoming_leads()
        .filter_category(vec![IncomingLeadCategory::Forms])
        .send()
        .or_empty()
        .await
        .unwrap();
    let listed = &page.embedded.unwrap().unsorted[0];
    assert_eq!(listed.category(), &IncomingLeadCategory::Forms);
    assert_eq!(listed.pipeline_id(), Some(6950551), "the main pipeline");
}

#[tokio::test]
async fn identical_incoming_data_is_refused_in_the_same_batch_and_later() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();
    kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([call(
            Some("a"),
            "1"
        )])))
        .send()
        .body()
        .await
        .unwrap();
    let err = kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([
            call(Some("b"), "2"),
            call(Some("c"), "1")
        ])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [("c".into(), "Duplicate".into(), String::new())]
    );
    let err = kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([
            call(None, "3"),
            call(None, "3")
        ])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [("1".into(), "Duplicate".into(), String::new())]
    );
    let list = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    assert_eq!(uids(&list).len(), 1, "refused batches add nothing");
}

#[tokio::test]
async fn incoming_leads_refuse_an_unknown_pipeline() {
    let fake = Fake::default();
    let mut item = call(None, "1");
    item["pipeline_id"] = json!(1);
    let err = fake
        .kommo()
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([item])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(
        rejected(&err),
        [(
            "0".into(),
            "NotSupportedChoice".into(),
            "pipeline_id".into()
        )]
    );
}

#[tokio::test]
async fn accepting_moves_the_lead_out_of_incoming_leads_and_cannot_be_repeated() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let decision = kommo
        .accept_incoming_lead()
        .uid(FORM_UID)
        .body(body::<types::AcceptIncomingLeadRequest>(
            json!({"user_id": 8375357, "status_id": 58141807}),
        ))
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(decision.uid, FORM_UID);
    assert_eq!(decision.category, Some(IncomingLeadCategory::Forms));
    let embedded = decision.embedded.unwrap();
    assert_eq!(embedded.leads[0].id, Some(236768));
    assert_eq!(embedded.contacts[0].id, Some(583338));
    assert_eq!(embedded.contacts[0].is_unsorted, Some(false));

    let list = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    assert_eq!(uids(&list), [CHAT_UID, CALL_UID]);
    let err = kommo
        .get_incoming_lead()
        .uid(FORM_UID)
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    let err = kommo
        .accept_incoming_lead()
        .uid(FORM_UID)
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(err.to_string().contains("already been accepted"), "{err}");
    let err = kommo
        .decline_incoming_lead()
        .uid(FORM_UID)
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    let err = kommo
        .accept_incoming_lead()
        .uid("nope")
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
}

#[tokio::test]
async fn declining_moves_the_lead_out_and_an_unknown_uid_is_404() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let decision = kommo
        .decline_incoming_lead()
        .uid(CALL_UID)
        .body(body::<types::DeclineIncomingLeadRequest>(
            json!({"user_id": 8375357}),
        ))
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(decision.category, Some(IncomingLeadCategory::Sip));
    assert_eq!(decision.created_at, Some(1510261200));
    assert_eq!(decision.embedded.unwrap().companies[0].id, Some(583292));
    let list = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    assert_eq!(uids(&list), [FORM_UID, CHAT_UID]);
    let err = kommo
        .decline_incoming_lead()
        .uid("nope")
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
}

#[tokio::test]
async fn only_chats_can_be_linked_and_only_once() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let link: types::LinkIncomingLeadRequest =
        body(json!({"link": {"entity_id": 152464, "entity_type": "leads"}}));

    let err = kommo
        .link_incoming_lead()
        .uid(CALL_UID)
        .body(link.clone())
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert!(err.to_string().contains("chats"), "{err}");
    let err = kommo
        .link_incoming_lead()
        .uid("nope")
        .body(link.clone())
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400, "link documents no 404");

    let linked = kommo
        .link_incoming_lead()
        .uid(CHAT_UID)
        .body(link.clone())
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(linked.uid, CHAT_UID);
    let embedded = linked.embedded.unwrap();
    assert_eq!(embedded.leads[0].id, Some(152464));
    assert!(embedded.customers.is_empty());
    let err = kommo
        .link_incoming_lead()
        .uid(CHAT_UID)
        .body(link)
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    let list = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    assert_eq!(uids(&list), [FORM_UID, CALL_UID]);

    // A chat that arrives later links to a customer, assigning its contact.
    let uid = fake
        .add_incoming_lead(json!({
            "category": "chats", "source_uid": "amojo:1", "source_name": "Live chat",
            "pipeline_id": 6950551, "metadata": {"from": "Ann", "last_message_text": "hi"}
        }))
        .unwrap();
    let linked = kommo
        .link_incoming_lead()
        .uid(&uid)
        .body(body::<types::LinkIncomingLeadRequest>(
            json!({"user_id": 1, "link": {
                "entity_id": 77, "entity_type": "customers", "metadata": {"contact_id": 5}
            }}),
        ))
        .send()
        .body()
        .await
        .unwrap();
    let embedded = linked.embedded.unwrap();
    assert_eq!(embedded.customers[0].id, Some(77));
    assert_eq!(embedded.contacts[0].id, Some(5));
    assert!(embedded.leads.is_empty());
}

#[tokio::test]
async fn the_summary_counts_what_happened() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    let summary = kommo
        .get_incoming_leads_summary()
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(
        (summary.total, summary.accepted, summary.declined),
        (Some(3), Some(0), Some(0))
    );
    assert_eq!(summary.average_sort_time, Some(0));
    assert_eq!(
        summary.categories[&IncomingLeadCategory::Forms].total,
        Some(1)
    );

    kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([call(
            None, "1"
        )])))
        .send()
        .body()
        .await
        .unwrap();
    kommo
        .accept_incoming_lead()
        .uid(FORM_UID)
        .send()
        .body()
        .await
        .unwrap();
    kommo
        .decline_incoming_lead()
        .uid(CALL_UID)
        .send()
        .body()
        .await
        .unwrap();

    let summary = kommo
        .get_incoming_leads_summary()
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(
        (summary.total, summary.accepted, summary.declined),
        (Some(4), Some(1), Some(1))
    );
    assert_eq!(
        summary.categories[&IncomingLeadCategory::Sip].total,
        Some(2)
    );
    assert_eq!(
        summary.categories[&IncomingLeadCategory::Chats].total,
        Some(1)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expected = ((now - 1686819152) + (now - 1510261200)) / 2;
    let average = summary.average_sort_time.unwrap();
    assert!(
        (average - expected).abs() <= 2,
        "{average} is the mean time to sort, about {expected}"
    );

    let recent = kommo
        .get_incoming_leads_summary()
        .filter_created_at_from(1686000000)
        .filter_created_at_to(1687000000)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!((recent.total, recent.accepted), (Some(2), Some(1)));
    let since = kommo
        .get_incoming_leads_summary()
        .filter_created_at(1686818941)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(since.total, Some(1));
    let one = kommo
        .get_incoming_leads_summary()
        .filter_uid(vec![CALL_UID.to_string()])
        .filter_pipeline_id(6950551)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!((one.total, one.declined), (Some(1), Some(1)));
}

#[tokio::test]
async fn a_post_to_incoming_leads_itself_answers_405() {
    let fake = Fake::default();
    let (code, _, _) = answer(
        fake.raw(Method::POST, "/api/v4/leads/unsorted")
            .json(&json!([])),
    )
    .await;
    assert_eq!(code, 405);
    let (code, content_type, _) = answer(fake.raw(Method::GET, "/api/v4/nothing-here")).await;
    assert_eq!(code, 404);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
}

// ------------------------------------------------------------ the wire beyond the documents

/// The fake serves the shapes openapi/EVIDENCE.md finds beyond the documents, its answers still
/// match the spec (checked when the test ends), and the client reads every one typed.
#[tokio::test]
async fn the_fake_serves_the_wire_shapes_and_the_client_reads_them_typed() {
    let fake = Fake::default();
    let kommo = fake.kommo();

    let widgets = kommo.list_widgets().send().or_empty().await.unwrap();
    let widgets = widgets.embedded.unwrap().widgets;
    assert!(widgets.all_recognized(), "{widgets:?}");
    let asterisk = widgets.iter().find(|w| w.code == "amo_asterisk").unwrap();
    let version = asterisk.version.as_ref().unwrap();
    assert!(version.is_number());
    assert_eq!(version.as_i64(), Some(116));
    assert_eq!(asterisk.rating, None);

    let leads = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    let leads = leads.embedded.unwrap().unsorted;
    assert!(leads.all_recognized(), "{leads:?}");
    let call = leads
        .iter()
        .find_map(|l| l.metadata.as_ref().and_then(IncomingLeadMetadata::sip))
        .expect("the call's metadata is typed");
    assert_eq!(call.from.as_ref().unwrap().as_str(), "14155551234");
    let form = leads
        .iter()
        .find_map(|l| l.metadata.as_ref().and_then(IncomingLeadMetadata::forms))
        .expect("the form's metadata is typed");
    assert_eq!(form.form_id.as_ref().unwrap().as_i64(), Some(1115559));
    assert_eq!(form.referer, None);

    let added = kommo
        .add_sources()
        .body(body::<types::AddSourcesRequest>(serde_json::json!([{
            "name": "Chat", "external_id": "wire-1",
            "services": [{"type": "whatsapp", "pages": []}]
        }])))
        .send()
        .body()
        .await
        .unwrap();
    let (_, _, text) = answer(fake.raw(Method::GET, "/api/v4/sources")).await;
    assert!(text.contains(r#""params":[]"#), "{text}");
    let source = &added.embedded.unwrap().sources[0];
    let services = source.services.as_ref().unwrap();
    assert_eq!(
        services[0].params,
        Some(types::SourceServiceSettings::default())
    );

    let closebot = fake.closebot();
    let page = closebot
        .list_sources()
        .page(0)
        .page_size(100)
        .send()
        .body()
        .await
        .unwrap();
    assert!(page.results.all_recognized(), "{:?}", page.results);
    assert_eq!(page.results.len(), 25);
    assert_eq!(
        page.results.iter().filter(|s| s.wallet.is_none()).count(),
        5
    );

    let empty = Fake::start(
        lead_intake_fake::Config::default().fixtures(lead_intake_fake::Fixtures::empty()),
    );
    let (_, _, text) = answer(empty.raw(Method::GET, "/api/v4/leads/unsorted/summary")).await;
    assert!(text.contains(r#""categories":[]"#), "{text}");
    let summary = empty
        .kommo()
        .get_incoming_leads_summary()
        .send()
        .body()
        .await
        .unwrap();
    assert!(summary.categories.is_empty());
}

/// What the official SDK posts when it has nothing to send, PHP's `[]`, is a valid body for
/// accept and decline (openapi/EVIDENCE.md); a non-empty array is not.
#[tokio::test]
async fn the_fake_takes_the_sdks_empty_array_bodies() {
    let fake = Fake::default();
    for uid in [FORM_UID, CALL_UID] {
        let path = format!("/api/v4/leads/unsorted/{uid}/accept");
        let (code, _, text) = answer(fake.raw(Method::POST, &path).json(&json!([]))).await;
        assert_eq!(code, 200, "{path}: {text}");
    }
    let decline = format!("/api/v4/leads/unsorted/{CHAT_UID}/decline");
    let (code, _, text) = answer(fake.raw(Method::DELETE, &decline).json(&json!(["x"]))).await;
    assert_eq!(code, 400, "{text}");
    let (code, _, text) = answer(fake.raw(Method::DELETE, &decline).json(&json!([]))).await;
    assert_eq!(code, 200, "{text}");
}

//! Sources as desired state (`kommo::Client::sync_sources`), against the fake.

// The fake crate's test helper (a server whose answers are checked against the spec).
#[path = "../fake/tests/fake_common/mod.rs"]
mod fake_common;

use fake_common::Fake;
use lead_intake::kommo::types::{AddSource, SourceService, SourceServiceType};
use lead_intake::prelude::*;
use lead_intake::sync::{SourceSync, SyncError, SyncOptions};
use lead_intake_fake::{Config, Fixtures};

fn desired() -> Vec<AddSource> {
    vec![
        AddSource::new("Website chat", "site-chat").with_services(vec![
            SourceService::new().with_type(SourceServiceType::Whatsapp),
        ]),
        AddSource::new("Phone line", "phone").with_pipeline_id(5867030),
        AddSource::new("Landing page form", "landing"),
    ]
}

fn outcomes(report: &lead_intake::sync::SyncReport) -> Vec<(String, &'static str)> {
    report
        .sources()
        .iter()
        .map(|s| {
            let what = match s.outcome() {
                SourceSync::Created(_) => "created",
                SourceSync::Updated(_) => "updated",
                SourceSync::Unchanged(_) => "unchanged",
                SourceSync::Deleted(_) => "deleted",
                SourceSync::LeftAlone(_) => "left_alone",
                SourceSync::AlreadyExisted(_) => "already_existed",
                _ => "failed",
            };
            (s.external_id().to_string(), what)
        })
        .collect()
}

#[tokio::test]
async fn a_sync_creates_the_missing_updates_the_changed_and_a_second_run_only_lists() {
    let fake = Fake::start(Config::default().fixtures(
        Fixtures::empty()
            .source(serde_json::json!({"name": "Old phone name", "external_id": "phone", "pipeline_id": 6950551}))
            .source(serde_json::json!({"name": "Legacy", "external_id": "legacy"})),
    ));
    let kommo = fake.kommo();

    let report = kommo
        .sync_sources(&desired(), &SyncOptions::new())
        .await
        .unwrap();
    assert_eq!(
        outcomes(&report),
        [
            ("site-chat".to_string(), "created"),
            ("phone".into(), "updated"),
            ("landing".into(), "created"),
        ]
    );
    assert!(report.is_complete());
    let SourceSync::Updated(phone) = report.sources()[1].outcome() else {
        unreachable!()
    };
    assert_eq!(
        (phone.name.as_deref(), phone.pipeline_id),
        (Some("Phone line"), Some(5867030))
    );

    // Nothing to do: the list, and no other request. (The fake answers services with
    // `params: []`, which reads as equal to none.)
    let before = fake.stats().requests;
    let again = kommo
        .sync_sources(&desired(), &SyncOptions::new())
        .await
        .unwrap();
    assert_eq!(fake.stats().requests - before, 1);
    assert!(
        again
            .sources()
            .iter()
            .all(|s| matches!(s.outcome(), SourceSync::Unchanged(_)))
    );
    assert_eq!(
        again.to_string(),
        "0 created, 0 updated, 3 unchanged, 0 deleted, 0 failed"
    );

    // Ours that are not desired are deleted only when asked.
    let pruned = kommo
        .sync_sources(&desired(), &SyncOptions::new().with_delete_undesired(true))
        .await
        .unwrap();
    assert_eq!(outcomes(&pruned)[3], ("legacy".to_string(), "deleted"));
    let left = kommo.list_sources().send().body().await.unwrap();
    assert_eq!(left.sources().len(), 3);
}

#[tokio::test]
async fn over_the_limit_or_a_duplicate_is_refused_before_anything_is_sent() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();
    let many: Vec<AddSource> = (0..51)
        .map(|i| AddSource::new(format!("s{i}"), format!("e{i}")))
        .collect();
    let before = fake.stats().requests;
    let err = kommo
        .sync_sources(&many, &SyncOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::OverLimit { count: 51, max: 50 }),
        "{err}"
    );
    assert_eq!(fake.stats().requests - before, 1, "the list only");

    let twice = vec![AddSource::new("a", "same"), AddSource::new("b", "same")];
    let err = kommo
        .sync_sources(&twice, &SyncOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            SyncError::DuplicateExternalId {
                first: 0,
                second: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.stats().requests - before, 1, "nothing more");
}

#[tokio::test]
async fn deleting_undesired_sources_touches_only_the_managed_ones() {
    let fake = Fake::start(Config::default().fixtures(
        Fixtures::empty()
            .source(serde_json::json!({"name": "Old CloseBot source", "external_id": "cb-old"}))
            .source(serde_json::json!({"name": "Made by hand", "external_id": "manual-1"}))
            .source(serde_json::json!({"name": "Another kind", "external_id": "cb-keep", "pipeline_id": 5867030})),
    ));
    let kommo = fake.kommo();
    let desired = vec![AddSource::new("Website chat", "cb-site-chat")];

    // By prefix: `manual-1` is not ours; by predicate: neither are the sources of pipeline
    // 5867030.
    let options = SyncOptions::new()
        .with_delete_undesired(true)
        .managing_prefix("cb-")
        .managing(|source| source.pipeline_id != Some(5867030));
    let report = kommo.sync_sources(&desired, &options).await.unwrap();
    let mut got = outcomes(&report);
    got.sort();
    assert_eq!(
        got,
        [
            ("cb-keep".to_string(), "left_alone"),
            ("cb-old".into(), "deleted"),
            ("cb-site-chat".into(), "created"),
            ("manual-1".into(), "left_alone"),
        ]
    );
    assert!(report.is_complete());
    assert_eq!(
        report.to_string(),
        "1 created, 0 updated, 0 unchanged, 1 deleted, 0 failed, 2 left alone (not managed)"
    );
    let mut left: Vec<String> = kommo
        .list_sources()
        .send()
        .body()
        .await
        .unwrap()
        .into_sources()
        .into_vec()
        .into_iter()
        .filter_map(|s| s.external_id.map(|e| e.to_string()))
        .collect();
    left.sort();
    assert_eq!(left, ["cb-keep", "cb-site-chat", "manual-1"]);
}

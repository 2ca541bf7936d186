//! Batches that finish: the valid rest of a chunk Kommo refused for one invalid item is sent
//! again by the batch layer, against the fake (which, like Kommo, refuses the whole request).

// The fake crate's test helper (a server whose answers are checked against the spec).
#[path = "../fake/tests/fake_common/mod.rs"]
mod fake_common;

use fake_common::Fake;
use lead_intake::batch::{BatchOptions, ItemOutcome};
use lead_intake::kommo::types;
use serde_json::json;

/// A pipeline the account does not have.
const MISSING_PIPELINE: i64 = 999_999;

fn is_invalid(i: usize) -> bool {
    i.is_multiple_of(10)
}

fn forms(n: usize) -> Vec<types::AddIncomingForm> {
    (0..n)
        .map(|i| {
            let mut item = json!({
                "source_uid": "site-forms",
                "source_name": "Site",
                "created_at": 1_700_000_000 + i as i64,
                "metadata": {"form_id": format!("f-{i}"), "form_name": "Contact"},
                "_embedded": {"contacts": [{"name": format!("Visitor {i}")}]}
            });
            if is_invalid(i) {
                item["pipeline_id"] = json!(MISSING_PIPELINE);
            }
            serde_json::from_value(item).expect("an AddIncomingForm")
        })
        .collect()
}

#[tokio::test]
async fn one_call_with_101_invalid_of_1001_reports_900_succeeded_and_101_rejected() {
    let fake = Fake::start(lead_intake_fake::Config::default());
    let kommo = fake.kommo();
    let inputs = forms(1001);
    assert_eq!((0..1001).filter(|&i| is_invalid(i)).count(), 101);

    let report = kommo
        .add_incoming_forms_batched(&inputs, &BatchOptions::new())
        .await;

    assert_eq!(
        report.to_string(),
        "1001 items: 900 succeeded, 101 rejected"
    );
    assert!(report.errors().is_empty(), "{:?}", report.errors());
    for (i, outcome) in report.outcomes().iter().enumerate() {
        match outcome {
            ItemOutcome::Rejected(errors) => {
                assert!(is_invalid(i), "input {i} rejected: {errors:?}");
                assert_eq!(errors[0].path.as_deref(), Some("pipeline_id"), "{errors:?}");
                assert!(
                    errors[0].detail.as_deref().unwrap().contains("999999"),
                    "{errors:?}"
                );
            }
            ItemOutcome::Succeeded(created) => {
                assert!(!is_invalid(i));
                assert!(!created.uid.is_empty());
            }
            other => panic!("input {i}: {other:?}"),
        }
    }
    // Stored once each: 1001 - 101 (plus the three fixture leads).
    let stored: Vec<_> = fake
        .incoming_leads()
        .into_iter()
        .filter(|l| l.lead["source_uid"] == "site-forms")
        .collect();
    assert_eq!(stored.len(), 900);
    // 20 chunks of 50, each refused once and its rest sent again, and the last chunk (input
    // 1000 alone, invalid) refused with no rest to send.
    assert_eq!(fake.stats().requests, 41);
}

#[tokio::test]
async fn with_resending_off_the_rest_is_left_not_applied() {
    let fake = Fake::start(lead_intake_fake::Config::default());
    let kommo = fake.kommo();
    let inputs = forms(20);
    let report = kommo
        .add_incoming_forms_batched(&inputs, &BatchOptions::new().with_resend_valid_rest(false))
        .await;
    let counts = report.counts();
    assert_eq!(
        (counts.rejected, counts.not_applied, counts.succeeded),
        (2, 18, 0)
    );
    assert_eq!(fake.stats().requests, 1);
}

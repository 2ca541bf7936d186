//! Acting on every incoming lead of a filter exactly once while the list changes
//! (`KommoPager::drain`), against the fake, whose list shrinks as leads are accepted.

// The fake crate's test helper (a server whose answers are checked against the spec).
#[path = "../fake/tests/fake_common/mod.rs"]
mod fake_common;

use std::collections::HashSet;

use fake_common::Fake;
use lead_intake::kommo::types::IncomingLead;
use lead_intake::list::ListItem;
use lead_intake::prelude::*;
use lead_intake_fake::{Config, Fixtures};
use serde_json::json;

/// A fake with `n` waiting web-form leads (and nothing else).
fn fake_with_leads(n: usize) -> Fake {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    for i in 0..n {
        fake.add_incoming_lead(json!({
            "category": "forms",
            "source_uid": if i % 3 == 0 { "partner" } else { "site" },
            "source_name": "Site",
            "created_at": 1_700_000_000 + i as i64,
            "metadata": {"form_id": format!("f-{i}"), "form_name": "Contact"}
        }))
        .expect("a valid lead");
    }
    fake
}

async fn accept(kommo: &lead_intake::kommo::Client, lead: &IncomingLead) {
    kommo
        .accept_incoming_lead()
        .uid(&lead.uid)
        .send()
        .body()
        .await
        .expect("accepted");
}

async fn waiting(kommo: &lead_intake::kommo::Client) -> usize {
    kommo
        .list_incoming_leads_pager(|req| req)
        .typed_items()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn page_numbers_skip_leads_when_the_list_shrinks() {
    let fake = fake_with_leads(120);
    let kommo = fake.kommo();
    let mut seen = 0;
    let mut items = kommo
        .list_incoming_leads_pager(|req| req)
        .page_size(50)
        .typed_items();
    while let Some(lead) = items.try_next().await.unwrap() {
        accept(&kommo, &lead).await;
        seen += 1;
    }
    // The problem `drain` solves: page 2 of the shrunken list starts 50 leads further on.
    assert_eq!(seen, 70);
    assert_eq!(waiting(&kommo).await, 50);
}

#[tokio::test]
async fn draining_accepts_all_120_and_none_twice() {
    let fake = fake_with_leads(120);
    let kommo = fake.kommo();
    let mut uids = HashSet::new();
    let mut leads = kommo
        .list_incoming_leads_pager(|req| req)
        .page_size(50)
        .drain();
    while let Some(item) = leads.try_next().await.unwrap() {
        let ListItem::Typed(lead) = item else {
            panic!("every lead is typed")
        };
        assert!(uids.insert(lead.uid.clone()), "{} twice", lead.uid);
        accept(&kommo, &lead).await;
    }
    assert_eq!(uids.len(), 120);
    assert_eq!(waiting(&kommo).await, 0);
}

#[tokio::test]
async fn draining_with_some_leads_left_in_place_sees_each_once_and_ends() {
    let fake = fake_with_leads(120);
    let kommo = fake.kommo();
    let (mut seen, mut accepted) = (HashSet::new(), 0);
    let mut leads = kommo
        .list_incoming_leads_pager(|req| req)
        .page_size(50)
        .max_pages(100) // a bound, should the stream not end by itself
        .drain();
    while let Some(item) = leads.try_next().await.unwrap() {
        let ListItem::Typed(lead) = item else {
            panic!("every lead is typed")
        };
        assert!(seen.insert(lead.uid.clone()), "{} twice", lead.uid);
        // Partner leads (every third) are left waiting for someone else.
        if lead.source_uid.as_deref() == Some("site") {
            accept(&kommo, &lead).await;
            accepted += 1;
        }
    }
    assert_eq!(seen.len(), 120);
    assert_eq!(accepted, 80);
    assert_eq!(waiting(&kommo).await, 40);
}

#[tokio::test]
async fn draining_a_list_nobody_acts_on_reads_each_page_once() {
    let fake = fake_with_leads(120);
    let kommo = fake.kommo();
    let before = fake.stats().requests;
    let all: Vec<_> = kommo
        .list_incoming_leads_pager(|req| req)
        .page_size(50)
        .drain()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 120);
    // Page 1 twice (it had new leads, then none), page 2 twice, page 3 (short) once... at most
    // two reads a page.
    let requests = fake.stats().requests - before;
    assert!(requests <= 6, "{requests} requests");
}

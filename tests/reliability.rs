//! Reliability under faults, end to end through the fake: a bulk import of 10,000 incoming leads
//! and a stream of 10,000 incoming leads while about 10% of requests misbehave (random HTML
//! `429`s, `500`/`502`/`503`/`504` before the request is processed, `500`/`502`/`504` after it
//! was, connections closed before it is processed, and answers lost after it was), seeded.
//! Every input is accounted for against the fake's own state ([`FakeServer::incoming_leads`]),
//! not against what the faulty HTTP path reported.
//!
//! - Import: `add_incoming_forms_batched`, then what a careful user does: resend what the report
//!   says is safe to resend (`to_resend()`), again until nothing is, and keep the `Unknown` ones
//!   as unknown. Then, per input: `Succeeded` ⇒ stored exactly once (with the answered `uid`);
//!   `Rejected` ⇒ not stored, and only the deliberately invalid inputs are rejected; `Unknown` ⇒
//!   stored at most once; nothing left `NotApplied`/`NotAttempted`; every stored lead comes from
//!   an input; no `request_id` stored twice. Once with one request at a time (a deterministic
//!   request sequence, so the seed fixes every fault), once with four in flight.
//! - Stream: `list_incoming_leads_pager(..).typed_items()`, GETs retried by the policy; when a page
//!   still fails, the stream ends with the error and the user resumes at the next page
//!   (`start_at`, from the number of items already seen), or with `pages()` and
//!   `resume_after(&last_page)`. Every lead yielded exactly once, in the fake's order.
//!
//! Each test also checks that the faults really happened, in about the configured proportions,
//! so it cannot pass vacuously.
//!
//! Mutations that make these tests fail (each was applied, seen failing, and reverted):
//!
//! 1. `src/batch.rs`, `send_chunk`: after a failure that leaves the outcome open (a 5xx or a
//!    transport error), send the chunk once more, a "helpful" resend. Both import tests fail:
//!    the chunks of lost answers and late 5xx are sent twice; the fake, like Kommo, refuses
//!    data identical to a waiting lead, so those items come back `Rejected` ("Duplicate") while
//!    stored once ("input 502 was rejected ..., yet stored 1 time(s)"); a server that accepted
//!    duplicates would store them twice.
//! 2. `src/error.rs`, `certainly_not_applied`: call every transport error (a dropped connection,
//!    a lost answer) "certainly not applied". Both import tests fail the same way: those chunks
//!    become `NotApplied`, the user resends them, and the leads of lost answers are refused as
//!    duplicates while stored.
//! 3. `src/error.rs`, `certainly_not_applied`: call a 5xx "certainly not applied". Both import
//!    tests fail the same way, through the 5xx answered after processing.
//! 4. `src/batch.rs`, `BatchReport::to_resend`: leave out `NotAttempted`. Both import tests
//!    fail: "input 350 left NotAttempted".
//! 5. `src/pagination.rs`, `KommoPager::start_at`: start one page later than asked. The
//!    `start_at` stream test fails: "20 leads never yielded".
//! 6. `src/pagination.rs`, `KommoPager::resume_after`: follow the held page's own `self` link
//!    instead of `next`. The `resume_after` stream test fails: "140 leads yielded twice".
//! 7. `fake/src/faults.rs`: make `Faults::lost_answers` a no-op. All four fault tests fail their
//!    "the faults really happened" check ("no lost answers: ...").

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lead_intake::batch::{BatchError, BatchOptions, ItemOutcome};
use lead_intake::kommo::{self, types};
use lead_intake::retry::RetryPolicy;
use lead_intake_fake::{Config, FakeServer, Fault, Faults, Fixtures, Stats, StoredIncomingLead};
use serde_json::json;

const LEADS: usize = 10_000;
/// A pipeline the fake does not have: an item naming it is rejected (`NotSupportedChoice`).
const MISSING_PIPELINE: i64 = 404;
const FIRST_CREATED_AT: i64 = 1_700_000_000;

/// About 10% of requests misbehave: 3% `429` (Kommo's HTML page, no `Retry-After`), 2% `5xx`
/// before processing (a quarter each of 500, 502, 503, 504), 1% `5xx` after processing (500,
/// 502 or 504), 2% closed before processing, 2% processed and closed without an answer.
fn unreliable() -> Faults {
    Faults::none()
        .rate_limited(0.03)
        .server_errors(0.02)
        .late_server_errors(0.01)
        .drops(0.02)
        .lost_answers(0.02)
}

/// A client with no rate limiter and millisecond backoff, so the tests take seconds.
fn client(fake: &FakeServer, attempts: u32) -> kommo::Client {
    kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .no_rate_limit()
        .retry(
            RetryPolicy::default()
                .with_max_attempts(attempts)
                .with_base_delay(Duration::from_millis(1))
                .with_max_delay(Duration::from_millis(4)),
        )
        .build()
        .expect("a loopback base URL is accepted")
}

fn start(config: Config) -> FakeServer {
    FakeServer::start(config.fixtures(Fixtures::empty())).expect("the fake starts")
}

/// Asserts that the faults happened in about the configured proportions, and returns a summary.
fn assert_fault_mix(stats: &Stats) -> String {
    let faults = stats.rate_limited
        + stats.server_errors
        + stats.late_server_errors
        + stats.dropped
        + stats.lost_answers;
    let share = |n: u64| n as f64 / stats.requests as f64;
    let summary = format!(
        "{} requests, {} faults ({:.1}%): {} × 429, {} × 5xx before processing and {} after ({}), \
         {} dropped, {} answers lost",
        stats.requests,
        faults,
        100.0 * share(faults),
        stats.rate_limited,
        stats.server_errors,
        stats.late_server_errors,
        [500, 502, 503, 504]
            .iter()
            .map(|s| format!("{s}: {}", stats.by_status.get(s).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", "),
        stats.dropped,
        stats.lost_answers,
    );
    assert!(
        (0.05..=0.15).contains(&share(faults)),
        "about 10% of requests misbehave: {summary}"
    );
    for (kind, count, expected) in [
        ("429", stats.rate_limited, 0.03),
        ("5xx", stats.server_errors, 0.02),
        ("5xx after processing", stats.late_server_errors, 0.01),
        ("dropped", stats.dropped, 0.02),
        ("lost answers", stats.lost_answers, 0.02),
    ] {
        assert!(count > 0, "no {kind}: {summary}");
        assert!(
            share(count) <= expected * 2.5,
            "too many {kind} for {expected}: {summary}"
        );
    }
    // Both kinds of 5xx page: Kommo's problem document (500) and the gateway's HTML (502, 503,
    // 504; which of them is up to the seed).
    let answered = |status: &u16| stats.by_status.get(status).is_some_and(|n| *n > 0);
    assert!(answered(&500), "no 500: {summary}");
    assert!(
        [502, 503, 504].iter().filter(|s| answered(s)).count() >= 2,
        "too few gateway pages: {summary}"
    );
    assert_eq!(stats.blocked, 0, "random 429s do not block the account");
    summary
}

// ------------------------------------------------------------------------------------- import

/// Every 487th input names a missing pipeline: the server rejects it.
fn is_invalid(i: usize) -> bool {
    i % 487 == 13
}

fn request_id(i: usize) -> String {
    format!("lead-{i}")
}

/// Input `i`: a form submission with data of its own (the fake, like Kommo, refuses a lead
/// identical to one already waiting) and its own `request_id`.
fn form(i: usize) -> types::AddIncomingForm {
    let mut item = json!({
        "request_id": request_id(i),
        "source_uid": "reliability-site-form",
        "source_name": "Site form",
        "created_at": FIRST_CREATED_AT + i as i64,
        "metadata": {
            "form_id": format!("form-{i}"),
            "form_name": "Contact us",
            "form_page": "https://example.com/contact",
            "ip": "203.0.113.7",
            "form_sent_at": FIRST_CREATED_AT + i as i64,
            "referer": "https://example.com/"
        },
        "_embedded": {"contacts": [{"name": format!("Visitor {i}")}]}
    });
    if is_invalid(i) {
        item["pipeline_id"] = json!(MISSING_PIPELINE);
    }
    serde_json::from_value(item).expect("a valid AddIncomingForm")
}

/// What the import ended with.
struct Import {
    /// The last outcome of every input.
    outcomes: Vec<ItemOutcome<types::CreatedIncomingLead>>,
    /// Batch calls made (the first and the resends).
    rounds: usize,
}

/// What a careful user does: send everything, then resend what the report says is safe to
/// resend, until nothing is; `Unknown` items are kept as unknown, never resent blindly.
async fn import(
    client: &kommo::Client,
    inputs: &[types::AddIncomingForm],
    options: &BatchOptions,
) -> Import {
    let mut last: Vec<Option<ItemOutcome<types::CreatedIncomingLead>>> =
        (0..inputs.len()).map(|_| None).collect();
    let mut pending: Vec<usize> = (0..inputs.len()).collect();
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        assert!(
            rounds <= 1_000,
            "no end to the resends: {} pending",
            pending.len()
        );
        let report = client
            .add_incoming_forms_batched(pending.iter().map(|&i| &inputs[i]), options)
            .await;
        assert_eq!(report.len(), pending.len(), "one outcome per item sent");
        for error in report.errors() {
            assert!(
                matches!(error, BatchError::Request { .. }),
                "only requests fail: {error}"
            );
        }
        let resend: Vec<usize> = report.to_resend().into_iter().map(|j| pending[j]).collect();
        for (j, outcome) in report.into_outcomes().into_iter().enumerate() {
            last[pending[j]] = Some(outcome);
        }
        pending = resend;
    }
    Import {
        outcomes: last
            .into_iter()
            .map(|o| o.expect("every input was sent at least once"))
            .collect(),
        rounds,
    }
}

/// The stored leads by input index; panics on a stored lead that no input created, or whose
/// data is not its input's.
fn stored_by_input(stored: &[StoredIncomingLead]) -> Vec<Vec<&StoredIncomingLead>> {
    let mut by_input: Vec<Vec<&StoredIncomingLead>> = vec![Vec::new(); LEADS];
    for lead in stored {
        let rid = lead
            .request_id
            .as_deref()
            .unwrap_or_else(|| panic!("a stored lead no input created: {lead:?}"));
        let i: usize = rid
            .strip_prefix("lead-")
            .and_then(|n| n.parse().ok())
            .filter(|i| *i < LEADS)
            .unwrap_or_else(|| panic!("a stored lead with a request_id of no input: {rid}"));
        assert_eq!(
            lead.lead["metadata"]["form_id"],
            json!(format!("form-{i}")),
            "{rid} stored with another input's data"
        );
        assert_eq!(lead.state, "waiting");
        by_input[i].push(lead);
    }
    by_input
}

/// The whole accounting of one import under faults.
async fn import_under_faults(seed: u64, options: BatchOptions) {
    let started = Instant::now();
    let fake = start(Config::default().seed(seed).faults(unreliable()));
    let client = client(&fake, 4);
    let inputs: Vec<types::AddIncomingForm> = (0..LEADS).map(form).collect();

    let Import { outcomes, rounds } = import(&client, &inputs, &options).await;
    let stats = fake.stats();
    let stored = fake.incoming_leads();
    let by_input = stored_by_input(&stored);

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut duplicated, mut lost, mut unknown_stored) = (Vec::new(), Vec::new(), 0);
    for (i, outcome) in outcomes.iter().enumerate() {
        let copies = &by_input[i];
        if copies.len() > 1 {
            duplicated.push(i);
        }
        match outcome {
            ItemOutcome::Succeeded(created) => {
                *counts.entry("succeeded").or_default() += 1;
                assert!(
                    !is_invalid(i),
                    "input {i} names a missing pipeline, yet succeeded"
                );
                match copies.as_slice() {
                    [] => lost.push(i),
                    [one] => {
                        assert_eq!(
                            created.uid, one.uid,
                            "input {i}: the answered uid is stored"
                        );
                        assert_eq!(created.request_id.as_deref(), Some(request_id(i).as_str()));
                    }
                    _ => {}
                }
            }
            ItemOutcome::Rejected(errors) => {
                *counts.entry("rejected").or_default() += 1;
                assert!(
                    copies.is_empty(),
                    "input {i} was rejected ({errors:?}), yet stored {} time(s)",
                    copies.len()
                );
                assert!(is_invalid(i), "valid input {i} rejected: {errors:?}");
                assert!(
                    errors
                        .iter()
                        .any(|e| e.path.as_deref() == Some("pipeline_id")),
                    "input {i}: {errors:?}"
                );
            }
            ItemOutcome::Unknown => {
                *counts.entry("unknown").or_default() += 1;
                if copies.len() == 1 {
                    unknown_stored += 1;
                    assert!(!is_invalid(i), "invalid input {i} stored");
                }
            }
            ItemOutcome::NotApplied | ItemOutcome::NotAttempted => {
                panic!("input {i} left {outcome:?}: the user would have resent it")
            }
            other => panic!("input {i}: an outcome this test does not know: {other:?}"),
        }
    }
    let rejected = counts.get("rejected").copied().unwrap_or(0);
    let unknown = counts.get("unknown").copied().unwrap_or(0);
    let summary = assert_fault_mix(&stats);
    eprintln!(
        "import (seed {seed}, {options:?}): {rounds} batch calls, {counts:?}, of the unknown \
         {unknown_stored} stored and {} not; {} leads stored; {summary}; {:.1?}",
        unknown - unknown_stored,
        stored.len(),
        started.elapsed()
    );
    assert!(duplicated.is_empty(), "inputs stored twice: {duplicated:?}");
    assert!(
        lost.is_empty(),
        "inputs reported succeeded but not stored: {lost:?}"
    );
    assert_eq!(
        stored.len(),
        counts.get("succeeded").copied().unwrap_or(0) + unknown_stored,
        "every stored lead is a succeeded or an unknown input"
    );
    let invalid = (0..LEADS).filter(|i| is_invalid(*i)).count();
    assert!(
        rejected > 0 && rejected <= invalid,
        "{rejected} of {invalid} invalid inputs rejected"
    );
    // Lost answers to POSTs leave stored leads the report cannot vouch for; 5xx and drops leave
    // unknown leads that were never stored. Both must have happened for the test to mean much.
    assert!(
        unknown_stored > 0,
        "no lost answer hit a chunk of valid leads"
    );
    assert!(unknown > unknown_stored, "no 5xx or drop hit a chunk");
    assert!(rounds > 1, "something was resent");
    assert!(
        stats
            .faults
            .iter()
            .any(|(_, f)| *f == Fault::DropAfterProcessing),
        "the fault log shows lost answers"
    );
    assert_eq!(fake.violations(), [], "every answer matched the spec");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_10000_leads_under_faults_loses_and_duplicates_nothing() {
    // One request at a time: the fake sees the same request sequence on every run, so the
    // seed fixes every fault.
    import_under_faults(11, BatchOptions::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_10000_leads_four_requests_at_a_time_under_faults_loses_and_duplicates_nothing() {
    // Four in flight: the order in which the fake sees them may vary, and which request fails
    // with it. Small chunks make over a thousand requests, so every kind of fault is all but
    // certain whatever the order.
    import_under_faults(
        12,
        BatchOptions::new().with_chunk_size(10).with_concurrency(4),
    )
    .await;
}

// ------------------------------------------------------------------------------------- stream

/// Items per page: 500 pages, so the faults hit a few hundred GETs.
const PAGE: u32 = 20;

/// A fake holding 10,000 waiting incoming leads (added directly, not through the faulty API),
/// and their uids in `created_at` order.
fn fake_with_leads(seed: u64) -> (FakeServer, Vec<String>) {
    let fake = start(Config::default().seed(seed).faults(unreliable()));
    let mut uids = Vec::with_capacity(LEADS);
    for i in 0..LEADS {
        let uid = fake
            .add_incoming_lead(json!({
                "category": "forms",
                "source_uid": "reliability-site-form",
                "source_name": "Site form",
                "pipeline_id": 6950551,
                "created_at": FIRST_CREATED_AT + i as i64,
                "metadata": {"form_id": format!("form-{i}"), "form_name": "Contact us"}
            }))
            .expect("a valid incoming lead");
        uids.push(uid);
    }
    let truth: Vec<String> = fake.incoming_leads().into_iter().map(|l| l.uid).collect();
    assert_eq!(truth, uids, "the ground truth holds them in order");
    assert_eq!(fake.stats().requests, 0, "seeding sends no request");
    (fake, uids)
}

fn pager(client: &kommo::Client) -> lead_intake::pagination::KommoPager<types::IncomingLeadList> {
    client
        .list_incoming_leads_pager(|req| req.order_created_at(types::SortOrder::Asc))
        .page_size(PAGE)
}

/// Every lead yielded exactly once, in order; the faults really happened; the stream was
/// resumed after failures.
fn check_stream(
    fake: &FakeServer,
    expected: &[String],
    yielded: &[String],
    resumes: usize,
    what: &str,
) {
    let mut seen = HashSet::new();
    let repeated: Vec<&String> = yielded.iter().filter(|u| !seen.insert(*u)).collect();
    assert!(
        repeated.is_empty(),
        "{what}: {} leads yielded twice",
        repeated.len()
    );
    let missing = expected.iter().filter(|u| !seen.contains(u)).count();
    assert_eq!(missing, 0, "{what}: {missing} leads never yielded");
    assert_eq!(yielded, expected, "{what}: in the fake's order");
    let stats = fake.stats();
    let summary = assert_fault_mix(&stats);
    eprintln!(
        "{what}: {} leads, {resumes} resumes; {summary}",
        yielded.len()
    );
    assert!(resumes > 0, "{what}: some page failed after every retry");
    assert_eq!(fake.violations(), [], "every answer matched the spec");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_10000_leads_under_faults_yields_each_once_resuming_with_start_at() {
    let started = Instant::now();
    let (fake, expected) = fake_with_leads(21);
    let seeded = started.elapsed();
    // Two attempts per GET: about 1% of pages still fail, and the stream ends with the error.
    let client = client(&fake, 2);
    let mut yielded: Vec<String> = Vec::with_capacity(LEADS);
    let mut resumes = 0;
    let mut items = pager(&client).typed_items();
    while let Some(item) = items.next().await {
        match item {
            Ok(lead) => yielded.push(lead.uid().to_string()),
            Err(error) => {
                // A page is yielded whole or not at all: resume at the page after the last one
                // seen.
                resumes += 1;
                assert!(resumes <= 100, "resumed too often; last error: {error}");
                assert_eq!(yielded.len() % PAGE as usize, 0, "whole pages only");
                let next_page = (yielded.len() / PAGE as usize) as u32 + 1;
                items = pager(&client).start_at(next_page).typed_items();
            }
        }
    }
    check_stream(&fake, &expected, &yielded, resumes, "items() + start_at");
    eprintln!("seeded in {seeded:.1?}, all in {:.1?}", started.elapsed());
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_10000_leads_under_faults_yields_each_once_resuming_after_the_last_page() {
    let (fake, expected) = fake_with_leads(22);
    let client = client(&fake, 2);
    let mut yielded: Vec<String> = Vec::with_capacity(LEADS);
    let mut resumes = 0;
    let mut last: Option<types::IncomingLeadList> = None;
    let mut pages = pager(&client).pages();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => {
                let items = page.embedded.as_ref().map_or(&[][..], |e| &e.unsorted[..]);
                yielded.extend(items.iter().map(|l| l.uid().to_string()));
                last = Some(page);
            }
            Err(error) => {
                resumes += 1;
                assert!(resumes <= 100, "resumed too often; last error: {error}");
                pages = match &last {
                    Some(held) => pager(&client).resume_after(held).pages(),
                    None => pager(&client).pages(),
                };
            }
        }
    }
    check_stream(
        &fake,
        &expected,
        &yielded,
        resumes,
        "pages() + resume_after",
    );
    fake.shutdown().await;
}

/// The baseline the fault tests are measured against: with no fault, the batch layer itself
/// resends the items refused with the invalid one, so the caller's resend loop ends after its
/// first round, and the ground truth matches the answers.
#[tokio::test]
async fn without_faults_an_import_succeeds_but_for_the_invalid_input_and_matches_the_ground_truth()
{
    let fake = start(Config::default());
    let client = client(&fake, 1);
    let inputs: Vec<types::AddIncomingForm> = (0..120).map(form).collect();
    let Import { outcomes, rounds } = import(&client, &inputs, &BatchOptions::new()).await;
    let stored = fake.incoming_leads();
    let by_input = stored_by_input(&stored);
    for (i, outcome) in outcomes.iter().enumerate() {
        match (outcome, by_input[i].as_slice()) {
            (ItemOutcome::Succeeded(created), [one]) => assert_eq!(created.uid, one.uid),
            (ItemOutcome::Rejected(_), []) => assert!(is_invalid(i)),
            (other, copies) => panic!("input {i}: {other:?}, stored {} time(s)", copies.len()),
        }
    }
    assert_eq!((stored.len(), rounds), (119, 1));
    let stats = fake.stats();
    assert_eq!(
        stats.requests, 4,
        "three chunks, and the 49 items refused with the invalid one, resent"
    );
    assert_eq!(stats.faults, []);
    assert_eq!(fake.violations(), []);
}

//! Kommo is written in PHP, so the query strings the client sends must mean, to PHP's own
//! `parse_str()`, what the caller meant: arrays as `name[]=a&name[]=b`, ranges as
//! `name[from]=..&name[to]=..`.
//!
//! The queries are captured from the requests the client really sends to a mock server, then
//! handed to the `php` executable. Run `scripts/install-php.sh` first when `php` is missing: these
//! tests fail (they never skip) without it.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use common::{kommo, raw_query};
use httpmock::MockServer;
use lead_intake::kommo::Client;
use lead_intake::kommo::types::{IncomingLeadCategory, SortOrder};
use lead_intake::prelude::*;
use serde_json::{Value, json};

/// PHP's reading of a query string: `parse_str()`, printed as JSON.
fn php_parse_str(query: &str) -> Value {
    let output = Command::new("php")
        .args([
            "-r",
            "parse_str($argv[1], $out); echo json_encode($out);",
            "--",
            query,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `php` ({e}): these tests need PHP's CLI; \
                 run scripts/install-test-tools.sh to install it"
            )
        });
    assert!(
        output.status.success(),
        "php failed on {query:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "php printed no JSON for {query:?} ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A Kommo client whose requests' query strings are recorded, whatever the path.
struct Recorder {
    /// Kept alive for the client to reach.
    _server: MockServer,
    client: Client,
    queries: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn start() -> Self {
        let (server, client) = kommo().await;
        let queries = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&queries);
        server
            .mock_async(move |when, then| {
                when.is_true(move |req| {
                    sink.lock()
                        .unwrap()
                        .push(raw_query(req).unwrap_or_default());
                    true
                });
                then.status(204);
            })
            .await;
        Self {
            _server: server,
            client,
            queries,
        }
    }

    /// The query string of the last request, exactly as sent.
    fn last_query(&self) -> String {
        self.queries
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request was sent")
    }
}

#[tokio::test]
async fn list_sources_external_ids_reach_php_as_an_array() {
    let rec = Recorder::start().await;
    rec.client
        .list_sources()
        .filter_external_id(vec!["a".to_string(), "b".to_string()])
        .send()
        .or_empty()
        .await
        .unwrap();

    let query = rec.last_query();
    assert_eq!(
        query,
        "filter%5Bexternal_id%5D%5B%5D=a&filter%5Bexternal_id%5D%5B%5D=b"
    );
    assert_eq!(
        php_parse_str(&query),
        json!({ "filter": { "external_id": ["a", "b"] } })
    );
}

#[tokio::test]
async fn a_single_external_id_reaches_php_as_an_array_of_one() {
    let rec = Recorder::start().await;
    rec.client
        .list_sources()
        .filter_external_id(vec!["only".to_string()])
        .send()
        .or_empty()
        .await
        .unwrap();

    assert_eq!(
        php_parse_str(&rec.last_query()),
        json!({ "filter": { "external_id": ["only"] } })
    );
}

#[tokio::test]
async fn list_incoming_leads_filters_order_and_paging_reach_php_as_nested_arrays() {
    let rec = Recorder::start().await;
    rec.client
        .list_incoming_leads()
        .filter_uid(vec!["u1".to_string(), "u2".to_string()])
        .filter_category(vec![IncomingLeadCategory::Sip, IncomingLeadCategory::Forms])
        .filter_pipeline_id(5)
        .order_created_at(SortOrder::Asc)
        .page(2)
        .limit(250)
        .send()
        .or_empty()
        .await
        .unwrap();

    assert_eq!(
        php_parse_str(&rec.last_query()),
        json!({
            "filter": { "uid": ["u1", "u2"], "category": ["sip", "forms"], "pipeline_id": "5" },
            "order": { "created_at": "asc" },
            "page": "2",
            "limit": "250"
        })
    );
}

#[tokio::test]
async fn an_unknown_category_reaches_php_verbatim() {
    let rec = Recorder::start().await;
    rec.client
        .list_incoming_leads()
        .filter_category(vec![IncomingLeadCategory::Other(
            "whatsapp lead&x=1".into(),
        )])
        .send()
        .or_empty()
        .await
        .unwrap();

    assert_eq!(
        php_parse_str(&rec.last_query()),
        json!({ "filter": { "category": ["whatsapp lead&x=1"] } })
    );
}

#[tokio::test]
async fn summary_created_at_range_reaches_php_as_from_and_to() {
    let rec = Recorder::start().await;
    let _ = rec
        .client
        .get_incoming_leads_summary()
        .filter_created_at_from(100)
        .filter_created_at_to(200)
        .send()
        .await;

    let query = rec.last_query();
    assert_eq!(
        query,
        "filter%5Bcreated_at%5D%5Bfrom%5D=100&filter%5Bcreated_at%5D%5Bto%5D=200"
    );
    assert_eq!(
        php_parse_str(&query),
        json!({ "filter": { "created_at": { "from": "100", "to": "200" } } })
    );
}

#[tokio::test]
async fn summary_created_at_alone_reaches_php_as_a_single_timestamp() {
    let rec = Recorder::start().await;
    let _ = rec
        .client
        .get_incoming_leads_summary()
        .filter_created_at(100)
        .send()
        .await;

    assert_eq!(
        php_parse_str(&rec.last_query()),
        json!({ "filter": { "created_at": "100" } })
    );
}

#[test]
fn php_reads_the_php_array_syntax_as_this_test_expects() {
    // The oracle itself: an unencoded PHP array, a range and a scalar.
    assert_eq!(
        php_parse_str("a[]=1&a[]=2&r[from]=3&r[to]=4&s=5"),
        json!({ "a": ["1", "2"], "r": { "from": "3", "to": "4" }, "s": "5" })
    );
}

/// The library's form parser (`lead_intake::form`, which the fake uses too) builds what PHP's
/// `parse_str()` builds, on the names PHP rewrites and the bodies Kommo's webhooks carry.
/// Checked failing (then reverted) with the base name's `.` left as is, and with an unclosed
/// first `[` kept literal (the fake's old rule).
#[test]
fn the_library_parser_agrees_with_php() {
    for query in [
        "a[b=1",
        "a[b][c=1",
        "a[x]y[z]=1",
        "+a.b+c[d.e]=1&[x]=2&=3&e",
        "a%00b=1&c[d%00e]=2",
        "a[-5]=x&a[]=y&b[05]=x&b[]=y&b[-0]=z&b[]=w",
        "a=1&a[]=2&c[]=1&c=2&c[]=3",
        "v=%zz%4&w=%41%2b+x",
        "account[id]=29512438&account[subdomain]=mycompany&account[_links][self]=https%3A%2F%2Fmycompany.kommo.com\
         &unsorted[add][0][uid]=u1&unsorted[add][0][source_data][data][0][text]=hi&unsorted[add][0][data][contacts][0][id]=9",
    ] {
        let ours = lead_intake::form::parse(query.as_bytes())
            .unwrap_or_else(|e| panic!("{query:?}: {e}"))
            .to_json();
        assert_eq!(ours, php_parse_str(query), "query {query:?}");
    }
}

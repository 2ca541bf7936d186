//! Issue 21 §4, the memory side of `KommoPager::drain`: what the stream keeps to know which
//! leads it has already yielded. A counting allocator (this test binary's own, so no other
//! test's allocations count) measures the bytes still allocated at two points where the stream
//! holds no page: after the first page of leads and after the ninth. In between it yields 2,000
//! leads of about 4 KiB each: half with a 4 KiB `uid`, half without a `uid` (kept as
//! unrecognized items, with their raw JSON). What the stream holds across them must grow by
//! its 16-byte digests, not by the leads.
//!
//! Before the digests, the stream kept every `uid` and the whole JSON of every lead without
//! one: the same run grew by about 12 MiB (12,534,584 bytes); with the digests, by about
//! 130 KB.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::script::{Reply, ScriptServer, http_without_timeouts};
use futures_util::StreamExt;
use serde_json::json;

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; `ptr` and `layout` come from this allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PAGE: usize = 250;
const PAGES: usize = 9;
/// The size of each lead's large field.
const FILL: usize = 4 * 1024;

/// Page `n` of new leads: even ones typed with a 4 KiB `uid`, odd ones without a `uid` (so
/// they do not decode) and a 4 KiB field.
fn page_of_new_leads(n: usize) -> serde_json::Value {
    let fill = "x".repeat(FILL);
    let leads: Vec<_> = (0..PAGE)
        .map(|i| {
            if i % 2 == 0 {
                json!({"uid": format!("{fill}-{n}-{i}"), "category": "forms"})
            } else {
                json!({"category": "forms", "note": format!("{fill}-{n}-{i}")})
            }
        })
        .collect();
    json!({"_page": 1, "_embedded": {"unsorted": leads}})
}

#[tokio::test(start_paused = true)]
async fn a_drain_keeps_a_digest_per_lead_not_the_lead() {
    // Requests 0 to PAGES-1 find a page of new leads on page 1; then the list is empty.
    let server = ScriptServer::start(|request, n| {
        if request.path() != "/api/v4/leads/unsorted" {
            Reply::status(404)
        } else if n < PAGES {
            Reply::json(200, page_of_new_leads(n))
        } else {
            Reply::status(204)
        }
    })
    .await;
    let client = lead_intake::kommo::Client::builder()
        .base_url(&server.base_url)
        .token(common::TOKEN)
        .no_rate_limit()
        .retry(lead_intake::retry::RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let mut leads = client.list_incoming_leads_pager(|req| req).drain();

    // Takes one page's leads, dropping each; returns the bytes allocated after the last one,
    // when the stream holds nothing but what it remembers (the next page is not read yet).
    let mut yielded = 0;
    let mut next_page = async || {
        for _ in 0..PAGE {
            let lead = leads.next().await.expect("a lead").expect("no error");
            drop(lead);
            yielded += 1;
        }
        LIVE.load(Ordering::Relaxed)
    };
    let after_first = next_page().await;
    let mut after_last = after_first;
    for _ in 1..PAGES {
        after_last = next_page().await;
    }
    let grown = after_last - after_first;
    let leads_between = (PAGES - 1) * PAGE;
    println!("{leads_between} leads of ~{FILL} bytes: the stream grew by {grown} bytes");
    // 16 bytes a digest, and a hash table that doubles: well under 256 bytes a lead. Keeping the
    // leads would be over 4 KiB each.
    assert!(
        grown < (leads_between * 256) as isize,
        "the stream grew by {grown} bytes over {leads_between} leads"
    );

    assert!(
        leads.next().await.is_none(),
        "the empty list ends the drain"
    );
    assert_eq!(server.requests().len(), PAGES + 1);
}

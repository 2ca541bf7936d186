//! Shared by the benchmarks (and by `benches/peer`, which includes this file with `#[path]`):
//! the 250-item incoming-leads page, a loopback server that serves it, and an allocator that
//! measures the peak memory of the client's threads.
#![allow(dead_code)] // each benchmark uses a part

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The token every benchmark client sends (the servers do not check it).
pub const TOKEN: &str = "bench-token";

/// Kommo's largest page: 250 items.
pub const PAGE: usize = 250;

const VENDOR_PAGE: &str =
    include_str!("../../openapi/examples/kommo/listIncomingLeads.response.200.json");

/// `n` incoming leads: the vendor document's three (a form, a chat and a call) in turn, each
/// with its own `uid` and IDs, so the page is what Kommo sends, only longer.
pub fn leads(n: usize) -> Vec<Value> {
    let page: Value = serde_json::from_str(VENDOR_PAGE).expect("the vendor example is JSON");
    let examples = page["_embedded"]["unsorted"]
        .as_array()
        .expect("the vendor example lists incoming leads")
        .clone();
    (0..n)
        .map(|i| {
            let mut lead = examples[i % examples.len()].clone();
            lead["uid"] = json!(format!("{:060x}", 0x5af9_dedb_u64 + i as u64));
            lead["created_at"] = json!(1_686_819_152 + i as i64);
            for (kind, id) in [("contacts", 583_338 + i), ("leads", 236_768 + i)] {
                lead["_embedded"][kind][0]["id"] = json!(id);
                lead["_embedded"][kind][0]["_links"]["self"]["href"] =
                    json!(format!("https://devteam.kommo.com/api/v4/{kind}/{id}"));
            }
            lead
        })
        .collect()
}

/// A page of `GET /api/v4/leads/unsorted` holding `items` (a JSON array, already serialized),
/// with `_links.next` when `page < pages`.
pub fn page_body(origin: &str, items: &str, page: u64, pages: u64, limit: u64) -> Bytes {
    let link = |n: u64| format!("{origin}/api/v4/leads/unsorted?page={n}&limit={limit}");
    let mut links = format!("{{\"self\":{{\"href\":\"{}\"}}", link(page));
    if page < pages {
        links.push_str(&format!(",\"next\":{{\"href\":\"{}\"}}", link(page + 1)));
    }
    links.push('}');
    let mut body = Vec::with_capacity(items.len() + 256);
    body.extend_from_slice(format!("{{\"_page\":{page},\"_links\":{links},").as_bytes());
    body.extend_from_slice(b"\"_embedded\":{\"unsorted\":");
    body.extend_from_slice(items.as_bytes());
    body.extend_from_slice(b"}}");
    Bytes::from(body)
}

/// The one-page body every overhead and decoding benchmark uses: 250 leads, no `next`.
pub fn single_page() -> Bytes {
    let items = serde_json::to_string(&leads(PAGE)).expect("serializes");
    page_body("http://127.0.0.1", &items, 1, 1, PAGE as u64)
}

/// What the server answers: `pages` pages of the same 250 leads, each after `latency`.
struct Served {
    items: String,
    pages: AtomicU64,
    latency_us: AtomicU64,
    requests: AtomicU64,
}

/// A keep-alive HTTP/1 server on `127.0.0.1`, on a thread of its own (its allocations are not
/// counted by [`Counting`]), serving `GET /api/v4/leads/unsorted?page=N&limit=L` with
/// `application/hal+json` pages linked by `_links.next`.
pub struct PageServer {
    pub addr: SocketAddr,
    served: Arc<Served>,
}

impl PageServer {
    pub fn start() -> Self {
        let items = serde_json::to_string(&leads(PAGE)).expect("serializes");
        let served = Arc::new(Served {
            items,
            pages: AtomicU64::new(1),
            latency_us: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds on loopback");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("has an address");
        let state = served.clone();
        std::thread::spawn(move || {
            EXCLUDED.with(|e| e.set(true));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| answer(state.clone(), req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        PageServer { addr, served }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many pages the list has (1 by default): `total items / 250`.
    pub fn set_pages(&self, pages: u64) {
        self.served.pages.store(pages, Ordering::SeqCst);
    }

    /// A delay before each answer, like a network round trip (none by default).
    pub fn set_latency(&self, latency: Duration) {
        self.served
            .latency_us
            .store(latency.as_micros() as u64, Ordering::SeqCst);
    }

    pub fn requests(&self) -> u64 {
        self.served.requests.load(Ordering::SeqCst)
    }
}

async fn answer(
    served: Arc<Served>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    served.requests.fetch_add(1, Ordering::Relaxed);
    let latency = served.latency_us.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let page = param("page").unwrap_or(1);
    let limit = param("limit").unwrap_or(PAGE as u64);
    let pages = served.pages.load(Ordering::Relaxed);
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let response = if req.uri().path() != "/api/v4/leads/unsorted" || page == 0 || page > pages {
        hyper::Response::builder().status(204).body(Full::default())
    } else {
        let body = page_body(&format!("http://{host}"), &served.items, page, pages, limit);
        hyper::Response::builder()
            .header("content-type", "application/hal+json")
            .body(Full::new(body))
    };
    Ok(response.expect("a valid response"))
}

/// The `reqwest::Client` every client of a comparison gets: the settings `lead-intake` uses by
/// default (user agent, 15 s connect timeout, 60 s timeout), so only the layers above differ.
pub fn http_client() -> reqwest::Client {
    lead_intake::http::install_crypto_provider();
    reqwest::Client::builder()
        .user_agent("lead-intake-bench")
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a reqwest client")
}

// ---------------------------------------------------------------------------- peak memory

thread_local! {
    /// Set on threads whose allocations are not the client's (the servers).
    static EXCLUDED: Cell<bool> = const { Cell::new(false) };
}

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting the bytes live on every thread but the servers', and their
/// peak. Install it with `#[global_allocator] static A: Counting = Counting;`.
pub struct Counting;

fn counted() -> bool {
    !EXCLUDED.try_with(Cell::get).unwrap_or(true)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && counted() {
            let size = layout.size() as isize;
            let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if counted() {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() && counted() {
            let grow = new_size as isize - layout.size() as isize;
            let live = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        new
    }
}

/// Live bytes now (counted threads only; can go below zero when a block allocated on a server
/// thread is freed on a counted one, so only differences are meaningful).
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Restarts the peak at the bytes live now; returns that baseline.
pub fn reset_peak() -> isize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The peak above `baseline` since [`reset_peak`].
pub fn peak_since(baseline: isize) -> usize {
    (PEAK.load(Ordering::Relaxed) - baseline).max(0) as usize
}

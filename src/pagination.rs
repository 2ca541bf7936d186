//! Streams over paged lists: every page, or every item, fetched one page at a time as the
//! stream is polled.
//!
//! | Call | Pager | [`pages`](KommoPager::pages) yields | [`typed_items`](KommoPager::typed_items) yields |
//! |---|---|---|---|
//! | [`kommo::Client::list_widgets_pager`] | [`KommoPager<WidgetList>`] | [`WidgetList`] | [`kommo::types::Widget`] |
//! | [`kommo::Client::list_incoming_leads_pager`] | [`KommoPager<IncomingLeadList>`] | [`IncomingLeadList`] | [`kommo::types::IncomingLead`] |
//! | [`closebot::Client::list_sources_pager`] | [`CloseBotPager`] | [`SourcePage`] | [`closebot::types::Source`] |
//!
//! [`items`](KommoPager::items) yields each item as a [`ListItem`]: [`ListItem::Typed`], or
//! [`ListItem::Unrecognized`] in its place for an item that does not decode into its type
//! ([`crate::list`]). [`KommoPager::on_unrecognized`] skips those or stops on the first one
//! instead ([`OnUnrecognized`]); `typed_items` yields the decoded ones only, and stops with
//! [`ApiError::UnrecognizedItem`] on an odd one unless told to skip it, so no item is ever
//! dropped without the caller asking. A page's length (for the short-page rule) counts every
//! item the server sent.
//!
//! Each call takes a closure that configures the generated request builder: the filters and
//! sort order of the single-page call. The pager then sets the page number and page size
//! itself, *after* your closure, so a `page`/`limit`/`page_size` set there is overridden: use
//! [`KommoPager::page_size`], [`KommoPager::start_at`] and [`KommoPager::resume_after`]
//! instead (and their [`CloseBotPager`] counterparts).
//!
//! The streams are lazy (nothing is sent until the first poll), `Send + Unpin + 'static` (they
//! own a clone of the client, so they can be moved into `tokio::spawn`), and fused by their
//! end: an error is yielded once and is the stream's last item. Use
//! [`futures_util::StreamExt`] / [`futures_util::TryStreamExt`] (or `futures`) to consume them.
//! An empty page is never yielded.
//!
//! **Kommo** lists are 1-based (`page`, `limit` at most 250). The first page is requested with
//! the builder; after it the pager follows each page's `_links.next` with
//! [`kommo::Client::follow`] (through the same authentication as every call; a link to another
//! origin is yielded as [`ApiError::InvalidLink`]). The stream ends after a page with no `next`
//! link, a `204 No Content`, an empty page, a page shorter than the `limit` it was requested
//! with, a `next` link already fetched (loop guard), or [`KommoPager::max_pages`] requests.
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! use lead_intake::kommo::types::{IncomingLeadCategory, SortOrder};
//! # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
//! let mut widgets = kommo.list_widgets_pager(|req| req).typed_items();
//! while let Some(widget) = widgets.try_next().await? {
//!     println!("{}", widget.code);
//! }
//!
//! let leads: Vec<_> = kommo
//!     .list_incoming_leads_pager(|req| {
//!         req.filter_category(vec![IncomingLeadCategory::Forms])
//!             .order_created_at(SortOrder::Desc)
//!     })
//!     .page_size(100)
//!     .max_pages(10)
//!     .typed_items()
//!     .try_collect()
//!     .await?;
//! # let _ = leads; Ok(()) }
//! ```
//!
//! **Acting on the list while you read it.** The pages are asked for by number, so a list that
//! shrinks under the stream skips items: accepting or declining the leads of page 1 moves the
//! next ones onto page 1, and page 2 then starts past them (120 leads, pages of 50, each accepted
//! as it came: 70 seen, 50 left waiting). To accept, decline or link every incoming lead of a
//! filter, use [`KommoPager::drain`], which keeps reading the first page that still has a lead it
//! has not yielded and yields each one once.
//!
//! **CloseBot** sources are 0-based (`page`, `pageSize` at most 100). The stream ends after an
//! empty page, a page with fewer results than `pageSize`, the page that reaches `total`
//! (`(page + 1) * pageSize >= total`), or [`CloseBotPager::max_pages`] requests.
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! # async fn f(closebot: lead_intake::closebot::Client) -> Result<(), lead_intake::closebot::Error> {
//! let mut pages = closebot.list_sources_pager(|req| req.query("Acme")).pages();
//! while let Some(page) = pages.try_next().await? {
//!     for source in page.results.into_vec() {
//!         println!("{:?}", source.name);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A page size out of range, or a page number the API cannot take, is not a panic: the stream
//! yields [`ApiError::InvalidRequest`] without sending anything.
//!
//! # Prefetching
//!
//! By default a page is requested when the stream is polled for it, so a consumer that spends
//! time on each page waits for the network between pages. `.prefetch(1)` fetches the next page
//! on a task of its own while you work on the current one: same pages, same order, same
//! errors, one page more in memory. With a 5 ms round trip and 5 ms of work per page, streaming
//! 10,000 leads took 337 ms instead of 589 ms (BENCHMARKS.md, benchmark 3); with no work between
//! polls it gains next to nothing (2%). The task is spawned on the current tokio runtime at the first poll (outside a
//! runtime the stream simply does not prefetch) and is aborted, with any request in flight,
//! when the stream is dropped; a prefetched request counts against the rate limit when it is
//! sent, and one page may be fetched that you never read if you stop early.
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
//! let mut pages = kommo.list_incoming_leads_pager(|req| req).prefetch(1).pages();
//! while let Some(page) = pages.try_next().await? {
//!     // ... store the page; the next one is already being fetched.
//!     # let _ = page;
//! }
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::future::ready;
use std::num::NonZeroU32;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::stream::{self, Stream, StreamExt, TryStreamExt};
use progenitor_client::ClientInfo;
use serde::de::DeserializeOwned;

use crate::closebot::{self, types::SourcePage};
use crate::error::{ApiError, ApiResponse, ResponseExt};
use crate::kommo::{
    self,
    types::{IncomingLeadList, Links, WidgetList},
};
use crate::list::{Items, ListItem, UnrecognizedItem};

/// The largest `limit` Kommo's lists accept, and the default page size of a [`KommoPager`].
pub const KOMMO_MAX_PAGE_SIZE: u32 = 250;
/// The largest `pageSize` CloseBot accepts, and the default page size of a [`CloseBotPager`].
pub const CLOSEBOT_MAX_PAGE_SIZE: u32 = 100;

/// The most pages a pager fetches ahead ([`KommoPager::prefetch`]).
pub const MAX_PREFETCH: usize = 16;

/// What a pager does with an item that does not decode into its type
/// ([`crate::list::UnrecognizedItem`]): [`KommoPager::on_unrecognized`],
/// [`CloseBotPager::on_unrecognized`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnUnrecognized {
    /// `items()` yields it as [`ListItem::Unrecognized`], in its place (the default).
    #[default]
    Yield,
    /// `items()` leaves it out (each page that has any still logs one WARN event).
    Skip,
    /// The stream yields [`ApiError::UnrecognizedItem`] for the first one, and ends; `pages()`
    /// too.
    Fail,
}

/// The first unrecognized item of a page as an error, under [`OnUnrecognized::Fail`].
fn refuse_unrecognized<P: fmt::Debug + crate::error::ProblemSummary>(
    policy: OnUnrecognized,
    unrecognized: &[UnrecognizedItem],
) -> Result<(), ApiError<P>> {
    match (policy, unrecognized.first()) {
        (OnUnrecognized::Fail, Some(first)) => Err(ApiError::UnrecognizedItem {
            item: Box::new(first.clone()),
            count: unrecognized.len(),
        }),
        _ => Ok(()),
    }
}

/// A page's items as a pager yields them under `policy`.
fn yielded<T>(items: Items<T>, policy: OnUnrecognized) -> Vec<ListItem<T>> {
    match policy {
        OnUnrecognized::Yield => items.into_entries(),
        _ => items.into_vec().into_iter().map(ListItem::Typed).collect(),
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::WidgetList {}
    impl Sealed for super::IncomingLeadList {}
}

/// A page of a Kommo list that a [`KommoPager`] walks: [`WidgetList`] or [`IncomingLeadList`].
/// Sealed: implemented by this crate only.
pub trait KommoPage:
    sealed::Sealed
    + ApiResponse<Problem = kommo::types::Problem>
    + DeserializeOwned
    + Default
    + Clone
    + Send
    + 'static
{
    /// What the page lists: [`kommo::types::Widget`] or [`kommo::types::IncomingLead`].
    type Item: Send + 'static;

    /// The page's items that decoded (`_embedded.widgets` or `_embedded.unsorted`); empty when
    /// absent.
    fn items(&self) -> &[Self::Item];

    /// The page's items that did not decode into their type ([`crate::list`]).
    fn unrecognized(&self) -> &[UnrecognizedItem];

    /// How many items the server sent on the page, decoded or not.
    fn item_count(&self) -> usize {
        self.items().len() + self.unrecognized().len()
    }

    /// The page's items, owned.
    fn into_items(self) -> Items<Self::Item>;

    /// The page's HAL links (`_links`).
    fn links(&self) -> Option<&Links>;
}

impl KommoPage for WidgetList {
    type Item = kommo::types::Widget;

    fn items(&self) -> &[Self::Item] {
        self.widgets()
    }

    fn unrecognized(&self) -> &[UnrecognizedItem] {
        self.widgets().unrecognized()
    }

    fn into_items(self) -> Items<Self::Item> {
        self.into_widgets()
    }

    fn links(&self) -> Option<&Links> {
        self.links.as_ref()
    }
}

impl KommoPage for IncomingLeadList {
    type Item = kommo::types::IncomingLead;

    fn items(&self) -> &[Self::Item] {
        self.incoming_leads()
    }

    fn unrecognized(&self) -> &[UnrecognizedItem] {
        self.incoming_leads().unrecognized()
    }

    fn into_items(self) -> Items<Self::Item> {
        self.into_incoming_leads()
    }

    fn links(&self) -> Option<&Links> {
        self.links.as_ref()
    }
}

/// A page's `next` href, unless blank.
fn next_href<P: KommoPage>(page: &P) -> Option<&str> {
    page.links()
        .and_then(Links::next_href)
        .filter(|h| !h.trim().is_empty())
}

/// A page's `self` href, unless blank.
fn self_href<P: KommoPage>(page: &P) -> Option<&str> {
    page.links()
        .and_then(Links::self_href)
        .filter(|h| !h.trim().is_empty())
}

/// A 128-bit digest of [`link_key`]: what the loop guard keeps, 16 bytes a page however long
/// the hrefs (two SipHash digests with different prefixes; two different links giving the same
/// digest, which would end a stream early, is not a practical concern).
fn link_id(base: &str, href: &str) -> u128 {
    use std::hash::{Hash, Hasher};
    let key = link_key(base, href);
    let digest = |salt: u8| {
        let mut hasher = std::hash::DefaultHasher::new();
        salt.hash(&mut hasher);
        key.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(digest(0)) << 64) | u128::from(digest(1))
}

/// The href resolved against the base URL, without fragment and with its query parameters in
/// a stable order: the loop guard's key, so that `?page=2&limit=2` and the absolute
/// `https://…/?limit=2&page=2` are the same page.
fn link_key(base: &str, href: &str) -> String {
    let Ok(mut url) = url::Url::parse(&format!("{base}/")).and_then(|b| b.join(href)) else {
        return href.to_string();
    };
    url.set_fragment(None);
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.into()
}

/// The `limit` an href asks for, if it says.
fn link_limit(base: &str, href: &str) -> Option<u32> {
    let url = url::Url::parse(&format!("{base}/"))
        .and_then(|b| b.join(href))
        .ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse().ok())
}

fn page_size_error(api: &str, given: u32, max: u32) -> String {
    format!("page size {given} is out of range: {api} accepts 1 to {max}")
}

// ------------------------------------------------------------------------------------- Kommo

/// Sends the first request: the user's builder with `page` and `limit` set.
type KommoFetch<P> = Arc<
    dyn for<'a> Fn(
            &'a kommo::Client,
            NonZeroU32,
            NonZeroU32,
        ) -> BoxFuture<'a, Result<P, kommo::Error>>
        + Send
        + Sync,
>;

fn kommo_fetch<P, F>(fetch: F) -> KommoFetch<P>
where
    F: for<'a> Fn(
            &'a kommo::Client,
            NonZeroU32,
            NonZeroU32,
        ) -> BoxFuture<'a, Result<P, kommo::Error>>
        + Send
        + Sync
        + 'static,
{
    Arc::new(fetch)
}

/// Where a Kommo stream starts.
#[derive(Clone, Debug)]
enum KommoStart {
    /// Request this page (1-based) with the builder.
    Page(u32),
    /// Follow this `next` href of a page the caller holds; `seen` are that page's own hrefs.
    Follow { next: String, seen: Vec<String> },
    /// The held page was the last: nothing to fetch.
    Done,
}

impl kommo::Client {
    /// A pager over `GET /api/v4/widgets`: every installed and available widget.
    ///
    /// `configure` receives the request builder (this list takes no filters, so `|req| req`);
    /// the pager sets `page` and `limit` after it. See the [module](crate::pagination) for when
    /// the stream ends.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// let widgets: Vec<_> = kommo.list_widgets_pager(|req| req).typed_items().try_collect().await?;
    /// # let _ = widgets; Ok(()) }
    /// ```
    pub fn list_widgets_pager<F>(&self, configure: F) -> KommoPager<WidgetList>
    where
        F: for<'a> Fn(kommo::builder::ListWidgets<'a>) -> kommo::builder::ListWidgets<'a>
            + Send
            + Sync
            + 'static,
    {
        let fetch = kommo_fetch(move |client, page, limit| {
            let request = configure(client.list_widgets()).page(page).limit(limit);
            Box::pin(request.send().or_empty())
        });
        KommoPager::new(self.clone(), fetch)
    }

    /// A pager over `GET /api/v4/leads/unsorted`: the incoming leads matching the filters set
    /// by `configure` (`filter_category`, `filter_pipeline_id`, `filter_uid`,
    /// `order_created_at`). The pager sets `page` and `limit` after `configure`.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// use lead_intake::kommo::types::SortOrder;
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// let mut leads = kommo
    ///     .list_incoming_leads_pager(|req| req.filter_pipeline_id(6950551).order_created_at(SortOrder::Asc))
    ///     .items();
    /// while let Some(item) = leads.try_next().await? {
    ///     match item {
    ///         lead_intake::list::ListItem::Typed(lead) => println!("{}", lead.uid),
    ///         lead_intake::list::ListItem::Unrecognized(odd) => eprintln!("{odd}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn list_incoming_leads_pager<F>(&self, configure: F) -> KommoPager<IncomingLeadList>
    where
        F: for<'a> Fn(
                kommo::builder::ListIncomingLeads<'a>,
            ) -> kommo::builder::ListIncomingLeads<'a>
            + Send
            + Sync
            + 'static,
    {
        let fetch = kommo_fetch(move |client, page, limit| {
            let request = configure(client.list_incoming_leads())
                .page(page)
                .limit(limit);
            Box::pin(request.send().or_empty())
        });
        KommoPager::new(self.clone(), fetch)
    }
}

/// The pages of a Kommo list, to configure and then turn into a stream with
/// [`pages`](Self::pages) or [`items`](Self::items). Made by
/// [`kommo::Client::list_widgets_pager`] and [`kommo::Client::list_incoming_leads_pager`].
#[derive(Clone)]
#[must_use = "a pager does nothing until turned into a stream and polled"]
pub struct KommoPager<P: KommoPage> {
    client: kommo::Client,
    fetch: KommoFetch<P>,
    page_size: u32,
    max_pages: Option<u32>,
    start: KommoStart,
    prefetch: usize,
    on_unrecognized: OnUnrecognized,
}

impl<P: KommoPage> fmt::Debug for KommoPager<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KommoPager")
            .field("page_size", &self.page_size)
            .field("max_pages", &self.max_pages)
            .field("start", &self.start)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl<P: KommoPage> KommoPager<P> {
    fn new(client: kommo::Client, fetch: KommoFetch<P>) -> Self {
        Self {
            client,
            fetch,
            page_size: KOMMO_MAX_PAGE_SIZE,
            max_pages: None,
            start: KommoStart::Page(1),
            prefetch: 0,
            on_unrecognized: OnUnrecognized::Yield,
        }
    }

    /// What to do with an item that does not decode into its type: yield it as
    /// [`ListItem::Unrecognized`] (the default), skip it, or end the stream with
    /// [`ApiError::UnrecognizedItem`] ([`OnUnrecognized`]).
    pub fn on_unrecognized(mut self, policy: OnUnrecognized) -> Self {
        self.on_unrecognized = policy;
        self
    }

    /// Fetches up to `pages` pages ahead of the consumer, on a task of its own, so the next
    /// page is on its way while you work on the current one (`0`, the default: each page is
    /// requested when the stream is polled for it). At most [`MAX_PREFETCH`] pages; a larger
    /// value means [`MAX_PREFETCH`]. See [Prefetching](crate::pagination#prefetching).
    pub fn prefetch(mut self, pages: usize) -> Self {
        self.prefetch = pages.min(MAX_PREFETCH);
        self
    }

    /// The `limit` of each page, 1 to 250 ([`KOMMO_MAX_PAGE_SIZE`], the default). Another
    /// value makes the stream yield [`ApiError::InvalidRequest`] and send nothing.
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Sends at most `max_pages` requests (`0`: none). Unlimited by default.
    pub fn max_pages(mut self, max_pages: u32) -> Self {
        self.max_pages = Some(max_pages);
        self
    }

    /// Starts at this page, counting from 1 (the default). `0` makes the stream yield
    /// [`ApiError::InvalidRequest`]. Replaces a [`resume_after`](Self::resume_after).
    pub fn start_at(mut self, page: u32) -> Self {
        self.start = KommoStart::Page(page);
        self
    }

    /// Continues after a page you already hold (from a stream or a single call): the stream
    /// starts by following that page's `_links.next`, and is empty when the page has no such
    /// link or no items. The held page is not yielded again. The filters come from that link,
    /// not from the pager's closure. Replaces a [`start_at`](Self::start_at).
    pub fn resume_after(mut self, held: &P) -> Self {
        self.start = match next_href(held) {
            Some(next) if held.item_count() != 0 => KommoStart::Follow {
                next: next.to_string(),
                seen: self_href(held).map(str::to_string).into_iter().collect(),
            },
            _ => KommoStart::Done,
        };
        self
    }

    /// The pages, in order; none of them empty.
    pub fn pages(self) -> impl Stream<Item = Result<P, kommo::Error>> + Send + Unpin + 'static {
        let checked = NonZeroU32::new(self.page_size)
            .filter(|n| n.get() <= KOMMO_MAX_PAGE_SIZE)
            .ok_or_else(|| page_size_error("Kommo", self.page_size, KOMMO_MAX_PAGE_SIZE))
            .and_then(|limit| {
                let base = self.client.baseurl().to_string();
                let (next, seen) = match self.start {
                    KommoStart::Page(0) => {
                        return Err("page 0 does not exist: Kommo counts pages from 1".to_string());
                    }
                    KommoStart::Page(page) => (KommoNext::Page(page), HashSet::new()),
                    KommoStart::Follow { next, seen } => (
                        KommoNext::Follow(next),
                        seen.iter().map(|h| link_id(&base, h)).collect(),
                    ),
                    KommoStart::Done => (KommoNext::Done, HashSet::new()),
                };
                Ok(KommoState {
                    client: self.client,
                    fetch: self.fetch,
                    base,
                    limit,
                    next,
                    seen,
                    remaining: self.max_pages,
                    on_unrecognized: self.on_unrecognized,
                })
            });
        match checked {
            Ok(state) => prefetched(
                stream::unfold(state, KommoState::step).fuse().boxed(),
                self.prefetch,
            ),
            Err(message) => stream::once(ready(Err(ApiError::InvalidRequest(message)))).boxed(),
        }
    }

    /// The items of every page, in order: each decoded one as [`ListItem::Typed`], and any
    /// that does not fit its type as set by [`on_unrecognized`](Self::on_unrecognized).
    pub fn items(
        self,
    ) -> impl Stream<Item = Result<ListItem<P::Item>, kommo::Error>> + Send + Unpin + 'static {
        let policy = self.on_unrecognized;
        self.pages()
            .map_ok(move |page| {
                stream::iter(yielded(page.into_items(), policy).into_iter().map(Ok))
            })
            .try_flatten()
            .fuse()
            .boxed()
    }

    /// The decoded items of every page, in order. An item that does not fit its type ends the
    /// stream with [`ApiError::UnrecognizedItem`], unless
    /// [`on_unrecognized(OnUnrecognized::Skip)`](Self::on_unrecognized) leaves it out: never
    /// dropped silently.
    pub fn typed_items(
        mut self,
    ) -> impl Stream<Item = Result<P::Item, kommo::Error>> + Send + Unpin + 'static {
        if self.on_unrecognized != OnUnrecognized::Skip {
            self.on_unrecognized = OnUnrecognized::Fail;
        }
        self.items()
            .try_filter_map(|item| ready(Ok(item.into_typed().ok())))
            .boxed()
    }
}

impl KommoPager<IncomingLeadList> {
    /// Every incoming lead matching the filters exactly once, **while you accept, decline or
    /// link them** as they come.
    ///
    /// [`items`](Self::items) asks for page 1, 2, 3, ... of a list that shrinks as you act on
    /// it: accepting the 50 leads of page 1 moves the next 50 onto page 1, and page 2 then skips
    /// them (120 leads in pages of 50, each accepted as it came: 70 seen, 50 left waiting).
    /// `drain` keeps reading the first page that still holds a lead it has not yielded, so a
    /// lead you act on makes room for the next ones, and a lead you leave in place is stepped
    /// past (it is never yielded twice: the stream remembers the UIDs it yielded). The stream
    /// ends at a page with nothing new that is shorter than the page size (or a `204`), or after
    /// [`max_pages`](Self::max_pages) requests. Act on each lead before polling for the next:
    /// the next page is read when you ask for the item after the last one buffered.
    ///
    /// Items that do not decode are yielded (or skipped, or an error) as
    /// [`on_unrecognized`](Self::on_unrecognized) says, once each (keyed by their `uid` when
    /// they have one, else by their JSON). [`start_at`](Self::start_at),
    /// [`resume_after`](Self::resume_after) and [`prefetch`](Self::prefetch) do not apply: a
    /// drain always starts at page 1 and reads one page at a time.
    ///
    /// ```no_run
    /// use lead_intake::kommo::types::{IncomingLeadCategory, SortOrder};
    /// use lead_intake::list::ListItem;
    /// use lead_intake::prelude::*;
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// let mut leads = kommo
    ///     .list_incoming_leads_pager(|req| {
    ///         req.filter_category(vec![IncomingLeadCategory::Forms])
    ///             .order_created_at(SortOrder::Asc)
    ///     })
    ///     .drain();
    /// while let Some(item) = leads.try_next().await? {
    ///     let ListItem::Typed(lead) = item else { continue };
    ///     if lead.source_uid.as_deref() == Some("site-forms") {
    ///         kommo.accept_incoming_lead().uid(&lead.uid).send().body().await?;
    ///     } // else: left waiting, and not seen again
    /// }
    /// # Ok(()) }
    /// ```
    pub fn drain(
        self,
    ) -> impl Stream<Item = Result<ListItem<kommo::types::IncomingLead>, kommo::Error>>
    + Send
    + Unpin
    + 'static {
        let Some(limit) =
            NonZeroU32::new(self.page_size).filter(|n| n.get() <= KOMMO_MAX_PAGE_SIZE)
        else {
            let message = page_size_error("Kommo", self.page_size, KOMMO_MAX_PAGE_SIZE);
            return stream::once(ready(Err(ApiError::InvalidRequest(message)))).boxed();
        };
        let state = Drain {
            client: self.client,
            fetch: self.fetch,
            limit,
            page: 1,
            seen: HashSet::new(),
            buffered: std::collections::VecDeque::new(),
            done: false,
            remaining: self.max_pages,
            on_unrecognized: self.on_unrecognized,
        };
        stream::unfold(state, Drain::step).fuse().boxed()
    }
}

/// The state of [`KommoPager::drain`].
struct Drain {
    client: kommo::Client,
    fetch: KommoFetch<IncomingLeadList>,
    limit: NonZeroU32,
    /// The first page that may still hold a lead not yielded yet.
    page: u32,
    /// The keys ([`drain_key`]) of every item yielded (or skipped) so far.
    seen: HashSet<String>,
    buffered: std::collections::VecDeque<ListItem<kommo::types::IncomingLead>>,
    done: bool,
    remaining: Option<u32>,
    on_unrecognized: OnUnrecognized,
}

/// What identifies an item across fetches: its `uid`, or its JSON when it has none.
fn drain_key(item: &ListItem<kommo::types::IncomingLead>) -> String {
    match item {
        ListItem::Typed(lead) => format!("uid:{}", lead.uid),
        ListItem::Unrecognized(odd) => match odd.raw().get("uid").and_then(|u| u.as_str()) {
            Some(uid) => format!("uid:{uid}"),
            None => format!("raw:{}", odd.raw()),
        },
    }
}

impl Drain {
    async fn step(
        mut self,
    ) -> Option<(
        Result<ListItem<kommo::types::IncomingLead>, kommo::Error>,
        Self,
    )> {
        loop {
            if let Some(item) = self.buffered.pop_front() {
                return Some((Ok(item), self));
            }
            if self.done || self.remaining == Some(0) {
                return None;
            }
            self.remaining = self.remaining.map(|n| n.saturating_sub(1));
            let page = NonZeroU32::new(self.page)?;
            let list = match (self.fetch)(&self.client, page, self.limit).await {
                Ok(list) => list,
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            };
            let full = list.item_count() >= self.limit.get() as usize;
            for item in list.into_items().into_entries() {
                if !self.seen.insert(drain_key(&item)) {
                    continue;
                }
                match &item {
                    ListItem::Unrecognized(odd) => {
                        if let Err(e) =
                            refuse_unrecognized(self.on_unrecognized, std::slice::from_ref(odd))
                        {
                            self.done = true;
                            return Some((Err(e), self));
                        }
                        if self.on_unrecognized == OnUnrecognized::Yield {
                            self.buffered.push_back(item);
                        }
                    }
                    ListItem::Typed(_) => self.buffered.push_back(item),
                }
            }
            if self.buffered.is_empty() {
                // Nothing new here: every lead on this page was left in place.
                if full {
                    self.page = self.page.saturating_add(1);
                } else {
                    self.done = true;
                }
            }
            // Otherwise read the same page again once these are handed out: acting on them
            // moves later leads onto it.
        }
    }
}

/// What a Kommo stream does on its next poll.
enum KommoNext {
    Page(u32),
    Follow(String),
    Done,
}

struct KommoState<P> {
    client: kommo::Client,
    fetch: KommoFetch<P>,
    base: String,
    limit: NonZeroU32,
    next: KommoNext,
    /// Loop guard: the digests ([`link_id`]) of every href fetched and every page's `self`.
    seen: HashSet<u128>,
    remaining: Option<u32>,
    on_unrecognized: OnUnrecognized,
}

impl<P: KommoPage> KommoState<P> {
    async fn step(mut self) -> Option<(Result<P, kommo::Error>, Self)> {
        if self.remaining == Some(0) {
            return None;
        }
        // Whatever happens below, nothing more is fetched unless a next page is set again.
        let (result, requested_limit) = match std::mem::replace(&mut self.next, KommoNext::Done) {
            KommoNext::Done => return None,
            KommoNext::Page(page) => {
                let page = NonZeroU32::new(page)?;
                let result = (self.fetch)(&self.client, page, self.limit).await;
                (result.map(Some), Some(self.limit.get()))
            }
            KommoNext::Follow(href) => {
                self.seen.insert(link_id(&self.base, &href));
                let limit = link_limit(&self.base, &href);
                (self.client.follow::<P>(&href).await, limit)
            }
        };
        self.remaining = self.remaining.map(|n| n.saturating_sub(1));
        let page = match result {
            Err(e) => return Some((Err(e), self)),
            Ok(None) => return None,
            Ok(Some(page)) => page,
        };
        let len = page.item_count();
        if len == 0 {
            return None;
        }
        if let Err(e) = refuse_unrecognized(self.on_unrecognized, page.unrecognized()) {
            return Some((Err(e), self));
        }
        if let Some(own) = self_href(&page) {
            self.seen.insert(link_id(&self.base, own));
        }
        let short = requested_limit.is_some_and(|limit| len < limit as usize);
        if !short
            && let Some(next) = next_href(&page)
            && !self.seen.contains(&link_id(&self.base, next))
        {
            self.next = KommoNext::Follow(next.to_string());
        }
        Some((Ok(page), self))
    }
}

// ---------------------------------------------------------------------------------- CloseBot

/// Sends one request: the user's builder with `page` and `pageSize` set.
type CloseBotFetch = Arc<
    dyn for<'a> Fn(
            &'a closebot::Client,
            i32,
            NonZeroU32,
        ) -> BoxFuture<'a, Result<SourcePage, closebot::Error>>
        + Send
        + Sync,
>;

fn closebot_fetch<F>(fetch: F) -> CloseBotFetch
where
    F: for<'a> Fn(
            &'a closebot::Client,
            i32,
            NonZeroU32,
        ) -> BoxFuture<'a, Result<SourcePage, closebot::Error>>
        + Send
        + Sync
        + 'static,
{
    Arc::new(fetch)
}

/// Where a CloseBot stream starts.
#[derive(Clone, Debug)]
enum CloseBotStart {
    /// This page, from 0.
    Page(u32),
    /// The held page was the last.
    Done,
    /// The held page cannot be continued from.
    Invalid(String),
}

impl closebot::Client {
    /// A pager over `GET /agency/source`: the agency's sources matching the filters set by
    /// `configure` (`query`, `category`, `order`, `force_token_refresh`). The pager sets `page`
    /// and `page_size` after `configure`. See the [module](crate::pagination) for when the
    /// stream ends.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(closebot: lead_intake::closebot::Client) -> Result<(), lead_intake::closebot::Error> {
    /// let sources: Vec<_> = closebot
    ///     .list_sources_pager(|req| req.category("GHL").order("+id"))
    ///     .typed_items()
    ///     .try_collect()
    ///     .await?;
    /// # let _ = sources; Ok(()) }
    /// ```
    pub fn list_sources_pager<F>(&self, configure: F) -> CloseBotPager
    where
        F: for<'a> Fn(closebot::builder::ListSources<'a>) -> closebot::builder::ListSources<'a>
            + Send
            + Sync
            + 'static,
    {
        let fetch = closebot_fetch(move |client, page, page_size| {
            let request = configure(client.list_sources())
                .page(page)
                .page_size(page_size);
            Box::pin(request.send().or_empty())
        });
        CloseBotPager {
            client: self.clone(),
            fetch,
            page_size: CLOSEBOT_MAX_PAGE_SIZE,
            max_pages: None,
            start: CloseBotStart::Page(0),
            prefetch: 0,
            on_unrecognized: OnUnrecognized::Yield,
        }
    }
}

/// The pages of CloseBot's sources, to configure and then turn into a stream with
/// [`pages`](Self::pages) or [`items`](Self::items). Made by
/// [`closebot::Client::list_sources_pager`].
#[derive(Clone)]
#[must_use = "a pager does nothing until turned into a stream and polled"]
pub struct CloseBotPager {
    client: closebot::Client,
    fetch: CloseBotFetch,
    page_size: u32,
    max_pages: Option<u32>,
    start: CloseBotStart,
    prefetch: usize,
    on_unrecognized: OnUnrecognized,
}

impl fmt::Debug for CloseBotPager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseBotPager")
            .field("page_size", &self.page_size)
            .field("max_pages", &self.max_pages)
            .field("start", &self.start)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl CloseBotPager {
    /// What to do with a source that does not decode into its type; as
    /// [`KommoPager::on_unrecognized`].
    pub fn on_unrecognized(mut self, policy: OnUnrecognized) -> Self {
        self.on_unrecognized = policy;
        self
    }

    /// The `pageSize` of each page, 1 to 100 ([`CLOSEBOT_MAX_PAGE_SIZE`], the default).
    /// Another value makes the stream yield [`ApiError::InvalidRequest`] and send nothing.
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Sends at most `max_pages` requests (`0`: none). Unlimited by default.
    pub fn max_pages(mut self, max_pages: u32) -> Self {
        self.max_pages = Some(max_pages);
        self
    }

    /// Fetches up to `pages` pages ahead of the consumer (`0`, the default: none); as
    /// [`KommoPager::prefetch`].
    pub fn prefetch(mut self, pages: usize) -> Self {
        self.prefetch = pages.min(MAX_PREFETCH);
        self
    }

    /// Starts at this page, counting from 0 (the default). Replaces a
    /// [`resume_after`](Self::resume_after).
    pub fn start_at(mut self, page: u32) -> Self {
        self.start = CloseBotStart::Page(page);
        self
    }

    /// Continues after a page you already hold: the stream starts at its `page` + 1, and is
    /// empty when the held page was the last (no results, fewer than its `pageSize`, or it
    /// reaches `total`). A held page without a `page` number makes the stream yield
    /// [`ApiError::InvalidRequest`]. Replaces a [`start_at`](Self::start_at).
    pub fn resume_after(mut self, held: &SourcePage) -> Self {
        self.start = match held.page.map(u32::try_from) {
            Some(Ok(page)) => {
                let len = held.results.total();
                let size = held
                    .page_size
                    .and_then(|s| u32::try_from(s).ok())
                    .unwrap_or(self.page_size);
                if is_last_source_page(page, size, len, held.total) {
                    CloseBotStart::Done
                } else {
                    CloseBotStart::Page(page.saturating_add(1))
                }
            }
            _ => CloseBotStart::Invalid(format!(
                "cannot resume after a page whose `page` is {:?}: it must be a number from 0",
                held.page
            )),
        };
        self
    }

    /// The pages, in order; none of them empty.
    pub fn pages(
        self,
    ) -> impl Stream<Item = Result<SourcePage, closebot::Error>> + Send + Unpin + 'static {
        let checked = NonZeroU32::new(self.page_size)
            .filter(|n| n.get() <= CLOSEBOT_MAX_PAGE_SIZE)
            .ok_or_else(|| page_size_error("CloseBot", self.page_size, CLOSEBOT_MAX_PAGE_SIZE))
            .and_then(|page_size| {
                let next = match self.start {
                    CloseBotStart::Page(page) => Some(i32::try_from(page).map_err(|_| {
                        format!(
                            "page {page} is out of range: CloseBot takes at most {}",
                            i32::MAX
                        )
                    })?),
                    CloseBotStart::Done => None,
                    CloseBotStart::Invalid(message) => return Err(message),
                };
                Ok(CloseBotState {
                    client: self.client,
                    fetch: self.fetch,
                    page_size,
                    next,
                    remaining: self.max_pages,
                    on_unrecognized: self.on_unrecognized,
                })
            });
        match checked {
            Ok(state) => prefetched(
                stream::unfold(state, CloseBotState::step).fuse().boxed(),
                self.prefetch,
            ),
            Err(message) => stream::once(ready(Err(ApiError::InvalidRequest(message)))).boxed(),
        }
    }

    /// The sources of every page, in order; as [`KommoPager::items`].
    pub fn items(
        self,
    ) -> impl Stream<Item = Result<ListItem<closebot::types::Source>, closebot::Error>>
    + Send
    + Unpin
    + 'static {
        let policy = self.on_unrecognized;
        self.pages()
            .map_ok(move |page| stream::iter(yielded(page.results, policy).into_iter().map(Ok)))
            .try_flatten()
            .fuse()
            .boxed()
    }

    /// The decoded sources of every page, in order; as [`KommoPager::typed_items`].
    pub fn typed_items(
        mut self,
    ) -> impl Stream<Item = Result<closebot::types::Source, closebot::Error>> + Send + Unpin + 'static
    {
        if self.on_unrecognized != OnUnrecognized::Skip {
            self.on_unrecognized = OnUnrecognized::Fail;
        }
        self.items()
            .try_filter_map(|item| ready(Ok(item.into_typed().ok())))
            .boxed()
    }
}

/// Whether page `page` (from 0) of `size`, holding `len` results, is the last.
fn is_last_source_page(page: u32, size: u32, len: usize, total: Option<i32>) -> bool {
    len == 0
        || len < size as usize
        || total.is_some_and(|total| (u64::from(page) + 1) * u64::from(size) >= total.max(0) as u64)
}

struct CloseBotState {
    client: closebot::Client,
    fetch: CloseBotFetch,
    page_size: NonZeroU32,
    /// The page to fetch on the next poll; `None` once the stream is over.
    next: Option<i32>,
    remaining: Option<u32>,
    on_unrecognized: OnUnrecognized,
}

impl CloseBotState {
    async fn step(mut self) -> Option<(Result<SourcePage, closebot::Error>, Self)> {
        if self.remaining == Some(0) {
            return None;
        }
        let page = self.next.take()?;
        let result = (self.fetch)(&self.client, page, self.page_size).await;
        self.remaining = self.remaining.map(|n| n.saturating_sub(1));
        let body = match result {
            Err(e) => return Some((Err(e), self)),
            Ok(body) => body,
        };
        let len = body.results.total();
        if len == 0 {
            return None;
        }
        if let Err(e) = refuse_unrecognized(self.on_unrecognized, body.results.unrecognized()) {
            return Some((Err(e), self));
        }
        let number = u32::try_from(page).unwrap_or_default();
        if !is_last_source_page(number, self.page_size.get(), len, body.total) {
            self.next = page.checked_add(1);
        }
        Some((Ok(body), self))
    }
}

// -------------------------------------------------------------------------------- prefetching

/// A task driving a page stream ahead of its consumer; aborted (with any request in flight)
/// when the consumer drops the stream.
struct Prefetcher<T> {
    pages: tokio::sync::mpsc::Receiver<T>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl<T> Drop for Prefetcher<T> {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

enum Prefetch<T> {
    /// Not polled yet: nothing is spawned before the first poll.
    Start(BoxStream<'static, T>),
    Running(Prefetcher<T>),
    /// Polled outside a tokio runtime: no task to spawn, so no prefetching.
    Inline(BoxStream<'static, T>),
}

/// `pages`, driven on a task of its own at most `depth` pages ahead of the consumer. The
/// task reserves room for a page before fetching it, so at most `depth` fetched pages wait
/// (plus the one the consumer holds). Order, errors and the end are those of `pages`; a
/// panic on the task is resumed in the consumer, not turned into a silent end.
fn prefetched<T: Send + 'static>(
    pages: BoxStream<'static, T>,
    depth: usize,
) -> BoxStream<'static, T> {
    if depth == 0 {
        return pages;
    }
    stream::unfold(Prefetch::Start(pages), move |state| async move {
        let mut running = match state {
            Prefetch::Start(mut pages) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let (tx, rx) = tokio::sync::mpsc::channel(depth);
                    let task = runtime.spawn(async move {
                        while let Ok(room) = tx.reserve().await {
                            match pages.next().await {
                                Some(page) => room.send(page),
                                None => return,
                            }
                        }
                    });
                    Prefetcher {
                        pages: rx,
                        task: Some(task),
                    }
                }
                Err(_) => {
                    let page = pages.next().await?;
                    return Some((page, Prefetch::Inline(pages)));
                }
            },
            Prefetch::Inline(mut pages) => {
                let page = pages.next().await?;
                return Some((page, Prefetch::Inline(pages)));
            }
            Prefetch::Running(running) => running,
        };
        match running.pages.recv().await {
            Some(page) => Some((page, Prefetch::Running(running))),
            None => {
                if let Some(task) = running.task.take()
                    && let Err(e) = task.await
                    && e.is_panic()
                {
                    std::panic::resume_unwind(e.into_panic());
                }
                None
            }
        }
    })
    .fuse()
    .boxed()
}

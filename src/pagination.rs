//! Streams over paged lists: every page, or every item, fetched one page at a time as the
//! stream is polled. The guide below; the pagers are [`Pager`] (its names per API:
//! [`KommoPager`], [`CloseBotPager`]).
//!
#![doc = "[BENCHMARKS.md]: crate::_texts::benchmarks"]
#![doc = include_str!("guides/pagination.md")]

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::ready;
use std::num::NonZeroU32;
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt, TryFutureExt};
use futures_util::stream::BoxStream;
use futures_util::stream::{self, Stream, StreamExt, TryStreamExt};
use progenitor_client::ClientInfo;
use serde::de::DeserializeOwned;

use crate::closebot::{self, types::SourcePage};
use crate::error::{ApiError, ApiResponse, ProblemSummary, ResponseExt};
use crate::kommo::{
    self,
    types::{IncomingLeadList, Links, WidgetList},
};
use crate::list::{Items, ListItem, UnrecognizedItem};
use walk::{Fetch, HalTarget, KommoRequest, Walk};

/// The largest `limit` Kommo's lists accept, and the default page size of a [`KommoPager`].
pub const KOMMO_MAX_PAGE_SIZE: u32 = 250;
/// The largest `pageSize` CloseBot accepts, and the default page size of a [`CloseBotPager`].
pub const CLOSEBOT_MAX_PAGE_SIZE: u32 = 100;

/// The most pages a pager fetches ahead ([`Pager::prefetch`]).
pub const MAX_PREFETCH: usize = 16;

/// How many requests a stream sends, by default, before it gives up on a list that does not
/// end: [`Pager::page_limit`]. The next request would be refused with
/// [`ApiError::TooManyPages`].
///
/// No real list comes near it: 10,000 pages are 2.5 million items at Kommo's 250 a page, a
/// million at CloseBot's 100, and still 100,000 at a page size of 10, while a Kommo account's
/// incoming leads or widgets, or an agency's CloseBot sources, run to tens of thousands at
/// most (a [`drain`](Pager::drain), which reads a page again after you act on its leads, sends
/// about two requests a page). A server that keeps sending `next` links, or full pages, is
/// stopped after about 24 minutes at Kommo's 7 requests a second, with the loop guard holding
/// at most 32 bytes a page and a drain at most 16 bytes an item.
pub const DEFAULT_PAGE_LIMIT: u32 = 10_000;

/// What a pager does with an item that does not decode into its type
/// ([`crate::list::UnrecognizedItem`]): [`Pager::on_unrecognized`].
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
fn refuse_unrecognized<P: fmt::Debug + ProblemSummary>(
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

fn page_size_error(api: &str, given: u32, max: u32) -> String {
    format!("page size {given} is out of range: {api} accepts 1 to {max}")
}

// --------------------------------------------------------------------------- the one pager

/// What a [`Pager`] needs to know about a list: how its API asks for a page and for the next
/// one, and what a page holds. Everything else (page size, `max_pages`, the unrecognized-item
/// policy, prefetching, the streams) is the pager's, once for both APIs.
mod walk {
    use super::*;

    /// The caller's configured request builder for one page: (client, page number, page size).
    pub type Fetch<P> = Arc<
        dyn for<'a> Fn(
                &'a <P as Walk>::Client,
                <P as Walk>::Number,
                NonZeroU32,
            ) -> BoxFuture<'a, Result<P, ApiError<<P as Walk>::Problem>>>
            + Send
            + Sync,
    >;

    /// What a [`HalPage`]'s fetch is asked for: a page by number through the caller's
    /// request, or a `next` href.
    #[derive(Clone, Debug)]
    pub enum HalTarget {
        /// This page (1-based) through the caller's request.
        Page(NonZeroU32),
        /// This `next` href of the last page.
        Follow(String),
    }

    /// The next request of a Kommo stream.
    #[derive(Clone, Debug)]
    pub enum KommoRequest {
        /// This page (1-based) through the caller's builder.
        Page(NonZeroU32),
        /// This `next` href of the last page, through [`kommo::Client::follow`].
        Follow(String),
    }

    /// Implemented by each page type; sealed (this module is private).
    pub trait Walk: Sized + Send + 'static {
        /// The client that fetches the pages.
        type Client: Clone + Send + Sync + 'static;
        /// The API's problem document (its errors are `ApiError<Problem>`).
        type Problem: fmt::Debug + ProblemSummary + Send + Sync + 'static;
        /// What the page lists.
        type Item: Send + 'static;
        /// The page number the request builder takes.
        type Number: Send + 'static;
        /// The request a stream sends next.
        type Request: Clone + fmt::Debug + Send + Sync + 'static;
        /// What a stream remembers across pages besides the next request (Kommo: its loop
        /// guard).
        type Memory: Clone + Default + Send + Sync + 'static;

        /// The API's name in error messages.
        const API: &'static str;
        /// The largest page size the API takes; also the default.
        const MAX_PAGE_SIZE: u32;
        /// The number of the first page (Kommo counts from 1, CloseBot from 0).
        const FIRST_PAGE: u32;

        /// The secrets of the client's credentials, removed from the errors a stream makes
        /// itself (an odd item it refuses).
        fn secrets(client: &Self::Client) -> Vec<crate::Secret>;

        /// The request for page `page`, or why the API cannot take that number.
        fn page_request(page: u32) -> Result<Self::Request, String>;

        /// Sends `request`. `Ok(None)`: the API answered that there is nothing there.
        fn send<'a>(
            client: &'a Self::Client,
            fetch: &'a Fetch<Self>,
            request: &'a Self::Request,
            page_size: NonZeroU32,
        ) -> BoxFuture<'a, Result<Option<Self>, ApiError<Self::Problem>>>;

        /// The request after this page (which is not empty), sent as `request`; `None` when
        /// it was the last.
        fn next_request(
            &self,
            client: &Self::Client,
            memory: &mut Self::Memory,
            request: &Self::Request,
            page_size: NonZeroU32,
        ) -> Option<Self::Request>;

        /// How many items the server sent on the page, decoded or not.
        fn sent(&self) -> usize;

        /// The page's items that did not decode into their type.
        fn odd_items(&self) -> &[UnrecognizedItem];

        /// The page's items, owned.
        fn entries(self) -> Items<Self::Item>;
    }
}

/// A page of a list that a [`Pager`] walks: [`WidgetList`] and [`IncomingLeadList`] (Kommo,
/// see [`KommoPage`]) and [`SourcePage`] (CloseBot). It says how its API asks for the next
/// page and what the page holds. Sealed: implemented by this crate only.
pub trait Page: Walk {}

impl<P: Walk> Page for P {}

/// The pages of a list, to configure and then turn into a stream with [`pages`](Self::pages),
/// [`items`](Self::items) or [`typed_items`](Self::typed_items). Made by
/// [`kommo::Client::list_widgets_pager`], [`kommo::Client::list_incoming_leads_pager`]
/// ([`KommoPager`]) and [`closebot::Client::list_sources_pager`] ([`CloseBotPager`]).
#[must_use = "a pager does nothing until turned into a stream and polled"]
pub struct Pager<P: Page> {
    client: P::Client,
    fetch: Fetch<P>,
    page_size: u32,
    max_pages: Option<u32>,
    page_limit: u32,
    start: Start<P>,
    prefetch: usize,
    on_unrecognized: OnUnrecognized,
}

/// The pager of a Kommo list: [`Pager<WidgetList>`] or [`Pager<IncomingLeadList>`].
pub type KommoPager<P> = Pager<P>;

/// The pager of CloseBot's sources: [`Pager<SourcePage>`].
pub type CloseBotPager = Pager<SourcePage>;

/// Where a stream starts.
enum Start<P: Walk> {
    /// Send this request first, remembering this (the hrefs of a held page, for Kommo).
    At(P::Request, P::Memory),
    /// The held page was the last: nothing to fetch.
    Done,
    /// The stream yields [`ApiError::InvalidRequest`] with this message.
    Invalid(String),
}

impl<P: Walk> Start<P> {
    fn page(page: u32) -> Self {
        match P::page_request(page) {
            Ok(request) => Self::At(request, P::Memory::default()),
            Err(message) => Self::Invalid(message),
        }
    }
}

impl<P: Walk> Clone for Start<P> {
    fn clone(&self) -> Self {
        match self {
            Self::At(request, memory) => Self::At(request.clone(), memory.clone()),
            Self::Done => Self::Done,
            Self::Invalid(message) => Self::Invalid(message.clone()),
        }
    }
}

impl<P: Walk> fmt::Debug for Start<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::At(request, _) => request.fmt(f),
            Self::Done => f.write_str("Done"),
            Self::Invalid(message) => f.debug_tuple("Invalid").field(message).finish(),
        }
    }
}

impl<P: Page> Clone for Pager<P> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            fetch: Arc::clone(&self.fetch),
            page_size: self.page_size,
            max_pages: self.max_pages,
            page_limit: self.page_limit,
            start: self.start.clone(),
            prefetch: self.prefetch,
            on_unrecognized: self.on_unrecognized,
        }
    }
}

impl<P: Page> fmt::Debug for Pager<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pager")
            .field("api", &P::API)
            .field("page_size", &self.page_size)
            .field("max_pages", &self.max_pages)
            .field("page_limit", &self.page_limit)
            .field("start", &self.start)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl<P: Page> Pager<P> {
    fn new(client: P::Client, fetch: Fetch<P>) -> Self {
        Self {
            client,
            fetch,
            page_size: P::MAX_PAGE_SIZE,
            max_pages: None,
            page_limit: DEFAULT_PAGE_LIMIT,
            start: Start::page(P::FIRST_PAGE),
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

    /// The page size: Kommo's `limit`, 1 to 250 ([`KOMMO_MAX_PAGE_SIZE`], the default);
    /// CloseBot's `pageSize`, 1 to 100 ([`CLOSEBOT_MAX_PAGE_SIZE`], the default). Another value
    /// makes the stream yield [`ApiError::InvalidRequest`] and send nothing.
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Sends at most `max_pages` requests (`0`: none), then ends quietly, as if the list ended
    /// there: for reading the first pages of a list. Unset by default (the stream reads to the
    /// list's end, up to the [`page_limit`](Self::page_limit)).
    pub fn max_pages(mut self, max_pages: u32) -> Self {
        self.max_pages = Some(max_pages);
        self
    }

    /// The most requests the stream sends before it decides the list does not end
    /// ([`DEFAULT_PAGE_LIMIT`], 10,000, by default): when the list has not ended after that
    /// many, the stream yields [`ApiError::TooManyPages`] instead of sending another, and ends.
    /// It guards against a server that sends `next` links, or full pages, without end (each
    /// one new, so the loop guard cannot tell); raise it for a list you know to be longer.
    /// Unlike [`max_pages`](Self::max_pages), reaching it is an error, not an end; the smaller
    /// of the two applies.
    ///
    /// ```no_run
    /// use lead_intake::prelude::*;
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// let mut leads = kommo.list_incoming_leads_pager(|req| req).page_limit(50_000).items();
    /// while let Some(item) = leads.try_next().await? {
    ///     # let _ = item;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn page_limit(mut self, pages: u32) -> Self {
        self.page_limit = pages;
        self
    }

    /// Starts at this page: Kommo counts from 1 (the default; `0` makes the stream yield
    /// [`ApiError::InvalidRequest`]), CloseBot from 0 (the default). Replaces a
    /// `resume_after`.
    pub fn start_at(mut self, page: u32) -> Self {
        self.start = Start::page(page);
        self
    }

    /// The page size, checked against the API's range.
    fn checked_page_size(&self) -> Result<NonZeroU32, String> {
        NonZeroU32::new(self.page_size)
            .filter(|n| n.get() <= P::MAX_PAGE_SIZE)
            .ok_or_else(|| page_size_error(P::API, self.page_size, P::MAX_PAGE_SIZE))
    }

    /// The pages, in order; none of them empty.
    pub fn pages(
        self,
    ) -> impl Stream<Item = Result<P, ApiError<P::Problem>>> + Send + Unpin + 'static {
        let checked = self.checked_page_size().and_then(|page_size| {
            let (next, memory) = match self.start {
                Start::At(request, memory) => (Some(request), memory),
                Start::Done => (None, P::Memory::default()),
                Start::Invalid(message) => return Err(message),
            };
            Ok(State {
                client: self.client,
                fetch: self.fetch,
                page_size,
                next,
                memory,
                remaining: self.max_pages,
                sent: 0,
                page_limit: self.page_limit,
                on_unrecognized: self.on_unrecognized,
            })
        });
        match checked {
            Ok(state) => prefetched(
                stream::unfold(state, State::step).fuse().boxed(),
                self.prefetch,
            ),
            Err(message) => stream::once(ready(Err(ApiError::InvalidRequest(message)))).boxed(),
        }
    }

    /// The items of every page, in order: each decoded one as [`ListItem::Typed`], and any
    /// that does not fit its type as set by [`on_unrecognized`](Self::on_unrecognized).
    pub fn items(
        self,
    ) -> impl Stream<Item = Result<ListItem<P::Item>, ApiError<P::Problem>>> + Send + Unpin + 'static
    {
        let policy = self.on_unrecognized;
        self.pages()
            .map_ok(move |page| stream::iter(yielded(page.entries(), policy).into_iter().map(Ok)))
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
    ) -> impl Stream<Item = Result<P::Item, ApiError<P::Problem>>> + Send + Unpin + 'static {
        if self.on_unrecognized != OnUnrecognized::Skip {
            self.on_unrecognized = OnUnrecognized::Fail;
        }
        self.items()
            .try_filter_map(|item| ready(Ok(item.into_typed().ok())))
            .boxed()
    }
}

/// A stream between two pages.
struct State<P: Walk> {
    client: P::Client,
    fetch: Fetch<P>,
    page_size: NonZeroU32,
    /// The request of the next poll; `None` once the stream is over.
    next: Option<P::Request>,
    memory: P::Memory,
    remaining: Option<u32>,
    /// The requests sent so far, against [`Pager::page_limit`].
    sent: u32,
    page_limit: u32,
    on_unrecognized: OnUnrecognized,
}

/// The error of a stream that would send request `page_limit + 1`.
fn too_many_pages<P: fmt::Debug + ProblemSummary>(pages: u32) -> ApiError<P> {
    ApiError::TooManyPages { pages }
}

impl<P: Walk> State<P> {
    async fn step(mut self) -> Option<(Result<P, ApiError<P::Problem>>, Self)> {
        if self.remaining == Some(0) {
            return None;
        }
        // Whatever happens below, nothing more is fetched unless a next request is set again.
        let request = self.next.take()?;
        if self.sent >= self.page_limit {
            return Some((Err(too_many_pages(self.sent)), self));
        }
        self.sent += 1;
        let result = P::send(&self.client, &self.fetch, &request, self.page_size).await;
        self.remaining = self.remaining.map(|n| n.saturating_sub(1));
        let page = match result {
            Err(e) => return Some((Err(e), self)),
            Ok(None) => return None,
            Ok(Some(page)) => page,
        };
        if page.sent() == 0 {
            return None;
        }
        if let Err(e) = refuse_unrecognized(self.on_unrecognized, page.odd_items()) {
            let secrets = crate::secret::Redactions::new(P::secrets(&self.client));
            return Some((Err(e.redacted(&secrets)), self));
        }
        self.next = page.next_request(&self.client, &mut self.memory, &request, self.page_size);
        Some((Ok(page), self))
    }
}

// ------------------------------------------------------------------- any HAL list (raw calls)

/// A page of any Kommo HAL list read by a raw call ([`crate::raw`]): the items of its
/// `_embedded.<key>` as `T` (an item that does not decode into `T` is kept as an
/// [`UnrecognizedItem`] in its place, as in the typed lists), and its `_links`. Made by
/// [`RawRequest::pager`](crate::raw::RawRequest::pager).
#[derive(Clone, Debug)]
pub struct HalPage<T> {
    items: Items<T>,
    links: Option<Links>,
}

impl<T> Default for HalPage<T> {
    fn default() -> Self {
        Self {
            items: Items::new(),
            links: None,
        }
    }
}

impl<T> HalPage<T> {
    /// The page's items (`_embedded.<key>`); empty when absent.
    pub fn items(&self) -> &Items<T> {
        &self.items
    }

    /// The page's items, owned.
    pub fn into_items(self) -> Items<T> {
        self.items
    }

    /// The page's HAL links (`_links`).
    pub fn links(&self) -> Option<&Links> {
        self.links.as_ref()
    }
}

/// A HAL page's body before its list is picked out: the entries of `_embedded` are kept as
/// their raw text, and only the one asked for is decoded.
#[derive(Default, serde::Deserialize)]
struct HalBody {
    #[serde(rename = "_links", default)]
    links: Option<Links>,
    #[serde(rename = "_embedded", default)]
    embedded: Option<std::collections::HashMap<String, Box<serde_json::value::RawValue>>>,
}

impl ApiResponse for HalBody {
    type Problem = kommo::types::Problem;
}

/// The `_embedded.<key>` of a HAL body as a page of `T`.
// The error is the one every Kommo call returns (a stream's item).
#[allow(clippy::result_large_err)]
fn hal_page<T: DeserializeOwned>(
    body: HalBody,
    key: &str,
    endpoint: &str,
) -> Result<HalPage<T>, kommo::Error> {
    let items = match body.embedded.as_ref().and_then(|e| e.get(key)) {
        None => Items::new(),
        Some(raw) => Items::decode_any(raw.get()).map_err(|e| ApiError::Decode {
            endpoint: endpoint.to_string(),
            path: format!("_embedded.{key}"),
            message: e.to_string(),
            body: bytes::Bytes::new(),
            body_len: raw.get().len(),
        })?,
    };
    Ok(HalPage {
        items,
        links: body.links,
    })
}

impl crate::raw::RawRequest<kommo::Client> {
    /// A pager over any Kommo HAL list: this request is the first page, and the items are read
    /// from `_embedded.<key>` as `T`. How it pages, ends and keeps odd items, with an example:
    /// "Any endpoint, through the same client", the guide of [`crate::raw`].
    pub fn pager<T>(self, key: &str) -> KommoPager<HalPage<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let key: Arc<str> = Arc::from(key);
        let first = self;
        let client = first.client().clone();
        let fetch = fetch(
            move |client: &kommo::Client, target: HalTarget, limit: NonZeroU32| {
                let key = Arc::clone(&key);
                let request = match target {
                    HalTarget::Page(page) => Ok(first.clone().query(&serde_json::json!({
                        "page": page.get(),
                        "limit": limit.get(),
                    }))),
                    HalTarget::Follow(href) => crate::links::resolve(client.baseurl(), &href)
                        .map(|url| crate::raw::RawRequest::get_url(client, &url))
                        .map_err(|reason| ApiError::InvalidLink { href, reason }),
                };
                let client = client.clone();
                Box::pin(async move {
                    let request = request?;
                    let endpoint = request.endpoint();
                    let body: HalBody = request.or_empty().await?;
                    // serde's message may quote a value of the list: no secret in it.
                    hal_page(body, &key, &endpoint).map_err(|e| e.redacted(&client.redactions()))
                })
            },
        );
        Pager::new(client, fetch)
    }
}

/// Any HAL list: like the typed Kommo lists, but every page through the caller's fetch (the
/// first by number, the next ones by their href) so that the `_embedded` key goes with it.
impl<T: DeserializeOwned + Send + 'static> Walk for HalPage<T> {
    type Client = kommo::Client;
    type Problem = kommo::types::Problem;
    type Item = T;
    type Number = HalTarget;
    type Request = KommoRequest;
    type Memory = HashSet<u128>;

    const API: &'static str = "Kommo";
    const MAX_PAGE_SIZE: u32 = KOMMO_MAX_PAGE_SIZE;
    const FIRST_PAGE: u32 = 1;

    fn secrets(client: &Self::Client) -> Vec<crate::Secret> {
        client.redactions().0.as_ref().clone()
    }

    fn page_request(page: u32) -> Result<KommoRequest, String> {
        <WidgetList as Walk>::page_request(page)
    }

    fn send<'a>(
        client: &'a kommo::Client,
        fetch: &'a Fetch<Self>,
        request: &'a KommoRequest,
        page_size: NonZeroU32,
    ) -> BoxFuture<'a, Result<Option<Self>, kommo::Error>> {
        let target = match request {
            KommoRequest::Page(page) => HalTarget::Page(*page),
            KommoRequest::Follow(href) => HalTarget::Follow(href.clone()),
        };
        fetch(client, target, page_size).map_ok(Some).boxed()
    }

    fn next_request(
        &self,
        client: &kommo::Client,
        seen: &mut HashSet<u128>,
        request: &KommoRequest,
        page_size: NonZeroU32,
    ) -> Option<KommoRequest> {
        next_kommo_request(
            client.baseurl(),
            self.links.as_ref(),
            self.items.total(),
            seen,
            request,
            page_size,
        )
    }

    fn sent(&self) -> usize {
        self.items.total()
    }

    fn odd_items(&self) -> &[UnrecognizedItem] {
        self.items.unrecognized()
    }

    fn entries(self) -> Items<T> {
        self.items
    }
}

// ------------------------------------------------------------------------------------- Kommo

mod sealed {
    pub trait Sealed {}
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

/// Makes a Kommo list type a [`KommoPage`]: (list, item, its items' accessor, owned).
macro_rules! kommo_page {
    ($page:ty, $item:ty, $items:ident, $into_items:ident) => {
        impl sealed::Sealed for $page {}

        impl KommoPage for $page {
            type Item = $item;

            fn items(&self) -> &[Self::Item] {
                self.$items()
            }

            fn unrecognized(&self) -> &[UnrecognizedItem] {
                self.$items().unrecognized()
            }

            fn into_items(self) -> Items<Self::Item> {
                self.$into_items()
            }

            fn links(&self) -> Option<&Links> {
                self.links.as_ref()
            }
        }
    };
}

kommo_page!(WidgetList, kommo::types::Widget, widgets, into_widgets);
kommo_page!(
    IncomingLeadList,
    kommo::types::IncomingLead,
    incoming_leads,
    into_incoming_leads
);

/// Kommo lists: the first page through the builder, then each page's `_links.next`, guarded
/// against loops by the digests ([`link_id`]) of every href fetched and every page's `self`.
impl<P: KommoPage> Walk for P {
    type Client = kommo::Client;
    type Problem = kommo::types::Problem;
    type Item = <P as KommoPage>::Item;
    type Number = NonZeroU32;
    type Request = KommoRequest;
    type Memory = HashSet<u128>;

    const API: &'static str = "Kommo";
    const MAX_PAGE_SIZE: u32 = KOMMO_MAX_PAGE_SIZE;
    const FIRST_PAGE: u32 = 1;

    fn secrets(client: &Self::Client) -> Vec<crate::Secret> {
        client.redactions().0.as_ref().clone()
    }

    fn page_request(page: u32) -> Result<KommoRequest, String> {
        NonZeroU32::new(page)
            .map(KommoRequest::Page)
            .ok_or_else(|| "page 0 does not exist: Kommo counts pages from 1".to_string())
    }

    fn send<'a>(
        client: &'a kommo::Client,
        fetch: &'a Fetch<Self>,
        request: &'a KommoRequest,
        page_size: NonZeroU32,
    ) -> BoxFuture<'a, Result<Option<Self>, kommo::Error>> {
        match request {
            KommoRequest::Page(page) => fetch(client, *page, page_size).map_ok(Some).boxed(),
            KommoRequest::Follow(href) => client.follow::<P>(href).boxed(),
        }
    }

    fn next_request(
        &self,
        client: &kommo::Client,
        seen: &mut HashSet<u128>,
        request: &KommoRequest,
        page_size: NonZeroU32,
    ) -> Option<KommoRequest> {
        next_kommo_request(
            client.baseurl(),
            self.links(),
            self.item_count(),
            seen,
            request,
            page_size,
        )
    }

    fn sent(&self) -> usize {
        self.item_count()
    }

    fn odd_items(&self) -> &[UnrecognizedItem] {
        self.unrecognized()
    }

    fn entries(self) -> Items<Self::Item> {
        self.into_items()
    }
}

/// The request after a Kommo page (its links, how many items it had), or `None` when it was
/// the last: no `next` link, a page shorter than the `limit` it was asked with, or a `next`
/// link already fetched (the loop guard, `seen`).
fn next_kommo_request(
    base: &str,
    links: Option<&Links>,
    item_count: usize,
    seen: &mut HashSet<u128>,
    request: &KommoRequest,
    page_size: NonZeroU32,
) -> Option<KommoRequest> {
    let requested_limit = match request {
        KommoRequest::Page(_) => Some(page_size.get()),
        KommoRequest::Follow(href) => {
            seen.insert(link_id(base, href));
            link_limit(base, href)
        }
    };
    let href =
        |get: fn(&Links) -> Option<&str>| links.and_then(get).filter(|h| !h.trim().is_empty());
    if let Some(own) = href(Links::self_href) {
        seen.insert(link_id(base, own));
    }
    let short = requested_limit.is_some_and(|limit| item_count < limit as usize);
    let next =
        href(Links::next_href).filter(|next| !short && !seen.contains(&link_id(base, next)))?;
    Some(KommoRequest::Follow(next.to_string()))
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

/// Boxes the caller's configured builder as the pager's [`Fetch`].
fn fetch<P, F>(fetch: F) -> Fetch<P>
where
    P: Page,
    F: for<'a> Fn(
            &'a P::Client,
            P::Number,
            NonZeroU32,
        ) -> BoxFuture<'a, Result<P, ApiError<P::Problem>>>
        + Send
        + Sync
        + 'static,
{
    Arc::new(fetch)
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
        let fetch = fetch(move |client: &kommo::Client, page, limit| {
            let request = configure(client.list_widgets()).page(page).limit(limit);
            Box::pin(request.send().or_empty())
        });
        Pager::new(self.clone(), fetch)
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
        let fetch = fetch(move |client: &kommo::Client, page, limit| {
            let request = configure(client.list_incoming_leads())
                .page(page)
                .limit(limit);
            Box::pin(request.send().or_empty())
        });
        Pager::new(self.clone(), fetch)
    }
}

impl<P: KommoPage> Pager<P> {
    /// Continues after a page you already hold (from a stream or a single call): the stream
    /// starts by following that page's `_links.next`, and is empty when the page has no such
    /// link or no items. The held page is not yielded again. The filters come from that link,
    /// not from the pager's closure. Replaces a [`start_at`](Self::start_at).
    pub fn resume_after(mut self, held: &P) -> Self {
        self.start = match next_href(held) {
            Some(next) if held.item_count() != 0 => {
                let base = self.client.baseurl();
                let seen = self_href(held).map(|own| link_id(base, own)).into_iter();
                Start::At(KommoRequest::Follow(next.to_string()), seen.collect())
            }
            _ => Start::Done,
        };
        self
    }
}

impl Pager<IncomingLeadList> {
    /// Every incoming lead matching the filters exactly once, **while you accept, decline or
    /// link them** as they come.
    ///
    /// [`items`](Self::items) asks for page 1, 2, 3, ... of a list that shrinks as you act on
    /// it: accepting the 50 leads of page 1 moves the next 50 onto page 1, and page 2 then skips
    /// them (120 leads in pages of 50, each accepted as it came: 70 seen, 50 left waiting).
    /// `drain` keeps reading the first page that still holds a lead it has not yielded, so a
    /// lead you act on makes room for the next ones, and a lead you leave in place is stepped
    /// past (it is never yielded twice). The stream ends at a page with nothing new that is
    /// shorter than the page size (or a `204`), or after [`max_pages`](Self::max_pages)
    /// requests; a list that has not ended after [`page_limit`](Self::page_limit) requests is
    /// [`ApiError::TooManyPages`]. Act on each lead before polling for the next: the next page
    /// is read when you ask for the item after the last one buffered.
    ///
    /// To know what it has yielded, the stream keeps 16 bytes a lead, never the lead: a 128-bit
    /// digest of its `uid` (or, for an item without one, of its JSON), keyed at random per
    /// stream. So its memory grows with the leads it has yielded, not with their size: about
    /// 1 MiB for 50,000 leads, and at most `page_limit` × page size digests (a server
    /// sending new leads without end meets the page limit).
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
        let limit = match self.checked_page_size() {
            Ok(limit) => limit,
            Err(message) => {
                return stream::once(ready(Err(ApiError::InvalidRequest(message)))).boxed();
            }
        };
        let state = Drain {
            client: self.client,
            fetch: self.fetch,
            limit,
            page: 1,
            seen: DrainSeen::default(),
            buffered: VecDeque::new(),
            done: false,
            remaining: self.max_pages,
            sent: 0,
            page_limit: self.page_limit,
            on_unrecognized: self.on_unrecognized,
        };
        stream::unfold(state, Drain::step).fuse().boxed()
    }
}

/// The state of [`Pager::drain`].
struct Drain {
    client: kommo::Client,
    fetch: Fetch<IncomingLeadList>,
    limit: NonZeroU32,
    /// The first page that may still hold a lead not yielded yet.
    page: u32,
    /// Every item yielded (or skipped) so far, as a digest.
    seen: DrainSeen,
    buffered: VecDeque<ListItem<kommo::types::IncomingLead>>,
    done: bool,
    remaining: Option<u32>,
    /// The requests sent so far, against [`Pager::page_limit`].
    sent: u32,
    page_limit: u32,
    on_unrecognized: OnUnrecognized,
}

/// What a drain remembers of the items it has yielded: a 128-bit digest each (16 bytes however
/// large the item), of its `uid`, or of its JSON when it has none. The hash keys are drawn at
/// random per stream, so a server cannot choose two leads whose digests collide (which would
/// hide the second); by chance, two of a billion leads collide with a probability under 10⁻²⁰.
#[derive(Default)]
struct DrainSeen {
    keys: (std::hash::RandomState, std::hash::RandomState),
    digests: HashSet<u128>,
}

impl DrainSeen {
    /// Remembers `item`; false when it was already remembered.
    fn insert(&mut self, item: &ListItem<kommo::types::IncomingLead>) -> bool {
        use std::hash::BuildHasher;
        let raw;
        let key: (u8, &str) = match item {
            ListItem::Typed(lead) => (0, &lead.uid),
            ListItem::Unrecognized(odd) => match odd.raw().get("uid").and_then(|u| u.as_str()) {
                Some(uid) => (0, uid),
                None => {
                    raw = odd.raw().to_string();
                    (1, &raw)
                }
            },
        };
        let high = u128::from(self.keys.0.hash_one(key));
        let low = u128::from(self.keys.1.hash_one(key));
        self.digests.insert((high << 64) | low)
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
            if self.sent >= self.page_limit {
                self.done = true;
                return Some((Err(too_many_pages(self.sent)), self));
            }
            self.sent += 1;
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
                if !self.seen.insert(&item) {
                    continue;
                }
                match &item {
                    ListItem::Unrecognized(odd) => {
                        if let Err(e) =
                            refuse_unrecognized(self.on_unrecognized, std::slice::from_ref(odd))
                        {
                            self.done = true;
                            return Some((Err(e.redacted(&self.client.redactions())), self));
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

// ---------------------------------------------------------------------------------- CloseBot

/// CloseBot's sources: page after page by number, from 0, until a short page or `total`.
impl Walk for SourcePage {
    type Client = closebot::Client;
    type Problem = closebot::types::Problem;
    type Item = closebot::types::Source;
    type Number = i32;
    type Request = i32;
    type Memory = ();

    const API: &'static str = "CloseBot";
    const MAX_PAGE_SIZE: u32 = CLOSEBOT_MAX_PAGE_SIZE;
    const FIRST_PAGE: u32 = 0;

    fn secrets(client: &Self::Client) -> Vec<crate::Secret> {
        client.redactions().0.as_ref().clone()
    }

    fn page_request(page: u32) -> Result<i32, String> {
        i32::try_from(page).map_err(|_| {
            format!(
                "page {page} is out of range: CloseBot takes at most {}",
                i32::MAX
            )
        })
    }

    fn send<'a>(
        client: &'a closebot::Client,
        fetch: &'a Fetch<Self>,
        page: &'a i32,
        page_size: NonZeroU32,
    ) -> BoxFuture<'a, Result<Option<Self>, closebot::Error>> {
        fetch(client, *page, page_size).map_ok(Some).boxed()
    }

    fn next_request(
        &self,
        _client: &closebot::Client,
        _memory: &mut (),
        page: &i32,
        page_size: NonZeroU32,
    ) -> Option<i32> {
        let number = u32::try_from(*page).unwrap_or_default();
        if is_last_source_page(number, page_size.get(), self.sent(), self.total) {
            None
        } else {
            page.checked_add(1)
        }
    }

    fn sent(&self) -> usize {
        self.results.total()
    }

    fn odd_items(&self) -> &[UnrecognizedItem] {
        self.results.unrecognized()
    }

    fn entries(self) -> Items<Self::Item> {
        self.results
    }
}

/// Whether page `page` (from 0) of `size`, holding `len` results, is the last.
fn is_last_source_page(page: u32, size: u32, len: usize, total: Option<i32>) -> bool {
    len == 0
        || len < size as usize
        || total.is_some_and(|total| (u64::from(page) + 1) * u64::from(size) >= total.max(0) as u64)
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
        let fetch = fetch(move |client: &closebot::Client, page, page_size| {
            let request = configure(client.list_sources())
                .page(page)
                .page_size(page_size);
            Box::pin(request.send().or_empty())
        });
        Pager::new(self.clone(), fetch)
    }
}

impl Pager<SourcePage> {
    /// Continues after a page you already hold: the stream starts at its `page` + 1, and is
    /// empty when the held page was the last (no results, fewer than its `pageSize`, or it
    /// reaches `total`). A held page without a `page` number makes the stream yield
    /// [`ApiError::InvalidRequest`]. Replaces a [`start_at`](Self::start_at).
    pub fn resume_after(mut self, held: &SourcePage) -> Self {
        self.start = match held.page.map(u32::try_from) {
            Some(Ok(page)) => {
                let size = held
                    .page_size
                    .and_then(|s| u32::try_from(s).ok())
                    .unwrap_or(self.page_size);
                if is_last_source_page(page, size, held.sent(), held.total) {
                    Start::Done
                } else {
                    Start::page(page.saturating_add(1))
                }
            }
            _ => Start::Invalid(format!(
                "cannot resume after a page whose `page` is {:?}: it must be a number from 0",
                held.page
            )),
        };
        self
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

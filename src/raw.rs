//! A call to any path of a client's API, through the client's own pipeline: for the endpoints
//! this crate does not type (Kommo's leads, pipelines, custom fields; any CloseBot path). It
//! starts with `request` on [`kommo::Client`] or [`closebot::Client`] and is a [`RawRequest`].
//!
#![doc = include_str!("guides/raw.md")]

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use progenitor_client::{ClientHooks, ClientInfo, OperationInfo, ResponseValue};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Answer, ApiError, ProblemSummary, RawCall, WithMetadata, answer};
use crate::options::CallOptions;
use crate::segment::{InvalidPath, PathProblem};
use crate::transport::RAW_OPERATION_ID;
use crate::{closebot, kommo};

/// The clients a raw call can be made on: [`kommo::Client`] and [`closebot::Client`]. Sealed.
pub trait RawClient: sealed::Sealed {}

mod sealed {
    use super::*;

    /// What a raw call needs of a client.
    pub trait Sealed: Clone + Send + Sync + 'static {
        /// The API's problem document.
        type Problem: fmt::Debug + ProblemSummary + DeserializeOwned + Send;
        /// The base URL.
        fn base(&self) -> &str;
        /// The HTTP client.
        fn http(&self) -> &reqwest::Client;
        /// The request through the client's hooks (`pre`, then `exec`: the pipeline).
        fn run(
            &self,
            request: reqwest::Request,
        ) -> impl Future<Output = Result<reqwest::Response, progenitor_client::Error<()>>> + Send;
    }
}

/// The operation the hooks see for a raw call.
const OPERATION: OperationInfo = OperationInfo {
    operation_id: RAW_OPERATION_ID,
};

macro_rules! raw_client {
    ($client:ty, $state:ty, $problem:ty) => {
        impl sealed::Sealed for $client {
            type Problem = $problem;
            fn base(&self) -> &str {
                self.baseurl()
            }
            fn http(&self) -> &reqwest::Client {
                self.client()
            }
            async fn run(
                &self,
                mut request: reqwest::Request,
            ) -> Result<reqwest::Response, progenitor_client::Error<()>> {
                ClientHooks::<$state>::pre::<()>(self, &mut request, &OPERATION).await?;
                Ok(ClientHooks::<$state>::exec(self, request, &OPERATION).await?)
            }
        }
        impl RawClient for $client {}

        impl $client {
            /// A call to any path of the API, relative to the base URL, through this client's
            /// credentials, rate limiter and retries: see [`crate::raw`]. A path that could
            /// leave the base URL is refused when the call is finished
            /// ([`ApiError::InvalidPath`]), before anything is sent.
            pub fn request(&self, method: Method, path: &str) -> RawRequest<Self> {
                let path = crate::segment::check_path(path).map(|()| path.to_string());
                RawRequest::new(self.clone(), method, path)
            }

            /// Like `request`, with the path given as its segments: each is percent-encoded as
            /// exactly one segment (`a/b` as `a%2Fb`), as typed calls encode path parameters;
            /// an empty, `.` or `..` segment (percent-encoded too) is refused
            /// ([`PathProblem::Segment`](crate::error::PathProblem::Segment)).
            pub fn request_segments(&self, method: Method, segments: &[&str]) -> RawRequest<Self> {
                let path = crate::segment::join_segments(segments);
                RawRequest::new(self.clone(), method, path)
            }
        }
    };
}

raw_client!(kommo::Client, kommo::ClientState, kommo::types::Problem);
raw_client!(
    closebot::Client,
    closebot::ClientState,
    closebot::types::Problem
);

/// A raw call being built: see [`crate::raw`]. Nothing is sent until a finishing call
/// ([`body`](Self::body), [`or_empty`](Self::or_empty), [`or_gone`](Self::or_gone),
/// [`body_with_metadata`](Self::body_with_metadata), [`bytes`](Self::bytes)) is awaited.
/// `Debug` shows the method and path, not the headers or the body.
#[must_use = "a raw request does nothing until a finishing call such as `.body()` is awaited"]
#[derive(Clone)]
pub struct RawRequest<C: RawClient> {
    client: C,
    method: Method,
    path: Result<String, InvalidPath>,
    query: Vec<String>,
    body: Option<(Bytes, &'static str)>,
    headers: HeaderMap,
    /// The first builder error (a body that did not serialize, a bad header), reported by the
    /// finishing call.
    error: Option<String>,
    /// Options for this call alone.
    options: CallOptions,
}

impl<C: RawClient> fmt::Debug for RawRequest<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRequest")
            .field("method", &self.method)
            .field("path", &self.path.as_ref().map_err(|e| e.path()))
            .finish_non_exhaustive()
    }
}

impl<C: RawClient> RawRequest<C> {
    fn new(client: C, method: Method, path: Result<String, InvalidPath>) -> Self {
        Self {
            client,
            method,
            path,
            query: Vec::new(),
            body: None,
            headers: HeaderMap::new(),
            error: None,
            options: CallOptions::default(),
        }
    }

    /// A GET of a URL already resolved under the client's base URL (`links::resolve`): its
    /// path after the base URL's path, checked like any raw path, and its query as it is.
    pub(crate) fn get_url(client: &C, url: &url::Url) -> Self {
        let prefix = url::Url::parse(&format!("{}/", client.base().trim_end_matches('/')))
            .map(|base| base.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let path = url
            .path()
            .strip_prefix(prefix.as_str())
            .unwrap_or(url.path());
        let path = if path.is_empty() { "/" } else { path };
        let checked = crate::segment::check_path(path).map(|()| path.to_string());
        let mut request = Self::new(client.clone(), Method::GET, checked);
        if let Some(query) = url.query().filter(|q| !q.is_empty()) {
            request.query.push(query.to_string());
        }
        request
    }

    /// The client the request is sent with.
    pub(crate) fn client(&self) -> &C {
        &self.client
    }

    /// The path, for an error about its answer.
    pub(crate) fn endpoint(&self) -> String {
        match &self.path {
            Ok(path) => path.clone(),
            Err(e) => e.path().to_string(),
        }
    }

    fn fail(mut self, message: String) -> Self {
        self.error.get_or_insert(message);
        self
    }

    /// Adds query parameters: a struct or map, written in PHP's bracket form (`filter[id][0]=7`,
    /// `order[created_at]=desc`; `true` as `1`, `None` left out). Called again, it adds more.
    pub fn query<Q: Serialize + ?Sized>(mut self, query: &Q) -> Self {
        match serde_json::to_value(query)
            .map_err(|e| format!("the query did not serialize: {e}"))
            .and_then(|value| crate::form::to_php_form(&value))
        {
            Ok(text) if text.is_empty() => self,
            Ok(text) => {
                self.query.push(text);
                self
            }
            Err(e) => self.fail(e),
        }
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some((bytes.into(), "application/json"));
                self
            }
            Err(e) => self.fail(format!("the JSON body did not serialize: {e}")),
        }
    }

    /// A form body (`Content-Type: application/x-www-form-urlencoded`) in PHP's bracket form,
    /// as [`query`](Self::query) writes it.
    pub fn form<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_value(body)
            .map_err(|e| format!("the form body did not serialize: {e}"))
            .and_then(|value| crate::form::to_php_form(&value))
        {
            Ok(text) => {
                self.body = Some((text.into(), "application/x-www-form-urlencoded"));
                self
            }
            Err(e) => self.fail(e),
        }
    }

    /// Adds a header (appended to any of the same name). The client's credentials are set by
    /// the client, after this. An invalid name or value fails the call (the value is not quoted
    /// in the error).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        let Ok(name) = name.try_into() else {
            return self.fail("a header name is not valid".to_string());
        };
        match value.try_into() {
            Ok(value) => {
                self.headers.append(name, value);
                self
            }
            Err(_) => self.fail(format!("the value of the header `{name}` is not valid")),
        }
    }

    /// Options for this call alone ([`CallOptions`]: a deadline, a timeout per attempt, the
    /// number of attempts, extra headers, retry rules), as `ResponseExt::with_options` gives a
    /// typed call. Retry rules match a raw call by [`Operation::route`](crate::retry::Operation::route)
    /// (its method and path).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use lead_intake::prelude::*;
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// let options = CallOptions::new().deadline(Duration::from_secs(5));
    /// let leads: serde_json::Value = kommo
    ///     .request(reqwest::Method::GET, "/api/v4/leads")
    ///     .options(options)
    ///     .or_empty()
    ///     .await?;
    /// # let _ = leads; Ok(()) }
    /// ```
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// Sends the request and decodes a success answer's body as `T`. A `204`, like any status
    /// that is not a success, is an error ([`ApiError::UnexpectedResponse`], or
    /// [`ApiError::Problem`] with the API's problem document).
    pub async fn body<T: DeserializeOwned>(self) -> Result<T, ApiError<C::Problem>> {
        match self.decoded::<T>().await? {
            Answer::Body(value) => Ok(value.into_inner()),
            no_content @ Answer::NoContent { .. } => Err(no_content.unexpected()),
        }
    }

    /// Like [`body`](Self::body), but a `204 No Content` (Kommo's empty list) is `T::default()`.
    pub async fn or_empty<T: DeserializeOwned + Default>(self) -> Result<T, ApiError<C::Problem>> {
        match self.decoded::<T>().await? {
            Answer::Body(value) => Ok(value.into_inner()),
            Answer::NoContent { .. } => Ok(T::default()),
        }
    }

    /// Like [`body`](Self::body), but an entity that is gone is `Ok(None)`: a `204`, or a
    /// `404` with the API's problem document or no body (as `ResponseExt::or_gone`).
    pub async fn or_gone<T: DeserializeOwned>(self) -> Result<Option<T>, ApiError<C::Problem>> {
        match self.decoded::<T>().await {
            Ok(Answer::Body(value)) => Ok(Some(value.into_inner())),
            Ok(Answer::NoContent { .. }) => Ok(None),
            Err(e) if crate::error::is_gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`body`](Self::body), with the answer's status and headers.
    pub async fn body_with_metadata<T: DeserializeOwned>(
        self,
    ) -> Result<WithMetadata<T>, ApiError<C::Problem>> {
        match self.decoded::<T>().await? {
            Answer::Body(value) => Ok(WithMetadata::from(value)),
            no_content @ Answer::NoContent { .. } => Err(no_content.unexpected()),
        }
    }

    /// Sends the request and keeps a success answer as it came: its status, headers and body
    /// (empty for a `204`), read within the client's `max_answer_size` and `answer_timeout`
    /// ([`ApiError::Answer`] past them). Any other status is an error, as for
    /// [`body`](Self::body).
    pub async fn bytes(self) -> Result<WithMetadata<Bytes>, ApiError<C::Problem>> {
        let call = self.call(|response| async move {
            let (status, headers) = (response.status(), response.headers().clone());
            let bytes = response
                .bytes()
                .await
                .map_err(progenitor_client::Error::ResponseBodyError)?;
            Ok(ResponseValue::new(Kept(bytes), status, headers))
        })?;
        match answer::<Kept, C::Problem>(call).await? {
            Answer::Body(value) => {
                let (status, headers) = (value.status(), value.headers().clone());
                Ok(WithMetadata::new(status, headers, value.into_inner().0))
            }
            // Not reached (a 2xx is read above), but a 204 is an empty body here.
            Answer::NoContent { headers, .. } => Ok(WithMetadata::new(
                StatusCode::NO_CONTENT,
                *headers,
                Bytes::new(),
            )),
        }
    }

    /// Sends the request, decoding a success answer other than `204` as `T`.
    async fn decoded<T: DeserializeOwned>(self) -> Result<Answer<T>, ApiError<C::Problem>> {
        let call = self.call(|response| async move {
            if response.status() == StatusCode::NO_CONTENT {
                return Err(progenitor_client::Error::UnexpectedResponse(response));
            }
            ResponseValue::<T>::from_response(response).await
        })?;
        answer::<T, C::Problem>(call).await
    }

    /// The call as a generated one is made (`pre`, `exec`, then the body of a success answer;
    /// any other answer left to the error layer), or the refusal of its path or of a builder
    /// value, before anything is sent.
    fn call<T, F, R>(
        self,
        read: F,
    ) -> Result<impl Future<Output = RawCall<T>> + Send, ApiError<C::Problem>>
    where
        F: FnOnce(reqwest::Response) -> R + Send,
        R: Future<Output = RawCall<T>> + Send,
    {
        let path = self.path.map_err(ApiError::InvalidPath)?;
        if let Some(message) = self.error {
            return Err(ApiError::InvalidRequest(message));
        }
        let url = target(self.client.base(), &path, &self.query)?;
        let mut builder = self
            .client
            .http()
            .request(self.method, url)
            .headers(self.headers);
        if let Some((body, content_type)) = self.body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
                .body(body);
        }
        let request = builder.build().map_err(|e| {
            ApiError::InvalidRequest(format!("the request could not be built: {e}"))
        })?;
        let client = self.client;
        let call = async move {
            let response = client.run(request).await?;
            if response.status().is_success() {
                read(response).await
            } else {
                Err(progenitor_client::Error::UnexpectedResponse(response))
            }
        };
        Ok(crate::options::with_options(call, self.options))
    }
}

/// A body kept as it came. The error layer can decode any type it classifies; this one is never
/// decoded (it reads as a list of bytes, should anything try).
struct Kept(Bytes);

impl<'de> serde::Deserialize<'de> for Kept {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(|bytes| Kept(bytes.into()))
    }
}

/// The base URL joined with a checked path and the query; refused unless it stays under the
/// base URL's origin and path (a second check, after the path's own).
fn target<P: fmt::Debug + ProblemSummary>(
    base: &str,
    path: &str,
    query: &[String],
) -> Result<url::Url, ApiError<P>> {
    let outside = || ApiError::InvalidPath(InvalidPath::new(path, PathProblem::OutsideBase));
    let base_url =
        url::Url::parse(&format!("{}/", base.trim_end_matches('/'))).map_err(|_| outside())?;
    let mut url =
        url::Url::parse(&format!("{}{path}", base.trim_end_matches('/'))).map_err(|_| outside())?;
    let prefix = base_url.path().trim_end_matches('/');
    let under = url.path() == prefix
        || url
            .path()
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'));
    if url.origin() != base_url.origin()
        || !under
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(outside());
    }
    if !query.is_empty() {
        url.set_query(Some(&query.join("&")));
    }
    Ok(url)
}

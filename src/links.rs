//! HAL link-following: `_links.next`, `_links.self`, ... fetched as the type the caller expects
//! with `kommo::Client::follow`, through the same credentials, rate limiter and retries as the
//! generated calls, and read by the same rules.
//!
//! A relative href resolves against the client's base URL. An absolute href must have the base
//! URL's origin: a link to another host is refused with [`ApiError::InvalidLink`] and nothing is
//! sent, since following it would hand the account's token to a host you never chose. The same
//! happens to the documents' placeholder href `LINK` when it is not a path of the API, to a
//! scheme-relative `//host/...`, and to a link with credentials in it (`https://user@host/`).
//! Refusals are logged at WARN (target `lead_intake::links`) with the reason and the origins,
//! never the href itself.
//!
//! ```no_run
//! use lead_intake::kommo::types::{IncomingLead, IncomingLeadList};
//! use lead_intake::prelude::*;
//! # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
//! let page = kommo.list_incoming_leads().limit(50).send().or_empty().await?;
//! if let Some(href) = page.links.and_then(|l| l.next).and_then(|l| l.href) {
//!     match kommo.follow::<IncomingLeadList>(&href).await {
//!         Ok(Some(next)) => println!("page {:?}", next.page),
//!         Ok(None) => println!("no more pages (204)"),
//!         Err(ApiError::InvalidLink { href, reason }) => eprintln!("not followed: {href}: {reason}"),
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok(()) }
//! ```

use progenitor_client::{ClientHooks, ClientInfo, OperationInfo, ResponseValue};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{Answer, ApiError, ApiResponse, answer};

/// Resolves `href` against `base`. A relative href is joined to the base URL; an absolute href
/// must have the base URL's origin, since following it sends the account's credentials there.
pub(crate) fn resolve(base: &str, href: &str) -> Result<url::Url, String> {
    let base = url::Url::parse(&format!("{base}/")).map_err(|e| format!("bad base URL: {e}"))?;
    // The API's links are absolute URLs; a path from the root is taken too. Anything else
    // (the documents' placeholder `LINK`, `widgets?page=2`) would resolve against whatever
    // the base URL's path happens to be: refuse it rather than guess.
    if url::Url::parse(href).is_err() && !href.starts_with('/') {
        return Err("it is neither an absolute URL nor a path from the root (the documents' placeholder `LINK` looks like this)".to_string());
    }
    if href.starts_with("//") {
        return Err("a scheme-relative URL is not accepted".to_string());
    }
    // An absolute href is taken as it reads on its own: joined to the base, `http:/host/x`
    // would become a path of the base's host, while everything else reads it as `host`.
    let target = match url::Url::parse(href) {
        Ok(absolute) => absolute,
        Err(_) => base.join(href).map_err(|e| format!("not a URL: {e}"))?,
    };
    if target.origin() != base.origin() {
        return Err(format!(
            "it points to {}, not to the client's own {}: following it would send the credentials to a host you did not choose",
            target.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        ));
    }
    if !target.username().is_empty() || target.password().is_some() {
        return Err("it carries credentials (`user@`) in the URL".to_string());
    }
    Ok(target)
}

/// GETs a link of the client's own API. `Ok(None)` is a `204 No Content` (Kommo's empty page).
pub(crate) async fn follow<C, S, T>(
    client: &C,
    href: &str,
) -> Result<Option<T>, ApiError<T::Problem>>
where
    C: ClientHooks<S> + ClientInfo<S>,
    T: DeserializeOwned + ApiResponse,
{
    let url = resolve(client.baseurl(), href).map_err(|reason| {
        tracing::warn!(reason, href_len = href.len(), "link not followed");
        ApiError::InvalidLink {
            href: href.to_string(),
            reason,
        }
    })?;
    // Sent and read as a generated GET is: `pre`, `exec`, then the body of a success answer
    // other than 204; any other answer is the error layer's to classify.
    let call = async {
        let mut request = client.client().get(url).build()?;
        let info = OperationInfo {
            operation_id: "follow_link",
        };
        client.pre::<()>(&mut request, &info).await?;
        let response = client.exec(request, &info).await?;
        match response.status() {
            s if s.is_success() && s != StatusCode::NO_CONTENT => {
                ResponseValue::<T>::from_response(response).await
            }
            _ => Err(progenitor_client::Error::UnexpectedResponse(response)),
        }
    };
    match answer(call).await? {
        Answer::Body(value) => Ok(Some(value)),
        Answer::NoContent { .. } => Ok(None),
    }
}

//! HAL link-following: `_links.next`, `_links.self`, ... fetched as the type the caller expects,
//! through the same hooks (auth headers) as the generated calls.

use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResponse, decode_error, from_response};

/// Resolves `href` against `base`. A relative href is joined to the base URL; an absolute href
/// must have the base URL's origin, since following it sends the account's credentials there.
pub(crate) fn resolve(base: &str, href: &str) -> Result<url::Url, String> {
    let base = url::Url::parse(&format!("{base}/")).map_err(|e| format!("bad base URL: {e}"))?;
    let target = base.join(href).map_err(|e| format!("not a URL: {e}"))?;
    if target.origin() != base.origin() {
        return Err(format!(
            "it points to {}, not to the client's own {}: following it would send the credentials to a host you did not choose",
            target.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        ));
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
    let url = resolve(client.baseurl(), href).map_err(|reason| ApiError::InvalidLink {
        href: href.to_string(),
        reason,
    })?;
    let mut request = client
        .client()
        .get(url)
        .build()
        .map_err(ApiError::Transport)?;
    let info = OperationInfo {
        operation_id: "follow_link",
    };
    client
        .pre::<()>(&mut request, &info)
        .await
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let response = client
        .exec(request, &info)
        .await
        .map_err(ApiError::Transport)?;
    match response.status() {
        StatusCode::NO_CONTENT => Ok(None),
        s if s.is_success() => {
            let body = response.bytes().await.map_err(ApiError::Transport)?;
            serde_json::from_slice::<T>(&body)
                .map(Some)
                .map_err(|_| decode_error::<T, T::Problem>(body))
        }
        _ => Err(from_response(response).await),
    }
}

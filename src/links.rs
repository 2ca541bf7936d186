//! HAL link-following: `_links.next`, `_links.self`, ... fetched as the type the caller expects
//! with `kommo::Client::follow`; the guide below says how links are checked before one is sent.
//!
#![doc = include_str!("guides/links.md")]

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
    under_base_path(&base, &target)?;
    Ok(target)
}

/// Whether `target` (same origin, already parsed: its dot segments resolved and its `\`
/// read as `/`, as the URL parser does before anything is sent) stays under the base URL's path,
/// segment by segment: under `/proxy/kommo`, `/proxy/kommo/api/v4/leads` is, `/proxy/kommo2`
/// and `/other` are not. The segments after the base path must also stay where they are for a
/// server that percent-decodes them before routing (once or more): none of them may decode to a
/// dot segment (`%2e%2e`, `.%2E`, `%252e%252e`, `..;`) or hold an encoded `/` or `\` (`%2f`,
/// `%5c`). A base URL without a path (the usual `https://{subdomain}.kommo.com`) has nothing to
/// leave, so only the origin counts there.
fn under_base_path(base: &url::Url, target: &url::Url) -> Result<(), String> {
    let prefix = base.path().trim_end_matches('/');
    if prefix.is_empty() {
        return Ok(());
    }
    let rest = match target.path().strip_prefix(prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => {
            return Err(format!(
                "its path is not under the base URL's path `{prefix}/`: following it would send the credentials to another path of the same host"
            ));
        }
    };
    if rest.split('/').any(|segment| !stays_put(segment)) {
        return Err(format!(
            "a segment of its path after the base URL's path `{prefix}/` percent-decodes to `.` or `..` or holds an encoded `/` or `\\` (`%2e%2e`, `%2f`, `%5c`): a server that decodes it would leave the base path"
        ));
    }
    Ok(())
}

/// Whether a path segment, percent-decoded as often as it changes, is neither a dot segment
/// (also as `..;params`, which some servers read as `..`) nor holds a `/` or `\`.
fn stays_put(segment: &str) -> bool {
    let mut bytes = segment.as_bytes().to_vec();
    loop {
        let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        // Each decoding that changes anything makes it shorter: this ends.
        if decoded == bytes {
            break;
        }
        bytes = decoded;
    }
    let name = bytes.split(|&b| b == b';').next().unwrap_or_default();
    !bytes.iter().any(|&b| b == b'/' || b == b'\\') && name != b"." && name != b".."
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
        Answer::Body(value) => Ok(Some(value.into_inner())),
        Answer::NoContent { .. } => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    const BASE: &str = "http://127.0.0.1:8080/proxy/kommo";

    #[test]
    fn under_a_base_path_only_links_under_it_resolve() {
        for href in [
            "/proxy/kommo/api/v4/widgets?page=2",
            "http://127.0.0.1:8080/proxy/kommo/api/v4/widgets?page=2",
            "/proxy/kommo",
            "/proxy/kommo/",
            "/proxy/kommo/api/v4/../v4/widgets",
            "/proxy/kommo/api/%2e%2e/api/v4/widgets",
            "/proxy/kommo/api/v4/widgets?next=/../../admin",
            "/proxy/kommo/api/v4/leads/a%20b",
        ] {
            let url = resolve(BASE, href).unwrap_or_else(|e| panic!("{href}: {e}"));
            assert!(url.path().starts_with("/proxy/kommo"), "{href}: {url}");
        }
        for href in [
            "/other/x",
            "/proxy/kommo2/api/v4/widgets",
            "/proxy/kommo/../../admin",
            "/proxy/kommo/api/../../../admin",
            "http://127.0.0.1:8080/proxy/kommo/../admin",
            "/proxy/kommo/%2e%2e/admin",
            "/proxy/kommo/%2E%2E/%2e%2e/admin",
            "/proxy/kommo/.%2e/admin",
            "/proxy/kommo/%2e./admin",
            "/proxy/kommo\\..\\..\\admin",
            "/proxy/kommo/..\\admin",
            "/proxy/kommo/.\t./admin",
            "/proxy/kommo/%252e%252e/%252e%252e/admin",
            "/proxy/kommo/..%2f..%2fadmin",
            "/proxy/kommo/..%2F..%2Fadmin",
            "/proxy/kommo/..%5c..%5cadmin",
            "/proxy/kommo/..;/..;/admin",
            "/proxy/kommo/%2e%2e;x/admin",
            "/proxy/%6bommo/api/v4/widgets",
            "/proxy/",
            "/",
        ] {
            let refused = resolve(BASE, href).expect_err(href);
            assert!(refused.contains("/proxy/kommo/"), "{href}: {refused}");
        }
    }

    #[test]
    fn without_a_base_path_only_the_origin_counts() {
        for href in [
            "/api/v4/widgets",
            "/other/x",
            "/api/../admin",
            "/a/%2e%2e%2fb",
        ] {
            resolve("http://127.0.0.1:8080", href).unwrap_or_else(|e| panic!("{href}: {e}"));
        }
    }
}

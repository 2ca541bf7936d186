//! Property test: no secret of a client in any error (issue 21 §2).
//!
//! A loopback server answers one call of a client (a Kommo client with a long-lived token, a
//! CloseBot client with its API key, a Kommo client with OAuth, whose token request may be the
//! call that fails) with an answer that carries one of the client's secrets: in a problem
//! document's field, as the value of a number-typed field of a success answer (a `Decode`
//! error), in an HTML page, or around the 64 KiB an error keeps of a body, under any status,
//! with any subset of its characters written as JSON escapes (`\u0053` or `\u004b`, `\/`) or, in
//! HTML, as character references. Whatever error comes back, its `Display`, `Debug`, source chain
//! and public fields (`body`, `message`, `path`, the problem's fields through its `Debug`) hold
//! no secret in any of those spellings, and a body the library cut ends with no start of a
//! secret (4 characters or more; the padding around the secret is a character no secret has).
//!
//! On the code before the fix (commit 1568e48) it fails, with these shrunk cases among others:
//! - (a) a CloseBot answer `{"total": "<the API key>"}`: the key in `Decode`'s `message`, so in
//!   `Display` and `Debug`;
//! - (b) the key with one character written `\u0041` in a problem's `detail`: in clear in the
//!   decoded problem (`Debug`), and in `Display`;
//! - (c) a 500 page of 64 KiB whose cut falls inside the token: its first characters at the end
//!   of `UnexpectedResponse::body`.

mod common;

use std::sync::OnceLock;

use common::script::{Reply, ScriptServer, http_without_timeouts};
use lead_intake::Secret;
use lead_intake::closebot;
use lead_intake::kommo;
use lead_intake::oauth::{AuthError, OAuth, OAuthApp, TokenPair};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// How much of a body an error keeps (`transport::BODY_LIMIT`).
const KEPT: usize = 64 * 1024;
/// The padding around a secret: no secret has this character.
const PAD: char = '*';
/// The shortest start of a secret the check looks for at the end of a cut body.
const PREFIX: usize = 4;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Which client makes the call.
#[derive(Clone, Copy, Debug)]
enum Who {
    KommoToken,
    CloseBot,
    /// OAuth; `refresh` when the pair has expired, so the token request is the one answered.
    KommoOAuth {
        refresh: bool,
    },
}

/// Where the secret is in the answer.
#[derive(Clone, Debug)]
enum Shape {
    /// A problem document (status 400..=599) with the secret in one of its string fields.
    Problem { status: u16, field: usize },
    /// A 200 whose number-typed field holds the secret as a string: a `Decode` error.
    WrongType,
    /// An HTML page (any error status) with the secret somewhere in its text.
    Html { status: u16, before: usize },
    /// A body longer than what an error keeps, the secret starting `back` bytes before the cut
    /// (or after it, for `back` beyond the secret's spelling); `kind` 0: text, 1: HTML, 2: a
    /// JSON problem (cut, so not decodable), 3: a success that does not decode.
    Long { status: u16, kind: u8, back: usize },
}

#[derive(Clone, Debug)]
struct Case {
    who: Who,
    /// The client's secrets: token or key, or client secret, access token, refresh token.
    secrets: Vec<String>,
    /// Which of them the answer carries.
    which: usize,
    /// How each of its characters is written: 0 as is, 1 `\u` upper-case hex, 2 lower-case,
    /// 3 `\/` for a `/` (as is otherwise); in HTML 1 `&#NN;` and 2 `&#xHH;`.
    spelling: Vec<u8>,
    shape: Shape,
}

fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9/+._~-]{8,40}"
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(400u16),
        Just(401),
        Just(403),
        Just(404),
        Just(422),
        Just(429),
        Just(500),
        Just(502),
        400u16..600
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let who = prop_oneof![
        Just(Who::KommoToken),
        Just(Who::CloseBot),
        any::<bool>().prop_map(|refresh| Who::KommoOAuth { refresh }),
    ];
    let shape = prop_oneof![
        (status(), 0usize..6).prop_map(|(status, field)| Shape::Problem { status, field }),
        Just(Shape::WrongType),
        (status(), 0usize..3000).prop_map(|(status, before)| Shape::Html { status, before }),
        (
            prop_oneof![status(), Just(200u16)],
            0u8..4,
            0usize..(6 * 40 + 8)
        )
            .prop_map(|(status, kind, back)| Shape::Long { status, kind, back }),
    ];
    (
        who,
        proptest::collection::vec(secret(), 3),
        0usize..3,
        proptest::collection::vec(0u8..4, 40),
        shape,
    )
        .prop_map(|(who, mut secrets, which, spelling, shape)| {
            let count = match who {
                Who::KommoOAuth { .. } => 3,
                _ => 1,
            };
            secrets.truncate(count);
            Case {
                who,
                which: which % count,
                secrets,
                spelling,
                shape,
            }
        })
}

/// The secret as it goes into a JSON string.
fn in_json(secret: &str, spelling: &[u8]) -> String {
    secret
        .chars()
        .zip(spelling.iter().chain(std::iter::repeat(&0)))
        .map(|(c, how)| match (c, how) {
            ('/', 3) => "\\/".to_string(),
            (_, 1) => format!("\\u{:04X}", c as u32),
            (_, 2) => format!("\\u{:04x}", c as u32),
            _ => c.to_string(),
        })
        .collect()
}

/// The secret as it goes into HTML text.
fn in_html(secret: &str, spelling: &[u8]) -> String {
    secret
        .chars()
        .zip(spelling.iter().chain(std::iter::repeat(&0)))
        .map(|(c, how)| match how {
            1 => format!("&#{};", c as u32),
            2 => format!("&#x{:x};", c as u32),
            _ => c.to_string(),
        })
        .collect()
}

/// The answer of the case, and the path it answers.
fn answer(case: &Case) -> Reply {
    let secret = &case.secrets[case.which];
    let json = in_json(secret, &case.spelling);
    let html = in_html(secret, &case.spelling);
    // A number-typed field of each answer: CloseBot's `total`, a Kommo source's `id`, a token
    // answer's `expires_in`.
    let number_field = match case.who {
        Who::CloseBot => "total",
        Who::KommoOAuth { refresh: true } => "expires_in",
        _ => "id",
    };
    let success = |pad: &str| {
        let body = match case.who {
            Who::KommoOAuth { refresh: true } => format!(
                r#"{{"pad":"{pad}","expires_in":"{json}","token_type":"Bearer","access_token":"a-new-access","refresh_token":"a-new-refresh"}}"#
            ),
            _ => format!(r#"{{"pad":"{pad}","{number_field}":"{json}"}}"#),
        };
        Reply::status(200)
            .header("content-type", "application/json")
            .body(body)
    };
    match &case.shape {
        Shape::Problem { status, field } => {
            let mut problem = serde_json::json!({
                "title": "Bad Request", "status": status, "detail": "refused",
            });
            let body = problem.as_object_mut().unwrap();
            let placeholder = "@@SECRET@@";
            match field {
                0 => body.insert("detail".into(), placeholder.into()),
                1 => body.insert("title".into(), placeholder.into()),
                2 => body.insert("hint".into(), placeholder.into()),
                3 => body.insert("error_description".into(), placeholder.into()),
                4 => body.insert(
                    "validation-errors".into(),
                    serde_json::json!([{"request_id": "0", "errors": [
                        {"code": "NotSupportedChoice", "path": "name", "detail": placeholder}
                    ]}]),
                ),
                _ => body.insert(
                    "detail".into(),
                    format!("The token {placeholder} is not valid here").into(),
                ),
            };
            let text = problem.to_string().replace(placeholder, &json);
            Reply::status(*status)
                .header("content-type", "application/problem+json")
                .body(text)
        }
        Shape::WrongType => success(""),
        Shape::Html { status, before } => {
            let text = format!(
                "<html><head><title>{status}</title></head><body><p>{}</p><p>{html}</p></body></html>",
                PAD.to_string().repeat(*before)
            );
            Reply::html(*status, &text)
        }
        Shape::Long { status, kind, back } => {
            let (head, spelled, content_type) = match kind {
                0 => (String::new(), json.as_str(), "text/plain"),
                1 => ("<html><body><p>".to_string(), html.as_str(), "text/html"),
                _ => (
                    r#"{"detail":""#.to_string(),
                    json.as_str(),
                    "application/problem+json",
                ),
            };
            // The secret starts `back` bytes before the cut.
            let start = KEPT.saturating_sub(*back).max(head.len() + 16);
            if *kind == 3 || *status == 200 {
                let pad_len = start.saturating_sub(r#"{"pad":""#.len());
                let mut reply = success(&PAD.to_string().repeat(pad_len));
                reply = reply.header("x-case", "long-success");
                return reply;
            }
            let pad = PAD.to_string().repeat(start - head.len());
            let tail = PAD.to_string().repeat(300);
            Reply::status(*status)
                .header("content-type", content_type)
                .body(format!("{head}{pad}{spelled}{tail}\"}}"))
        }
    }
}

/// Every text of an error a user can read: `Display`, `Debug` (plain and pretty), the source
/// chain, and the fields that keep text of the answer (the problem's are in its `Debug`).
fn texts<P: std::fmt::Debug + lead_intake::error::ProblemSummary>(
    error: &ApiError<P>,
) -> (Vec<String>, Vec<String>)
where
    ApiError<P>: std::error::Error + 'static,
{
    let mut all = vec![
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
    ];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        all.push(format!("{cause} / {cause:?}"));
        source = cause.source();
    }
    // Bodies kept by the library, which it may have cut.
    let mut bodies = Vec::new();
    match error {
        ApiError::UnexpectedResponse { body, .. }
        | ApiError::RateLimited { body, .. }
        | ApiError::AccountBlocked { body, .. } => bodies.push(body.clone()),
        ApiError::Decode {
            body,
            message,
            path,
            ..
        } => {
            bodies.push(String::from_utf8_lossy(body).into_owned());
            all.push(message.clone());
            all.push(path.clone());
        }
        ApiError::Auth { error, .. } => match error {
            AuthError::TokenEndpoint { body, .. } => all.push(body.clone()),
            AuthError::Rejected {
                title,
                detail,
                hint,
                ..
            } => all.extend([title, detail, hint].into_iter().flatten().cloned()),
            AuthError::InvalidTokenResponse(message) => all.push(message.clone()),
            _ => {}
        },
        _ => {}
    }
    all.extend(bodies.iter().cloned());
    (all, bodies)
}

/// `text` with one layer of escapes read: JSON's (`\uXXXX`, `\/`, `\\`, `\"`), Rust's `Debug`
/// (`\\`, `\"`), and HTML character references.
fn unescape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let next = chars[i + 1];
            if next == 'u' && i + 6 <= chars.len() {
                let hex: String = chars[i + 2..i + 6].iter().collect();
                if let Some(decoded) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(decoded);
                    i += 6;
                    continue;
                }
            }
            if matches!(next, '/' | '\\' | '"') {
                out.push(next);
                i += 2;
                continue;
            }
        }
        if c == '&' && chars.get(i + 1) == Some(&'#') {
            let end = chars[i..].iter().take(12).position(|&c| c == ';');
            if let Some(end) = end {
                let reference: String = chars[i + 2..i + end].iter().collect();
                let value = match reference.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => reference.parse().ok(),
                };
                if let Some(decoded) = value.and_then(char::from_u32) {
                    out.push(decoded);
                    i += end + 1;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The spellings of `text` to search: as it is and with up to three layers of escapes read.
fn readings(text: &str) -> Vec<String> {
    let mut readings = vec![text.to_string()];
    for _ in 0..3 {
        let next = unescape(readings.last().unwrap());
        if &next == readings.last().unwrap() {
            break;
        }
        readings.push(next);
    }
    readings
}

/// A trailing escape that a cut left unfinished (`\u00`, `&#x5`): its start.
fn unfinished_escape(text: &str) -> Option<usize> {
    let tail_start = text.len().saturating_sub(10);
    let tail_start = (tail_start..=text.len()).find(|&i| text.is_char_boundary(i))?;
    let tail = &text[tail_start..];
    if let Some(at) = tail.rfind('\\') {
        let rest = &tail[at + 1..];
        if rest.len() < 5 && (rest.is_empty() || rest.starts_with('u')) {
            return Some(tail_start + at);
        }
    }
    if let Some(at) = tail.rfind('&')
        && !tail[at..].contains(';')
    {
        return Some(tail_start + at);
    }
    None
}

fn check(case: &Case, texts: &[String], bodies: &[String]) -> Result<(), TestCaseError> {
    for text in texts {
        for reading in readings(text) {
            for secret in &case.secrets {
                prop_assert!(
                    !reading.contains(secret.as_str()),
                    "the secret {secret:?} is in an error's text: {}",
                    shorten(text)
                );
            }
        }
    }
    for body in bodies {
        if body.len() + 16 < KEPT {
            continue;
        }
        let mut body = body.clone();
        while let Some(at) = unfinished_escape(&body) {
            body.truncate(at);
        }
        for reading in readings(&body) {
            for secret in &case.secrets {
                for len in PREFIX..secret.len() {
                    prop_assert!(
                        !reading.ends_with(&secret[..len]),
                        "a cut body ends with the first {len} characters of {secret:?}: …{}",
                        &reading[reading.len().saturating_sub(80)..]
                    );
                }
            }
        }
    }
    Ok(())
}

/// A long text's start and end, for a failure's message.
fn shorten(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 600 {
        return text.to_string();
    }
    let head: String = chars[..300].iter().collect();
    let tail: String = chars[chars.len() - 300..].iter().collect();
    format!("{head}…{tail}")
}

async fn run(case: &Case) -> Result<(), TestCaseError> {
    let reply = answer(case);
    let who = case.who;
    let server = ScriptServer::start(move |r, _| {
        // The OAuth client's API call, when its token request is not the one answered.
        if matches!(who, Who::KommoOAuth { refresh: true }) && r.path() != "/oauth2/access_token" {
            return Reply::status(500);
        }
        reply.clone()
    })
    .await;
    let (texts, bodies) = match case.who {
        Who::KommoToken | Who::KommoOAuth { .. } => {
            let builder = kommo::Client::builder().base_url(&server.base_url);
            let builder = match case.who {
                Who::KommoToken => builder.token(case.secrets[0].as_str()),
                Who::KommoOAuth { refresh } => {
                    let app = OAuthApp::new(
                        "integration-id",
                        case.secrets[0].as_str(),
                        "https://example.com/oauth",
                    );
                    let now: chrono::DateTime<chrono::Utc> = std::time::SystemTime::now().into();
                    let valid_for = if refresh {
                        chrono::Duration::seconds(-60)
                    } else {
                        chrono::Duration::days(1)
                    };
                    let pair = TokenPair {
                        access_token: Secret::new(case.secrets[1].as_str()),
                        refresh_token: Secret::new(case.secrets[2].as_str()),
                        expires_at: now + valid_for,
                    };
                    builder.oauth(OAuth::new(app, pair, |_: TokenPair| async {
                        Ok::<(), std::io::Error>(())
                    }))
                }
                Who::CloseBot => unreachable!(),
            };
            let client = builder
                .no_rate_limit()
                .retry(RetryPolicy::none())
                .http_client(http_without_timeouts())
                .build()
                .unwrap();
            let error = client
                .get_source()
                .id(1)
                .send()
                .body()
                .await
                .expect_err("every answer of the case is an error");
            texts(&error)
        }
        Who::CloseBot => {
            let client = closebot::Client::builder()
                .api_key(case.secrets[0].as_str())
                .base_url(&server.base_url)
                .retry(RetryPolicy::none())
                .http_client(http_without_timeouts())
                .build()
                .unwrap();
            let error = client
                .list_sources()
                .page(0)
                .send()
                .body()
                .await
                .expect_err("every answer of the case is an error");
            texts(&error)
        }
    };
    check(case, &texts, &bodies)
}

proptest! {
    #![proptest_config(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn no_error_carries_a_secret_of_its_client(case in case()) {
        runtime().block_on(run(&case))?;
    }
}

/// A pager told to stop on an odd item makes its `ApiError::UnrecognizedItem` itself, outside a
/// call's answer: the item's raw JSON, path and reason lose the client's secrets too.
#[test]
fn a_pager_s_refused_odd_item_carries_no_secret() {
    const TOKEN: &str = "PAGER-SECRET-TOKEN-123";
    runtime().block_on(async {
        let page = serde_json::json!({
            "_page": 1,
            "_embedded": {"widgets": [
                {"id": TOKEN, "code": TOKEN, "version": {"echo": TOKEN}},
            ]},
        });
        let server = ScriptServer::start(move |_, n| {
            if n == 0 {
                Reply::json(200, page.clone())
            } else {
                Reply::status(204)
            }
        })
        .await;
        let client = kommo::Client::builder()
            .base_url(&server.base_url)
            .token(TOKEN)
            .no_rate_limit()
            .retry(RetryPolicy::none())
            .http_client(http_without_timeouts())
            .build()
            .unwrap();
        let mut items = client.list_widgets_pager(|r| r).typed_items();
        let err = futures_util::StreamExt::next(&mut items)
            .await
            .expect("the stream yields the refusal")
            .expect_err("an odd item ends a typed stream");
        let lead_intake::error::ApiError::UnrecognizedItem { item, .. } = &err else {
            panic!("{err:?}");
        };
        for text in [err.to_string(), format!("{err:?}"), item.raw().to_string()] {
            assert!(!text.contains(TOKEN), "{text}");
        }
    });
}

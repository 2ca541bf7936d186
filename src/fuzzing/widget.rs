//! The body of the `widget` fuzz target (`fuzz/fuzz_targets/widget.rs`): the `widget_request`
//! body parser, its `return_url` reader, and both token verifiers, on arbitrary bytes.

use crate::Secret;
use crate::widget::{
    Algorithm, BotTokenVerifier, ContinueTarget, DisposableTokenVerifier, WidgetRequest, sign_parts,
};

/// The client secret the fuzz inputs' tokens are signed with: 64 bytes, as Kommo's are (the
/// verifiers refuse a shorter HS512 key).
pub const FUZZ_SECRET: &str = "fuzz-client-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHI";
/// The verifiers' "now" (Unix seconds), so seeds stay valid.
pub const FUZZ_NOW: i64 = 1_800_000_000;
/// The disposable token's audience.
pub const FUZZ_AUDIENCE: &str = "https://widget.example";

/// Reads `data` by its first byte: `0` (or anything but 1 and 2): the rest is a
/// `widget_request` body, parsed, its token verified by both verifiers and its `return_url`
/// read; `1`: the rest is a token for both verifiers; `2`: the rest is `header NUL payload`,
/// signed here with [`FUZZ_SECRET`] (HS512 and HS256), so the claim checks behind the
/// signature are reached too. Every result is displayed and debugged. Nothing may panic.
/// Returns whether a token passed every check.
pub fn widget(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let now = chrono::DateTime::from_timestamp(FUZZ_NOW, 0).unwrap_or_default();
    let Ok(bot) = BotTokenVerifier::new(FUZZ_SECRET) else {
        return false;
    };
    let bot = bot.at(now);
    let Ok(disposable) = DisposableTokenVerifier::new(FUZZ_SECRET, FUZZ_AUDIENCE) else {
        return false;
    };
    let disposable = disposable.at(now);
    let check = |token: &str| -> bool {
        let a = bot.verify(token);
        let b = disposable.verify(token);
        let _ = format!("{a:?} {b:?}");
        if let Err(e) = &a {
            let _ = e.to_string();
        }
        if let Err(e) = &b {
            let _ = e.to_string();
        }
        let ok = a.is_ok() || b.is_ok();
        if let Ok(claims) = a {
            let _ = serde_json::to_string(&claims);
        }
        if let Ok(claims) = b {
            let _ = serde_json::to_string(&claims);
        }
        ok
    };
    match mode {
        1 => check(&String::from_utf8_lossy(rest)),
        2 => {
            let (header, payload) = match rest.iter().position(|&b| b == 0) {
                Some(at) => {
                    let (header, payload) = rest.split_at(at);
                    (header, payload.get(1..).unwrap_or_default())
                }
                None => (rest, &[][..]),
            };
            let mut accepted = false;
            for algorithm in [Algorithm::Hs512, Algorithm::Hs256] {
                let token = sign_parts(algorithm, header, payload, &Secret::new(FUZZ_SECRET));
                accepted |= check(&token);
            }
            accepted
        }
        _ => match WidgetRequest::from_http(Some("application/json"), rest) {
            Ok(request) => {
                let _ = format!("{request:?}");
                let _ = ContinueTarget::parse(&request.return_url).map_err(|e| e.to_string());
                let _ = format!("{:?}", request.verify(&bot).map_err(|e| e.to_string()));
                check(request.token.expose())
            }
            Err(e) => {
                let _ = (e.to_string(), format!("{e:?}"));
                false
            }
        },
    }
}

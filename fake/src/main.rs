//! `lead-intake-fake`: the fake Kommo and CloseBot server as a program, for tools that are not
//! Rust tests (curl, Prism's proxy, schemathesis, another language's client).
//!
//! ```text
//! cargo install --path fake
//! lead-intake-fake --port 8080 --seed 1 --rate-limit 7
//! ```
//!
//! Prints a banner (the base URL of both APIs and the admin API, the credentials, the OAuth
//! integration and a first authorization code) on stdout,
//! then a log line per request on stderr (unless `--quiet`), and serves until killed.

use std::io::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use lead_intake_fake::{Config, FakeServer, Faults, Fixtures, OAuthConfig};

const USAGE: &str = "\
lead-intake-fake: a stateful fake Kommo CRM v4 and CloseBot server, with an admin API under
/__admin/ (reset, requests, state, faults, health; README.md)

USAGE:
    lead-intake-fake [OPTIONS]

OPTIONS:
    --host ADDR            listen on this address (default: 127.0.0.1); one other hosts can
                           reach (0.0.0.0: every interface) also needs --allow-remote and
                           --admin-token
    --allow-remote         let other hosts reach the fake (a warning is printed): only on a
                           network you trust, with --admin-token
    --admin-token T        the admin API (/__admin/) needs `Authorization: Bearer T`
                           (default: no token; needed with --allow-remote)
    --header-read-timeout SECONDS
                           close a connection that takes longer to send a request's headers
                           (default: 30; fractions allowed)
    --max-connections N    connections served at once; more wait (default: 512)
    --port N               listen on this port (default: 0, any free port; the banner says which)
    --quiet                no log line per request (the banner is still printed)
    --seed N               seed of the faults and generated IDs (default: 0)
    --kommo-token T        the Kommo bearer token to accept (default: fake-kommo-token)
    --closebot-key K       the CloseBot API key to accept (default: fake-closebot-key)
    --client-id ID         the OAuth integration's ID (default: fake-client-id)
    --client-secret S      its secret key (default: fake-client-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHI;
                           a widget back end's verifier needs 64 bytes)
    --redirect-uri URI     its redirect URI (default: https://example.com/oauth)
    --access-token-lifetime SECONDS
                           how long an OAuth access token works (default: 86400; fractions
                           allowed, e.g. 0.5)
    --source-limit N       sources per integration (default: 50)
    --subdomain S          the account's subdomain in webhooks and widget_request tokens
                           (default: fake)
    --webhook-url URL      POST incoming-lead webhooks here, form-encoded as Kommo does
    --widget-url URL       POST Salesbot's widget_request here (POST /__admin/widget_request)
    --empty                start with no widgets, incoming leads, bots or CloseBot sources
    --rate-limit N         Kommo requests per second per integration before 429 (default: none)
    --block-after N        block the account after N 429s (HTML 403 from then on)
    --blocked              start with the account blocked
    --error-rate F         share of requests answered 5xx (0.0 to 1.0)
    --drop-rate F          share of connections closed without an answer (request not processed)
    --lost-answer-rate F   share of requests processed, then closed without an answer
    --late-error-rate F    share of requests processed, then answered 5xx
    --random-429-rate F    share of Kommo requests answered 429 whatever the rate limit
    --slow-rate F          share of answers delayed by --slow-ms
    --slow-ms N            the delay of a slow answer (default: 500)
    --no-check             do not check answers against the spec
    -h, --help             this text
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lead-intake-fake: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut config = Config::default();
    let mut faults = Faults::none();
    let mut slow_rate = 0.0;
    let mut slow = Duration::from_millis(500);
    let mut quiet = false;
    let defaults = OAuthConfig::default();
    let mut client_id = defaults.client_id().to_string();
    let mut client_secret = defaults.client_secret().expose().to_string();
    let mut redirect_uri = defaults.redirect_uri().to_string();
    let mut access_lifetime = None;
    let mut host = None;
    let mut admin_token = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "--host" => {
                let text = value(&arg)?;
                let addr: IpAddr = text
                    .parse()
                    .map_err(|_| format!("--host takes an IP address, not {text:?}"))?;
                host = Some(addr);
                config = config.host(addr);
            }
            "--allow-remote" => config = config.allow_remote(),
            "--admin-token" => {
                let token = value(&arg)?;
                if token.is_empty() {
                    return Err("--admin-token takes a non-empty token".to_string());
                }
                admin_token = true;
                config = config.admin_token(token);
            }
            "--header-read-timeout" => {
                config = config.header_read_timeout(seconds(&arg, &value(&arg)?)?);
            }
            "--max-connections" => {
                let max: usize = number(&arg, &value(&arg)?)?;
                if max == 0 {
                    return Err("--max-connections takes a number from 1".to_string());
                }
                config = config.max_connections(max);
            }
            "--port" => config = config.port(number(&arg, &value(&arg)?)?),
            "--quiet" => quiet = true,
            "--seed" => config = config.seed(number(&arg, &value(&arg)?)?),
            "--kommo-token" => config = config.kommo_token(value(&arg)?),
            "--closebot-key" => config = config.closebot_key(value(&arg)?),
            "--client-id" => client_id = value(&arg)?,
            "--client-secret" => client_secret = value(&arg)?,
            "--redirect-uri" => redirect_uri = value(&arg)?,
            "--access-token-lifetime" => {
                access_lifetime = Some(seconds(&arg, &value(&arg)?)?);
            }
            "--source-limit" => config = config.source_limit(number(&arg, &value(&arg)?)?),
            "--subdomain" => config = config.subdomain(value(&arg)?),
            "--webhook-url" => config = config.webhook_url(http_url(&arg, &value(&arg)?)?),
            "--widget-url" => config = config.widget_url(http_url(&arg, &value(&arg)?)?),
            "--empty" => config = config.fixtures(Fixtures::empty()),
            "--rate-limit" => faults = faults.rate_limit(number(&arg, &value(&arg)?)?),
            "--block-after" => faults = faults.block_after(number(&arg, &value(&arg)?)?),
            "--blocked" => faults = faults.blocked(),
            "--error-rate" => faults = faults.server_errors(rate(&arg, &value(&arg)?)?),
            "--drop-rate" => faults = faults.drops(rate(&arg, &value(&arg)?)?),
            "--lost-answer-rate" => faults = faults.lost_answers(rate(&arg, &value(&arg)?)?),
            "--late-error-rate" => faults = faults.late_server_errors(rate(&arg, &value(&arg)?)?),
            "--random-429-rate" => faults = faults.rate_limited(rate(&arg, &value(&arg)?)?),
            "--slow-rate" => slow_rate = rate(&arg, &value(&arg)?)?,
            "--slow-ms" => slow = Duration::from_millis(number(&arg, &value(&arg)?)?),
            "--no-check" => config = config.check_responses(false),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if slow_rate > 0.0 {
        faults = faults.slow(slow_rate, slow);
    }
    let mut oauth = OAuthConfig::new(client_id, client_secret, redirect_uri);
    if let Some(lifetime) = access_lifetime {
        oauth = oauth.access_token_lifetime(lifetime);
    }
    config = config.oauth(oauth);
    if !quiet {
        // One line per request on stderr; like the banner, a closed stderr must not stop the
        // server, so write errors are ignored.
        config = config.on_request(|request| {
            let _ = writeln!(std::io::stderr().lock(), "{request}");
        });
    }
    let server = FakeServer::start(config.faults(faults)).map_err(|e| e.to_string())?;
    if let Some(host) = host.filter(|h| !h.to_canonical().is_loopback()) {
        // Started: --allow-remote and --admin-token were both given.
        let _ = writeln!(
            std::io::stderr().lock(),
            "lead-intake-fake: warning: listening on {host}, reachable from other hosts \
             (--allow-remote): anyone who reaches port {port} can call both APIs with the \
             credentials below; the admin API needs the admin token",
            port = server.addr().port(),
        );
    }
    let admin_auth = if admin_token {
        "Authorization: Bearer <admin token>"
    } else {
        "no token"
    };
    // The banner is a courtesy: a closed stdout (a reader that stopped early) must not stop
    // the server, so write errors are ignored rather than panicking as `println!` would.
    let banner = format!(
        "base URL:      {base}\n\
         Kommo API:     {base}/api/v4/ (Authorization: Bearer <Kommo token>)\n\
         CloseBot API:  {base}/agency/ (X-CB-KEY: <CloseBot key>)\n\
         admin API:     {base}/__admin/ ({admin_auth}: health, reset, requests, state, faults, oauth, widget_request, webhooks)\n\
         Kommo token:   {token}\n\
         CloseBot key:  {key}\n\
         OAuth token:   {base}/oauth2/access_token (authorization_code and refresh_token grants)\n\
         client ID:     {client_id}\n\
         client secret: {client_secret}\n\
         redirect URI:  {redirect_uri}\n\
         auth code:     {code} (single-use, 20 minutes; POST {base}/__admin/oauth/code for another)\n\
         try OAuth:     curl -X POST {base}/oauth2/access_token -H 'Content-Type: application/json' -d '{{\"client_id\": \"{client_id}\", \"client_secret\": \"{client_secret}\", \"grant_type\": \"authorization_code\", \"code\": \"{code}\", \"redirect_uri\": \"{redirect_uri}\"}}'\n\
         try:           curl -H 'Authorization: Bearer {token}' {base}/api/v4/widgets\n",
        base = server.base_url(),
        token = server.kommo_token().expose(),
        key = server.closebot_key().expose(),
        client_id = server.oauth().client_id(),
        client_secret = server.oauth().client_secret().expose(),
        redirect_uri = server.oauth().redirect_uri(),
        code = server.authorization_code(),
    );
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes());
    let _ = stdout.flush();
    drop(stdout);
    server.wait();
    Ok(())
}

/// A positive number of seconds, fractions allowed.
fn seconds(name: &str, text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{name} takes a positive number of seconds, not {text:?}"))
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name} takes a number, not {text:?}"))
}

/// A back end's URL: refused at start rather than failing every send later (plain HTTP: the
/// fake is built without TLS).
fn http_url(name: &str, text: &str) -> Result<String, String> {
    match url::Url::parse(text) {
        Ok(url) if url.scheme() == "http" && url.has_host() => Ok(text.to_string()),
        _ => Err(format!(
            "{name} takes an http:// URL (the fake has no TLS), not {text:?}"
        )),
    }
}

fn rate(name: &str, text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "{name} takes a share from 0.0 to 1.0, not {text:?}"
        )),
    }
}

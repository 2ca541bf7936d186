//! A tour of lead-intake: `cargo run --example tour`.
//!
//! With no configuration it starts the embedded fake Kommo and CloseBot server
//! (`lead_intake_fake`) and walks through the crate against it: sources, a widget, a few hundred
//! incoming leads pushed in chunks and streamed back, accepted and declined, the summary, and
//! CloseBot's sources.
//!
//! With `KOMMO_SUBDOMAIN` and `KOMMO_TOKEN` set (and optionally `CLOSEBOT_API_KEY`), it runs only
//! the read-only part against the real accounts: nothing is created or changed there.

use std::error::Error;
use std::io::Write as _;
use std::time::Instant;

use lead_intake::batch::{BatchOptions, ItemOutcome};
use lead_intake::kommo::types::{
    AcceptIncomingLeadRequest, AddIncomingForm, AddSource, ContactInput,
    DeclineIncomingLeadRequest, FormsMetadata, IncomingLeadCategory, IncomingLeadEmbeddedInput,
    LeadInput, WidgetInstallSettings,
};
use lead_intake::prelude::*;
use lead_intake_fake::{Config, FakeServer};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// How many incoming leads the tour pushes.
const LEADS: usize = 300;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let outcome = match (
        std::env::var("KOMMO_SUBDOMAIN")
            .ok()
            .filter(|s| !s.is_empty()),
        std::env::var("KOMMO_TOKEN").ok().filter(|s| !s.is_empty()),
    ) {
        (Some(subdomain), Some(token)) => real(&subdomain, token).await,
        _ => fake().await,
    };
    if let Err(e) = outcome {
        eprintln!("\nerror: {e}");
        std::process::exit(1);
    }
}

/// The whole story, against the embedded fake.
async fn fake() -> Result<()> {
    let started = Instant::now();
    let fake = FakeServer::start(Config::default())?;
    println!(
        "lead-intake tour: a fake Kommo and CloseBot at {} (set KOMMO_SUBDOMAIN and KOMMO_TOKEN to read a real account)\n",
        fake.base_url()
    );
    let kommo = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .build()?; // Kommo's limit: 7 requests per second, shared by clones
    let closebot =
        lead_intake::closebot::Client::from_base_url(&fake.base_url(), fake.closebot_key())?;

    step("1. Create lead sources (one batch call, chunks of at most 50)");
    let sources = vec![
        AddSource::new("Website chat", "tour-chat").with_pipeline_id(6950551),
        AddSource::new("Phone line", "tour-phone"),
        AddSource::new("Landing page form", "tour-form"),
    ];
    let report = kommo
        .add_sources_batched(&sources, &BatchOptions::new())
        .await;
    println!("   {report}");
    if let Some(error) = report.error() {
        return Err(error.to_string().into());
    }

    step("2. List them (204 would be an empty list, not an error)");
    let list = kommo.list_sources().send().or_empty().await?;
    for source in list.into_sources() {
        println!(
            "   #{} {} (external_id {}, pipeline {})",
            source.id,
            source.name.unwrap_or_default(),
            source
                .external_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            source.pipeline_id.unwrap_or_default()
        );
    }

    step("3. Install a widget (its required settings are checked)");
    let settings = WidgetInstallSettings::new()
        .with_text("login", "tour")
        .with_text("password", "tour-password")
        .with_users("phones", [("504141", "1039")])
        .with_text("script_path", "https://example.com/");
    let widget = kommo
        .install_widget()
        .widget_code("amo_asterisk")
        .body(settings)
        .send()
        .body()
        .await?;
    println!(
        "   {} installed: active in account = {:?}",
        widget.code, widget.is_active_in_account
    );

    step(&format!(
        "4. Push {LEADS} incoming leads from web forms (chunks of 50, two in flight, under the rate limit)"
    ));
    let forms: Vec<AddIncomingForm> = (0..LEADS).map(form).collect();
    let push_started = Instant::now();
    let mut created = Vec::new();
    // One batch call per 100 forms, so the bar moves; each call sends two chunks at once.
    for group in forms.chunks(100) {
        let report = kommo
            .add_incoming_forms_batched(group, &BatchOptions::new().with_concurrency(2))
            .await;
        for outcome in report.outcomes() {
            match outcome {
                ItemOutcome::Succeeded(lead) => created.push(lead.uid.clone()),
                other => return Err(format!("a form was not created: {other:?}").into()),
            }
        }
        progress("pushed", created.len(), LEADS);
    }
    finish_progress(&format!(
        "{} created in {:.1} s",
        created.len(),
        push_started.elapsed().as_secs_f64()
    ));

    step("5. Stream them back (pages of 100, following _links.next)");
    let mut stream = kommo
        .list_incoming_leads_pager(|req| req.filter_category(vec![IncomingLeadCategory::Forms]))
        .page_size(100)
        .typed_items();
    let mut streamed = 0;
    let mut from_tour = Vec::new();
    while let Some(lead) = stream.try_next().await? {
        streamed += 1;
        if created.iter().any(|uid| uid == lead.uid()) {
            from_tour.push(lead.uid().to_string());
        }
        if streamed % 25 == 0 {
            progress("streamed", streamed, LEADS);
        }
    }
    finish_progress(&format!(
        "{streamed} web-form leads streamed ({} from this tour, the rest already waiting)",
        from_tour.len()
    ));

    step("6. Accept 5 of them, decline 3");
    let accept = AcceptIncomingLeadRequest::new()
        .with_user_id(8375357)
        .with_status_id(58141807);
    let decline = DeclineIncomingLeadRequest::new().with_user_id(8375357);
    for uid in &from_tour[..5] {
        kommo
            .accept_incoming_lead()
            .uid(uid)
            .body(accept.clone())
            .send()
            .body()
            .await?;
    }
    for uid in &from_tour[5..8] {
        kommo
            .decline_incoming_lead()
            .uid(uid)
            .body(decline.clone())
            .send()
            .body()
            .await?;
    }
    println!("   accepted 5, declined 3");

    step("7. The summary");
    summary(&kommo).await?;

    step("8. CloseBot: the agency's sources (zero-based pages of 10)");
    closebot_sources(&closebot, 10).await?;

    println!(
        "\ndone in {:.1} s; the fake answered {} requests, every answer checked against the spec ({} mismatches)",
        started.elapsed().as_secs_f64(),
        fake.stats().requests,
        fake.violations().len()
    );
    let violations = fake.violations();
    fake.shutdown().await;
    if !violations.is_empty() {
        return Err(format!("the fake sent answers off the spec: {violations:?}").into());
    }
    Ok(())
}

/// The read-only part, against real accounts.
async fn real(subdomain: &str, token: String) -> Result<()> {
    println!("lead-intake tour: reading https://{subdomain}.kommo.com (nothing is changed)\n");
    let kommo = lead_intake::kommo::Client::from_subdomain(subdomain, token)?;

    step("1. Lead sources");
    let list = kommo.list_sources().send().or_empty().await?;
    let sources = list.embedded.map(|e| e.sources).unwrap_or_default();
    println!("   {} sources", sources.len());
    for source in sources.iter().take(10) {
        println!("   #{} {}", source.id, source.name.as_deref().unwrap_or(""));
    }

    step("2. Widgets (first 2 pages)");
    let widgets: Vec<_> = kommo
        .list_widgets_pager(|req| req)
        .page_size(50)
        .max_pages(2)
        .typed_items()
        .try_collect()
        .await?;
    println!("   {} widgets", widgets.len());

    step("3. Incoming leads (first 2 pages of 50)");
    let leads: Vec<_> = kommo
        .list_incoming_leads_pager(|req| req)
        .page_size(50)
        .max_pages(2)
        .typed_items()
        .try_collect()
        .await?;
    println!("   {} incoming leads", leads.len());

    step("4. The summary");
    summary(&kommo).await?;

    if let Some(key) = std::env::var("CLOSEBOT_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    {
        step("5. CloseBot sources");
        let closebot = lead_intake::closebot::Client::from_api_key(key)?;
        closebot_sources(&closebot, 100).await?;
    }
    Ok(())
}

async fn summary(kommo: &lead_intake::kommo::Client) -> Result<()> {
    let summary = kommo.get_incoming_leads_summary().send().body().await?;
    println!(
        "   {} incoming leads in all: {} accepted, {} declined",
        summary.total.unwrap_or_default(),
        summary.accepted.unwrap_or_default(),
        summary.declined.unwrap_or_default()
    );
    Ok(())
}

async fn closebot_sources(closebot: &lead_intake::closebot::Client, page_size: u32) -> Result<()> {
    let mut pages = closebot
        .list_sources_pager(|req| req)
        .page_size(page_size)
        .pages();
    let mut count = 0;
    while let Some(page) = pages.try_next().await? {
        let results = page.results.into_vec();
        count += results.len();
        println!(
            "   page {}: {} sources (of {})",
            page.page.unwrap_or_default(),
            results.len(),
            page.total.unwrap_or_default()
        );
    }
    println!("   {count} CloseBot sources in all");
    Ok(())
}

/// A web form submission, different for each `i` (identical ones are refused as duplicates).
fn form(i: usize) -> AddIncomingForm {
    let at = 1_700_000_000 + i as i64;
    AddIncomingForm::new(
        "tour-form",
        "Landing page form",
        FormsMetadata::new()
            .with_ip("203.0.113.7")
            .with_form_id("tour-form")
            .with_form_sent_at(at)
            .with_form_name("Contact us")
            .with_form_page("https://example.com/contact")
            .with_referer("https://www.example.org"),
        IncomingLeadEmbeddedInput::new()
            .with_leads(vec![
                LeadInput::new()
                    .with_name(format!("Request #{i}"))
                    .with_price(100 * (i as i64 % 7 + 1)),
            ])
            .with_contacts(vec![ContactInput::new().with_name(format!("Visitor {i}"))]),
    )
    .with_pipeline_id(6950551)
    .with_created_at(at)
}

fn step(title: &str) {
    println!("\n{title}");
}

/// A one-line progress bar on stderr, redrawn in place; nothing when stderr is not a terminal.
fn progress(what: &str, done: usize, total: usize) {
    use std::io::IsTerminal as _;
    if !std::io::stderr().is_terminal() {
        return;
    }
    const WIDTH: usize = 30;
    let filled = (done.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    eprint!(
        "\r   [{}{}] {what} {}/{total}",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled),
        done.min(total)
    );
    let _ = std::io::stderr().flush();
}

fn finish_progress(message: &str) {
    use std::io::IsTerminal as _;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    println!("   {message}");
}

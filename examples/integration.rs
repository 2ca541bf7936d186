//! A realistic integration, with the public API only, against the crate's fake Kommo and
//! CloseBot: the account's pipelines read, lead sources set up idempotently (a source whose
//! pipeline is gone refused before sending), 1,000 web forms imported from a CSV with every
//! outcome handled, the forms of one pipeline sorted by source as they come (the partners'
//! created as leads with their contact and source through `leads/complex`, then read back with
//! a raw call the crate does not type, through the same client), a summary for a date
//! range, widgets page by page and one installed, a validation-error and a rate-limit branch, and
//! CloseBot's sources.
//!
//! `cargo run --example integration`

use std::error::Error;

use lead_intake::batch::{BatchOptions, ItemOutcome};
use lead_intake::kommo::types::{
    AddIncomingForm, AddSource, ComplexContact, ComplexLead, ContactInput, FormsMetadata,
    IncomingLeadEmbeddedInput, LeadInput, LeadSource, WidgetInstallSettings,
};
use lead_intake::list::ListItem;
use lead_intake::prelude::*;
use lead_intake::sync::SyncOptions;
use lead_intake_fake::{Config, FakeServer};
use reqwest::Method;
use serde::Deserialize;

/// The main pipeline of the fake's fixtures, a second one (where the forms of one campaign go),
/// and one the account does not have.
const PIPELINE: i64 = 6950551;
const CAMPAIGN_PIPELINE: i64 = 5867030;
const NO_SUCH_PIPELINE: i64 = 999_999;
const FIRST_SENT_AT: i64 = 1_700_000_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let fake = FakeServer::start(Config::default())?;
    let kommo = lead_intake::kommo::Client::from_base_url(&fake.base_url(), fake.kommo_token())?;
    let closebot =
        lead_intake::closebot::Client::from_base_url(&fake.base_url(), fake.closebot_key())?;

    // 0. The account's pipelines: the IDs sources and leads refer to, and the status the
    //    partners' leads start in (the campaign pipeline's first working status).
    let pipelines = kommo.list_pipelines().send().body().await?;
    for pipeline in pipelines.pipelines().iter() {
        let statuses: Vec<&str> = pipeline
            .statuses()
            .iter()
            .filter_map(|s| s.name.as_deref())
            .collect();
        println!(
            "pipeline {} {:?} (main: {:?}): {statuses:?}",
            pipeline.id,
            pipeline.name.as_deref().unwrap_or_default(),
            pipeline.is_main.unwrap_or_default()
        );
    }
    let campaign = pipelines
        .pipeline(CAMPAIGN_PIPELINE)
        .ok_or("the campaign pipeline is gone")?;
    let first_working_status = campaign
        .statuses()
        .iter()
        .find(|s| s.type_ == Some(0) && s.is_editable == Some(true))
        .map(|s| s.id)
        .ok_or("the campaign pipeline has no working status")?;

    // 1. Our lead sources, as desired state: a second run changes nothing. The last one points
    //    at a pipeline the account no longer has: the pipeline check refuses it before sending.
    let sources = [
        AddSource::new("Website forms", "site-forms").with_pipeline_id(PIPELINE),
        AddSource::new("Partner forms", "partner-forms").with_pipeline_id(PIPELINE),
        AddSource::new("Phone line", "phone"),
        AddSource::new("Last year's fair", "fair").with_pipeline_id(NO_SUCH_PIPELINE),
    ];
    let checked = SyncOptions::new().with_pipeline_check(true);
    for run in ["first", "second"] {
        let report = kommo.sync_sources(&sources, &checked).await?;
        println!("sources, {run} sync: {report}");
    }

    // 2. A validation error: the same external_id twice is refused, item by item.
    let duplicate = vec![AddSource::new("Website forms again", "site-forms")];
    match kommo.add_sources().body(duplicate).send().body().await {
        Err(ApiError::Problem { problem, .. }) => {
            for group in &problem.validation_errors {
                for error in &group.errors {
                    println!(
                        "refused as expected: item {:?}: {:?} at {:?}",
                        group.request_id, error.code, error.path
                    );
                }
            }
        }
        other => return Err(format!("a duplicate external_id was not refused: {other:?}").into()),
    }

    // 3. 1,000 web forms from a CSV; every tenth names a pipeline the account does not have.
    let forms: Vec<AddIncomingForm> = csv().lines().skip(1).filter_map(form_from_csv).collect();
    let report = kommo
        .add_incoming_forms_batched(&forms, &BatchOptions::new().with_concurrency(2))
        .await;
    println!("import: {report}");
    for (index, outcome) in report.outcomes().iter().enumerate() {
        match outcome {
            ItemOutcome::Succeeded(_) => {}
            ItemOutcome::Rejected(errors) => {
                if index < 10 {
                    let why = errors.first().and_then(|e| e.detail.as_deref());
                    println!("  row {index} rejected: {why:?} (and every tenth row after it)");
                }
            }
            ItemOutcome::Unknown => println!("  row {index}: sent, check before sending again"),
            other => println!("  row {index}: {other:?}, safe to send again"),
        }
    }
    if let Some(error) = report.error() {
        println!("  the import stopped early: {error}");
    }

    // 4. The forms of the campaign's pipeline, sorted by source as they come: the website's
    //    accepted; the partners' declined from Incoming leads and created as leads in the
    //    campaign's first working status, with their contact and their source (below).
    //    `drain` reads the list again as it shrinks, so no lead is skipped and none is seen
    //    twice. (Every call counts against Kommo's 7 requests a second.)
    let mut leads = kommo
        .list_incoming_leads_pager(|req| req.filter_pipeline_id(CAMPAIGN_PIPELINE))
        .page_size(25)
        .drain();
    let (mut accepted, mut declined) = (0, 0);
    let mut partner_leads = Vec::new();
    while let Some(item) = leads.try_next().await? {
        let lead = match item {
            ListItem::Typed(lead) => lead,
            ListItem::Unrecognized(odd) => {
                println!("  a lead this crate cannot read: {odd}");
                continue;
            }
        };
        if lead.source_uid.as_deref() == Some("site-forms") {
            kommo
                .accept_incoming_lead()
                .uid(&lead.uid)
                .send()
                .body()
                .await?;
            accepted += 1;
        } else {
            kommo
                .decline_incoming_lead()
                .uid(&lead.uid)
                .send()
                .body()
                .await?;
            declined += 1;
            let visitor = format!("Partner visitor {declined}");
            partner_leads.push(
                ComplexLead::new()
                    .with_name(format!("Partner request from {visitor}"))
                    .with_pipeline_id(CAMPAIGN_PIPELINE)
                    .with_status_id(first_working_status)
                    .with_contact(
                        ComplexContact::new()
                            .with_name(visitor)
                            .with_email(format!("partner{declined}@example.com")),
                    )
                    .with_source(LeadSource::widget("partner-forms")),
            );
        }
    }
    println!("pipeline {CAMPAIGN_PIPELINE}: {accepted} accepted, {declined} declined");
    // The partners' leads, at most 50 a request (Kommo's limit for `leads/complex`).
    let created = kommo
        .add_complex_leads_batched(&partner_leads, &BatchOptions::new())
        .await;
    println!("partner leads: {created}");
    if let Some((index, lead)) = created.succeeded().next() {
        println!(
            "  e.g. item {index}: lead {} with contact {:?}",
            lead.id, lead.contact_id
        );
    }
    if !created.is_complete() {
        return Err(format!("partner leads not all created: {created}").into());
    }

    // 4b. Kommo's leads themselves are not typed by this crate: a raw call through the same
    //     client (same token, rate limit, retries and errors) reads one back into a type of our
    //     own, and the raw pager walks `GET /api/v4/leads` page by page.
    let (index, sent) = created
        .succeeded()
        .next()
        .ok_or("no partner lead was created")?;
    let id = sent.id.to_string();
    let lead: LeadRecord = kommo
        .request_segments(Method::GET, &["api", "v4", "leads", &id])
        .query(&serde_json::json!({ "with": "contacts" }))
        .body()
        .await?;
    let contact = lead.embedded.contacts.first().map(|c| c.id);
    let expected_name = partner_leads[index].name.as_deref().unwrap_or_default();
    if lead.id != sent.id
        || lead.name != expected_name
        || lead.pipeline_id != CAMPAIGN_PIPELINE
        || lead.status_id != first_working_status
        || contact != sent.contact_id
    {
        return Err(format!(
            "lead {id} read back does not match what was created: {lead:?}, \
             expected {expected_name:?} in pipeline {CAMPAIGN_PIPELINE}, status \
             {first_working_status}, contact {:?}",
            sent.contact_id
        )
        .into());
    }
    println!(
        "  read back lead {} {:?}: pipeline {}, status {}, contact {contact:?}",
        lead.id, lead.name, lead.pipeline_id, lead.status_id
    );
    let all_leads: Vec<LeadRecord> = kommo
        .request(Method::GET, "/api/v4/leads")
        .pager::<LeadRecord>("leads")
        .page_size(10)
        .typed_items()
        .try_collect()
        .await?;
    let in_campaign = all_leads
        .iter()
        .filter(|l| l.pipeline_id == CAMPAIGN_PIPELINE)
        .count();
    println!(
        "  leads in the account: {}, in pipeline {CAMPAIGN_PIPELINE}: {in_campaign}",
        all_leads.len()
    );
    if in_campaign != partner_leads.len() {
        return Err(format!(
            "paged {in_campaign} leads in pipeline {CAMPAIGN_PIPELINE}, created {}",
            partner_leads.len()
        )
        .into());
    }

    // 5. The summary of the import's date range.
    let summary = kommo
        .get_incoming_leads_summary()
        .filter_created_at_from(FIRST_SENT_AT)
        .filter_created_at_to(FIRST_SENT_AT + 1_000)
        .send()
        .body()
        .await?;
    println!(
        "summary: {} in the range, {} accepted, {} declined, categories {:?}",
        summary.total.unwrap_or_default(),
        summary.accepted.unwrap_or_default(),
        summary.declined.unwrap_or_default(),
        summary
            .categories
            .keys()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );

    // 6. Widgets page by page, then one installed with its required settings.
    let mut pages = kommo.list_widgets_pager(|req| req).page_size(2).pages();
    while let Some(page) = pages.try_next().await? {
        let codes: Vec<&str> = page.widgets().iter().map(|w| w.code.as_str()).collect();
        println!(
            "widgets page {:?}: {codes:?}",
            page.page.unwrap_or_default()
        );
    }
    let settings = WidgetInstallSettings::new()
        .with_text("login", "integration")
        .with_text("password", "a-secret")
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
        "installed {}: active = {:?}",
        widget.code, widget.is_active_in_account
    );

    // 7. The rate-limit branch: the fake answers the next request 429, as Kommo's gateway does.
    fake.inject([lead_intake_fake::Fault::RateLimited]);
    let impatient = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .retry(RetryPolicy::none())
        .build()?;
    match impatient.list_sources().send().or_empty().await {
        Err(e) if e.is_rate_limited() => println!("rate limited, as expected: {e}"),
        Err(e) if e.is_account_blocked() => return Err(e.into()),
        other => return Err(format!("expected a 429: {other:?}").into()),
    }

    // 8. CloseBot: every source of the agency.
    let closebot_sources: Vec<_> = closebot
        .list_sources_pager(|req| req)
        .typed_items()
        .try_collect()
        .await?;
    println!("CloseBot: {} sources", closebot_sources.len());

    let mismatches = fake.violations().len();
    println!("done; every answer of the fake checked against the spec: {mismatches} mismatches");
    if mismatches > 0 {
        return Err("the fake answered off the spec".into());
    }
    Ok(())
}

/// A Kommo lead as this integration reads it with a raw call (`GET /api/v4/leads/{id}` is not
/// typed by the crate): only the fields it uses.
#[derive(Debug, Deserialize)]
struct LeadRecord {
    id: i64,
    #[serde(default)]
    name: String,
    pipeline_id: i64,
    status_id: i64,
    #[serde(rename = "_embedded", default)]
    embedded: LeadRecordEmbedded,
}

#[derive(Debug, Default, Deserialize)]
struct LeadRecordEmbedded {
    /// Present with `?with=contacts`.
    #[serde(default)]
    contacts: Vec<EntityRef>,
}

#[derive(Debug, Deserialize)]
struct EntityRef {
    id: i64,
}

/// The CSV an export from the website would give: one form a line.
fn csv() -> String {
    let mut text = String::from("sent_at,source,name,email,pipeline\n");
    for i in 0..1000 {
        let source = if i % 3 == 0 {
            "partner-forms"
        } else {
            "site-forms"
        };
        let pipeline = match i {
            _ if i % 10 == 9 => NO_SUCH_PIPELINE,
            _ if i % 16 == 0 => CAMPAIGN_PIPELINE,
            _ => PIPELINE,
        };
        let sent_at = FIRST_SENT_AT + i;
        text.push_str(&format!(
            "{sent_at},{source},Visitor {i},visitor{i}@example.com,{pipeline}\n"
        ));
    }
    text
}

/// One CSV line as a form submission; a line that does not parse is left out.
fn form_from_csv(line: &str) -> Option<AddIncomingForm> {
    let mut fields = line.split(',');
    let sent_at: i64 = fields.next()?.parse().ok()?;
    let source = fields.next()?;
    let name = fields.next()?;
    let email = fields.next()?;
    let pipeline: i64 = fields.next()?.parse().ok()?;
    let metadata = FormsMetadata::new()
        .with_form_id("contact")
        .with_form_name("Contact us")
        .with_form_page("https://example.com/contact")
        .with_form_sent_at(sent_at);
    let entities = IncomingLeadEmbeddedInput::new()
        .with_leads(vec![
            LeadInput::new().with_name(format!("Request from {name}")),
        ])
        .with_contacts(vec![
            ContactInput::new()
                .with_name(name)
                .with_other_field("email", email),
        ]);
    Some(
        AddIncomingForm::new(source, "Website", metadata, entities)
            .with_pipeline_id(pipeline)
            .with_created_at(sent_at),
    )
}

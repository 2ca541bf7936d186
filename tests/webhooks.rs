//! `lead_intake::webhooks` and `lead_intake::form` on webhook bodies as Kommo sends them.
//!
//! The bodies follow amoCRM's page "webhooks-format" (`{entity}[{action}][0][field]`, form
//! encoded) and the field names public integrations read from incoming-lead webhooks
//! (`unsorted[add][0][uid]`, `[source_data][...]`, `[data][contacts][0][id]`, `[lead_id]`,
//! `[pipeline_id]`; `unsorted[delete][0][action]=accept|decline` with
//! `[accept_result][leads][0]` / `[decline_result][leads][0]`, `[modified_user_id]`; `account[id]`,
//! `account[subdomain]`, `account[_links][self]`): CONTRIBUTING.md, "Where the vendor documents
//! contradict themselves", rows "webhook ...".

use lead_intake::form::{self, FormError, FormLimits};
use lead_intake::kommo::types::IncomingLeadCategory;
use lead_intake::webhooks::{self, Decision, Event, WebhookError};
use proptest::prelude::*;

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

const ACCOUNT: &str = "account%5Bid%5D=29512438&account%5Bsubdomain%5D=mycompany\
    &account%5B_links%5D%5Bself%5D=https%3A%2F%2Fmycompany.kommo.com";

fn body(parts: &[&str]) -> Vec<u8> {
    let mut out = ACCOUNT.to_string();
    for p in parts {
        out.push('&');
        out.push_str(p);
    }
    out.into_bytes()
}

#[test]
fn an_incoming_chat_lead_is_added_with_its_unknown_fields_kept() {
    let body = body(&[
        "unsorted[add][0][uid]=a1b2c3",
        "unsorted[add][0][source_uid]=chat-77",
        "unsorted[add][0][category]=chats",
        "unsorted[add][0][source]=com.amocrm.amocrmwa",
        "unsorted[add][0][source_data][client][name]=Ann+Lee",
        "unsorted[add][0][source_data][data][0][text]=Hi%2C+I%27d+like+a+quote",
        "unsorted[add][0][date_create]=1686819152",
        "unsorted[add][0][created_at]=1686819152",
        "unsorted[add][0][data][contacts][0][id]=583338",
        "unsorted[add][0][pipeline_id]=6950551",
        "unsorted[add][0][lead_id]=236768",
        "unsorted[add][0][account_id]=29512438",
        "unsorted[add][0][a_future_field]=x",
    ]);
    let hook = webhooks::parse(FORM, &body).unwrap();
    let account = hook.account().unwrap();
    assert_eq!(
        (account.id, account.subdomain.as_str()),
        (29512438, "mycompany")
    );
    assert_eq!(account.link(), Some("https://mycompany.kommo.com"));
    assert!(hook.all_recognized(), "{:?}", hook.unrecognized());
    let [Event::IncomingLeadAdded(lead)] = hook.events() else {
        panic!("{:?}", hook.events())
    };
    assert_eq!(lead.uid, "a1b2c3");
    assert_eq!(lead.category, Some(IncomingLeadCategory::Chats));
    assert_eq!(lead.source_uid.as_deref(), Some("chat-77"));
    assert_eq!(
        (lead.pipeline_id, lead.lead_id, lead.created_at),
        (Some(6950551), Some(236768), Some(1686819152))
    );
    let source = lead.source_data.as_ref().unwrap();
    assert_eq!(source["client"]["name"], "Ann Lee");
    assert_eq!(source["data"][0]["text"], "Hi, I'd like a quote");
    assert_eq!(lead.extra["data"]["contacts"][0]["id"], "583338");
    assert_eq!(lead.extra["a_future_field"], "x");
    assert_eq!(lead.extra["source"], "com.amocrm.amocrmwa");
}

#[test]
fn accept_and_decline_carry_their_results() {
    let body = body(&[
        "unsorted[delete][0][action]=accept",
        "unsorted[delete][0][uid]=u1",
        "unsorted[delete][0][category]=forms",
        "unsorted[delete][0][created_at]=1686819152",
        "unsorted[delete][0][modified_user_id]=8375357",
        "unsorted[delete][0][accept_result][leads][0]=321",
        "unsorted[delete][0][accept_result][contacts][0]=583338",
        "unsorted[delete][1][action]=decline",
        "unsorted[delete][1][uid]=u2",
        "unsorted[delete][1][decline_result][leads][0]=322",
        "unsorted[delete][2][action]=merge",
        "unsorted[delete][2][uid]=u3",
    ]);
    let hook = webhooks::parse(FORM, &body).unwrap();
    let [
        Event::IncomingLeadDeleted(a),
        Event::IncomingLeadDeleted(d),
        Event::IncomingLeadDeleted(o),
    ] = hook.events()
    else {
        panic!("{:?}", hook.events())
    };
    assert_eq!(
        (a.uid.as_str(), &a.action, a.modified_user_id),
        ("u1", &Decision::Accept, Some(8375357))
    );
    let accepted = a.result().unwrap();
    assert_eq!(
        (accepted.leads.as_slice(), accepted.contacts.as_slice()),
        (&[321][..], &[583338][..])
    );
    assert_eq!(d.action, Decision::Decline);
    assert_eq!(d.result().unwrap().leads, [322]);
    assert!(d.accept_result.is_none());
    assert_eq!(o.action, Decision::Other("merge".into()));
    assert!(o.result().is_none());
}

#[test]
fn a_bad_event_is_reported_beside_the_good_ones() {
    let body = body(&[
        "unsorted[add][0][uid]=good",
        "unsorted[add][1][uid]=bad",
        "unsorted[add][1][pipeline_id]=six",
        "unsorted[add][2][uid]=good-too",
        "unsorted[update][0][pipeline_id]=1",
        "unsorted[delete][0][uid]=d&unsorted[delete][0][action]=accept&unsorted[delete][0][accept_result][leads][0]=12x",
    ]);
    let hook = webhooks::parse(FORM, &body).unwrap();
    let uids: Vec<_> = hook
        .events()
        .iter()
        .map(|e| match e {
            Event::IncomingLeadAdded(l) => l.uid.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(uids, ["good", "good-too"]);
    let odd: Vec<_> = hook
        .unrecognized()
        .iter()
        .map(|u| (u.action().unwrap(), u.index().unwrap(), u.path()))
        .collect();
    assert_eq!(
        odd,
        [
            ("add", "1", "pipeline_id"),
            ("update", "0", "."),
            ("delete", "0", "accept_result.leads")
        ]
    );
    assert_eq!(hook.unrecognized()[1].reason(), "missing field `uid`");
    let first = &hook.unrecognized()[0];
    assert_eq!(first.raw()["pipeline_id"], "six");
    // Neither Display nor Debug quotes the value.
    for text in [first.to_string(), format!("{first:?}")] {
        assert!(!text.contains("six"), "{text}");
    }
    assert_eq!(
        first.to_string(),
        "unsorted[add][1] at `pipeline_id`: invalid value: a string, expected an integer in digits"
    );
}

#[test]
fn other_entities_are_kept_raw() {
    let body = body(&[
        "leads[add][0][id]=236768&leads[add][0][status_id]=142",
        "contacts[update][0][id]=583338",
        "unsorted[link][0][uid]=u9",
        "talk=1",
    ]);
    let hook = webhooks::parse(FORM, &body).unwrap();
    let others: Vec<_> = hook
        .events()
        .iter()
        .map(|e| match e {
            Event::Other(o) => (o.entity(), o.action(), o.index(), o.raw().clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(others.len(), 3);
    assert_eq!(
        (others[0].0, others[0].1, others[0].2),
        ("leads", "add", "0")
    );
    assert_eq!(others[0].3["status_id"], "142");
    assert_eq!((others[2].0, others[2].1), ("unsorted", "link"));
    let [talk] = hook.unrecognized() else {
        panic!()
    };
    assert_eq!(
        (talk.entity(), talk.action(), talk.path()),
        ("talk", None, ".")
    );
}

#[test]
fn the_content_type_is_checked() {
    let body = body(&["unsorted[add][0][uid]=x"]);
    assert_eq!(
        webhooks::parse(None, &body).unwrap_err(),
        WebhookError::MissingContentType
    );
    for bad in [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded; charset=windows-1251",
    ] {
        let err = webhooks::parse(Some(bad), &body).unwrap_err();
        assert_eq!(err, WebhookError::ContentType(bad.into()), "{bad}");
    }
    for good in [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded;charset=\"utf-8\"",
    ] {
        assert!(webhooks::parse(Some(good), &body).is_ok(), "{good}");
    }
}

#[test]
fn a_bad_account_is_an_error_naming_the_field() {
    let err = webhooks::parse(FORM, b"account[id]=abc&account[subdomain]=x").unwrap_err();
    assert!(
        matches!(&err, WebhookError::Account { path, .. } if path == "id"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("abc"), "{err}");
}

#[test]
fn every_limit_is_an_error_saying_which_and_where() {
    let limits = FormLimits::new()
        .with_max_fields(3)
        .with_max_depth(3)
        .with_max_bytes(40);
    let err = form::parse_with(b"a=1&b=2&&c=3&d=4", &limits).unwrap_err();
    assert_eq!(
        err,
        FormError::TooManyFields {
            limit: 3,
            offset: 13
        }
    );
    let err = form::parse_with(b"a[1][2][3]=x&b[1][2][3][4]=y", &limits).unwrap_err();
    assert_eq!(
        err,
        FormError::TooDeep {
            limit: 3,
            field: 2,
            offset: 13,
            name: "b[1][2][3][4]".into()
        }
    );
    let err = form::parse_with(&[b'a'; 41], &limits).unwrap_err();
    assert_eq!(err, FormError::TooLarge { limit: 40, len: 41 });
    // PHP's own defaults.
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}=1")).collect();
    assert!(matches!(
        form::parse(many.join("&").as_bytes()),
        Err(FormError::TooManyFields { limit: 1000, .. })
    ));
    assert!(form::parse(many[..1000].join("&").as_bytes()).is_ok());
    let deep = |n: usize| format!("a{}=1", "[x]".repeat(n));
    assert!(form::parse(deep(64).as_bytes()).is_ok());
    assert!(matches!(
        form::parse(deep(65).as_bytes()),
        Err(FormError::TooDeep { limit: 64, .. })
    ));
    // Through the webhook reader.
    let err = webhooks::parse_with(FORM, b"a=1&b=2&c=3&d=4", &limits).unwrap_err();
    assert_eq!(
        err,
        WebhookError::Form(FormError::TooManyFields {
            limit: 3,
            offset: 12
        })
    );
}

#[test]
fn invalid_utf8_is_an_error_saying_where() {
    let err = form::parse(b"a=1&b=%FF%FE").unwrap_err();
    assert_eq!(
        err,
        FormError::InvalidUtf8 {
            part: "value",
            field: 2,
            offset: 4
        }
    );
    let err = form::parse(b"\xff=1").unwrap_err();
    assert_eq!(
        err,
        FormError::InvalidUtf8 {
            part: "name",
            field: 1,
            offset: 0
        }
    );
}

#[test]
fn a_truncated_body_keeps_what_came_and_fails_nothing_else() {
    let full = body(&[
        "unsorted[delete][0][action]=accept",
        "unsorted[delete][0][uid]=u1",
        "unsorted[delete][0][accept_result][leads][0]=321",
    ]);
    for cut in 0..full.len() {
        // Any cut is read without a panic; a cut inside an escape or a bracket is still a form.
        let _ = webhooks::parse(FORM, &full[..cut]).map(|h| format!("{h:?}"));
    }
    // Cut inside the last bracket: the name ends early, as PHP reads it (`...[leads` is not
    // closed, so the field is `accept_result` itself, a string): reported, not lost.
    let cut = full.len() - "s][0]=321".len();
    let hook = webhooks::parse(FORM, &full[..cut]).unwrap();
    assert!(hook.events().is_empty());
    assert_eq!(hook.unrecognized()[0].path(), "accept_result");
    // Cut before the uid's value ends: a typed event without its lead ids.
    let cut = full.len() - "&unsorted[delete][0][accept_result][leads][0]=321".len();
    let hook = webhooks::parse(FORM, &full[..cut]).unwrap();
    let [Event::IncomingLeadDeleted(d)] = hook.events() else {
        panic!("{hook:?}")
    };
    assert!(d.result().is_none());
    // Cut before the uid: the event is unrecognized, not lost.
    let cut = full.len()
        - "&unsorted[delete][0][uid]=u1&unsorted[delete][0][accept_result][leads][0]=321".len();
    let hook = webhooks::parse(FORM, &full[..cut]).unwrap();
    assert_eq!(hook.unrecognized()[0].reason(), "missing field `uid`");
}

fn form_value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("&".to_string()),
            Just("=".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("[]".to_string()),
            Just("%".to_string()),
            Just("%5B".to_string()),
            Just("%26".to_string()),
            Just("%2541".to_string()),
            Just("%FF".to_string()),
            Just("+".to_string()),
            Just(".".to_string()),
            Just("unsorted".to_string()),
            Just("account".to_string()),
            "[a-z0-9]{1,3}",
            any::<char>().prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes: no panic, whatever the limits.
    #[test]
    fn the_readers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), fields in 0usize..8, depth in 0usize..4) {
        let limits = FormLimits::new().with_max_fields(fields).with_max_depth(depth);
        let _ = form::parse_with(&bytes, &limits).map(|f| f.to_json());
        let _ = webhooks::parse_with(FORM, &bytes, &limits).map(|h| format!("{h:?}"));
    }

    /// Bracket-heavy text: no panic, and a map the parser built, written back as a form, reads
    /// back as the same map.
    #[test]
    fn a_parsed_map_round_trips(text in form_value()) {
        let _ = webhooks::parse(FORM, text.as_bytes());
        if let Ok(parsed) = form::parse(text.as_bytes()) {
            let again = form::parse(parsed.root().to_form().as_bytes()).unwrap();
            prop_assert_eq!(again.root(), parsed.root());
        }
    }
}

/// The `forms` fuzz target's body (`lead_intake::fuzzing::forms`, FUZZING.md) on its seeds
/// (`fuzz/seeds/forms/`), any regressions (`fuzz/regressions/forms/`), and every cut and a
/// bit-flipped copy of each: no panic, and parsed maps round-trip.
#[test]
fn the_forms_fuzz_body_survives_its_seeds_and_their_variants() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    for dir in ["seeds/forms", "regressions/forms"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            inputs.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    assert!(
        inputs.len() >= 5,
        "the seeds are missing: {}",
        root.display()
    );
    for input in &inputs {
        for cut in 0..=input.len() {
            lead_intake::fuzzing::forms(&input[..cut]);
        }
        for (i, _) in input.iter().enumerate().step_by(3) {
            let mut flipped = input.clone();
            flipped[i] ^= 0x25;
            lead_intake::fuzzing::forms(&flipped);
        }
    }
}

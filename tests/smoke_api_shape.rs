//! Compile-only checks of the public API's shape: a regeneration that renames something the
//! README relies on breaks this build first.
#![allow(dead_code)]
use lead_intake::prelude::*;

async fn kommo_shape(client: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    let _sources = client.list_sources().send().or_empty().await?;
    client.delete_source().id(1).send().body().await?;
    Ok(())
}

async fn boxed(client: lead_intake::closebot::Client) -> Result<(), Box<dyn std::error::Error>> {
    let _page = client.list_sources().page(0).send().body().await?;
    Ok(())
}

#[test]
fn futures_are_send() {
    fn is_send<T: Send>(_: T) {}
    let client = lead_intake::kommo::Client::from_subdomain("x", "t").unwrap();
    is_send(async move { client.list_widgets().send().or_empty().await });
}

/// The futures of `body()` and `or_empty()` box the generated call, so awaiting many calls in
/// one `async fn` stays far from a thread's stack (debug builds do not overlap a future's
/// states well). Holding the call inline made `or_empty()`'s future 20 KB and overflowed the
/// stack of `tests/fake_conformance.rs`, which awaits every operation in turn.
#[test]
fn a_call_future_is_small() {
    let client = lead_intake::kommo::Client::builder()
        .base_url("http://127.0.0.1:1")
        .token("t")
        .build()
        .unwrap();
    let list = client.list_incoming_leads().send().or_empty();
    let one = client.get_widget().widget_code("x").send().body();
    let sizes = (std::mem::size_of_val(&list), std::mem::size_of_val(&one));
    assert!(sizes.0 < 4096 && sizes.1 < 4096, "{sizes:?} bytes");
}

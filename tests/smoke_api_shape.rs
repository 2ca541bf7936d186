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

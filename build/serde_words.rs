//! Reads the `#[serde(..)]` attributes of generated code: shared by build.rs (which adds
//! attributes to generated fields) and `cargo xtask surface` (which shows wire names), so both
//! read them alike.

/// The words of `#[serde(..)]` attributes, each with its string value if it has one:
/// `#[serde(default, rename = "x")]` is `[("default", None), ("rename", Some("x"))]`.
pub fn serde_words(attrs: &[syn::Attribute]) -> Vec<(String, Option<String>)> {
    type Words = syn::punctuated::Punctuated<syn::Meta, syn::Token![,]>;
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|a| a.parse_args_with(Words::parse_terminated).ok())
        .flatten()
        .map(|meta| {
            let word = meta
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let value = match meta {
                syn::Meta::NameValue(syn::MetaNameValue {
                    value:
                        syn::Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(s),
                            ..
                        }),
                    ..
                }) => Some(s.value()),
                _ => None,
            };
            (word, value)
        })
        .collect()
}

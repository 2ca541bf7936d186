//! Generates the typed clients from `openapi/*.yaml` with progenitor.
//!
//! The YAML stays true to the wire (hal+json, problem+json, 204s, `default` errors, open enums).
//! progenitor 0.15.1 cannot take all of that, so this script adapts an in-memory copy
//! mechanically before generation (see `adapt`); the files themselves are never edited.
//! A spec progenitor cannot handle stops the build with a message naming the file and the problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use serde_json::{Map, Value};
use syn::visit_mut::{self, VisitMut};

// Shared with `cargo xtask surface`.
#[path = "build/serde_words.rs"]
mod serde_words;
use serde_words::serde_words;

/// (spec file stem, the Rust module the generated code is included in).
const APIS: &[&str] = &["kommo", "closebot"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    for api in APIS {
        let spec_path = manifest_dir.join("openapi").join(format!("{api}.yaml"));
        println!("cargo:rerun-if-changed={}", spec_path.display());
        let shown = format!("openapi/{api}.yaml");
        match generate(api, &spec_path, &shown) {
            Ok(code) => {
                let out = out_dir.join(format!("{api}.rs"));
                if let Err(e) = std::fs::write(&out, code) {
                    fail(&shown, &format!("cannot write {}: {e}", out.display()));
                }
            }
            Err(message) => fail(&shown, &message),
        }
    }
    let out = out_dir.join("hooks_check.md");
    match hooks_check() {
        Ok(text) => {
            if let Err(e) = std::fs::write(&out, text) {
                fail("build.rs", &format!("cannot write {}: {e}", out.display()));
            }
        }
        Err(message) => fail("build.rs's hooks probe", &message),
    }
}

/// Whether a generated client must have a `ClientHooks` impl. `Expected`: a client whose impl
/// was lost (it would send requests without credentials, limiter or retries: progenitor's
/// `Optional` gives it empty hooks) does not compile. The doctests of `hooks_check` prove it.
const HOOKS: progenitor::HooksMode = progenitor::HooksMode::Expected;

/// The text of the doctests that prove [`HOOKS`] (included by src/lib.rs in a hidden module):
/// a one-operation client generated with [`HOOKS`] compiles with a `ClientHooks` impl and fails
/// to compile without one, while the same client generated with progenitor's default
/// (`Optional`) compiles without one (the check would pass unnoticed under it).
fn hooks_check() -> Result<String, String> {
    let spec = serde_json::json!({
        "openapi": "3.0.3",
        "info": { "title": "probe", "version": "1" },
        "paths": { "/ping": { "get": {
            "operationId": "ping",
            "responses": { "200": { "description": "ok",
                "content": { "application/json": { "schema": { "type": "string" } } } } }
        } } }
    });
    let spec: openapiv3::OpenAPI =
        serde_json::from_value(spec).map_err(|e| format!("the probe spec: {e}"))?;
    let code = |hooks: progenitor::HooksMode| -> Result<String, String> {
        let mut settings = progenitor::GenerationSettings::new();
        settings
            .with_interface(progenitor::InterfaceStyle::Builder)
            .with_hooks(hooks);
        let tokens = progenitor::Generator::new(&settings)
            .generate_tokens(&spec)
            .map_err(|e| e.to_string())?;
        let file: syn::File = syn::parse2(tokens).map_err(|e| e.to_string())?;
        // Every line hidden (`# `): the doctest compiles it, the page does not show it.
        Ok(prettyplease::unparse(&file)
            .lines()
            .map(|line| format!("# {line}\n"))
            .collect())
    };
    let (expected, optional) = (code(HOOKS)?, code(progenitor::HooksMode::Optional)?);
    let with_impl = "impl progenitor_client::ClientHooks<()> for Client {}\n";
    Ok(format!(
        "A client generated with build.rs's hooks setting and a `ClientHooks` impl compiles:\n\n\
         ```\n{expected}{with_impl}fn main() {{}}\n```\n\n\
         Without the impl it does not (E0277: `Client: ClientHooks<()>` is not satisfied):\n\n\
         ```compile_fail,E0277\n{expected}fn main() {{}}\n```\n\n\
         progenitor's default (`HooksMode::Optional`) would compile it without the impl:\n\n\
         ```\n{optional}fn main() {{}}\n```\n"
    ))
}

fn fail(spec: &str, message: &str) -> ! {
    eprintln!("error: cannot generate a client from {spec}:");
    for line in message.lines() {
        eprintln!("  {line}");
    }
    std::process::exit(1);
}

/// Schemas whose Rust type is written by hand in `src/{api}/` and re-exported from its
/// `types` module: (api, schema name).
/// - kommo `WidgetSettings`: its values may be credentials (`pass` fields), so its `Debug`
///   shows the keys only; it also reads PHP's empty `[]` as no settings.
/// - kommo `IntOrString`: a number sent as an integer or a string, read plainly (`as_str`,
///   `as_i64`, `Display`) rather than as an untagged enum.
/// - kommo `Amount`: a number sent as an integer when it is one (a lead's price).
/// - kommo `WidgetRating`: a string with a decimal comma or a number, read plainly (`as_f64`).
/// - kommo `IncomingLead`: one struct whose `metadata` is chosen by `category`, decoded without
///   buffering the lead and trying each `oneOf` branch (`src/kommo/leads.rs`).
const HAND_WRITTEN: &[(&str, &str)] = &[
    ("kommo", "WidgetSettings"),
    ("kommo", "IntOrString"),
    ("kommo", "IncomingLead"),
    ("kommo", "WidgetRating"),
    ("kommo", "Amount"),
];

/// Schemas left out of the generated code: the branches of a hand-written `oneOf`, which no
/// other schema uses. They stay in the spec (and the export) for other languages.
const LEFT_OUT: &[(&str, &str)] = &[
    ("kommo", "SipIncomingLead"),
    ("kommo", "FormsIncomingLead"),
    ("kommo", "ChatsIncomingLead"),
    ("kommo", "MailIncomingLead"),
    ("kommo", "OtherIncomingLead"),
];

/// The items of every list answer: (api, schema, array property). Each becomes
/// `crate::list::Items<Item>`, where an item that does not decode is kept as an unrecognized
/// item instead of failing the call (`src/list.rs`).
const LISTS: &[(&str, &str, &str)] = &[
    ("kommo", "SourceListEmbedded", "sources"),
    ("kommo", "WidgetListEmbedded", "widgets"),
    ("kommo", "IncomingLeadListEmbedded", "unsorted"),
    ("kommo", "CreatedIncomingLeadListEmbedded", "unsorted"),
    ("kommo", "PipelineListEmbedded", "pipelines"),
    ("kommo", "PipelineEmbedded", "statuses"),
    ("closebot", "SourcePage", "results"),
];

/// Maps whose keys are a known type, which OpenAPI 3.0 cannot say (no `propertyNames`):
/// (api, the map's value type, the key type). `HashMap<String, V>` becomes `HashMap<K, V>`
/// wherever the generated code names it (the struct, its builder and the builder's setter).
/// - kommo `CategorySummary`: the summary's counts per category, keyed by
///   `IncomingLeadCategory` (an open enum: a category Kommo adds is `Other`).
const MAP_KEYS: &[(&str, &str, &str)] = &[(
    "kommo",
    "CategorySummary",
    "crate::kommo::types::IncomingLeadCategory",
)];

/// Applies `MAP_KEYS` to the generated syntax tree.
fn map_keys(api: &str, file: &mut syn::File) -> Result<(), String> {
    for (_, value, key) in MAP_KEYS.iter().filter(|(in_api, ..)| *in_api == api) {
        let key: syn::Type = syn::parse_str(key)
            .map_err(|e| format!("build.rs MAP_KEYS: bad key type {key}: {e}"))?;
        let mut keys = MapKey {
            value,
            key,
            found: false,
        };
        keys.visit_file_mut(file);
        if !keys.found {
            return Err(format!(
                "build.rs MAP_KEYS: no `HashMap<String, {value}>` in the code"
            ));
        }
    }
    Ok(())
}

/// Re-keys every `HashMap<::std::string::String, V>` whose `V` is `value`, named plainly in
/// the types module or as `super::V` in its builder module.
struct MapKey<'a> {
    value: &'a str,
    key: syn::Type,
    found: bool,
}

impl VisitMut for MapKey<'_> {
    fn visit_path_segment_mut(&mut self, segment: &mut syn::PathSegment) {
        if segment.ident == "HashMap"
            && let syn::PathArguments::AngleBracketed(args) = &mut segment.arguments
            && let mut args = args.args.iter_mut()
            && let (
                Some(syn::GenericArgument::Type(key)),
                Some(syn::GenericArgument::Type(value)),
                None,
            ) = (args.next(), args.next(), args.next())
            && is_path(key, &["", "std", "string", "String"])
            && (is_path(value, &[self.value]) || is_path(value, &["super", self.value]))
        {
            *key = self.key.clone();
            self.found = true;
        }
        visit_mut::visit_path_segment_mut(self, segment);
    }
}

/// Whether `ty` is exactly this path (`""` first: a leading `::`), without generic arguments.
fn is_path(ty: &syn::Type, segments: &[&str]) -> bool {
    let syn::Type::Path(syn::TypePath {
        qself: None, path, ..
    }) = ty
    else {
        return false;
    };
    let (global, segments) = match segments.split_first() {
        Some((&"", rest)) => (true, rest),
        _ => (false, segments),
    };
    path.leading_colon.is_some() == global
        && path.segments.len() == segments.len()
        && path
            .segments
            .iter()
            .zip(segments)
            .all(|(s, name)| s.ident == name && s.arguments.is_none())
}

/// progenitor's operation builders start each required parameter as
/// `Err("uid was not initialized")`, which names no operation. Each becomes
/// `"uid was not initialized in accept_incoming_lead"` (the client method), which
/// `error::in_user_terms` turns into a sentence naming both.
fn name_operations_in_builder_errors(file: &mut syn::File) {
    struct Builders;
    impl VisitMut for Builders {
        fn visit_item_impl_mut(&mut self, item: &mut syn::ItemImpl) {
            // The builders' `impl<'a> ListWidgets<'a>`.
            let one_lifetime = matches!(
                item.generics.params.iter().collect::<Vec<_>>()[..],
                [syn::GenericParam::Lifetime(l)] if l.lifetime.ident == "a"
            );
            let builder = match (&item.trait_, &*item.self_ty) {
                (None, syn::Type::Path(ty)) => ty.path.segments.first().map(|s| &s.ident),
                _ => None,
            };
            if let (true, Some(builder)) = (one_lifetime, builder) {
                let mut names = NameOperation(snake(&builder.to_string()));
                names.visit_item_impl_mut(item);
            } else {
                visit_mut::visit_item_impl_mut(self, item);
            }
        }
    }
    struct NameOperation(String);
    impl VisitMut for NameOperation {
        fn visit_lit_str_mut(&mut self, lit: &mut syn::LitStr) {
            let value = lit.value();
            if value.ends_with(" was not initialized") {
                *lit = syn::LitStr::new(&format!("{value} in {}", self.0), lit.span());
            }
        }
    }
    Builders.visit_file_mut(file);
}

/// progenitor's `encode_path` leaves `.` and `\` as they are, and the URL parser then resolves
/// them, so a path parameter could move a request to another endpoint (`..\account`). Every
/// `encode_path(&x.to_string())` in a builder's `format!` of its URL becomes
/// `crate::transport::path_segment("operation", "x", &x.to_string())?`, which percent-encodes
/// all but the unreserved characters and refuses what cannot be one segment (`src/segment.rs`).
/// A call of another shape, or one left anywhere in the code, stops the build.
fn one_segment_path_parameters(file: &mut syn::File) -> Result<(), String> {
    struct Builders(Result<(), String>);
    impl VisitMut for Builders {
        fn visit_item_impl_mut(&mut self, item: &mut syn::ItemImpl) {
            let builder = match (&item.trait_, &*item.self_ty) {
                (None, syn::Type::Path(ty)) => ty.path.segments.first().map(|s| &s.ident),
                _ => None,
            };
            if let Some(builder) = builder {
                let mut urls = Urls {
                    operation: snake(&builder.to_string()),
                    result: Ok(()),
                };
                urls.visit_item_impl_mut(item);
                if self.0.is_ok() {
                    self.0 = urls.result;
                }
            }
        }
    }
    struct Urls {
        operation: String,
        result: Result<(), String>,
    }
    impl VisitMut for Urls {
        fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
            if !mac.path.is_ident("format") || !mac.tokens.to_string().contains("encode_path") {
                return;
            }
            let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
            let mut args = match syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
                Ok(args) => args,
                Err(e) => {
                    self.result = Err(format!(
                        "build.rs one_segment_path_parameters: a `format!` in {} does not parse: {e}",
                        self.operation
                    ));
                    return;
                }
            };
            for arg in args.iter_mut() {
                let syn::Expr::Call(call) = arg else { continue };
                if !matches!(&*call.func, syn::Expr::Path(f) if f.path.is_ident("encode_path")) {
                    continue;
                }
                let Some(parameter) = path_parameter(call) else {
                    self.result = Err(format!(
                        "build.rs one_segment_path_parameters: `{}` in {} is not `encode_path(&x.to_string())`",
                        quote!(#call),
                        self.operation
                    ));
                    return;
                };
                let operation = &self.operation;
                let name = parameter.to_string();
                *arg = syn::parse_quote! {
                    crate::transport::path_segment(#operation, #name, &#parameter.to_string())?
                };
            }
            mac.tokens = quote!(#args);
        }
    }
    /// The `x` of `encode_path(&x.to_string())`.
    fn path_parameter(call: &syn::ExprCall) -> Option<syn::Ident> {
        let mut args = call.args.iter();
        let (Some(syn::Expr::Reference(arg)), None) = (args.next(), args.next()) else {
            return None;
        };
        let syn::Expr::MethodCall(to_string) = &*arg.expr else {
            return None;
        };
        let syn::Expr::Path(receiver) = &*to_string.receiver else {
            return None;
        };
        (to_string.method == "to_string" && to_string.args.is_empty())
            .then(|| receiver.path.get_ident().cloned())
            .flatten()
    }
    let mut builders = Builders(Ok(()));
    builders.visit_file_mut(file);
    builders.0?;
    // Nothing may call progenitor's encoder any more (its `use` stays, unused).
    let left = quote!(#file).to_string().matches("encode_path (").count();
    if left > 0 {
        return Err(format!(
            "build.rs one_segment_path_parameters: {left} call(s) of progenitor's `encode_path` left outside a builder's URL"
        ));
    }
    Ok(())
}

/// `AcceptIncomingLead` as `accept_incoming_lead`.
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The schema that stands for PHP's `[]` beside an object (`oneOf: [<object>, PhpEmptyArray]`):
/// PHP's `json_encode` sends an empty map as an empty array.
/// `PhpEmptyArrayOrNull` is the same `[]`, or null: the branch that carries the null where the
/// API sends null too, so that the object schema beside it need not be nullable (a nullable
/// component is a class of its own, `XType0`, in openapi-python-client).
const PHP_EMPTY_ARRAYS: &[&str] = &["PhpEmptyArray", "PhpEmptyArrayOrNull"];

fn generate(api: &str, path: &Path, shown: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut doc: Value =
        serde_norway::from_str(&text).map_err(|e| format!("not valid YAML: {e}"))?;
    let module = format!("crate::{api}");
    let module_ident = format_ident!("{api}");
    let extensible = adapt(&mut doc)?;
    // Before `LEFT_OUT`: the hand-written `IncomingLead` reaches its metadata types through the
    // branches left out.
    keep_other_fields(&mut doc);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (in_api, name) in LEFT_OUT {
            if *in_api == api {
                schemas.remove(*name);
            }
        }
    }
    plain_strings(&mut doc);
    inline_php_empty_wrappers(&mut doc);
    php_empty_aliases(&mut doc);
    component_nullability_to_fields(&mut doc);
    let php_empty = collapse_php_empty(&mut doc);
    let lists = list_items(api, &mut doc)?;
    let success_types = success_types(&doc);
    let request_schemas = request_schemas(&doc);
    let spec: openapiv3::OpenAPI = serde_json::from_value(doc)
        .map_err(|e| format!("not a valid OpenAPI 3.0 document: {e}"))?;

    let mut settings = progenitor::GenerationSettings::new();
    settings
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged)
        .with_hooks(HOOKS)
        .with_inner_type(quote!(crate::#module_ident::ClientState))
        .with_derive("PartialEq");
    // JSON Schema for every type only with the `schemars` feature: the derive and schemars cost
    // every build (BENCHMARKS.md §5).
    if with_schemars() {
        settings.with_derive("schemars::JsonSchema");
    }
    for name in extensible.keys() {
        settings.with_replacement(name, format!("{module}::types::{name}"), std::iter::empty());
    }
    for (in_api, name) in HAND_WRITTEN {
        if *in_api == api {
            settings.with_replacement(name, format!("{module}::types::{name}"), std::iter::empty());
        }
    }
    for (name, item) in &lists {
        settings.with_replacement(
            name,
            format!("crate::list::Items<{module}::types::{item}>"),
            // Lets the field be `Items<T>` with `#[serde(default)]` rather than an `Option`.
            std::iter::once(progenitor::TypeImpl::Default),
        );
    }
    // Their list is required in progenitor's copy (see `list_items`), which costs them the
    // derived `Default`; every field still has one.
    for (in_api, schema, _) in LISTS {
        if *in_api == api {
            settings.with_patch(
                schema,
                progenitor::TypePatch::default().with_derive("Default"),
            );
        }
    }
    for name in secret_schema_names(&spec) {
        settings.with_replacement(name, "crate::Secret", std::iter::empty());
    }

    let mut generator = progenitor::Generator::new(&settings);
    // progenitor reports some limits by panicking; turn that into a message naming the spec.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let tokens = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        generator.generate_tokens(&spec)
    }));
    std::panic::set_hook(previous_hook);
    let tokens = match tokens {
        Ok(Ok(tokens)) => tokens,
        Ok(Err(e)) => return Err(format!("progenitor refused it: {e}")),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown reason".into());
            return Err(format!("progenitor panicked: {why}"));
        }
    };
    let mut file: syn::File = syn::parse2(tokens)
        .map_err(|e| format!("progenitor produced code that does not parse: {e}"))?;
    map_keys(api, &mut file)?;
    name_operations_in_builder_errors(&mut file);
    one_segment_path_parameters(&mut file)?;
    answers_through_list_from_slice(&mut file)?;
    request_constructors(&mut file, &request_schemas)?;
    let mut attributes: Vec<(String, String, FieldAttr)> = php_empty
        .into_iter()
        .map(|(s, p)| (s, p, FieldAttr::PhpEmpty))
        .collect();
    for (in_api, schema, prop) in LISTS {
        if *in_api == api {
            attributes.push((schema.to_string(), prop.to_string(), FieldAttr::Default));
        }
    }
    field_attributes(&mut file, &attributes)?;
    default_for_open_structs(&mut file)?;
    open_deserialize(&mut file)?;
    file.items.push(
        syn::parse2(extensible_enums(&extensible))
            .map_err(|e| format!("build.rs made open enums that do not parse: {e}"))?,
    );
    for tokens in api_response_impls(&module_ident, &success_types) {
        file.items.push(
            syn::parse2(tokens).map_err(|e| {
                format!("build.rs made an ApiResponse impl that does not parse: {e}")
            })?,
        );
    }
    // The one piece of text: a comment has no place in a syntax tree.
    Ok(format!(
        "// Generated by build.rs from {shown}. Do not edit.\n\n{}",
        prettyplease::unparse(&file)
    ))
}

/// Whether the crate is built with its `schemars` feature (`JsonSchema` on every type).
fn with_schemars() -> bool {
    std::env::var_os("CARGO_FEATURE_SCHEMARS").is_some()
}

/// Every success body is decoded by `crate::list::response_value` (`lead_intake::list::from_slice`:
/// lists in one pass when every item fits) instead of progenitor's `ResponseValue::from_response`
/// (`serde_json::from_slice`), with the same result and the same errors. Stops the build when the
/// generated code has no such call (progenitor changed how it decodes).
fn answers_through_list_from_slice(file: &mut syn::File) -> Result<(), String> {
    struct Calls(usize);
    impl VisitMut for Calls {
        fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
            visit_mut::visit_expr_call_mut(self, call);
            if let syn::Expr::Path(func) = &*call.func {
                let names: Vec<String> = func
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                if names == ["ResponseValue", "from_response"] {
                    *call.func = syn::parse_quote!(crate::list::response_value);
                    self.0 += 1;
                }
            }
        }
    }
    let mut calls = Calls(0);
    calls.visit_file_mut(file);
    if calls.0 == 0 {
        return Err(
            "no ResponseValue::from_response call to decode answers with: progenitor changed"
                .into(),
        );
    }
    Ok(())
}

/// The success body types of every operation: component schema names, and `()` for body-less
/// successes. Called after `adapt`, so each operation has one success response left.
fn success_types(doc: &Value) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    let paths = doc.get("paths").and_then(Value::as_object);
    for item in paths.into_iter().flat_map(|p| p.values()) {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item {
            if !is_method(method) {
                continue;
            }
            for response in op
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|r| r.values())
            {
                match response
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                {
                    Some(r) => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            out.insert(format!("types::{name}"));
                        }
                    }
                    None if response.get("content").is_none() => {
                        out.insert("()".to_string());
                    }
                    None => {}
                }
            }
        }
    }
    out.into_iter().collect()
}

/// `ApiResponse` impls: they tell `ResponseExt` which problem document the API's errors carry.
/// Named through the API's public `types` module, which also holds the hand-written types.
fn api_response_impls(module: &syn::Ident, types: &[String]) -> Vec<TokenStream> {
    types
        .iter()
        .map(|ty| {
            let ty = match ty.strip_prefix("types::") {
                Some(name) => {
                    let name = format_ident!("{name}");
                    quote!(crate::#module::types::#name)
                }
                None => quote!(()),
            };
            quote! {
                impl crate::error::ApiResponse for #ty {
                    type Problem = types::Problem;
                }
            }
        })
        .collect()
}

/// Names of component schemas that hold secrets (`format: password`): they become
/// `crate::Secret`, whose `Debug` never shows the value.
fn secret_schema_names(spec: &openapiv3::OpenAPI) -> Vec<String> {
    let Some(components) = &spec.components else {
        return Vec::new();
    };
    components
        .schemas
        .iter()
        .filter_map(|(name, schema)| {
            let schema = schema.as_item()?;
            match &schema.schema_kind {
                openapiv3::SchemaKind::Type(openapiv3::Type::String(s))
                    if matches!(
                        &s.format,
                        openapiv3::VariantOrUnknownOrEmpty::Item(openapiv3::StringFormat::Password)
                    ) =>
                {
                    Some(name.clone())
                }
                _ => None,
            }
        })
        .collect()
}

/// Adapts the document for progenitor's limits, in place. Returns the component schemas that
/// carry `x-extensible-enum` (open enums: known values plus any other string).
fn adapt(doc: &mut Value) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut problems = Vec::new();
    let shared_responses = doc
        .pointer("/components/responses")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if !is_method(method) {
                    continue;
                }
                let id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .unwrap_or("(no operationId)")
                    .to_string();
                let here = format!("{} {path} ({id})", method.to_uppercase());
                if let Err(e) = adapt_operation(op, &shared_responses) {
                    problems.push(format!("{here}: {e}"));
                }
            }
        }
    }
    if let Some(responses) = doc
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        for response in responses.values_mut() {
            json_media_only(response);
        }
    }
    let mut extensible = BTreeMap::new();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            strip_not(schema);
            if let Some(values) = schema.get("x-extensible-enum") {
                let values: Vec<String> = values
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                if values.is_empty() {
                    problems.push(format!(
                        "components/schemas/{name}: x-extensible-enum must be a list of strings"
                    ));
                }
                extensible.insert(name.clone(), values);
            }
        }
    }
    if problems.is_empty() {
        Ok(extensible)
    } else {
        Err(problems.join("\n"))
    }
}

fn is_method(key: &str) -> bool {
    matches!(
        key,
        "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
    )
}

fn adapt_operation(op: &mut Value, shared_responses: &Value) -> Result<(), String> {
    if let Some(body) = op.get_mut("requestBody") {
        rename_json_media(body);
    }
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        flatten_deep_objects(params)?;
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    // Error responses are left to the hand-written layer (`crate::error`): a documented error
    // status can still arrive with a non-JSON body (Kommo's HTML 403 and 429 pages), and
    // progenitor would then report a decoding failure that has lost the status. Without them,
    // every error reaches the layer as `UnexpectedResponse`, with status, headers and body.
    responses.retain(|code, _| code.starts_with('2'));
    for response in responses.values_mut() {
        // Inline `#/components/responses/X` so the checks below see the real content.
        let target = response
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/responses/"))
            .and_then(|name| shared_responses.get(name));
        if let Some(target) = target {
            *response = target.clone();
        }
    }
    for response in responses.values_mut() {
        json_media_only(response);
    }
    // One success type per operation: drop a body-less 2xx beside a typed one. The hand-written
    // layer turns that 204 (an empty list) into an empty collection.
    let has_typed_success = responses.values().any(|r| r.get("content").is_some());
    if has_typed_success {
        responses.retain(|_, r| r.get("content").is_some());
    }
    if responses.len() > 1 {
        return Err(format!(
            "more than one success response ({}); progenitor takes one success type",
            responses
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// progenitor treats only exactly `application/json` as JSON, and its decoder never checks the
/// response Content-Type: rename `*/*+json` to `application/json` and drop other media types.
fn json_media_only(response: &mut Value) {
    rename_json_media(response);
    if let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) {
        content.retain(|media, _| media == "application/json");
        if content.is_empty() {
            response.as_object_mut().map(|r| r.remove("content"));
        }
    }
}

fn rename_json_media(holder: &mut Value) {
    let Some(content) = holder.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    let keys: Vec<String> = content.keys().cloned().collect();
    for key in keys {
        let essence = key.split(';').next().unwrap_or("").trim();
        if essence != "application/json"
            && essence.ends_with("+json")
            && let Some(v) = content.remove(&key)
        {
            content.entry("application/json").or_insert(v);
        }
    }
}

/// `style: deepObject` is refused by progenitor, and object query parameters lose their prefix.
/// Flatten an object parameter `p` with properties `a`, `b` into literal `p[a]`, `p[b]`.
fn flatten_deep_objects(params: &mut Vec<Value>) -> Result<(), String> {
    let mut out = Vec::with_capacity(params.len());
    for param in params.drain(..) {
        if param.get("style").and_then(Value::as_str) != Some("deepObject") {
            out.push(param);
            continue;
        }
        let name = param
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let props = param
            .pointer("/schema/properties")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("deepObject parameter {name} needs an inline object schema"))?;
        for (prop, schema) in props {
            let mut flat = Map::new();
            flat.insert("name".into(), Value::String(format!("{name}[{prop}]")));
            flat.insert("in".into(), Value::String("query".into()));
            flat.insert("schema".into(), schema.clone());
            if let Some(d) = schema.get("description") {
                flat.insert("description".into(), d.clone());
            }
            out.push(Value::Object(flat));
        }
    }
    *params = out;
    Ok(())
}

/// typify turns `not` into restricted newtypes; the generated code decodes leniently instead
/// (the untagged enum's order already tries the specific variants first).
fn strip_not(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("not");
            for v in map.values_mut() {
                strip_not(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_not),
        _ => {}
    }
}

/// Open enums for `x-extensible-enum` schemas: the known values as variants, anything else kept
/// in `Other(String)` so a value the server adds later never fails decoding. In a module of
/// their own; the API module re-exports them inside `types`.
fn extensible_enums(enums: &BTreeMap<String, Vec<String>>) -> TokenStream {
    let enums = enums.iter().map(|(name, values)| {
        let doc = format!(
            " One of the values the API documents for `{name}`, or any other string it may add."
        );
        let doc_other =
            format!(" Serializes as the plain string; unknown values are kept in [`{name}::Other`].");
        let schema_name = name;
        let name = format_ident!("{name}");
        let variants: Vec<syn::Ident> = values.iter().map(|v| format_ident!("{}", camel(v))).collect();
        let docs = values.iter().map(|v| format!(" `{v}`"));
        quote! {
            #[doc = #doc]
            #[doc = ""]
            #[doc = #doc_other]
            #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub enum #name {
                #(#[doc = #docs] #variants,)*
                /// A value this version of the crate does not know.
                Other(String),
            }
            impl #name {
                /// The value as sent on the wire.
                pub fn as_str(&self) -> &str {
                    match self {
                        #(Self::#variants => #values,)*
                        Self::Other(s) => s.as_str(),
                    }
                }
            }
            impl From<&str> for #name {
                fn from(value: &str) -> Self {
                    match value {
                        #(#values => Self::#variants,)*
                        other => Self::Other(other.to_string()),
                    }
                }
            }
            impl From<String> for #name {
                fn from(value: String) -> Self {
                    match Self::from(value.as_str()) {
                        Self::Other(_) => Self::Other(value),
                        known => known,
                    }
                }
            }
            impl std::str::FromStr for #name {
                type Err = std::convert::Infallible;
                fn from_str(s: &str) -> Result<Self, Self::Err> {
                    Ok(Self::from(s))
                }
            }
            impl std::fmt::Display for #name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(self.as_str())
                }
            }
            impl serde::Serialize for #name {
                fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    serializer.serialize_str(self.as_str())
                }
            }
            impl<'de> serde::Deserialize<'de> for #name {
                fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                    String::deserialize(deserializer).map(Self::from)
                }
            }
            #[cfg(feature = "schemars")]
            impl schemars::JsonSchema for #name {
                fn schema_name() -> String {
                    #schema_name.to_string()
                }
                fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
                    String::json_schema(generator)
                }
            }
        }
    });
    quote! {
        pub mod extensible {
            #(#enums)*
        }
    }
}

fn camel(value: &str) -> String {
    let mut out = String::new();
    for part in value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    out
}

/// The spec says a named type may be null where it is nullable itself (OpenAPI 3.0 takes
/// `nullable` only beside a `type`, so a `$ref` cannot be marked nullable where it is used):
/// `nullable: true` on a component schema, or on a branch of its `oneOf`. typify would make
/// such a type a newtype around an `Option`; in Rust the field that holds it is an `Option`
/// already, and reads null as `None`. So progenitor's copy drops that `nullable`.
fn component_nullability_to_fields(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for schema in schemas.values_mut() {
        let Some(map) = schema.as_object_mut() else {
            continue;
        };
        map.remove("nullable");
        if let Some(branches) = map.get_mut("oneOf").and_then(Value::as_array_mut) {
            for branch in branches.iter_mut().filter_map(Value::as_object_mut) {
                branch.remove("nullable");
            }
        }
    }
}

/// A property `$ref: W`, where the component W is only `oneOf: [X, PhpEmptyArray]` (the spec
/// names each such wrapper, e.g. `IncomingLeadEmbeddedOrEmpty`, so that other languages'
/// generators do not name it after its first user), becomes W's `oneOf` again in progenitor's
/// copy, for `collapse_php_empty` to read as X with `[]` as empty; the wrappers no `$ref` names
/// any more are dropped (a request body W stays, for `php_empty_aliases`).
fn inline_php_empty_wrappers(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let wrappers: BTreeMap<String, Value> = schemas
        .iter()
        .filter(|(_, schema)| {
            schema
                .get("oneOf")
                .and_then(Value::as_array)
                .and_then(|branches| php_empty_other(branches))
                .is_some()
        })
        .map(|(name, schema)| (format!("#/components/schemas/{name}"), schema.clone()))
        .collect();
    for schema in schemas.values_mut() {
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for value in props.values_mut() {
            if let Some(wrapper) = value
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| wrappers.get(r))
            {
                *value = wrapper.clone();
            }
        }
    }
    let mut used = Vec::new();
    schema_refs(doc, &mut used);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for wrapper in wrappers.keys() {
            let name = wrapper.trim_start_matches("#/components/schemas/");
            if !used.iter().any(|u| u == name) {
                schemas.remove(name);
            }
        }
    }
}

/// A component schema W that is only `oneOf: [<$ref X>, PhpEmptyArray]` (a request body PHP may
/// send as `[]`; the client sends the object) is X in progenitor's copy, under W's name: W takes
/// X's definition, every `$ref` to X points at W, and X is dropped. (The spec names the body W
/// and its object X, e.g. `AcceptIncomingLeadRequest` and `AcceptIncomingLeadDetails`, so that
/// other languages' generators see a named body; Rust keeps the body's name.)
fn php_empty_aliases(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut aliases = BTreeMap::new();
    for (name, schema) in schemas.iter() {
        if let Some(target) = schema
            .get("oneOf")
            .and_then(Value::as_array)
            .and_then(|branches| php_empty_other(branches))
            .and_then(|other| other.get("$ref"))
            .and_then(Value::as_str)
        {
            aliases.insert(format!("#/components/schemas/{name}"), target.to_string());
        }
    }
    // W -> X becomes X -> W, and W takes X's definition.
    let mut renames = BTreeMap::new();
    for (wrapper, target) in &aliases {
        let (Some(w), Some(x)) = (
            wrapper.strip_prefix("#/components/schemas/"),
            target.strip_prefix("#/components/schemas/"),
        ) else {
            continue;
        };
        if let Some(definition) = schemas.remove(x) {
            schemas.insert(w.to_string(), definition);
            renames.insert(target.clone(), wrapper.clone());
        }
    }
    let aliases = renames;
    fn repoint(v: &mut Value, aliases: &BTreeMap<String, String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get_mut("$ref")
                    && let Some(target) = aliases.get(r.as_str())
                {
                    *r = target.clone();
                }
                map.values_mut().for_each(|v| repoint(v, aliases));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| repoint(v, aliases)),
            _ => {}
        }
    }
    repoint(doc, &aliases);
}

/// Replaces every property `oneOf: [<schema>, PhpEmptyArray]` (either order) by `<schema>` in
/// progenitor's copy, and returns (schema, property) of each: their fields get a reader that
/// takes `[]` as the empty object (`field_attributes`).
fn collapse_php_empty(doc: &mut Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return found;
    };
    for marker in PHP_EMPTY_ARRAYS {
        schemas.remove(*marker);
    }
    for (name, schema) in schemas.iter_mut() {
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (prop, value) in props.iter_mut() {
            let Some(mut replaced) = value
                .get("oneOf")
                .and_then(Value::as_array)
                .and_then(|branches| php_empty_other(branches))
                .cloned()
            else {
                continue;
            };
            // The reader takes null too (as `None`, or as the empty map).
            if let Some(map) = replaced.as_object_mut() {
                map.remove("nullable");
            }
            if let (Some(d), Some(map)) =
                (value.get("description").cloned(), replaced.as_object_mut())
                && !map.contains_key("$ref")
            {
                map.insert("description".into(), d);
            }
            *value = replaced;
            found.push((name.clone(), prop.clone()));
        }
    }
    found
}

/// Points each list property of `LISTS` at a schema of its own (`<Schema><Property>Items`),
/// which the generator replaces with `crate::list::Items<Item>`. Returns (that name, Item).
fn list_items(api: &str, doc: &mut Value) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (in_api, schema, prop) in LISTS {
        if *in_api != api {
            continue;
        }
        let pointer = format!("/components/schemas/{schema}/properties/{prop}");
        let property = doc
            .pointer_mut(&pointer)
            .ok_or_else(|| format!("build.rs LISTS: no {pointer}"))?;
        let item = property
            .pointer("/items/$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .ok_or_else(|| format!("build.rs LISTS: {pointer} is not an array of a $ref"))?
            .to_string();
        let name = format!("{schema}{}Items", camel(prop));
        // Required in this copy, so the field is `Items<T>` rather than an `Option`;
        // `field_attributes` gives it `#[serde(default)]`, so an absent list reads as empty.
        if let Some(required) = doc
            .pointer_mut(&format!("/components/schemas/{schema}"))
            .and_then(Value::as_object_mut)
            .map(|s| {
                s.entry("required")
                    .or_insert_with(|| Value::Array(Vec::new()))
            })
            .and_then(Value::as_array_mut)
        {
            required.push(Value::String(prop.to_string()));
        }
        let property = doc
            .pointer_mut(&pointer)
            .ok_or_else(|| format!("build.rs LISTS: no {pointer}"))?;
        let list = std::mem::replace(
            property,
            serde_json::json!({"$ref": format!("#/components/schemas/{name}")}),
        );
        if let Some(schemas) = doc
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            schemas.insert(name.clone(), list);
        }
        out.push((name, item));
    }
    Ok(out)
}

/// Appends to `out` the name of every component schema `v` refers to (`$ref`), at any depth.
fn schema_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(name.to_string());
            }
            map.values().for_each(|v| schema_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| schema_refs(v, out)),
        _ => {}
    }
}

/// Gives every object schema an answer can carry (every component schema but those only
/// request bodies use, and the objects inside them) `additionalProperties: true`
/// in progenitor's copy (as `{}`: typify reads `true` as nothing), unless the spec says
/// otherwise. typify then adds
/// `#[serde(flatten)] pub extra: serde_json::Map<String, Value>`: a field the spec does not
/// declare stays on the value that held it, and is written back when it is serialized. The
/// spec stays as it is for other languages (`openapi/export`).
fn keep_other_fields(doc: &mut Value) {
    /// `additionalProperties: true` on `schema` if it is an object with properties and says
    /// nothing about other fields; then the same for the inline schemas inside it.
    fn open(schema: &mut Value) {
        let Some(map) = schema.as_object_mut() else {
            return;
        };
        if map.contains_key("properties") && !map.contains_key("additionalProperties") {
            map.insert(
                "additionalProperties".into(),
                Value::Object(serde_json::Map::new()),
            );
        }
        if let Some(props) = map.get_mut("properties").and_then(Value::as_object_mut) {
            props.values_mut().for_each(open);
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = map.get_mut(key) {
                open(inner);
            }
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            if let Some(branches) = map.get_mut(key).and_then(Value::as_array_mut) {
                branches.iter_mut().for_each(open);
            }
        }
    }
    // The schemas each side uses, directly or through other schemas.
    let reach = |doc: &Value, response: bool| {
        let mut pending = Vec::new();
        for item in doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|p| p.values())
            .filter_map(Value::as_object)
        {
            for (method, op) in item {
                let side = if response { "responses" } else { "requestBody" };
                if is_method(method)
                    && let Some(v) = op.get(side)
                {
                    schema_refs(v, &mut pending);
                }
            }
        }
        if response && let Some(shared) = doc.pointer("/components/responses") {
            schema_refs(shared, &mut pending);
        }
        let mut seen = std::collections::BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = doc.pointer(&format!("/components/schemas/{name}")) {
                schema_refs(schema, &mut pending);
            }
        }
        seen
    };
    let (answers, requests) = (reach(doc, true), reach(doc, false));
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    // Every schema but those only requests use (a body the caller builds gains no map): a schema
    // no operation names may still be an answer, read by hand (an error body, a webhook's).
    for (name, schema) in schemas.iter_mut() {
        if answers.contains(name) || !requests.contains(name) {
            open(schema);
        }
    }
}

/// What `field_attributes` adds to a generated field.
#[derive(Debug)]
enum FieldAttr {
    /// `#[serde(default, deserialize_with = ...)]` for `collapse_php_empty`'s properties:
    /// `crate::wire::php_empty::option` for an `Option` field, `::map` for a map field.
    PhpEmpty,
    /// `#[serde(default)]`.
    Default,
}

/// Adds serde attributes to generated fields: (schema, property, what).
fn field_attributes(
    file: &mut syn::File,
    fields: &[(String, String, FieldAttr)],
) -> Result<(), String> {
    if fields.is_empty() {
        return Ok(());
    }
    let types = types_module(file)?;
    let mut found = Vec::new();
    for item in types.iter_mut() {
        let syn::Item::Struct(s) = item else {
            continue;
        };
        let name = s.ident.to_string();
        for field in s.fields.iter_mut() {
            if field.ident.is_none() {
                continue;
            }
            let wire = wire_name(field);
            let Some((_, _, what)) = fields.iter().find(|(s, p, _)| *s == name && *p == wire)
            else {
                continue;
            };
            let has_default = has_serde(field, "default");
            let attr: syn::Attribute = match what {
                FieldAttr::PhpEmpty => {
                    let reader = if option_inner(&field.ty).is_some() {
                        "option"
                    } else {
                        "map"
                    };
                    let path = format!("crate::wire::php_empty::{reader}");
                    if has_default {
                        syn::parse_quote!(#[serde(deserialize_with = #path)])
                    } else {
                        syn::parse_quote!(#[serde(default, deserialize_with = #path)])
                    }
                }
                FieldAttr::Default if has_default => {
                    return Err(format!("{name}.{wire} already has a serde default"));
                }
                FieldAttr::Default => syn::parse_quote!(#[serde(default)]),
            };
            field.attrs.push(attr);
            found.push((name.clone(), wire.clone()));
        }
    }
    let missing: Vec<String> = fields
        .iter()
        .filter(|(s, p, _)| !found.iter().any(|(fs, fp)| fs == s && fp == p))
        .map(|(s, p, _)| format!("{s}.{p}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "fields to give serde attributes not found in the generated code: {}",
            missing.join(", ")
        ));
    }
    Ok(())
}

/// typify derives `Default` for a struct whose fields are all optional, but not once it has a
/// map of other fields (`keep_other_fields`). Derives it again for such a struct: every field an
/// `Option`, a field with a serde default, or the flattened map.
fn default_for_open_structs(file: &mut syn::File) -> Result<(), String> {
    let types = types_module(file)?;
    for item in types.iter_mut() {
        let syn::Item::Struct(s) = item else {
            continue;
        };
        let syn::Fields::Named(fields) = &s.fields else {
            continue;
        };
        let open = fields.named.iter().any(|f| has_serde(f, "flatten"));
        let all_default = fields.named.iter().all(|f| {
            option_inner(&f.ty).is_some() || has_serde(f, "default") || has_serde(f, "flatten")
        });
        if !open || !all_default {
            continue;
        }
        let Some(derive) = s.attrs.iter_mut().find(|a| a.path().is_ident("derive")) else {
            continue;
        };
        let mut paths: syn::punctuated::Punctuated<syn::Path, syn::Token![,]> = derive
            .parse_args_with(syn::punctuated::Punctuated::parse_terminated)
            .map_err(|e| format!("{}: a derive build.rs cannot read: {e}", s.ident))?;
        if paths
            .iter()
            .any(|p| p.segments.last().is_some_and(|l| l.ident == "Default"))
        {
            continue;
        }
        paths.push(syn::parse_quote!(Default));
        *derive = syn::parse_quote!(#[derive(#paths)]);
    }
    Ok(())
}

/// For every generated struct with a map of other fields (`keep_other_fields`): a `Deserialize`
/// written out in place of serde's derive, which with `#[serde(flatten)]` buffers every value it
/// does not recognise (and decodes slower, benchmark 2). Each declared key goes straight into its
/// field, each other key straight into the map (`crate::wire::open_keys`); the declared keys are
/// told apart by a generated `match` on their wire names, not a search through a list of them
/// (a third of what keeping the other fields cost benchmark 2, BENCHMARKS.md). The field attributes
/// keep their meaning: `rename` (the wire name), `default` / `default = "f"` (for an absent key),
/// `deserialize_with`; an absent `Option` reads as `None`, another absent field is an error, and
/// a key twice is an error, as with the derive. `Serialize` stays derived.
fn open_deserialize(file: &mut syn::File) -> Result<(), String> {
    let types = types_module(file)?;
    let mut impls = Vec::new();
    for item in types.iter_mut() {
        let syn::Item::Struct(s) = item else {
            continue;
        };
        let syn::Fields::Named(fields) = &s.fields else {
            continue;
        };
        let Some(extra) = fields
            .named
            .iter()
            .find(|f| has_serde(f, "flatten"))
            .and_then(|f| f.ident.clone())
        else {
            continue;
        };
        let name = s.ident.clone();
        let (mut wires, mut slots, mut arms, mut inits) = (vec![], vec![], vec![], vec![]);
        let mut index = 0usize;
        for field in &fields.named {
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            if ident == extra {
                inits.push(quote!(#ident: other));
                continue;
            }
            let ty = &field.ty;
            let wire = wire_name(field);
            let words = serde_words(&field.attrs);
            let with = words
                .iter()
                .find_map(|(w, v)| v.clone().filter(|_| w == "deserialize_with"));
            let default = words.iter().find(|(w, _)| w == "default").cloned();
            let slot = format_ident!("f{}", index);
            slots.push(
                quote!(let mut #slot: ::std::option::Option<#ty> = ::std::option::Option::None;),
            );
            let read = match &with {
                Some(path) => {
                    let path: syn::Path = syn::parse_str(path)
                        .map_err(|e| format!("{name}.{wire}: deserialize_with `{path}`: {e}"))?;
                    quote! {{
                        struct With(#ty);
                        impl<'de> ::serde::Deserialize<'de> for With {
                            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                                #path(d).map(With)
                            }
                        }
                        map.next_value::<With>()?.0
                    }}
                }
                None => quote!(map.next_value::<#ty>()?),
            };
            arms.push(quote! {
                crate::wire::open_keys::Key::Declared(#index) => {
                    if #slot.is_some() {
                        return ::std::result::Result::Err(<A::Error as ::serde::de::Error>::duplicate_field(#wire));
                    }
                    #slot = ::std::option::Option::Some(#read);
                }
            });
            let absent = match (&default, option_inner(ty).is_some() && with.is_none()) {
                (Some((_, Some(f))), _) => {
                    let f: syn::Path = syn::parse_str(f)
                        .map_err(|e| format!("{name}.{wire}: default `{f}`: {e}"))?;
                    quote!(#slot.unwrap_or_else(#f))
                }
                (Some((_, None)), _) | (None, true) => quote!(#slot.unwrap_or_default()),
                (None, false) => quote! {
                    match #slot {
                        ::std::option::Option::Some(v) => v,
                        ::std::option::Option::None => {
                            return ::std::result::Result::Err(<A::Error as ::serde::de::Error>::missing_field(#wire));
                        }
                    }
                },
            };
            inits.push(quote!(#ident: #absent));
            wires.push(wire);
            index += 1;
        }
        let expecting = format!("an object (`{name}`)");
        let indices = 0..wires.len();
        impls.push(quote! {
            impl<'de> ::serde::Deserialize<'de> for #name {
                fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                    struct Fields;
                    impl<'de> ::serde::de::Visitor<'de> for Fields {
                        type Value = #name;
                        fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                            f.write_str(#expecting)
                        }
                        fn visit_map<A: ::serde::de::MapAccess<'de>>(self, mut map: A) -> ::std::result::Result<#name, A::Error> {
                            #(#slots)*
                            let mut other = ::serde_json::Map::new();
                            while let ::std::option::Option::Some(key) =
                                map.next_key_seed(crate::wire::open_keys::Keys(|key: &str| match key {
                                    #(#wires => ::std::option::Option::Some(#indices),)*
                                    _ => ::std::option::Option::None,
                                }))?
                            {
                                match key {
                                    #(#arms)*
                                    crate::wire::open_keys::Key::Declared(_) => {
                                        map.next_value::<::serde::de::IgnoredAny>()?;
                                    }
                                    crate::wire::open_keys::Key::Other(name) => {
                                        let value = map.next_value::<::serde_json::Value>()?;
                                        other.insert(name, value);
                                    }
                                }
                            }
                            ::std::result::Result::Ok(#name { #(#inits),* })
                        }
                    }
                    deserializer.deserialize_map(Fields)
                }
            }
        });
        // The derive goes; `Serialize` (and `JsonSchema`) keep reading the attributes.
        let Some(derive) = s.attrs.iter_mut().find(|a| a.path().is_ident("derive")) else {
            return Err(format!("{name}: no derive"));
        };
        let paths: syn::punctuated::Punctuated<syn::Path, syn::Token![,]> = derive
            .parse_args_with(syn::punctuated::Punctuated::parse_terminated)
            .map_err(|e| format!("{name}: a derive build.rs cannot read: {e}"))?;
        let kept: Vec<&syn::Path> = paths
            .iter()
            .filter(|p| p.segments.last().is_none_or(|l| l.ident != "Deserialize"))
            .collect();
        *derive = syn::parse_quote!(#[derive(#(#kept),*)]);
    }
    for tokens in impls {
        types.push(
            syn::parse2(tokens)
                .map_err(|e| format!("build.rs made a Deserialize that does not parse: {e}"))?,
        );
    }
    Ok(())
}

/// The items of the generated `types` module.
fn types_module(file: &mut syn::File) -> Result<&mut Vec<syn::Item>, String> {
    file.items
        .iter_mut()
        .find_map(|item| match item {
            syn::Item::Mod(m) if m.ident == "types" => m.content.as_mut().map(|c| &mut c.1),
            _ => None,
        })
        .ok_or_else(|| "progenitor produced no `types` module".to_string())
}

/// Whether a generated field's `#[serde(..)]` attributes say `word` (`default`, `flatten`).
fn has_serde(field: &syn::Field, word: &str) -> bool {
    serde_words(&field.attrs).iter().any(|(w, _)| w == word)
}

/// A generated field's name on the wire: its `#[serde(rename = "..")]`, else its identifier.
fn wire_name(field: &syn::Field) -> String {
    serde_words(&field.attrs)
        .into_iter()
        .find_map(|(word, value)| value.filter(|_| word == "rename"))
        .unwrap_or_else(|| {
            field
                .ident
                .as_ref()
                .map(|i| i.to_string().trim_start_matches("r#").to_string())
                .unwrap_or_default()
        })
}

/// For `oneOf: [<schema>, PhpEmptyArray]` (either order, exactly two branches): `<schema>`.
fn php_empty_other(branches: &[Value]) -> Option<&Value> {
    let is_marker = |b: &Value| {
        b.get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .is_some_and(|name| PHP_EMPTY_ARRAYS.contains(&name))
    };
    match branches {
        [a, b] if is_marker(b) && !is_marker(a) => Some(a),
        [a, b] if is_marker(a) && !is_marker(b) => Some(b),
        _ => None,
    }
}

/// The component schemas a request body uses, directly or through other schemas: the types a
/// caller builds. Called on progenitor's copy, after the adaptations.
fn request_schemas(doc: &Value) -> BTreeMap<String, Vec<String>> {
    let mut pending = Vec::new();
    for item in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values())
        .filter_map(Value::as_object)
    {
        for (method, op) in item {
            if is_method(method)
                && let Some(body) = op.get("requestBody")
            {
                schema_refs(body, &mut pending);
            }
        }
    }
    let schemas = doc.pointer("/components/schemas");
    // Each schema's `required` names, in the spec's order (the constructor's argument order).
    let mut out = BTreeMap::new();
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let schema = schemas.and_then(|s| s.get(&name));
        let required = schema
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name.clone(), required);
        if let Some(schema) = schema {
            schema_refs(schema, &mut pending);
        }
    }
    out
}

/// For every generated struct a caller builds (`request_schemas`): `new(required fields...)`,
/// with each required field an argument that takes `impl Into<T>` (so a forgotten one is a
/// compile error), and a `with_<field>(impl Into<T>)` setter for each optional one. No filler
/// fields, no `json!`.
fn request_constructors(
    file: &mut syn::File,
    schemas: &BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    let types = types_module(file)?;
    let mut impls = Vec::new();
    for item in types.iter() {
        let syn::Item::Struct(s) = item else {
            continue;
        };
        let Some(order) = schemas.get(&s.ident.to_string()) else {
            continue;
        };
        let syn::Fields::Named(fields) = &s.fields else {
            continue;
        };
        let name = &s.ident;
        let (mut args, mut inits, mut setters) = (Vec::new(), Vec::new(), Vec::new());
        let mut required_names = Vec::new();
        // Required fields in the spec's `required` order, then the others.
        let mut ordered: Vec<&syn::Field> = fields.named.iter().collect();
        ordered.sort_by_key(|f| {
            order
                .iter()
                .position(|r| *r == wire_name(f))
                .unwrap_or(usize::MAX)
        });
        for field in ordered {
            let Some(ident) = &field.ident else {
                continue;
            };
            let has_default = has_serde(field, "default");
            let option_inner = option_inner(&field.ty);
            let ty = &field.ty;
            let plain = ident.to_string();
            let plain = plain.trim_start_matches("r#").trim_end_matches('_');
            if has_serde(field, "flatten") {
                // `additionalProperties`: fields of the model the spec does not list.
                inits.push(quote!(#ident: ::std::default::Default::default()));
                setters.push(quote! {
                    /// Sets a field the spec does not list; it is sent as is (and kept in the
                    /// model's map of other fields).
                    #[must_use]
                    pub fn with_other_field(
                        mut self,
                        key: impl ::std::convert::Into<::std::string::String>,
                        value: impl ::std::convert::Into<::serde_json::Value>,
                    ) -> Self {
                        self.#ident.insert(key.into(), value.into());
                        self
                    }
                });
                continue;
            }
            if option_inner.is_none() && !has_default {
                // A keyword (`type`) is not an argument name: `type_`.
                let arg = syn::parse_str::<syn::Ident>(plain)
                    .unwrap_or_else(|_| format_ident!("{}_", plain));
                args.push(quote!(#arg: impl ::std::convert::Into<#ty>));
                inits.push(quote!(#ident: #arg.into()));
                required_names.push(format!("`{plain}`"));
                continue;
            }
            inits.push(quote!(#ident: ::std::default::Default::default()));
            let setter = format_ident!("with_{}", plain);
            let doc = format!("Sets `{plain}`.");
            setters.push(match option_inner {
                Some(inner) => quote! {
                    #[doc = #doc]
                    #[must_use]
                    pub fn #setter(mut self, value: impl ::std::convert::Into<#inner>) -> Self {
                        self.#ident = ::std::option::Option::Some(value.into());
                        self
                    }
                },
                None => quote! {
                    #[doc = #doc]
                    #[must_use]
                    pub fn #setter(mut self, value: impl ::std::convert::Into<#ty>) -> Self {
                        self.#ident = value.into();
                        self
                    }
                },
            });
        }
        let doc = if required_names.is_empty() {
            format!("A `{name}` with nothing set; set fields with the `with_*` methods.")
        } else {
            format!(
                "A `{name}` from its required {} ({}); set the others with the `with_*` methods.",
                if required_names.len() == 1 {
                    "field"
                } else {
                    "fields"
                },
                required_names.join(", ")
            )
        };
        impls.push(quote! {
            impl #name {
                #[doc = #doc]
                #[must_use]
                pub fn new(#(#args),*) -> Self {
                    Self { #(#inits),* }
                }
                #(#setters)*
            }
        });
    }
    for tokens in impls {
        let item: syn::Item = syn::parse2(tokens)
            .map_err(|e| format!("a generated request constructor does not parse: {e}"))?;
        types.push(item);
    }
    Ok(())
}

/// `T` of a field typed `::std::option::Option<T>`.
fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}

/// typify makes a string with `maxLength` a newtype that only `TryFrom` builds, so a caller
/// could not write `.with_value("Pick one")`. The limits stay in the spec for other languages;
/// the hand-written checks enforce them before sending (`ContinueBotRequest::check_limits`).
fn plain_strings(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("string") {
                map.remove("maxLength");
                map.remove("minLength");
            }
            map.values_mut().for_each(plain_strings);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_strings),
        _ => {}
    }
}

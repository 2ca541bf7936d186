//! `cargo xtask surface [--check]`: the Rust API that build.rs generates from each spec, as a
//! checked-in, human-readable file per API ([`SURFACE_DIR`]`/<api>.md`), so that a reviewer sees
//! in a diff what a spec edit changes for Rust users: a renamed field, a type that became an
//! enum, a parameter that became required.
//!
//! The files are rendered from the very code the library compiles: `cargo check -p lead-intake
//! --message-format=json` runs build.rs and names its `OUT_DIR`, and [`render`] parses
//! `OUT_DIR/<api>.rs` with `syn`. Everything is sorted by name (fields and variants keep their
//! declared order, which decoding follows), so the output depends on the generated code only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use quote::ToTokens;

// Read as build.rs reads them.
#[path = "../../build/serde_words.rs"]
mod serde_words;
use serde_words::serde_words;

/// Where the surface files live, relative to the workspace root.
pub const SURFACE_DIR: &str = "openapi/surface";

/// (the generated file's stem, the API's name in the title).
const APIS: &[(&str, &str)] = &[("kommo", "Kommo"), ("closebot", "CloseBot")];

pub fn main(args: &[String]) -> ExitCode {
    let mut check = false;
    for arg in args {
        match arg.as_str() {
            "--check" => check = true,
            other => {
                eprintln!(
                    "error: unexpected argument `{other}`\nusage: cargo xtask surface [--check]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let root = crate::workspace_root();
    let out_dir = match generated_dir(&root) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut files = Vec::new();
    for (api, title) in APIS {
        let generated = out_dir.join(format!("{api}.rs"));
        let rendered = fs::read_to_string(&generated)
            .map_err(|e| format!("cannot read {}: {e}", generated.display()))
            .and_then(|source| render(title, api, &source));
        match rendered {
            Ok(text) => files.push((format!("{SURFACE_DIR}/{api}.md"), text)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if check {
        let problems: Vec<String> = files
            .iter()
            .filter_map(|(path, text)| {
                let current = fs::read_to_string(root.join(path)).ok();
                compare(path, text, current.as_deref()).err()
            })
            .collect();
        if problems.is_empty() {
            println!(
                "surface: {} files in {SURFACE_DIR} are up to date",
                files.len()
            );
            return ExitCode::SUCCESS;
        }
        for p in &problems {
            eprintln!("error: {p}");
        }
        eprintln!(
            "surface: {SURFACE_DIR} does not match the generated code: run `cargo xtask surface` \
             and commit the result (its diff is what the spec change does to the Rust API)"
        );
        return ExitCode::from(1);
    }
    if let Err(e) = fs::create_dir_all(root.join(SURFACE_DIR)) {
        eprintln!("error: cannot create {SURFACE_DIR}: {e}");
        return ExitCode::from(1);
    }
    for (path, text) in &files {
        if fs::read_to_string(root.join(path)).is_ok_and(|old| old == *text) {
            println!("unchanged {path}");
        } else if let Err(e) = fs::write(root.join(path), text) {
            eprintln!("error: cannot write {path}: {e}");
            return ExitCode::from(1);
        } else {
            println!("wrote {path}");
        }
    }
    ExitCode::SUCCESS
}

/// build.rs's `OUT_DIR`, as cargo reports it after running the build script (fresh or not).
fn generated_dir(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "check",
            "-p",
            "lead-intake",
            "--lib",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    // The build script runs before the library compiles: its output is there even when
    // hand-written code does not build against it (which the rest of CI reports).
    if !output.status.success() {
        eprintln!(
            "warning: `cargo check -p lead-intake` failed ({}); the surface is read from the \
             generated code all the same",
            output.status
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|m| {
            m["reason"] == "build-script-executed"
                && m["package_id"].as_str().is_some_and(|id| {
                    id.contains("#lead-intake@") || id.starts_with("lead-intake ")
                })
        })
        .and_then(|m| m["out_dir"].as_str().map(PathBuf::from))
        .ok_or_else(|| {
            "cargo did not report lead-intake's build script output (did build.rs fail?)"
                .to_string()
        })
}

/// `Ok` when the checked-in file (`None`: missing) is `expected`; else what differs, with the
/// first differing line of each and how to update it.
pub fn compare(path: &str, expected: &str, current: Option<&str>) -> Result<(), String> {
    let Some(current) = current else {
        return Err(format!("{path} is missing: run `cargo xtask surface`"));
    };
    if current == expected {
        return Ok(());
    }
    let (old, new): (Vec<&str>, Vec<&str>) =
        (current.lines().collect(), expected.lines().collect());
    let at = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let show = |lines: &[&str]| {
        lines
            .get(at)
            .map_or("(end of file)".to_string(), |l| format!("{l:?}"))
    };
    Err(format!(
        "{path} differs from the generated code, first at line {}:\n  checked in: {}\n  generated:  {}\n  \
         (`cargo xtask surface && git diff {path}` shows all of it)",
        at + 1,
        show(&old),
        show(&new)
    ))
}

/// The surface of one generated file: its operations, then its types, in Markdown.
pub fn render(title: &str, api: &str, source: &str) -> Result<String, String> {
    let file = syn::parse_file(source).map_err(|e| format!("{api}.rs does not parse: {e}"))?;
    let mut out = format!(
        "# {title}: the generated Rust API\n\n\
         <!-- Written by `cargo xtask surface` from build.rs's `$OUT_DIR/{api}.rs`; CI runs \
         `cargo xtask surface --check`. Do not edit. -->\n\n\
         Paths are shortened to their last segment (`Option<String>`). Fields and variants are in \
         their declared order (the order an untagged enum tries its variants); the rest by name.\n"
    );
    let operations = operations(&file)?;
    out.push_str(&format!("\n## Operations ({})\n", operations.len()));
    for op in &operations {
        out.push_str(&format!(
            "\n### `{}`: `{} {}`\n\n",
            op.method, op.http, op.path
        ));
        for (name, ty, start) in &op.params {
            out.push_str(&format!("- `{name}`: `{ty}`, {start}\n"));
        }
        out.push_str(&format!(
            "- answer: `{}`\n- error: `{}`\n",
            op.answer, op.error
        ));
    }
    let mut types = Vec::new();
    for (module, open) in [("types", false), ("extensible", true)] {
        if let Some(items) = module_items(&file.items, module) {
            types.extend(type_entries(items, open));
        }
    }
    types.sort_by(|a, b| a.0.cmp(&b.0));
    out.push_str(&format!("\n## Types ({})\n", types.len()));
    for (_, text) in types {
        out.push('\n');
        out.push_str(&text);
    }
    Ok(out)
}

/// One operation: the client method, HTTP method and path, parameters, answer and error.
struct Operation {
    method: String,
    http: String,
    path: String,
    /// (name, type, how `new` starts it), by name.
    params: Vec<(String, String, &'static str)>,
    answer: String,
    error: String,
}

fn module_items<'a>(items: &'a [syn::Item], name: &str) -> Option<&'a [syn::Item]> {
    items.iter().find_map(|item| match item {
        syn::Item::Mod(m) if m.ident == name => m.content.as_ref().map(|(_, items)| &items[..]),
        _ => None,
    })
}

/// The client's methods that return an operation builder, read through the builder.
fn operations(file: &syn::File) -> Result<Vec<Operation>, String> {
    let builders = module_items(&file.items, "builder").unwrap_or_default();
    let mut out = Vec::new();
    for item in &file.items {
        let syn::Item::Impl(imp) = item else { continue };
        if imp.trait_.is_some() || !is_named(&imp.self_ty, "Client") {
            continue;
        }
        for method in imp.items.iter().filter_map(|i| match i {
            syn::ImplItem::Fn(f) => Some(f),
            _ => None,
        }) {
            let syn::ReturnType::Type(_, ret) = &method.sig.output else {
                continue;
            };
            let Some(builder) = builder_name(ret) else {
                continue;
            };
            out.push(operation(
                &method.sig.ident.to_string(),
                &builder,
                builders,
            )?);
        }
    }
    out.sort_by(|a, b| a.method.cmp(&b.method));
    Ok(out)
}

/// `X` of a return type `builder::X<'_>`.
fn builder_name(ty: &syn::Type) -> Option<String> {
    let syn::Type::Path(p) = ty else { return None };
    let segments: Vec<_> = p.path.segments.iter().collect();
    match segments[..] {
        [module, builder] if module.ident == "builder" => Some(builder.ident.to_string()),
        _ => None,
    }
}

fn is_named(ty: &syn::Type, name: &str) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == name))
}

fn operation(method: &str, builder: &str, items: &[syn::Item]) -> Result<Operation, String> {
    let missing = |what: &str| format!("builder::{builder} (for `{method}`): no {what}");
    let fns: Vec<&syn::ImplItemFn> = items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Impl(imp) if imp.trait_.is_none() && is_named(&imp.self_ty, builder) => {
                Some(imp)
            }
            _ => None,
        })
        .flat_map(|imp| &imp.items)
        .filter_map(|i| match i {
            syn::ImplItem::Fn(f) => Some(f),
            _ => None,
        })
        .collect();
    let find = |name: &str| fns.iter().copied().find(|f| f.sig.ident == name);
    let send = find("send").ok_or_else(|| missing("`send`"))?;
    let new = find("new").ok_or_else(|| missing("`new`"))?;
    let (http, path) = request_line(&doc(&send.attrs))
        .ok_or_else(|| missing("\"Sends a `GET` request to `/path`\" in `send`'s doc"))?;
    let (answer, error) = match &send.sig.output {
        syn::ReturnType::Type(_, ty) => answer_and_error(ty),
        syn::ReturnType::Default => None,
    }
    .ok_or_else(|| missing("`Result<ResponseValue<T>, E>` from `send`"))?;
    // A parameter is a field of the builder struct; `new` starts a required one as an `Err`.
    let fields = items
        .iter()
        .find_map(|i| match i {
            syn::Item::Struct(s) if s.ident == builder => Some(&s.fields),
            _ => None,
        })
        .ok_or_else(|| missing("struct"))?;
    let started = struct_inits(new);
    let mut params = Vec::new();
    for field in fields.iter().filter_map(|f| f.ident.as_ref()) {
        let name = field.to_string();
        if name == "client" {
            continue;
        }
        let ty = find(&name)
            .and_then(setter_type)
            .ok_or_else(|| missing(&format!("setter `{name}` taking `TryInto<T>`")))?;
        let start = started
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, init)| start(init))
            .ok_or_else(|| missing(&format!("start for `{name}` in `new`")))?;
        params.push((name, ty, start));
    }
    params.sort();
    Ok(Operation {
        method: method.to_string(),
        http,
        path,
        params,
        answer,
        error,
    })
}

/// The text of the `#[doc]` attributes.
fn doc(attrs: &[syn::Attribute]) -> String {
    attrs
        .iter()
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// (`GET`, `/api/v4/widgets`) from progenitor's "Sends a `GET` request to `/api/v4/widgets`".
fn request_line(doc: &str) -> Option<(String, String)> {
    let rest = doc.split("Sends a `").nth(1)?;
    let (http, rest) = rest.split_once('`')?;
    let path = rest.split_once("request to `")?.1.split('`').next()?;
    Some((http.to_string(), path.to_string()))
}

/// (`T`, `E`) of `Result<ResponseValue<T>, E>`.
fn answer_and_error(ty: &syn::Type) -> Option<(String, String)> {
    let [ok, err] = &type_args(ty, "Result")?[..] else {
        return None;
    };
    let answer = match type_args(ok, "ResponseValue").as_deref() {
        Some([inner]) => render_type(inner),
        _ => render_type(ok),
    };
    Some((answer, render_type(err)))
}

/// The type arguments of a path type whose last segment is `name`.
fn type_args(ty: &syn::Type, name: &str) -> Option<Vec<syn::Type>> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last().filter(|s| s.ident == name)?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
    )
}

/// (field, initializer) of the `Self { .. }` that `new` returns.
fn struct_inits(new: &syn::ImplItemFn) -> Vec<(String, syn::Expr)> {
    new.block
        .stmts
        .iter()
        .find_map(|s| match s {
            syn::Stmt::Expr(syn::Expr::Struct(s), None) => Some(s),
            _ => None,
        })
        .map(|s| {
            s.fields
                .iter()
                .filter_map(|f| match &f.member {
                    syn::Member::Named(name) => Some((name.to_string(), f.expr.clone())),
                    syn::Member::Unnamed(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How a builder's `new` starts a parameter: `Err("x was not initialized")` (required),
/// `Ok(None)` (optional), or `Ok(Default::default())` (a body built from its defaults).
fn start(init: &syn::Expr) -> &'static str {
    let call = |expr: &syn::Expr| match expr {
        syn::Expr::Call(call) => match &*call.func {
            syn::Expr::Path(p) => p
                .path
                .segments
                .last()
                .map(|s| (s.ident.to_string(), call.args.first().cloned())),
            _ => None,
        },
        _ => None,
    };
    match call(init) {
        Some((f, _)) if f == "Err" => "required",
        Some((f, Some(arg))) if f == "Ok" && call(&arg).is_some_and(|(g, _)| g == "default") => {
            "optional (starts from its defaults)"
        }
        _ => "optional",
    }
}

/// `T` of a setter `fn x<V>(self, value: V) where V: TryInto<T>`.
fn setter_type(setter: &syn::ImplItemFn) -> Option<String> {
    let bounds = setter
        .sig
        .generics
        .where_clause
        .iter()
        .flat_map(|w| &w.predicates)
        .filter_map(|p| match p {
            syn::WherePredicate::Type(t) => Some(&t.bounds),
            _ => None,
        })
        .flatten()
        .chain(setter.sig.generics.type_params().flat_map(|p| &p.bounds));
    for bound in bounds {
        let syn::TypeParamBound::Trait(t) = bound else {
            continue;
        };
        let Some(last) = t.path.segments.last().filter(|s| s.ident == "TryInto") else {
            continue;
        };
        if let syn::PathArguments::AngleBracketed(args) = &last.arguments
            && let Some(syn::GenericArgument::Type(ty)) = args.args.first()
        {
            return Some(render_type(ty));
        }
    }
    None
}

/// (name, text) of each public type of a module: structs, enums, aliases, with their inherent
/// public functions. `open`: the module of open enums (`x-extensible-enum`), whose wire values
/// are their `as_str` arms.
fn type_entries(items: &[syn::Item], open: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for item in items {
        let (name, mut text) = match item {
            syn::Item::Struct(s) if is_pub(&s.vis) => (s.ident.to_string(), render_struct(s)),
            syn::Item::Enum(e) if is_pub(&e.vis) => {
                let wire = if open {
                    as_str_arms(items, &e.ident)
                } else {
                    Vec::new()
                };
                (e.ident.to_string(), render_enum(e, open, &wire))
            }
            syn::Item::Type(t) if is_pub(&t.vis) => (
                t.ident.to_string(),
                format!("### type `{}` = `{}`\n", t.ident, render_type(&t.ty)),
            ),
            _ => continue,
        };
        let mut fns: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                syn::Item::Impl(imp) if imp.trait_.is_none() && is_named(&imp.self_ty, &name) => {
                    Some(imp)
                }
                _ => None,
            })
            .flat_map(|imp| &imp.items)
            .filter_map(|i| match i {
                syn::ImplItem::Fn(f) if is_pub(&f.vis) => {
                    Some(format!("- fn `{}`\n", render_sig(&f.sig)))
                }
                _ => None,
            })
            .collect();
        fns.sort();
        if !fns.is_empty() {
            text.push('\n');
            text.extend(fns);
        }
        out.push((name, text));
    }
    out
}

fn is_pub(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

fn render_struct(s: &syn::ItemStruct) -> String {
    let mut out = format!("### struct `{}`\n", s.ident);
    let fields: Vec<String> = match &s.fields {
        syn::Fields::Named(named) => named
            .named
            .iter()
            .map(|f| {
                let name = f
                    .ident
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                format!(
                    "- `{name}`: `{}`{}\n",
                    render_type(&f.ty),
                    serde_notes(&f.attrs, &name)
                )
            })
            .collect(),
        syn::Fields::Unnamed(unnamed) => unnamed
            .unnamed
            .iter()
            .map(|f| format!("- `.0`: `{}`\n", render_type(&f.ty)))
            .collect(),
        syn::Fields::Unit => Vec::new(),
    };
    if !fields.is_empty() {
        out.push('\n');
        out.extend(fields);
    }
    out
}

fn render_enum(e: &syn::ItemEnum, open: bool, wire: &[(String, String)]) -> String {
    let mut out = format!("### enum `{}`", e.ident);
    let container = serde_words(&e.attrs);
    if container.iter().any(|(w, _)| w == "untagged") {
        out.push_str(" (untagged: the first variant that decodes)");
    }
    if let Some((_, Some(tag))) = container.iter().find(|(w, _)| w == "tag") {
        out.push_str(&format!(" (tagged by `{tag}`)"));
    }
    if open {
        out.push_str(" (open: any other string is `Other`)");
    }
    out.push_str("\n\n");
    for v in &e.variants {
        let name = v.ident.to_string();
        let fields = match &v.fields {
            syn::Fields::Unit => String::new(),
            syn::Fields::Unnamed(f) => format!(
                "({})",
                f.unnamed
                    .iter()
                    .map(|f| render_type(&f.ty))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            syn::Fields::Named(f) => format!(
                " {{ {} }}",
                f.named
                    .iter()
                    .map(|f| format!(
                        "{}: {}",
                        f.ident
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        render_type(&f.ty)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let notes = match wire.iter().find(|(variant, _)| *variant == name) {
            Some((_, value)) => format!(" (wire `{value}`)"),
            None => serde_notes(&v.attrs, &name),
        };
        out.push_str(&format!("- `{name}{fields}`{notes}\n"));
    }
    out
}

/// (variant, wire value) of `Self::Variant => "value"` in the enum's `as_str`.
fn as_str_arms(items: &[syn::Item], name: &syn::Ident) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for imp in items.iter().filter_map(|i| match i {
        syn::Item::Impl(imp)
            if imp.trait_.is_none() && is_named(&imp.self_ty, &name.to_string()) =>
        {
            Some(imp)
        }
        _ => None,
    }) {
        for f in imp.items.iter().filter_map(|i| match i {
            syn::ImplItem::Fn(f) if f.sig.ident == "as_str" => Some(f),
            _ => None,
        }) {
            let Some(syn::Stmt::Expr(syn::Expr::Match(m), None)) = f.block.stmts.first() else {
                continue;
            };
            for arm in &m.arms {
                if let syn::Pat::Path(p) = &arm.pat
                    && let Some(variant) = p.path.segments.last()
                    && let syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) = &*arm.body
                {
                    out.push((variant.ident.to_string(), s.value()));
                }
            }
        }
    }
    out
}

/// What the serde attributes change for a user: the wire name where it differs, flattening.
fn serde_notes(attrs: &[syn::Attribute], name: &str) -> String {
    let words = serde_words(attrs);
    let mut notes = Vec::new();
    if let Some((_, Some(wire))) = words.iter().find(|(w, _)| w == "rename")
        && wire != name.trim_start_matches("r#")
    {
        notes.push(format!("wire `{wire}`"));
    }
    if words.iter().any(|(w, _)| w == "flatten") {
        notes.push("flattened: the object's other fields".to_string());
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    }
}

/// `new(name: impl Into<String>) -> Self`.
fn render_sig(sig: &syn::Signature) -> String {
    let args: Vec<String> = sig
        .inputs
        .iter()
        .map(|arg| match arg {
            syn::FnArg::Receiver(r) => match &r.kind {
                syn::ReceiverKind::Reference(_, _, Some(_)) => "&mut self".to_string(),
                syn::ReceiverKind::Reference(..) => "&self".to_string(),
                _ => "self".to_string(),
            },
            syn::FnArg::Typed(t) => format!("{}: {}", tokens(&t.pat), render_type(&t.ty)),
        })
        .collect();
    let ret = match &sig.output {
        syn::ReturnType::Default => String::new(),
        syn::ReturnType::Type(_, ty) => format!(" -> {}", render_type(ty)),
    };
    format!("{}({}){ret}", sig.ident, args.join(", "))
}

/// A type with every path shortened to its last segment.
pub fn render_type(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => render_path(&p.path),
        syn::Type::Reference(r) => {
            format!(
                "&{}{}",
                if r.mutability.is_some() { "mut " } else { "" },
                render_type(&r.elem)
            )
        }
        syn::Type::Tuple(t) => format!(
            "({})",
            t.elems
                .iter()
                .map(render_type)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        syn::Type::Slice(s) => format!("[{}]", render_type(&s.elem)),
        syn::Type::Array(a) => format!("[{}; {}]", render_type(&a.elem), tokens(&a.len)),
        syn::Type::Paren(p) => render_type(&p.elem),
        syn::Type::Group(g) => render_type(&g.elem),
        syn::Type::ImplTrait(t) => format!("impl {}", render_bounds(t.bounds.iter())),
        syn::Type::TraitObject(t) => format!("dyn {}", render_bounds(t.bounds.iter())),
        other => tokens(other),
    }
}

fn render_bounds<'a>(bounds: impl Iterator<Item = &'a syn::TypeParamBound>) -> String {
    bounds
        .map(|b| match b {
            syn::TypeParamBound::Trait(t) => render_path(&t.path),
            other => tokens(other),
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

fn render_path(path: &syn::Path) -> String {
    let Some(last) = path.segments.last() else {
        return String::new();
    };
    // `builder::X` is not `X`: typify's builder of a type, or progenitor's of an operation.
    let module = match path.segments.iter().nth_back(1) {
        Some(m) if m.ident == "builder" => "builder::",
        _ => "",
    };
    let args = match &last.arguments {
        syn::PathArguments::None => String::new(),
        syn::PathArguments::AngleBracketed(a) => format!(
            "<{}>",
            a.args
                .iter()
                .map(|arg| match arg {
                    syn::GenericArgument::Type(t) => render_type(t),
                    syn::GenericArgument::AssocType(t) =>
                        format!("{} = {}", t.ident, render_type(&t.ty)),
                    other => tokens(other),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        syn::PathArguments::Parenthesized(p) => format!(
            "({}){}",
            p.inputs
                .iter()
                .map(|arg| render_type(&arg.ty))
                .collect::<Vec<_>>()
                .join(", "),
            match &p.output {
                syn::ReturnType::Default => String::new(),
                syn::ReturnType::Type(_, t) => format!(" -> {}", render_type(t)),
            }
        ),
    };
    format!("{module}{}{args}", last.ident)
}

/// Tokens as text: the fallback for syntax the renderers above do not shorten.
fn tokens(t: &impl ToTokens) -> String {
    t.to_token_stream().to_string()
}

//! `cargo xtask surface`: the rendering of a small hand-written file shaped like build.rs's
//! output (progenitor's `types`, `Client` and `builder`, build.rs's open enums), and the check
//! that fails when the checked-in surface differs from it.

#[allow(dead_code)]
#[path = "../src/surface.rs"]
mod surface;

/// `surface::main` names the workspace root through the crate root, as in `main.rs`.
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Generated-like code: one type of each kind, one operation with a required, an optional and
/// a defaulted parameter.
const GENERATED: &str = r#"
pub mod types {
    #[derive(Clone, Debug)]
    pub struct AddSource {
        pub external_id: ::std::string::String,
        #[serde(rename = "pipeline-id", default, skip_serializing_if = "::std::option::Option::is_none")]
        pub pipeline_id: ::std::option::Option<i64>,
        #[serde(flatten)]
        pub extra: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
    }
    impl AddSource {
        pub fn builder() -> builder::AddSource {
            Default::default()
        }
        pub fn new(external_id: impl ::std::convert::Into<::std::string::String>) -> Self {
            todo!()
        }
    }
    pub struct AddSourcesRequest(pub ::std::vec::Vec<AddSource>);
    #[serde(untagged)]
    pub enum Data {
        Object(::serde_json::Map<::std::string::String, ::serde_json::Value>),
        Array(::std::vec::Vec<::serde_json::Value>),
    }
    pub enum SortOrder {
        #[serde(rename = "asc")]
        Asc,
        #[serde(rename = "desc")]
        Desc,
    }
    pub type Ids = ::std::vec::Vec<i64>;
    struct Private {
        pub x: i64,
    }
    pub mod builder {
        pub struct AddSource {
            external_id: Result<::std::string::String, ::std::string::String>,
        }
    }
}
pub struct Client {
    pub(crate) baseurl: String,
}
impl Client {
    pub fn new(baseurl: &str) -> Self {
        todo!()
    }
}
impl Client {
    ///Sends a `POST` request to `/api/v4/sources`
    pub fn add_sources(&self) -> builder::AddSources<'_> {
        builder::AddSources::new(self)
    }
}
pub mod builder {
    pub struct AddSources<'a> {
        client: &'a super::Client,
        id: Result<i64, String>,
        order: Result<Option<types::SortOrder>, String>,
        body: Result<types::builder::AddSourcesRequest, String>,
    }
    impl<'a> AddSources<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                id: Err("id was not initialized in add_sources".to_string()),
                order: Ok(None),
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<i64>,
        {
            self
        }
        pub fn order<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::SortOrder>,
        {
            self
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::AddSourcesRequest>,
        {
            self
        }
        ///Sends a `POST` request to `/api/v4/sources`
        pub async fn send(self) -> Result<ResponseValue<types::SourceList>, Error<()>> {
            todo!()
        }
    }
}
pub mod extensible {
    pub enum Category {
        Sip,
        Other(String),
    }
    impl Category {
        pub fn as_str(&self) -> &str {
            match self {
                Self::Sip => "sip",
                Self::Other(s) => s.as_str(),
            }
        }
    }
}
"#;

const EXPECTED: &str = "\
# Test: the generated Rust API

<!-- Written by `cargo xtask surface` from build.rs's `$OUT_DIR/test.rs`; CI runs `cargo xtask surface --check`. Do not edit. -->

Paths are shortened to their last segment (`Option<String>`). Fields and variants are in their declared order (the order an untagged enum tries its variants); the rest by name.

## Operations (1)

### `add_sources`: `POST /api/v4/sources`

- `body`: `AddSourcesRequest`, optional (starts from its defaults)
- `id`: `i64`, required
- `order`: `SortOrder`, optional
- answer: `SourceList`
- error: `Error<()>`

## Types (6)

### struct `AddSource`

- `external_id`: `String`
- `pipeline_id`: `Option<i64>` (wire `pipeline-id`)
- `extra`: `Map<String, Value>` (flattened: the object's other fields)

- fn `builder() -> builder::AddSource`
- fn `new(external_id: impl Into<String>) -> Self`

### struct `AddSourcesRequest`

- `.0`: `Vec<AddSource>`

### enum `Category` (open: any other string is `Other`)

- `Sip` (wire `sip`)
- `Other(String)`

- fn `as_str(&self) -> &str`

### enum `Data` (untagged: the first variant that decodes)

- `Object(Map<String, Value>)`
- `Array(Vec<Value>)`

### type `Ids` = `Vec<i64>`

### enum `SortOrder`

- `Asc` (wire `asc`)
- `Desc` (wire `desc`)
";

#[test]
fn renders_types_fields_and_operations_of_generated_code() {
    let rendered = surface::render("Test", "test", GENERATED).expect("renders");
    assert_eq!(rendered, EXPECTED, "rendered:\n{rendered}");
}

#[test]
fn rendering_is_deterministic() {
    let a = surface::render("Test", "test", GENERATED).unwrap();
    let b = surface::render("Test", "test", GENERATED).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_field_that_changed_type_fails_the_check_naming_the_line() {
    let checked_in = surface::render("Test", "test", GENERATED).unwrap();
    // A spec edit: `external_id` became an enum.
    let edited = GENERATED.replace(
        "pub external_id: ::std::string::String,",
        "pub external_id: ExternalId,",
    );
    let generated = surface::render("Test", "test", &edited).unwrap();
    assert_ne!(generated, checked_in);
    let error = surface::compare("openapi/surface/test.md", &generated, Some(&checked_in))
        .expect_err("a stale surface fails the check");
    assert!(error.contains("openapi/surface/test.md differs"), "{error}");
    assert!(error.contains("line 21"), "{error}");
    assert!(
        error.contains("checked in: \"- `external_id`: `String`\""),
        "{error}"
    );
    assert!(
        error.contains("generated:  \"- `external_id`: `ExternalId`\""),
        "{error}"
    );
    assert!(error.contains("cargo xtask surface"), "{error}");
}

#[test]
fn a_parameter_that_became_required_fails_the_check() {
    let checked_in = surface::render("Test", "test", GENERATED).unwrap();
    let edited = GENERATED.replace(
        "order: Ok(None),",
        "order: Err(\"order was not initialized in add_sources\".to_string()),",
    );
    let generated = surface::render("Test", "test", &edited).unwrap();
    let error = surface::compare("s.md", &generated, Some(&checked_in)).unwrap_err();
    assert!(
        error.contains("generated:  \"- `order`: `SortOrder`, required\""),
        "{error}"
    );
}

#[test]
fn the_check_passes_when_equal_and_fails_when_missing() {
    let text = surface::render("Test", "test", GENERATED).unwrap();
    assert_eq!(surface::compare("s.md", &text, Some(&text)), Ok(()));
    let error = surface::compare("s.md", &text, None).unwrap_err();
    assert!(error.contains("s.md is missing"), "{error}");
    // A file cut short names the end.
    let short: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    let error = surface::compare("s.md", &text, Some(&short)).unwrap_err();
    assert!(error.contains("line 4"), "{error}");
    assert!(error.contains("checked in: (end of file)"), "{error}");
}

#[test]
fn an_operation_whose_builder_is_missing_is_an_error_not_a_panic() {
    let broken = GENERATED.replace("pub struct AddSources<'a>", "pub struct Renamed<'a>");
    let error = surface::render("Test", "test", &broken).unwrap_err();
    assert!(
        error.contains("builder::AddSources (for `add_sources`): no struct"),
        "{error}"
    );
}

#[test]
fn the_checked_in_surfaces_have_their_title_and_sections() {
    let root = workspace_root();
    for (api, title) in [("kommo", "Kommo"), ("closebot", "CloseBot")] {
        let path = root.join(surface::SURFACE_DIR).join(format!("{api}.md"));
        let text = std::fs::read_to_string(&path).expect("checked in");
        assert!(text.starts_with(&format!("# {title}: the generated Rust API\n")));
        assert!(text.contains("\n## Operations ("), "{}", path.display());
        assert!(text.contains("\n## Types ("), "{}", path.display());
    }
}

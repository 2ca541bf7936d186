//! `IncomingLead`, hand-written in place of the generated `oneOf` (build.rs, `HAND_WRITTEN`).
//!
//! The spec describes an incoming lead as a `oneOf` of one schema per category, which is true
//! to the wire and what other languages' generators read. Generated for Rust it was an untagged
//! enum of five structs: every lead was buffered whole and tried against each branch in turn,
//! and a lead of a known category whose metadata had one unexpected field silently became the
//! catch-all branch, losing every typed field. Here the common fields are plain fields, the
//! metadata is chosen by `category`, and a lead is read in one pass: only its `metadata` is held
//! as raw text until the category is known.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::types::{
    ChatsMetadata, FormsMetadata, IncomingLeadCategory, IncomingLeadEmbedded, Links, MailMetadata,
    SipMetadata,
};

/// An incoming lead (an "unsorted" lead): a call, a form, a chat or an email waiting to be
/// accepted or declined.
///
/// `metadata` depends on the [`category`](Self::category); a category this crate does not know,
/// or metadata that does not fit its category's type, is kept whole as
/// [`IncomingLeadMetadata::Unrecognized`] with the reason, so nothing is lost. Fields the spec
/// does not know are kept in [`other_fields`](Self::other_fields).
///
/// ```
/// use lead_intake::kommo::types::{IncomingLead, IncomingLeadCategory, IncomingLeadMetadata};
///
/// let lead: IncomingLead = serde_json::from_str(r#"{
///     "uid": "a1", "source_uid": "site-1", "category": "sip", "pipeline_id": 7,
///     "metadata": {"from": 14155551234, "duration": "54"}
/// }"#)?;
/// assert_eq!(lead.uid, "a1");
/// assert_eq!(lead.category, IncomingLeadCategory::Sip);
/// let call = lead.metadata.as_ref().and_then(IncomingLeadMetadata::sip).unwrap();
/// assert_eq!(call.from.as_ref().unwrap().as_str(), "14155551234");
/// assert_eq!(call.duration.as_ref().unwrap().as_i64(), Some(54));
///
/// let new: IncomingLead = serde_json::from_str(
///     r#"{"uid": "b2", "category": "whatsapp_lead", "metadata": {"x": 1}}"#,
/// )?;
/// let Some(IncomingLeadMetadata::Unrecognized(other)) = &new.metadata else { panic!() };
/// assert_eq!(other.raw()["x"], 1);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct IncomingLead {
    /// The incoming lead's UID.
    pub uid: String,
    /// The UID of the source it came through: the `external_id` the integration gave that
    /// source (`Source::external_id`), or its own UID for the forms and calls it adds.
    pub source_uid: Option<String>,
    /// The source's name.
    pub source_name: Option<String>,
    /// Its category: `sip`, `forms`, `chats`, `mail`, or one Kommo added since.
    pub category: IncomingLeadCategory,
    /// The pipeline it is in.
    pub pipeline_id: Option<i64>,
    /// When it was created (Unix timestamp).
    pub created_at: Option<i64>,
    /// The account it is in.
    pub account_id: Option<i64>,
    /// The category's metadata; `None` when the server sent none (or null).
    pub metadata: Option<IncomingLeadMetadata>,
    /// Its HAL links (`_links`).
    pub links: Option<Links>,
    /// The contacts, companies and leads attached to it (`_embedded`).
    pub embedded: Option<IncomingLeadEmbedded>,
    /// Fields the spec does not describe, as sent.
    pub other_fields: Map<String, Value>,
}

impl IncomingLead {
    /// The incoming lead's UID.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Its category.
    pub fn category(&self) -> &IncomingLeadCategory {
        &self.category
    }

    /// The pipeline it is in.
    pub fn pipeline_id(&self) -> Option<i64> {
        self.pipeline_id
    }

    /// When it was created (Unix timestamp).
    pub fn created_at(&self) -> Option<i64> {
        self.created_at
    }

    /// The contacts, companies and leads attached to it.
    pub fn embedded(&self) -> Option<&IncomingLeadEmbedded> {
        self.embedded.as_ref()
    }

    /// Its metadata.
    pub fn metadata(&self) -> Option<&IncomingLeadMetadata> {
        self.metadata.as_ref()
    }
}

/// The metadata of an incoming lead, by its category.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum IncomingLeadMetadata {
    /// A call (`sip`).
    Sip(SipMetadata),
    /// A form submission (`forms`).
    Forms(FormsMetadata),
    /// A chat message (`chats`).
    Chats(ChatsMetadata),
    /// An email (`mail`).
    Mail(MailMetadata),
    /// A category this crate does not know, or metadata that does not fit its category's type:
    /// the raw JSON and the reason.
    Unrecognized(UnrecognizedMetadata),
}

impl IncomingLeadMetadata {
    /// A call's metadata.
    pub fn sip(&self) -> Option<&SipMetadata> {
        match self {
            Self::Sip(m) => Some(m),
            _ => None,
        }
    }

    /// A form's metadata.
    pub fn forms(&self) -> Option<&FormsMetadata> {
        match self {
            Self::Forms(m) => Some(m),
            _ => None,
        }
    }

    /// A chat's metadata.
    pub fn chats(&self) -> Option<&ChatsMetadata> {
        match self {
            Self::Chats(m) => Some(m),
            _ => None,
        }
    }

    /// An email's metadata.
    pub fn mail(&self) -> Option<&MailMetadata> {
        match self {
            Self::Mail(m) => Some(m),
            _ => None,
        }
    }

    /// Metadata kept raw, with the reason.
    pub fn unrecognized(&self) -> Option<&UnrecognizedMetadata> {
        match self {
            Self::Unrecognized(m) => Some(m),
            _ => None,
        }
    }

    fn decode(category: &IncomingLeadCategory, raw: &RawValue) -> Self {
        fn typed<T: serde::de::DeserializeOwned + Default>(
            raw: &RawValue,
            wrap: fn(T) -> IncomingLeadMetadata,
        ) -> IncomingLeadMetadata {
            let text = raw.get();
            // An object, or PHP's empty array for no metadata fields.
            let mut de = serde_json::Deserializer::from_str(text);
            let read =
                crate::wire::php_empty::map::<_, T>(&mut de).and_then(|m| de.end().map(|()| m));
            match read {
                Ok(m) => wrap(m),
                Err(_) => {
                    let (path, message) = crate::list::locate_failure::<T>(text);
                    IncomingLeadMetadata::Unrecognized(UnrecognizedMetadata {
                        raw: serde_json::from_str(text).unwrap_or(Value::Null),
                        reason: UnrecognizedMetadataReason::DoesNotFit { path, message },
                    })
                }
            }
        }
        match category {
            IncomingLeadCategory::Sip => typed(raw, Self::Sip),
            IncomingLeadCategory::Forms => typed(raw, Self::Forms),
            IncomingLeadCategory::Chats => typed(raw, Self::Chats),
            IncomingLeadCategory::Mail => typed(raw, Self::Mail),
            IncomingLeadCategory::Other(_) => Self::Unrecognized(UnrecognizedMetadata {
                raw: serde_json::from_str(raw.get()).unwrap_or(Value::Null),
                reason: UnrecognizedMetadataReason::UnknownCategory,
            }),
        }
    }
}

/// Metadata kept as sent: see [`IncomingLeadMetadata::Unrecognized`].
#[derive(Clone, Debug, PartialEq)]
pub struct UnrecognizedMetadata {
    raw: Value,
    reason: UnrecognizedMetadataReason,
}

impl UnrecognizedMetadata {
    /// The metadata exactly as sent.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Why it is not typed.
    pub fn reason(&self) -> &UnrecognizedMetadataReason {
        &self.reason
    }

    /// The metadata as sent, owned.
    pub fn into_raw(self) -> Value {
        self.raw
    }
}

/// Why an incoming lead's metadata is kept raw.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnrecognizedMetadataReason {
    /// The lead's category is not one this crate knows.
    UnknownCategory,
    /// The category is known, but its metadata does not fit the category's type.
    DoesNotFit {
        /// Where in the metadata, e.g. `called_at`.
        path: String,
        /// What did not fit, e.g. `invalid type: string, expected i64` (string values are never
        /// quoted).
        message: String,
    },
}

impl fmt::Display for UnrecognizedMetadataReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCategory => f.write_str("unknown category"),
            Self::DoesNotFit { path, message } => write!(f, "at `{path}`: {message}"),
        }
    }
}

impl<'de> Deserialize<'de> for IncomingLead {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(Lead { fast: false })
    }
}

enum Field {
    Uid,
    SourceUid,
    SourceName,
    Category,
    PipelineId,
    CreatedAt,
    AccountId,
    Metadata,
    Links,
    Embedded,
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct F;
        impl Visitor<'_> for F {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "uid" => Field::Uid,
                    "source_uid" => Field::SourceUid,
                    "source_name" => Field::SourceName,
                    "category" => Field::Category,
                    "pipeline_id" => Field::PipelineId,
                    "created_at" => Field::CreatedAt,
                    "account_id" => Field::AccountId,
                    "metadata" => Field::Metadata,
                    "_links" => Field::Links,
                    "_embedded" => Field::Embedded,
                    other => Field::Other(other.to_string()),
                })
            }
        }
        deserializer.deserialize_identifier(F)
    }
}

/// Reads a lead's fields. `fast`: when `category` comes before `metadata` (as Kommo sends it),
/// the metadata is decoded straight into its category's type, and metadata that does not fit
/// fails the whole lead; otherwise it is held as raw text until the end and decoded then, so
/// that metadata that does not fit is kept raw beside the typed common fields.
struct Lead {
    fast: bool,
}

impl<'de> Visitor<'de> for Lead {
    type Value = IncomingLead;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an incoming lead (an object with `uid` and `category`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IncomingLead, A::Error> {
        let mut uid = None;
        let mut category = None;
        let mut metadata: Option<Box<RawValue>> = None;
        let mut lead = IncomingLead {
            uid: String::new(),
            source_uid: None,
            source_name: None,
            category: IncomingLeadCategory::Other(String::new()),
            pipeline_id: None,
            created_at: None,
            account_id: None,
            metadata: None,
            links: None,
            embedded: None,
            other_fields: Map::new(),
        };
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Uid => uid = Some(map.next_value::<String>()?),
                Field::SourceUid => lead.source_uid = map.next_value()?,
                Field::SourceName => lead.source_name = map.next_value()?,
                Field::Category => category = Some(map.next_value::<IncomingLeadCategory>()?),
                Field::PipelineId => lead.pipeline_id = map.next_value()?,
                Field::CreatedAt => lead.created_at = map.next_value()?,
                Field::AccountId => lead.account_id = map.next_value()?,
                Field::Metadata => match (&category, self.fast) {
                    (Some(category), true) => {
                        lead.metadata = map.next_value_seed(FastMetadata(category))?;
                        metadata = None;
                    }
                    _ => metadata = Some(map.next_value()?),
                },
                Field::Links => lead.links = map.next_value()?,
                Field::Embedded => {
                    lead.embedded =
                        map.next_value_seed(PhpEmptyOption::<IncomingLeadEmbedded>::new())?
                }
                Field::Other(name) => {
                    let value: Value = map.next_value()?;
                    lead.other_fields.insert(name, value);
                }
            }
        }
        lead.uid = uid.ok_or_else(|| de::Error::missing_field("uid"))?;
        lead.category = category.ok_or_else(|| de::Error::missing_field("category"))?;
        if let Some(raw) = metadata {
            lead.metadata =
                (raw.get() != "null").then(|| IncomingLeadMetadata::decode(&lead.category, &raw));
        }
        Ok(lead)
    }
}

/// An incoming lead is decoded in one pass in lists; where its metadata does not fit, it is
/// decoded again with `Deserialize`, which keeps that metadata raw.
impl crate::list::ListItemType for IncomingLead {
    fn deserialize_fast<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(Lead { fast: true })
    }
}

/// The metadata of a lead whose category is known, straight into its type.
struct FastMetadata<'a>(&'a IncomingLeadCategory);

impl<'de> de::DeserializeSeed<'de> for FastMetadata<'_> {
    type Value = Option<IncomingLeadMetadata>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        fn typed<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
            d: D,
            wrap: fn(T) -> IncomingLeadMetadata,
        ) -> Result<Option<IncomingLeadMetadata>, D::Error> {
            Ok(crate::wire::php_empty::option::<D, T>(d)?.map(wrap))
        }
        match self.0 {
            IncomingLeadCategory::Sip => typed(d, IncomingLeadMetadata::Sip),
            IncomingLeadCategory::Forms => typed(d, IncomingLeadMetadata::Forms),
            IncomingLeadCategory::Chats => typed(d, IncomingLeadMetadata::Chats),
            IncomingLeadCategory::Mail => typed(d, IncomingLeadMetadata::Mail),
            IncomingLeadCategory::Other(_) => Ok(match Value::deserialize(d)? {
                Value::Null => None,
                raw => Some(IncomingLeadMetadata::Unrecognized(UnrecognizedMetadata {
                    raw,
                    reason: UnrecognizedMetadataReason::UnknownCategory,
                })),
            }),
        }
    }
}

/// `Option<T>` where PHP's `[]` reads as `Some(T::default())`.
struct PhpEmptyOption<T>(std::marker::PhantomData<T>);

impl<T> PhpEmptyOption<T> {
    fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<'de, T: Deserialize<'de> + Default> de::DeserializeSeed<'de> for PhpEmptyOption<T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        crate::wire::php_empty::option(deserializer)
    }
}

impl Serialize for IncomingLead {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("uid", &self.uid)?;
        if let Some(v) = &self.source_uid {
            map.serialize_entry("source_uid", v)?;
        }
        if let Some(v) = &self.source_name {
            map.serialize_entry("source_name", v)?;
        }
        map.serialize_entry("category", &self.category)?;
        if let Some(v) = &self.pipeline_id {
            map.serialize_entry("pipeline_id", v)?;
        }
        if let Some(v) = &self.created_at {
            map.serialize_entry("created_at", v)?;
        }
        if let Some(m) = &self.metadata {
            match m {
                IncomingLeadMetadata::Sip(m) => map.serialize_entry("metadata", m)?,
                IncomingLeadMetadata::Forms(m) => map.serialize_entry("metadata", m)?,
                IncomingLeadMetadata::Chats(m) => map.serialize_entry("metadata", m)?,
                IncomingLeadMetadata::Mail(m) => map.serialize_entry("metadata", m)?,
                IncomingLeadMetadata::Unrecognized(m) => map.serialize_entry("metadata", &m.raw)?,
            }
        }
        if let Some(v) = &self.account_id {
            map.serialize_entry("account_id", v)?;
        }
        if let Some(v) = &self.links {
            map.serialize_entry("_links", v)?;
        }
        if let Some(v) = &self.embedded {
            map.serialize_entry("_embedded", v)?;
        }
        for (k, v) in &self.other_fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl schemars::JsonSchema for IncomingLead {
    fn schema_name() -> String {
        "IncomingLead".to_string()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        use schemars::schema::{InstanceType, ObjectValidation, Schema, SchemaObject};
        let mut object = ObjectValidation::default();
        object.required.insert("uid".into());
        object.required.insert("category".into());
        object
            .properties
            .insert("uid".into(), generator.subschema_for::<String>());
        object.properties.insert(
            "category".into(),
            generator.subschema_for::<IncomingLeadCategory>(),
        );
        Schema::Object(SchemaObject {
            instance_type: Some(InstanceType::Object.into()),
            object: Some(Box::new(object)),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_is_chosen_by_category_wherever_it_comes() {
        // metadata before category: held raw until the category is known.
        let lead: IncomingLead = serde_json::from_value(json!({
            "metadata": {"form_id": 12, "form_name": "Contact"},
            "uid": "f", "category": "forms"
        }))
        .unwrap();
        let form = lead.metadata.as_ref().and_then(|m| m.forms()).unwrap();
        assert_eq!(form.form_id.as_ref().unwrap().as_str(), "12");
    }

    #[test]
    fn metadata_that_does_not_fit_keeps_the_common_fields() {
        let lead: IncomingLead = serde_json::from_value(json!({
            "uid": "s", "category": "sip", "pipeline_id": 3,
            "metadata": {"called_at": "yesterday", "x": 1}
        }))
        .unwrap();
        assert_eq!((lead.uid.as_str(), lead.pipeline_id), ("s", Some(3)));
        let Some(IncomingLeadMetadata::Unrecognized(m)) = &lead.metadata else {
            panic!("{lead:?}")
        };
        assert_eq!(
            m.reason(),
            &UnrecognizedMetadataReason::DoesNotFit {
                path: "called_at".into(),
                message: "invalid type: string, expected i64".into()
            }
        );
        assert_eq!(m.raw()["x"], 1);
    }

    #[test]
    fn php_empty_arrays_and_nulls() {
        let lead: IncomingLead = serde_json::from_value(json!({
            "uid": "m", "category": "mail", "metadata": [], "_embedded": []
        }))
        .unwrap();
        assert_eq!(
            lead.metadata,
            Some(IncomingLeadMetadata::Mail(MailMetadata::default()))
        );
        assert_eq!(lead.embedded, Some(IncomingLeadEmbedded::default()));
        let lead: IncomingLead =
            serde_json::from_value(json!({"uid": "m", "category": "mail", "metadata": null}))
                .unwrap();
        assert_eq!(lead.metadata, None);
    }

    #[test]
    fn unknown_fields_are_kept_and_sent_back() {
        let wire = json!({
            "uid": "c", "category": "chats", "request_id": "0",
            "metadata": {"from": "Ann", "client": {"name": "Ann", "avatar": null}}
        });
        let lead: IncomingLead = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(lead.other_fields["request_id"], "0");
        let back = serde_json::to_value(&lead).unwrap();
        assert_eq!(back["request_id"], "0");
        assert_eq!(back["metadata"]["from"], "Ann");
    }

    #[test]
    fn in_a_list_a_lead_is_read_in_one_pass_and_odd_metadata_still_keeps_the_lead() {
        use crate::list::{Items, ListItemType};
        let fast = |text: &str| {
            IncomingLead::deserialize_fast(&mut serde_json::Deserializer::from_str(text))
        };
        let good = r#"{"uid": "a", "category": "sip", "metadata": {"from": 5, "duration": "7"}}"#;
        let lead = fast(good).unwrap();
        assert_eq!(
            lead.metadata.as_ref().and_then(|m| m.sip()).unwrap().from,
            Some(5.into())
        );
        // The fast path gives up on metadata that does not fit ...
        let odd =
            r#"{"uid": "b", "category": "sip", "pipeline_id": 1, "metadata": {"called_at": "x"}}"#;
        assert!(fast(odd).is_err());
        // ... and the list decodes it again, keeping the lead typed and the metadata raw.
        let items: Items<IncomingLead> =
            serde_json::from_str(&format!("[{good}, {odd}, {good}]")).unwrap();
        assert_eq!((items.len(), items.unrecognized().len()), (3, 0));
        assert_eq!(items[1].pipeline_id, Some(1));
        assert!(matches!(
            items[1].metadata,
            Some(IncomingLeadMetadata::Unrecognized(_))
        ));
        // Both paths agree where both succeed.
        assert_eq!(
            items[0],
            serde_json::from_str::<IncomingLead>(good).unwrap()
        );
        let php = r#"{"uid": "c", "category": "forms", "metadata": [], "x": 1}"#;
        assert_eq!(
            fast(php).unwrap(),
            serde_json::from_str::<IncomingLead>(php).unwrap()
        );
        let other = r#"{"uid": "d", "category": "new_kind", "metadata": {"k": 1}}"#;
        assert_eq!(
            fast(other).unwrap(),
            serde_json::from_str::<IncomingLead>(other).unwrap()
        );
    }

    #[test]
    fn a_lead_without_uid_or_category_is_an_error() {
        assert!(serde_json::from_value::<IncomingLead>(json!({"category": "sip"})).is_err());
        assert!(serde_json::from_value::<IncomingLead>(json!({"uid": "x"})).is_err());
        assert!(serde_json::from_value::<IncomingLead>(json!([])).is_err());
    }
}

//! `WidgetSettings`, hand-written in place of the generated type (build.rs, `HAND_WRITTEN`).
//!
//! The spec's schema is unchanged: an object keyed by setting, or PHP's empty `[]`. Generated,
//! it was an untagged enum whose `Debug` printed every value, and a widget's `pass` settings
//! (and `users_lp` passwords) are credentials that the server sends back in the clear.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// The settings a widget was installed with, keyed by each settings field's `key`, as Kommo
/// returns them when an integration reads its own widget.
///
/// The values are JSON as sent: a string for `text` and `pass` fields, an object for `users`
/// and `users_lp`, anything for `custom` ones. PHP's empty array `[]` reads as no settings.
///
/// `Debug` shows the keys only: a `pass` value is a credential, and a value alone cannot tell
/// a `pass` field from a `text` one. Read values with [`get`](Self::get) or
/// [`as_map`](Self::as_map).
///
/// ```
/// use lead_intake::kommo::types::WidgetSettings;
///
/// let settings: WidgetSettings =
///     serde_json::from_str(r#"{"login": "example", "password": "eXaMp1E"}"#)?;
/// assert_eq!(settings.get("login"), Some(&serde_json::json!("example")));
/// assert_eq!(format!("{settings:?}"), r#"WidgetSettings { keys: ["login", "password"] }"#);
///
/// let none: WidgetSettings = serde_json::from_str("[]")?;
/// assert!(none.is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct WidgetSettings(Map<String, Value>);

impl WidgetSettings {
    /// The value of the setting `key`, if the widget has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The settings' keys, in `serde_json::Map`'s order (sorted by key, unless serde_json's
    /// `preserve_order` feature is on somewhere in the build).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// How many settings there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (the server sent `{}` or `[]`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every setting, key to value.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Every setting, key to value, owned.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

impl From<Map<String, Value>> for WidgetSettings {
    fn from(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

impl fmt::Debug for WidgetSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WidgetSettings")
            .field("keys", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Always the object form: `{}` when there are none.
impl Serialize for WidgetSettings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WidgetSettings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Settings;

        impl<'de> Visitor<'de> for Settings {
            type Value = WidgetSettings;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of widget settings, or an empty array for none")
            }

            // Strings and numbers are named, never quoted: a value here may be a credential.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Other("a string"), &self))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Map::deserialize(de::value::MapAccessDeserializer::new(map)).map(WidgetSettings)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Never read an element's value: it is not shown in the error either.
                match seq.next_element::<de::IgnoredAny>()? {
                    None => Ok(WidgetSettings::default()),
                    Some(_) => Err(de::Error::invalid_length(
                        1,
                        &"an empty array (PHP's empty settings); settings are an object",
                    )),
                }
            }
        }

        deserializer.deserialize_any(Settings)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for WidgetSettings {
    fn schema_name() -> String {
        "WidgetSettings".to_string()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        use schemars::schema::{
            ArrayValidation, InstanceType, Schema, SchemaObject, SubschemaValidation,
        };
        let object = generator.subschema_for::<Map<String, Value>>();
        let empty = Schema::Object(SchemaObject {
            instance_type: Some(InstanceType::Array.into()),
            array: Some(Box::new(ArrayValidation {
                max_items: Some(0),
                ..Default::default()
            })),
            ..Default::default()
        });
        Schema::Object(SchemaObject {
            subschemas: Some(Box::new(SubschemaValidation {
                one_of: Some(vec![object, empty]),
                ..Default::default()
            })),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_an_object_or_an_empty_array() {
        let settings: WidgetSettings =
            serde_json::from_value(json!({"b": "2", "a": {"1": "x"}})).unwrap();
        let mut keys: Vec<_> = settings.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(settings.len(), 2);
        assert_eq!(settings.get("a"), Some(&json!({"1": "x"})));
        let none: WidgetSettings = serde_json::from_value(json!([])).unwrap();
        assert!(none.is_empty());
        assert_eq!(serde_json::to_value(&none).unwrap(), json!({}));
        assert_eq!(
            serde_json::to_value(&settings).unwrap(),
            json!({"b": "2", "a": {"1": "x"}})
        );
    }

    #[test]
    fn refuses_other_shapes_without_quoting_them() {
        for bad in [
            json!(["hunter2"]),
            json!("hunter2"),
            json!(7_000_123),
            json!(-7_000_123),
            json!(7_000_123.5),
            json!(null),
            json!(true),
        ] {
            let err = serde_json::from_value::<WidgetSettings>(bad.clone()).unwrap_err();
            let text = err.to_string();
            assert!(
                !text.contains("hunter2") && !text.contains("7000123"),
                "{text}"
            );
            assert!(text.contains("settings"), "{bad}: {text}");
        }
    }

    #[cfg(feature = "schemars")]
    #[test]
    fn its_json_schema_is_the_specs_an_object_or_an_empty_array() {
        let schema = serde_json::to_value(schemars::schema_for!(WidgetSettings)).unwrap();
        let one_of = schema["oneOf"].as_array().expect("a oneOf");
        assert_eq!(one_of.len(), 2, "{schema}");
        assert_eq!(one_of[0]["type"], "object", "{schema}");
        assert_eq!(
            one_of[1],
            json!({"type": "array", "maxItems": 0}),
            "{schema}"
        );
    }

    #[test]
    fn debug_shows_keys_not_values() {
        let settings: WidgetSettings = serde_json::from_value(json!({
            "password": "eXaMp1E",
            "users_lp": {"1": {"login": "a", "password": "s3cr3t"}}
        }))
        .unwrap();
        let shown = format!("{settings:?} {settings:#?}");
        assert!(
            !shown.contains("eXaMp1E") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(
            shown.contains("password") && shown.contains("users_lp"),
            "{shown}"
        );
    }
}

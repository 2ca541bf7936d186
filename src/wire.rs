//! Shapes the APIs send that the vendor documents do not show (`openapi/EVIDENCE.md`):
//! numbers sent as strings, and PHP's `[]` for an empty object.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A value the API sends either as a JSON integer or as a string (`54` or `"54"`; a phone
/// number as `14155551234` or `"+1 415 555 1234"`).
///
/// Read it as text with [`as_str`](Self::as_str) or `Display`, or as a number with
/// [`as_i64`](Self::as_i64) (an integer, or a string of one). It is sent back in the form it was
/// read or built in, so a value passes through unchanged.
///
/// ```
/// use lead_intake::kommo::types::IntOrString;
///
/// let duration: IntOrString = serde_json::from_str(r#""54""#)?;
/// assert_eq!(duration.as_i64(), Some(54));
/// assert_eq!(duration.as_str(), "54");
/// assert_eq!(duration.to_string(), "54");
///
/// let phone = IntOrString::from(14155551234_i64);
/// assert_eq!(phone.as_str(), "14155551234");
/// assert_eq!(serde_json::to_string(&phone)?, "14155551234");
/// assert_eq!(serde_json::to_string(&IntOrString::from("+1 415"))?, r#""+1 415""#);
/// assert_eq!(IntOrString::from("+1 415").as_i64(), None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IntOrString {
    text: String,
    /// Read from (or built from) a JSON number: sent back as one.
    number: bool,
}

impl IntOrString {
    /// The value as text: the digits of a number, or the string as sent.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value as a number: an integer as sent, or a string that is one (`"54"`); `None`
    /// for any other string.
    pub fn as_i64(&self) -> Option<i64> {
        self.text.parse().ok()
    }

    /// Whether the server sent (or the caller built) a JSON number rather than a string.
    pub fn is_number(&self) -> bool {
        self.number
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.number {
            write!(f, "IntOrString({})", self.text)
        } else {
            write!(f, "IntOrString({:?})", self.text)
        }
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for IntOrString {
            fn from(n: $t) -> Self {
                Self { text: n.to_string(), number: true }
            }
        }
    )*};
}
from_integer!(i32, i64, u32, u64);

impl From<&str> for IntOrString {
    fn from(s: &str) -> Self {
        Self {
            text: s.to_string(),
            number: false,
        }
    }
}

impl From<String> for IntOrString {
    fn from(text: String) -> Self {
        Self {
            text,
            number: false,
        }
    }
}

impl PartialEq<str> for IntOrString {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for IntOrString {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialEq<i64> for IntOrString {
    fn eq(&self, other: &i64) -> bool {
        self.as_i64() == Some(*other)
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.number {
            if let Ok(n) = self.text.parse::<i64>() {
                return serializer.serialize_i64(n);
            }
            if let Ok(n) = self.text.parse::<u64>() {
                return serializer.serialize_u64(n);
            }
        }
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<IntOrString, E> {
                Ok(n.into())
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<IntOrString, E> {
                Ok(n.into())
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<IntOrString, E> {
                Ok(s.into())
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<IntOrString, E> {
                Ok(s.into())
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for IntOrString {
    fn schema_name() -> String {
        "IntOrString".to_string()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        use schemars::schema::{Schema, SchemaObject, SubschemaValidation};
        Schema::Object(SchemaObject {
            subschemas: Some(Box::new(SubschemaValidation {
                one_of: Some(vec![
                    generator.subschema_for::<i64>(),
                    generator.subschema_for::<String>(),
                ]),
                ..Default::default()
            })),
            ..Default::default()
        })
    }
}

/// A widget's rating: documented as "string|float", sent as a string with a decimal comma
/// (`"2,8"`) or as a number (`3.5`).
///
/// ```
/// use lead_intake::kommo::types::WidgetRating;
///
/// let rating: WidgetRating = serde_json::from_str(r#""2,8""#)?;
/// assert_eq!(rating.as_f64(), Some(2.8));
/// assert_eq!(rating.as_str(), "2,8");
/// let rating: WidgetRating = serde_json::from_str("3.5")?;
/// assert_eq!((rating.as_f64(), rating.to_string()), (Some(3.5), "3.5".to_string()));
/// assert_eq!(serde_json::to_string(&rating)?, "3.5");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct WidgetRating {
    text: String,
    number: bool,
}

impl WidgetRating {
    /// The rating as sent: `2,8`, or the digits of a number.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The rating as a number, a decimal comma read as a point; `None` for text that is not one.
    pub fn as_f64(&self) -> Option<f64> {
        self.text.replace(',', ".").trim().parse().ok()
    }

    /// Whether the server sent a JSON number rather than a string.
    pub fn is_number(&self) -> bool {
        self.number
    }
}

impl fmt::Display for WidgetRating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for WidgetRating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.number {
            write!(f, "WidgetRating({})", self.text)
        } else {
            write!(f, "WidgetRating({:?})", self.text)
        }
    }
}

impl From<&str> for WidgetRating {
    fn from(s: &str) -> Self {
        Self {
            text: s.to_string(),
            number: false,
        }
    }
}

impl From<f64> for WidgetRating {
    fn from(n: f64) -> Self {
        Self {
            text: n.to_string(),
            number: true,
        }
    }
}

impl Serialize for WidgetRating {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.number, self.text.parse::<f64>()) {
            (true, Ok(n)) => serializer.serialize_f64(n),
            _ => serializer.serialize_str(&self.text),
        }
    }
}

impl<'de> Deserialize<'de> for WidgetRating {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WidgetRating;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rating: a number, or a string like \"2,8\"")
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<WidgetRating, E> {
                Ok(WidgetRating {
                    text: n.to_string(),
                    number: true,
                })
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<WidgetRating, E> {
                Ok(WidgetRating {
                    text: n.to_string(),
                    number: true,
                })
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<WidgetRating, E> {
                Ok(n.into())
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<WidgetRating, E> {
                Ok(s.into())
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for WidgetRating {
    fn schema_name() -> String {
        "WidgetRating".to_string()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        use schemars::schema::{Schema, SchemaObject, SubschemaValidation};
        Schema::Object(SchemaObject {
            subschemas: Some(Box::new(SubschemaValidation {
                one_of: Some(vec![
                    generator.subschema_for::<String>(),
                    generator.subschema_for::<f64>(),
                ]),
                ..Default::default()
            })),
            ..Default::default()
        })
    }
}

/// An amount of money, such as a lead's sale value: an integer, or a number with a fraction
/// (Kommo's minor units; the official SDK sends a float). An integer is sent as an integer, so
/// `5000` never goes out as `5000.0`.
///
/// ```
/// use lead_intake::kommo::types::Amount;
///
/// assert_eq!(serde_json::to_string(&Amount::from(5000))?, "5000");
/// assert_eq!(serde_json::to_string(&Amount::from(49.9))?, "49.9");
/// let read: Amount = serde_json::from_str("120.5")?;
/// assert_eq!((read.as_f64(), read.as_i64()), (120.5, None));
/// assert_eq!(Amount::from(7).as_i64(), Some(7));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq)]
pub struct Amount(AmountRepr);

#[derive(Clone, Copy, PartialEq)]
enum AmountRepr {
    Int(i64),
    Float(f64),
}

impl Amount {
    /// The amount as a float.
    pub fn as_f64(&self) -> f64 {
        match self.0 {
            AmountRepr::Int(n) => n as f64,
            AmountRepr::Float(x) => x,
        }
    }

    /// The amount as an integer, when it is one (built from or read as an integer).
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            AmountRepr::Int(n) => Some(n),
            AmountRepr::Float(_) => None,
        }
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            AmountRepr::Int(n) => write!(f, "Amount({n})"),
            AmountRepr::Float(x) => write!(f, "Amount({x:?})"),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            AmountRepr::Int(n) => write!(f, "{n}"),
            AmountRepr::Float(x) => write!(f, "{x}"),
        }
    }
}

macro_rules! amount_from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Amount {
            fn from(n: $t) -> Self {
                Self(AmountRepr::Int(i64::from(n)))
            }
        }
    )*};
}
amount_from_integer!(i32, i64, u32);

impl From<f64> for Amount {
    fn from(x: f64) -> Self {
        Self(AmountRepr::Float(x))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AmountRepr::Int(n) => serializer.serialize_i64(n),
            AmountRepr::Float(x) => serializer.serialize_f64(x),
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount (a number)")
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Amount, E> {
                Ok(n.into())
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Amount, E> {
                Ok(i64::try_from(n).map_or(Amount(AmountRepr::Float(n as f64)), Amount::from))
            }

            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Amount, E> {
                Ok(x.into())
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Amount {
    fn schema_name() -> String {
        "Amount".to_string()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        f64::json_schema(generator)
    }
}

/// The keys of a generated answer type that keeps its other fields (build.rs,
/// `open_deserialize`): a key the type declares is read as its index, any other as its name, so
/// the type's decoder puts each value straight into its field or its map of other fields. serde's
/// `#[serde(flatten)]` would buffer every unknown value first and decode it again.
pub(crate) mod open_keys {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

    /// A key: a declared field's index, or another field's name.
    pub(crate) enum Key {
        Declared(usize),
        Other(String),
    }

    /// Reads one key with the type's matcher: a generated `match` on the declared wire names
    /// (a key's index among them, or `None`), which the compiler turns into a comparison of
    /// lengths and inline byte compares. A search through a slice of names with `==` calls
    /// `memcmp` for each name of the same length: on benchmark 2's page that took about 100
    /// instructions a key, the `match` 42, both with serde_json's reading of the key
    /// (BENCHMARKS.md, "the cost of `extra`, cut").
    pub(crate) struct Keys<F>(pub(crate) F);

    impl<'de, F: Fn(&str) -> Option<usize>> DeserializeSeed<'de> for Keys<F> {
        type Value = Key;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
            deserializer.deserialize_identifier(self)
        }
    }

    impl<F: Fn(&str) -> Option<usize>> Visitor<'_> for Keys<F> {
        type Value = Key;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a field name")
        }

        fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
            Ok(match (self.0)(key) {
                Some(i) => Key::Declared(i),
                None => Key::Other(key.to_owned()),
            })
        }

        fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Key, E> {
            match std::str::from_utf8(key) {
                Ok(key) => self.visit_str(key),
                Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(key), &self)),
            }
        }
    }
}

/// Readers for objects that PHP's `json_encode` sends as `[]` when they are empty (an empty
/// PHP array has no way to say it is a map). build.rs puts them on every field whose schema is
/// `oneOf: [<object>, PhpEmptyArray]`; an empty array reads as the empty object, a non-empty
/// one is refused.
pub(crate) mod php_empty {
    use super::*;
    use std::marker::PhantomData;

    struct OrEmpty<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for OrEmpty<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object, or an empty array for an empty one")
        }

        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }

        /// A null map reads as the empty one (`map` only: `option` takes null first).
        fn visit_unit<E: de::Error>(self) -> Result<T, E> {
            Ok(T::default())
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
            match seq.next_element::<de::IgnoredAny>()? {
                None => Ok(T::default()),
                Some(_) => Err(de::Error::invalid_length(
                    1,
                    &"an empty array (PHP's empty object), or an object",
                )),
            }
        }
    }

    struct OptionOrEmpty<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for OptionOrEmpty<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object, an empty array for an empty one, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            d.deserialize_any(OrEmpty(PhantomData)).map(Some)
        }
    }

    /// For `Option<T>` fields: null or absent is `None`, `[]` is `Some(T::default())`.
    pub(crate) fn option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        deserializer.deserialize_option(OptionOrEmpty(PhantomData))
    }

    /// For map fields (`HashMap<K, V>`): `[]` and null are the empty map.
    pub(crate) fn map<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        deserializer.deserialize_any(OrEmpty(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn int_or_string_reads_both_and_writes_back_the_same_form() {
        for (wire, text, n) in [
            (json!(54), "54", Some(54)),
            (json!("54"), "54", Some(54)),
            (json!("+1 415"), "+1 415", None),
            (json!(u64::MAX), "18446744073709551615", None),
        ] {
            let v: IntOrString = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(v.as_str(), text);
            assert_eq!(v.as_i64(), n);
            assert_eq!(serde_json::to_value(&v).unwrap(), wire);
        }
        for bad in [json!(1.5), json!(null), json!({}), json!([])] {
            assert!(serde_json::from_value::<IntOrString>(bad).is_err());
        }
    }

    #[test]
    fn an_amount_keeps_integers_integers() {
        for (wire, int) in [
            (json!(5000), Some(5000)),
            (json!(-3), Some(-3)),
            (json!(49.9), None),
            (json!(5000.0), None),
        ] {
            let a: Amount = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(a.as_i64(), int);
            assert_eq!(serde_json::to_value(a).unwrap(), wire);
        }
        let big: Amount = serde_json::from_value(json!(u64::MAX)).unwrap();
        assert_eq!(big.as_i64(), None);
        for bad in [json!("5000"), json!(null), json!([])] {
            assert!(serde_json::from_value::<Amount>(bad).is_err());
        }
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct Params {
        waba: Option<bool>,
    }

    #[derive(Deserialize, Debug)]
    struct Holder {
        #[serde(default, deserialize_with = "php_empty::option")]
        params: Option<Params>,
        #[serde(default, deserialize_with = "php_empty::map")]
        counts: HashMap<String, i64>,
    }

    #[test]
    fn php_empty_arrays_read_as_empty_objects() {
        let h: Holder = serde_json::from_value(json!({"params": [], "counts": []})).unwrap();
        assert_eq!(h.params, Some(Params::default()));
        assert!(h.counts.is_empty());
        let h: Holder =
            serde_json::from_value(json!({"params": {"waba": true}, "counts": {"a": 1}})).unwrap();
        assert_eq!(h.params, Some(Params { waba: Some(true) }));
        assert_eq!(h.counts["a"], 1);
        let h: Holder = serde_json::from_value(json!({"params": null})).unwrap();
        assert_eq!(h.params, None);
        let h: Holder = serde_json::from_value(json!({})).unwrap();
        assert_eq!(h.params, None);
        let h: Holder = serde_json::from_value(json!({"counts": null})).unwrap();
        assert!(h.counts.is_empty());
        for bad in [
            json!({"params": [1]}),
            json!({"counts": [1]}),
            json!({"params": 5}),
        ] {
            assert!(serde_json::from_value::<Holder>(bad).is_err());
        }
    }
}

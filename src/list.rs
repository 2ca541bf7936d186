//! The items of a list answer, where one odd item never costs the rest: the guide below.
//!
#![doc = include_str!("guides/list.md")]

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// The items of one list answer: the ones that decoded, in order, and the ones that did not.
///
/// Derefs to the slice of decoded items, so `items.len()`, `items.iter()` and `for item in
/// &items` see those; [`unrecognized`](Self::unrecognized) has the others and
/// [`entries`](Self::entries) walks both in the server's order.
#[derive(Clone, PartialEq)]
pub struct Items<T> {
    typed: Vec<T>,
    /// Sorted by index.
    unrecognized: Vec<UnrecognizedItem>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Items<T> {
    /// No items.
    pub const fn new() -> Self {
        Self {
            typed: Vec::new(),
            unrecognized: Vec::new(),
        }
    }

    /// The items that did not decode into their type, in the order they came.
    pub fn unrecognized(&self) -> &[UnrecognizedItem] {
        &self.unrecognized
    }

    /// How many items the server sent, decoded or not.
    pub fn total(&self) -> usize {
        self.typed.len() + self.unrecognized.len()
    }

    /// Whether every item decoded.
    pub fn all_recognized(&self) -> bool {
        self.unrecognized.is_empty()
    }

    /// Every item in the server's order, decoded or not.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_, T>> {
        let mut typed = self.typed.iter();
        let mut odd = self.unrecognized.iter().peekable();
        (0..self.total()).filter_map(move |index| match odd.peek() {
            Some(u) if u.index == index => odd.next().map(Entry::Unrecognized),
            _ => typed.next().map(Entry::Typed),
        })
    }

    /// Every item in the server's order, owned.
    pub fn into_entries(self) -> Vec<ListItem<T>> {
        let total = self.total();
        let mut typed = self.typed.into_iter();
        let mut odd = self.unrecognized.into_iter().peekable();
        let mut out = Vec::with_capacity(total);
        for index in 0..total {
            match odd.peek() {
                Some(u) if u.index == index => out.extend(odd.next().map(ListItem::Unrecognized)),
                _ => out.extend(typed.next().map(ListItem::Typed)),
            }
        }
        out
    }

    /// The decoded items, and the others.
    pub fn into_parts(self) -> (Vec<T>, Vec<UnrecognizedItem>) {
        (self.typed, self.unrecognized)
    }

    /// The decoded items (the others are dropped: see [`into_parts`](Self::into_parts)).
    pub fn into_vec(self) -> Vec<T> {
        self.typed
    }
}

impl<T> Deref for Items<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.typed
    }
}

impl<T> From<Vec<T>> for Items<T> {
    fn from(typed: Vec<T>) -> Self {
        Self {
            typed,
            unrecognized: Vec::new(),
        }
    }
}

impl<T> FromIterator<T> for Items<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Vec::from_iter(iter).into()
    }
}

impl<T> IntoIterator for Items<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    /// The decoded items.
    fn into_iter(self) -> Self::IntoIter {
        self.typed.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Items<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.typed.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for Items<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unrecognized.is_empty() {
            f.debug_list().entries(&self.typed).finish()
        } else {
            f.debug_struct("Items")
                .field("typed", &self.typed)
                .field("unrecognized", &self.unrecognized)
                .finish()
        }
    }
}

/// The items in the server's order, each as it came (an unrecognized one as its raw JSON).
impl<T: Serialize> Serialize for Items<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.total()))?;
        for entry in self.entries() {
            match entry {
                Entry::Typed(item) => seq.serialize_element(item)?,
                Entry::Unrecognized(item) => seq.serialize_element(&item.raw)?,
            }
        }
        seq.end()
    }
}

/// A type that lists hold ([`Items`]). Each item is decoded with a fast decoder, and when that fails, with its `Deserialize`, which keeps as much of
/// the item typed as fits (an incoming lead keeps its common fields and holds odd metadata raw);
/// only an item that fails both is unrecognized. Implemented by this crate for the items of
/// every list answer.
pub trait ListItemType: DeserializeOwned {
    /// A decode that may give up on the whole item where `Deserialize` would keep part of it.
    /// The default is `Deserialize`.
    #[doc(hidden)]
    fn deserialize_fast<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::deserialize(deserializer)
    }
}

impl<'de, T: ListItemType> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Inside `from_slice`'s first pass: every item straight from the input, with no copy of
        // the list's text; an item that does not fit fails the pass, and `from_slice` decodes
        // the answer again, this way.
        if WHOLE_LISTS.get() {
            return FastList::<T>::deserialize(deserializer).map(|FastList(typed)| typed.into());
        }
        // The list is held as its raw text (no tree is built) so that an item that does not
        // fit can be read again on its own.
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        if !text.starts_with('[') {
            return Err(de::Error::invalid_type(
                de::Unexpected::Other(json_kind(text)),
                &"a list",
            ));
        }
        // Every item in one pass, with its fast decoder: what almost every answer takes.
        if let Ok(FastList(typed)) = serde_json::from_str::<FastList<T>>(text) {
            return Ok(typed.into());
        }
        // Some item does not fit: each on its own, so a failure stays inside the item.
        let raws: Vec<&RawValue> = serde_json::from_str(text).map_err(de::Error::custom)?;
        let mut items = Items {
            typed: Vec::with_capacity(raws.len()),
            unrecognized: Vec::new(),
        };
        for (index, raw) in raws.into_iter().enumerate() {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            let fast = T::deserialize_fast(&mut de).and_then(|item| de.end().map(|()| item));
            match fast.or_else(|_| serde_json::from_str(raw.get())) {
                Ok(item) => items.typed.push(item),
                Err(_) => items
                    .unrecognized
                    .push(UnrecognizedItem::new::<T>(index, raw)),
            }
        }
        if let Some(first) = items.unrecognized.first() {
            crate::metrics::unrecognized_items(items.unrecognized.len());
            tracing::warn!(
                target: "lead_intake::list",
                unrecognized = items.unrecognized.len(),
                total = items.total(),
                first_index = first.index,
                first_path = %first.path,
                "list items that do not fit their type were kept as unrecognized items"
            );
        }
        Ok(items)
    }
}

thread_local! {
    /// Set during [`from_slice`]'s first pass, which decodes lists in one pass from the input.
    static WHOLE_LISTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Decodes JSON as the clients decode every answer: the same result as `serde_json::from_slice`
/// (lists keep an item that does not fit as an [`UnrecognizedItem`]), in one pass over the
/// input when every item fits.
///
/// `serde_json::from_slice` reads each list of the answer as raw text first, so that an item
/// that does not fit can be read again on its own; that costs a third of decoding a page of
/// incoming leads (BENCHMARKS.md §2). This function decodes every list straight from the input
/// first and, only when some item does not fit, decodes the whole input again the tolerant way.
/// Use it for answers you stored, or read through another HTTP client:
///
/// ```
/// use lead_intake::kommo::types::SourceList;
///
/// let body = br#"{"_embedded": {"sources": [{"id": 1, "name": "Web"}, {"id": "two"}]}}"#;
/// let page: SourceList = lead_intake::list::from_slice(body)?;
/// let sources = &page.embedded.expect("_embedded").sources;
/// assert_eq!((sources.len(), sources.unrecognized().len()), (1, 1));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    /// Ends the first pass, however it ends (a panic in a decoder included).
    struct Pass;
    impl Drop for Pass {
        fn drop(&mut self) {
            WHOLE_LISTS.set(false);
        }
    }
    let whole = {
        WHOLE_LISTS.set(true);
        let _pass = Pass;
        serde_json::from_slice(bytes)
    };
    match whole {
        Ok(value) => Ok(value),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// What the generated clients call for a success answer's body instead of progenitor's
/// `ResponseValue::from_response` (build.rs makes the swap): the same, decoded by [`from_slice`].
#[doc(hidden)]
pub async fn response_value<T: DeserializeOwned, E>(
    response: reqwest::Response,
) -> Result<progenitor_client::ResponseValue<T>, progenitor_client::Error<E>> {
    let status = response.status();
    let headers = response.headers().clone();
    let full = response
        .bytes()
        .await
        .map_err(progenitor_client::Error::ResponseBodyError)?;
    let inner =
        from_slice(&full).map_err(|e| progenitor_client::Error::InvalidResponsePayload(full, e))?;
    Ok(progenitor_client::ResponseValue::new(
        inner, status, headers,
    ))
}

/// Any `DeserializeOwned` type as a list item (its `Deserialize` is its only decoder): for the
/// lists of raw calls (`Items::decode_any`).
struct AnyItem<T>(T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for AnyItem<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(AnyItem)
    }
}

impl<T: DeserializeOwned> ListItemType for AnyItem<T> {}

impl<T: DeserializeOwned> Items<T> {
    /// A JSON list of any item type, with the same tolerance as the typed lists: an item that
    /// does not decode is kept as an [`UnrecognizedItem`] in its place. `Err` when the text is
    /// not a list.
    pub(crate) fn decode_any(text: &str) -> Result<Self, serde_json::Error> {
        let items: Items<AnyItem<T>> = serde_json::from_str(text)?;
        Ok(Items {
            typed: items.typed.into_iter().map(|AnyItem(item)| item).collect(),
            unrecognized: items.unrecognized,
        })
    }
}

/// What a JSON text is, for an error that must not quote it.
fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

/// A list decoded in one pass with each item's fast decoder; fails on the first odd item.
struct FastList<T>(Vec<T>);

impl<'de, T: ListItemType> Deserialize<'de> for FastList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        struct Fast<T>(PhantomData<T>);

        impl<'de, T: ListItemType> de::DeserializeSeed<'de> for Fast<T> {
            type Value = T;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
                T::deserialize_fast(d)
            }
        }

        impl<'de, T: ListItemType> Visitor<'de> for V<T> {
            type Value = FastList<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FastList<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element_seed(Fast(PhantomData))? {
                    out.push(item);
                }
                Ok(FastList(out))
            }
        }

        deserializer.deserialize_seq(V(PhantomData))
    }
}

#[cfg(feature = "schemars")]
impl<T: schemars::JsonSchema> schemars::JsonSchema for Items<T> {
    fn schema_name() -> String {
        format!("Array_of_{}", T::schema_name())
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        Vec::<T>::json_schema(generator)
    }
}

/// An item of a list answer that did not decode into its type: its raw JSON, its index in the
/// list, and the path in the item and the reason of the failure.
///
/// `Debug` and `Display` show the index, the path and the reason, never the item's values (an
/// item may hold credentials, like a CloseBot source's CRM keys); the reason never quotes a
/// string value either.
#[derive(Clone, PartialEq)]
pub struct UnrecognizedItem {
    index: usize,
    path: String,
    reason: String,
    raw: Value,
}

impl UnrecognizedItem {
    fn new<T: DeserializeOwned>(index: usize, raw: &RawValue) -> Self {
        let (path, reason) = locate_failure::<T>(raw.get());
        Self {
            index,
            path,
            reason,
            raw: serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        }
    }

    /// Its position in the list, counting every item (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Where in the item decoding failed, e.g. `metadata.from` (`.` for the item itself).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Why, e.g. `invalid type: string, expected i64`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The item exactly as the server sent it.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The item as the server sent it, owned.
    pub fn into_raw(self) -> Value {
        self.raw
    }

    /// The item with the secrets removed from its path, reason and raw JSON, as an error holds
    /// it.
    pub(crate) fn redacted(mut self, redactions: &crate::secret::Redactions) -> Self {
        redactions.apply_to(&mut self.path);
        redactions.apply_to(&mut self.reason);
        redactions.apply_to_json(&mut self.raw);
        self
    }
}

/// Where and why `text` does not decode as `T` (it just failed to): the JSON path (`.` for the
/// root) and [`scrub`]bed message, from a second, path-tracking decode.
pub(crate) fn locate_failure<T: DeserializeOwned>(text: &str) -> (String, String) {
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => (e.path().to_string(), scrub(e.inner())),
        // Only when `text` decodes after all, which the callers ruled out.
        Ok(_) => (".".to_string(), "did not decode".to_string()),
    }
}

/// serde_json's message without its position (it is the item's, not the answer's) and without
/// any string value it quotes.
pub(crate) fn scrub(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                if !quoted && out.ends_with(' ') {
                    out.pop();
                }
                quoted = !quoted;
            }
            _ if quoted => {}
            _ => out.push(c),
        }
    }
    out
}

impl fmt::Debug for UnrecognizedItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnrecognizedItem")
            .field("index", &self.index)
            .field("path", &self.path)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for UnrecognizedItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "item {} does not fit its type at `{}`: {}",
            self.index, self.path, self.reason
        )
    }
}

/// An item of a list, decoded or not (what [`Items::into_entries`] and the pagers' item
/// streams give).
#[derive(Clone, Debug, PartialEq)]
pub enum ListItem<T> {
    /// The item, decoded.
    Typed(T),
    /// An item that does not fit its type.
    Unrecognized(UnrecognizedItem),
}

impl<T> ListItem<T> {
    /// The decoded item, if it is one.
    pub fn typed(&self) -> Option<&T> {
        match self {
            Self::Typed(t) => Some(t),
            Self::Unrecognized(_) => None,
        }
    }

    /// The decoded item, or the unrecognized one as an error.
    pub fn into_typed(self) -> Result<T, UnrecognizedItem> {
        match self {
            Self::Typed(t) => Ok(t),
            Self::Unrecognized(u) => Err(u),
        }
    }

    /// The unrecognized item, if it is one.
    pub fn unrecognized(&self) -> Option<&UnrecognizedItem> {
        match self {
            Self::Typed(_) => None,
            Self::Unrecognized(u) => Some(u),
        }
    }
}

/// A borrowed [`ListItem`], from [`Items::entries`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Entry<'a, T> {
    /// The item, decoded.
    Typed(&'a T),
    /// An item that does not fit its type.
    Unrecognized(&'a UnrecognizedItem),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Serialize, Debug, PartialEq, Clone)]
    struct Thing {
        id: i64,
    }

    impl ListItemType for Thing {}

    #[derive(Deserialize, Debug, PartialEq)]
    struct Page {
        things: Items<Thing>,
        more: Vec<Items<Thing>>,
    }

    /// `from_slice` gives what `serde_json::from_slice` gives, whether the first pass holds or
    /// not, and leaves no pass behind: a list decoded afterwards with serde_json keeps its odd
    /// item.
    #[test]
    fn from_slice_is_serde_json_s_result_in_one_pass_or_two() {
        let fits = br#"{"things": [{"id": 1}, {"id": 2}], "more": [[{"id": 3}], []]}"#;
        let odd = br#"{"things": [{"id": 1}, {"id": "x"}], "more": [[{"id": 3}, 4]]}"#;
        for body in [&fits[..], &odd[..]] {
            let ours: Page = from_slice(body).unwrap();
            let theirs: Page = serde_json::from_slice(body).unwrap();
            assert_eq!(ours, theirs);
        }
        let ours: Page = from_slice(odd).unwrap();
        assert_eq!(
            (ours.things.len(), ours.things.unrecognized().len()),
            (1, 1)
        );
        assert_eq!(ours.more[0].unrecognized()[0].index(), 1);
        // Not JSON, or not the type: the same error as serde_json's.
        for bad in [&b"{"[..], br#"{"things": {}, "more": []}"#] {
            let ours = from_slice::<Page>(bad).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<Page>(bad).unwrap_err().to_string();
            assert_eq!(ours, theirs);
        }
        assert!(!WHOLE_LISTS.get());
        let after: Items<Thing> = serde_json::from_slice(br#"[{"id": 1}, {"id": "x"}]"#).unwrap();
        assert_eq!(after.unrecognized().len(), 1);
    }

    #[test]
    fn an_odd_item_is_kept_with_its_index_path_and_reason() {
        let wire = json!([{"id": 1}, {"id": "s3cr3t"}, {"id": 3}, 7]);
        let items: Items<Thing> = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(&*items, &[Thing { id: 1 }, Thing { id: 3 }]);
        assert_eq!(items.total(), 4);
        let odd = items.unrecognized();
        assert_eq!((odd[0].index(), odd[0].path()), (1, "id"));
        assert_eq!(odd[0].reason(), "invalid type: string, expected i64");
        assert_eq!(odd[0].raw(), &json!({"id": "s3cr3t"}));
        assert_eq!((odd[1].index(), odd[1].path()), (3, "."));
        let shown = format!("{items:?} {}", odd[0]);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        // Order and bytes survive a round trip.
        assert_eq!(serde_json::to_value(&items).unwrap(), wire);
        let order: Vec<_> = items
            .into_entries()
            .into_iter()
            .map(|e| match e {
                ListItem::Typed(t) => t.id.to_string(),
                ListItem::Unrecognized(u) => format!("?{}", u.index()),
            })
            .collect();
        assert_eq!(order, ["1", "?1", "3", "?3"]);
    }

    #[test]
    fn a_list_that_is_not_a_list_is_an_error() {
        assert!(serde_json::from_value::<Items<Thing>>(json!({"id": 1})).is_err());
        assert!(serde_json::from_str::<Items<Thing>>("[{\"id\": 1}, ").is_err());
    }
}

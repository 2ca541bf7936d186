//! Reading Kommo's list answers: their items, and the hrefs of their HAL links.
//!
//! ```
//! use lead_intake::kommo::types::WidgetList;
//!
//! let page: WidgetList = serde_json::from_str(r#"{
//!     "_page": 1,
//!     "_links": {"self": {"href": "/api/v4/widgets?page=1"}, "next": {"href": "/api/v4/widgets?page=2"}},
//!     "_embedded": {"widgets": [{"code": "amo_dropbox"}]}
//! }"#)?;
//! assert_eq!(page.widgets()[0].code, "amo_dropbox");
//! assert_eq!(page.next_href(), Some("/api/v4/widgets?page=2"));
//! assert_eq!(page.prev_href(), None);
//!
//! let empty: WidgetList = serde_json::from_str("{}")?; // or a 204, through `or_empty()`
//! assert!(empty.widgets().is_empty());
//! # Ok::<(), serde_json::Error>(())
//! ```

use super::types::{
    CreatedIncomingLead, CreatedIncomingLeadList, IncomingLead, IncomingLeadList, Link, Links,
    Pipeline, PipelineList, PipelineStatus, Source, SourceList, Widget, WidgetList,
};
use crate::list::{Items, ListItemType};

// The items of Kommo's lists, each decoded on its own when the list does not fit in one pass
// (the incoming lead's own decoder is in `leads.rs`).
impl ListItemType for Source {}
impl ListItemType for Widget {}
impl ListItemType for CreatedIncomingLead {}
impl ListItemType for Pipeline {}
impl ListItemType for PipelineStatus {}

static NO_SOURCES: Items<Source> = Items::new();
static NO_WIDGETS: Items<Widget> = Items::new();
static NO_LEADS: Items<IncomingLead> = Items::new();
static NO_CREATED: Items<CreatedIncomingLead> = Items::new();
static NO_PIPELINES: Items<Pipeline> = Items::new();
static NO_STATUSES: Items<PipelineStatus> = Items::new();

fn href(link: Option<&Link>) -> Option<&str> {
    link.and_then(|l| l.href.as_deref())
}

impl Links {
    /// The `next` link's href: the next page, when there is one.
    pub fn next_href(&self) -> Option<&str> {
        href(self.next.as_ref())
    }

    /// The `prev` link's href.
    pub fn prev_href(&self) -> Option<&str> {
        href(self.prev.as_ref())
    }

    /// The `self` link's href: this page or entity.
    pub fn self_href(&self) -> Option<&str> {
        href(self.self_.as_ref())
    }
}

macro_rules! list_accessors {
    ($list:ty, $field:ident, $item:ty, $empty:ident, $get:ident, $into:ident, $what:literal) => {
        impl $list {
            #[doc = concat!("The ", $what, " of the answer (`_embedded.", stringify!($field), "`): those that decoded, derefs to a slice; [`Items::unrecognized`] has the others. Empty when the answer has none.")]
            pub fn $get(&self) -> &Items<$item> {
                self.embedded.as_ref().map_or(&$empty, |e| &e.$field)
            }

            #[doc = concat!("The ", $what, " of the answer, owned.")]
            pub fn $into(self) -> Items<$item> {
                self.embedded.map(|e| e.$field).unwrap_or_default()
            }
        }
    };
}

list_accessors!(
    SourceList,
    sources,
    Source,
    NO_SOURCES,
    sources,
    into_sources,
    "sources"
);
list_accessors!(
    WidgetList,
    widgets,
    Widget,
    NO_WIDGETS,
    widgets,
    into_widgets,
    "widgets"
);
list_accessors!(
    IncomingLeadList,
    unsorted,
    IncomingLead,
    NO_LEADS,
    incoming_leads,
    into_incoming_leads,
    "incoming leads"
);
list_accessors!(
    CreatedIncomingLeadList,
    unsorted,
    CreatedIncomingLead,
    NO_CREATED,
    incoming_leads,
    into_incoming_leads,
    "incoming leads just created"
);

list_accessors!(
    PipelineList,
    pipelines,
    Pipeline,
    NO_PIPELINES,
    pipelines,
    into_pipelines,
    "pipelines"
);
list_accessors!(
    Pipeline,
    statuses,
    PipelineStatus,
    NO_STATUSES,
    statuses,
    into_statuses,
    "statuses of the pipeline"
);

impl PipelineList {
    /// The pipeline with this ID, if the account has it.
    ///
    /// ```
    /// use lead_intake::kommo::types::PipelineList;
    ///
    /// let list: PipelineList = serde_json::from_str(r#"{"_embedded": {"pipelines": [
    ///     {"id": 6950551, "is_main": true, "_embedded": {"statuses": [{"id": 58141803, "type": 1}]}}
    /// ]}}"#)?;
    /// let main = list.pipeline(6950551).expect("listed");
    /// assert_eq!(main.statuses()[0].id, 58141803);
    /// assert!(list.pipeline(1).is_none());
    /// assert_eq!(list.main().map(|p| p.id), Some(6950551));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn pipeline(&self, id: i64) -> Option<&Pipeline> {
        self.pipelines().iter().find(|p| p.id == id)
    }

    /// The account's main pipeline (`is_main`), where a source or lead without `pipeline_id`
    /// goes.
    pub fn main(&self) -> Option<&Pipeline> {
        self.pipelines().iter().find(|p| p.is_main == Some(true))
    }
}

impl Pipeline {
    /// The status with this ID, if the pipeline has it.
    pub fn status(&self, id: i64) -> Option<&PipelineStatus> {
        self.statuses().iter().find(|s| s.id == id)
    }
}

macro_rules! link_accessors {
    ($($list:ty),*) => {$(
        impl $list {
            /// The href of the answer's `next` link: the next page, when there is one.
            pub fn next_href(&self) -> Option<&str> {
                self.links.as_ref().and_then(Links::next_href)
            }

            /// The href of the answer's `prev` link.
            pub fn prev_href(&self) -> Option<&str> {
                self.links.as_ref().and_then(Links::prev_href)
            }

            /// The href of the answer's `self` link.
            pub fn self_href(&self) -> Option<&str> {
                self.links.as_ref().and_then(Links::self_href)
            }
        }
    )*};
}

link_accessors!(SourceList, WidgetList, IncomingLeadList, PipelineList);

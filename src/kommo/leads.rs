//! Conveniences over the generated incoming-lead types.

use super::types::{IncomingLead, IncomingLeadCategory, IncomingLeadEmbedded};

impl IncomingLead {
    /// The incoming lead's UID, whatever its category.
    ///
    /// ```
    /// use lead_intake::kommo::types::{IncomingLead, IncomingLeadCategory};
    /// let lead: IncomingLead = serde_json::from_str(
    ///     r#"{"uid": "abc", "category": "whatsapp_lead", "metadata": {"x": 1}}"#,
    /// )?;
    /// assert_eq!(lead.uid(), "abc");
    /// assert_eq!(lead.category(), IncomingLeadCategory::Other("whatsapp_lead".into()));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn uid(&self) -> &str {
        match self {
            Self::SipIncomingLead(l) => &l.uid,
            Self::FormsIncomingLead(l) => &l.uid,
            Self::ChatsIncomingLead(l) => &l.uid,
            Self::MailIncomingLead(l) => &l.uid,
            Self::OtherIncomingLead(l) => &l.uid,
        }
    }

    /// The incoming lead's category. A category the specification does not know (or a known
    /// one whose metadata did not match its schema) comes from `OtherIncomingLead`.
    pub fn category(&self) -> IncomingLeadCategory {
        match self {
            Self::SipIncomingLead(_) => IncomingLeadCategory::Sip,
            Self::FormsIncomingLead(_) => IncomingLeadCategory::Forms,
            Self::ChatsIncomingLead(_) => IncomingLeadCategory::Chats,
            Self::MailIncomingLead(_) => IncomingLeadCategory::Mail,
            Self::OtherIncomingLead(l) => IncomingLeadCategory::from(l.category.as_str()),
        }
    }

    /// The pipeline the incoming lead is in.
    pub fn pipeline_id(&self) -> Option<i64> {
        match self {
            Self::SipIncomingLead(l) => l.pipeline_id,
            Self::FormsIncomingLead(l) => l.pipeline_id,
            Self::ChatsIncomingLead(l) => l.pipeline_id,
            Self::MailIncomingLead(l) => l.pipeline_id,
            Self::OtherIncomingLead(l) => l.pipeline_id,
        }
    }

    /// When the incoming lead was created (Unix timestamp).
    pub fn created_at(&self) -> Option<i64> {
        match self {
            Self::SipIncomingLead(l) => l.created_at,
            Self::FormsIncomingLead(l) => l.created_at,
            Self::ChatsIncomingLead(l) => l.created_at,
            Self::MailIncomingLead(l) => l.created_at,
            Self::OtherIncomingLead(l) => l.created_at,
        }
    }

    /// The contacts, companies and leads attached to the incoming lead.
    pub fn embedded(&self) -> Option<&IncomingLeadEmbedded> {
        match self {
            Self::SipIncomingLead(l) => l.embedded.as_ref(),
            Self::FormsIncomingLead(l) => l.embedded.as_ref(),
            Self::ChatsIncomingLead(l) => l.embedded.as_ref(),
            Self::MailIncomingLead(l) => l.embedded.as_ref(),
            Self::OtherIncomingLead(l) => l.embedded.as_ref(),
        }
    }
}

//! Accepting or declining an incoming lead that may already be decided: Kommo's 400 "The
//! incoming lead has already been accepted" as a typed meaning ([`Error::already_decided`]) and
//! the idempotent calls [`Client::accept_incoming_lead_idempotent`] and
//! [`Client::decline_incoming_lead_idempotent`].

use reqwest::StatusCode;

use super::types::{AcceptIncomingLeadRequest, DeclineIncomingLeadRequest, IncomingLeadDecision};
use super::{Client, Error};
use crate::error::ResponseExt;

/// What had already happened to an incoming lead when it was accepted or declined again
/// ([`Error::already_decided`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PriorDecision {
    /// Someone (another worker, a person) had accepted it.
    Accepted,
    /// Someone had declined it.
    Declined,
    /// Someone had linked it to an existing lead (chats only).
    Linked,
}

/// The answer of [`Client::accept_incoming_lead_idempotent`] and
/// [`Client::decline_incoming_lead_idempotent`]: decided by this call, or before it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Decided {
    /// This call accepted it: Kommo's answer, with the entities created.
    Accepted(Box<IncomingLeadDecision>),
    /// This call declined it: Kommo's answer, with the entities moved to the trash.
    Declined(Box<IncomingLeadDecision>),
    /// It had been accepted before this call (by another worker or a person).
    AlreadyAccepted,
    /// It had been declined before this call.
    AlreadyDeclined,
    /// It had been linked to an existing lead before this call.
    AlreadyLinked,
}

impl Decided {
    /// Whether the lead is accepted now, by this call or before it.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted(_) | Self::AlreadyAccepted)
    }

    /// Whether the lead is declined now, by this call or before it.
    pub fn is_declined(&self) -> bool {
        matches!(self, Self::Declined(_) | Self::AlreadyDeclined)
    }

    /// Kommo's answer when this call made the decision; `None` when it had been made before.
    pub fn by_this_call(&self) -> Option<&IncomingLeadDecision> {
        match self {
            Self::Accepted(d) | Self::Declined(d) => Some(d),
            _ => None,
        }
    }

    /// The decision made before this call, if it had been.
    pub fn prior(&self) -> Option<PriorDecision> {
        match self {
            Self::AlreadyAccepted => Some(PriorDecision::Accepted),
            Self::AlreadyDeclined => Some(PriorDecision::Declined),
            Self::AlreadyLinked => Some(PriorDecision::Linked),
            _ => None,
        }
    }

    fn from_prior(prior: PriorDecision) -> Self {
        match prior {
            PriorDecision::Accepted => Self::AlreadyAccepted,
            PriorDecision::Declined => Self::AlreadyDeclined,
            PriorDecision::Linked => Self::AlreadyLinked,
        }
    }
}

/// The decision a problem's text reports as already made: "The incoming lead has already been
/// accepted" (declined, linked), in any case (openapi/EVIDENCE.md, "An incoming lead decided
/// twice").
fn prior_in(text: &str) -> Option<PriorDecision> {
    let text = text.to_ascii_lowercase();
    let (_, rest) = text.split_once("already been ")?;
    let word = rest.split(|c: char| !c.is_ascii_alphabetic()).next()?;
    match word {
        "accepted" => Some(PriorDecision::Accepted),
        "declined" => Some(PriorDecision::Declined),
        "linked" => Some(PriorDecision::Linked),
        _ => None,
    }
}

impl Error {
    /// The decision already made, when this is Kommo's answer to accepting, declining or
    /// linking an incoming lead that someone had decided before: a 400 problem whose `detail`
    /// (or `title`) says "The incoming lead has already been accepted" (or declined, linked).
    /// `None` for every other error, other 400s included.
    ///
    /// ```no_run
    /// use lead_intake::kommo::PriorDecision;
    /// use lead_intake::prelude::*;
    /// # async fn f(kommo: lead_intake::kommo::Client, uid: String) -> Result<(), lead_intake::kommo::Error> {
    /// match kommo.accept_incoming_lead().uid(uid).send().body().await {
    ///     Ok(decision) => println!("accepted: {:?}", decision.embedded),
    ///     Err(e) if e.already_decided() == Some(PriorDecision::Accepted) => println!("accepted before us"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn already_decided(&self) -> Option<PriorDecision> {
        if self.status() != Some(StatusCode::BAD_REQUEST) {
            return None;
        }
        let problem = self.problem()?;
        [problem.detail.as_deref(), problem.title.as_deref()]
            .into_iter()
            .flatten()
            .find_map(prior_in)
    }
}

impl Client {
    /// Accepts the incoming lead `uid`, or says who decided it before: "accepted, by us or
    /// before us" is [`Decided::is_accepted`]. Kommo's 400 for a lead already decided
    /// ([`Error::already_decided`]) is [`Decided::AlreadyAccepted`] (or `AlreadyDeclined`,
    /// `AlreadyLinked`), not an error; every other failure is. Safe to call from several
    /// workers, or again after a lost answer.
    ///
    /// ```no_run
    /// use lead_intake::kommo::Decided;
    /// use lead_intake::kommo::types::AcceptIncomingLeadRequest;
    /// # async fn f(kommo: lead_intake::kommo::Client, uid: String) -> Result<(), lead_intake::kommo::Error> {
    /// match kommo
    ///     .accept_incoming_lead_idempotent(&uid, AcceptIncomingLeadRequest::new().with_status_id(58141807))
    ///     .await?
    /// {
    ///     Decided::Accepted(answer) => println!("we accepted it: {:?}", answer.embedded),
    ///     Decided::AlreadyAccepted => println!("accepted before us"),
    ///     other => println!("not accepted: {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn accept_incoming_lead_idempotent(
        &self,
        uid: &str,
        request: AcceptIncomingLeadRequest,
    ) -> Result<Decided, Error> {
        match self
            .accept_incoming_lead()
            .uid(uid)
            .body(request)
            .send()
            .body()
            .await
        {
            Ok(answer) => Ok(Decided::Accepted(Box::new(answer))),
            Err(e) => e.already_decided().map(Decided::from_prior).ok_or(e),
        }
    }

    /// Declines the incoming lead `uid`, or says who decided it before: "declined, by us or
    /// before us" is [`Decided::is_declined`]. Like
    /// [`accept_incoming_lead_idempotent`](Self::accept_incoming_lead_idempotent).
    ///
    /// ```no_run
    /// use lead_intake::kommo::types::DeclineIncomingLeadRequest;
    /// # async fn f(kommo: lead_intake::kommo::Client, uid: String) -> Result<(), lead_intake::kommo::Error> {
    /// let decided = kommo
    ///     .decline_incoming_lead_idempotent(&uid, DeclineIncomingLeadRequest::new())
    ///     .await?;
    /// if !decided.is_declined() {
    ///     println!("someone else decided it: {:?}", decided.prior());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn decline_incoming_lead_idempotent(
        &self,
        uid: &str,
        request: DeclineIncomingLeadRequest,
    ) -> Result<Decided, Error> {
        match self
            .decline_incoming_lead()
            .uid(uid)
            .body(request)
            .send()
            .body()
            .await
        {
            Ok(answer) => Ok(Decided::Declined(Box::new(answer))),
            Err(e) => e.already_decided().map(Decided::from_prior).ok_or(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_the_prior_decision() {
        for (text, prior) in [
            (
                "The incoming lead has already been accepted",
                Some(PriorDecision::Accepted),
            ),
            (
                "The incoming lead has already been declined.",
                Some(PriorDecision::Declined),
            ),
            (
                "Incoming lead has already been LINKED",
                Some(PriorDecision::Linked),
            ),
            ("Invalid data given", None),
            ("already been", None),
            ("", None),
        ] {
            assert_eq!(prior_in(text), prior, "{text}");
        }
    }
}

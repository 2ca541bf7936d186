use super::types::Problem;
use crate::error::ProblemSummary;

impl ProblemSummary for Problem {
    fn forbidden_page_means_blocked() -> bool {
        true
    }

    fn is_problem_document(&self) -> bool {
        self.title.is_some()
            || self.detail.is_some()
            || self.status.is_some()
            || self.type_.is_some()
            || self.trace_id.is_some()
            || self.error_code.is_some()
            || self.error_type.is_some()
            || !self.validation_errors.is_empty()
    }

    fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
            .and_then(|s| u64::try_from(s).ok())
            .map(std::time::Duration::from_secs)
    }

    fn summary(&self) -> String {
        let mut out = match (&self.title, &self.detail) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (Some(s), None) | (None, Some(s)) => s.clone(),
            // The Chats API's form on Kommo's page: `error_type` and `error_description`.
            (None, None) => match (&self.error_type, &self.error_description) {
                (Some(t), Some(d)) => format!("{t}: {d}"),
                (Some(s), None) | (None, Some(s)) => s.clone(),
                (None, None) => "no title or detail".to_string(),
            },
        };
        if let Some(hint) = &self.hint {
            out.push_str(&format!(" (hint: {hint})"));
        }
        // Kommo's support asks for it.
        if let Some(trace_id) = &self.trace_id {
            out.push_str(&format!(" (trace_id: {trace_id})"));
        }
        if let Some(seconds) = self.retry_after {
            out.push_str(&format!(" (retry after {seconds}s)"));
        }
        let rejected = self.validation_errors.len();
        if rejected > 0 {
            out.push_str(&format!(
                " ({rejected} item{} rejected",
                if rejected == 1 { "" } else { "s" }
            ));
            for group in &self.validation_errors {
                for e in &group.errors {
                    out.push_str(&format!(
                        "; request_id {}: {} at {}: {}",
                        group.request_id.as_deref().unwrap_or("?"),
                        e.code.as_deref().unwrap_or("?"),
                        e.path.as_deref().unwrap_or("?"),
                        e.detail.as_deref().unwrap_or("?"),
                    ));
                }
            }
            out.push(')');
        }
        out
    }
}
